package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// healthTimeout bounds the linearizable read behind /health.
const healthTimeout = 2 * time.Second

// MetricsHandler serves the member's metrics in Prometheus' text format at
// /metrics and its health at /health, as etcd does on --listen-metrics-urls.
// The metrics that mean what etcd's mean carry etcd's names, so that
// dashboards and alerts written for etcd work; lockstep's own start with
// lockstep_. Go runtime and process metrics come with them.
func (s *Server) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		serverCollector{s},
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", s.serveHealth)
	return mux
}

// serveHealth answers {"health":"true"} when the member knows a leader and
// a linearizable read through it succeeds (etcd's /health), 503 otherwise.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	reason := ""
	if s.Leader() == raft.None {
		reason = "no leader"
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := s.r.Read(ctx, replica.ReadLinearizable, func() error { return nil }); err != nil {
			reason = "linearizable read failed: " + err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}{strconv.FormatBool(reason == ""), reason})
}

var (
	descHasLeader     = prometheus.NewDesc("etcd_server_has_leader", "Whether a leader exists: 1 is existence, 0 is not.", nil, nil)
	descIsLeader      = prometheus.NewDesc("etcd_server_is_leader", "Whether this member is the leader: 1 if is, 0 otherwise.", nil, nil)
	descLeaderChanges = prometheus.NewDesc("etcd_server_leader_changes_seen_total", "The number of leader changes seen.", nil, nil)
	descCommitted     = prometheus.NewDesc("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", nil, nil)
	descApplied       = prometheus.NewDesc("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", nil, nil)
	descPending       = prometheus.NewDesc("etcd_server_proposals_pending", "The current number of pending proposals to commit.", nil, nil)
	descFailed        = prometheus.NewDesc("etcd_server_proposals_failed_total", "The total number of failed proposals seen.", nil, nil)
	descRevision      = prometheus.NewDesc("etcd_debugging_mvcc_current_revision", "The current revision of the store.", nil, nil)
	descCompactRev    = prometheus.NewDesc("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in the store.", nil, nil)
	descTerm          = prometheus.NewDesc("lockstep_raft_term", "The raft term this member is in.", nil, nil)
	descMsgsSent      = prometheus.NewDesc("lockstep_transport_messages_sent_total", "Raft messages written to peers (snapshots excluded).", nil, nil)
	descMsgsReceived  = prometheus.NewDesc("lockstep_transport_messages_received_total", "Raft messages read from peers (snapshots excluded).", nil, nil)
	descMsgsDropped   = prometheus.NewDesc("lockstep_transport_messages_dropped_total", "Raft messages dropped: queue full, peer unknown or down, or too large.", nil, nil)
	descSnapsSent     = prometheus.NewDesc("lockstep_transport_snapshots_sent_total", "Snapshots sent to peers and acknowledged.", nil, nil)
	descSnapsReceived = prometheus.NewDesc("lockstep_transport_snapshots_received_total", "Snapshots received from peers.", nil, nil)
)

// serverCollector reads the member's figures once per scrape.
type serverCollector struct{ s *Server }

func (serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHasLeader, descIsLeader, descLeaderChanges, descCommitted, descApplied,
		descPending, descFailed, descRevision, descCompactRev, descTerm, descMsgsSent, descMsgsReceived, descMsgsDropped,
		descSnapsSent, descSnapsReceived} {
		ch <- d
	}
}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	lead, term := s.r.Leader()
	cnt := s.r.Counters()
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descHasLeader, bool01(lead != raft.None))
	gauge(descIsLeader, bool01(lead == s.self.ID))
	counter(descLeaderChanges, cnt.LeaderChanges)
	// etcd reports these two as gauges, though named like counters.
	gauge(descCommitted, float64(cnt.Committed))
	gauge(descApplied, float64(cnt.Applied))
	gauge(descPending, float64(cnt.Pending))
	counter(descFailed, s.proposalsFailed.Load())
	gauge(descRevision, float64(s.sm.kv.Revision()))
	gauge(descCompactRev, float64(s.sm.kv.CompactRevision()))
	gauge(descTerm, float64(term))
	counter(descMsgsSent, cnt.Transport.MessagesSent)
	counter(descMsgsReceived, cnt.Transport.MessagesReceived)
	counter(descMsgsDropped, cnt.Transport.MessagesDropped)
	counter(descSnapsSent, cnt.Transport.SnapshotsSent)
	counter(descSnapsReceived, cnt.Transport.SnapshotsReceived)
}
