package server

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the metrics h serves, by name (unlabelled ones only).
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: status %d", rec.Code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

func health(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, strings.TrimSpace(string(b))
}

// The metrics follow the member (leadership, applied proposals, the store's
// revisions), and /health turns unhealthy when the member loses its quorum.
func TestMetricsAndHealth(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	cli := c.client(lead)
	ctx := testCtx(t)
	var rev int64
	for i := range 5 {
		put, err := cli.Put(ctx, "m/k", strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		rev = put.Header.Revision
	}
	if _, err := cli.Compact(ctx, rev-2); err != nil {
		t.Fatal(err)
	}
	lm := scrape(t, c.servers[lead].MetricsHandler())
	for name, want := range map[string]float64{
		"etcd_server_has_leader":               1,
		"etcd_server_is_leader":                1,
		"etcd_debugging_mvcc_current_revision": float64(rev),
		"etcd_debugging_mvcc_compact_revision": float64(rev - 2),
	} {
		if got, ok := lm[name]; !ok || got != want {
			t.Errorf("leader's %s: got %v (present %v), want %v", name, got, ok, want)
		}
	}
	// Members' own proposals (publishing their URLs) may be under way.
	if _, ok := lm["etcd_server_proposals_pending"]; !ok {
		t.Error("leader's etcd_server_proposals_pending is missing")
	}
	for _, name := range []string{"etcd_server_proposals_applied_total", "etcd_server_proposals_committed_total",
		"etcd_server_leader_changes_seen_total", "lockstep_transport_messages_sent_total", "go_goroutines", "lockstep_raft_term"} {
		if lm[name] < 1 {
			t.Errorf("leader's %s: got %v, want at least 1", name, lm[name])
		}
	}
	fh := c.servers[follower].MetricsHandler()
	if fm := scrape(t, fh); fm["etcd_server_is_leader"] != 0 || fm["etcd_server_has_leader"] != 1 {
		t.Errorf("follower: is_leader %v has_leader %v, want 0 and 1", fm["etcd_server_is_leader"], fm["etcd_server_has_leader"])
	}
	if code, body := health(t, fh); code != http.StatusOK || body != `{"health":"true","reason":""}` {
		t.Fatalf("follower's /health with a quorum: %d %s", code, body)
	}

	// Alone, the follower has no leader to read through.
	for i := range c.servers {
		if i != follower {
			c.stop(i)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := health(t, fh)
		if code == http.StatusServiceUnavailable && strings.Contains(body, `"health":"false"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health of a member without quorum: still %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
