package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/lockstep/lockstep/kv"
)

// AutoCompaction makes the leader compact the key-value history on its own,
// as etcd's --auto-compaction-mode and --auto-compaction-retention do.
// Without it history is kept until a client calls Compact, and memory grows
// with every write.
type AutoCompaction struct {
	// Mode is CompactPeriodic or CompactRevision; empty turns automatic
	// compaction off.
	Mode string
	// Retention, for CompactPeriodic, is how long history is kept: the
	// leader compacts to the revision it saw Retention ago.
	Retention time.Duration
	// Revisions, for CompactRevision, is how many revisions are kept: the
	// leader compacts to the current revision minus Revisions.
	Revisions int64

	// interval, if set, replaces how often the leader looks (tests).
	interval time.Duration
}

// The auto-compaction modes, named as etcd names them.
const (
	CompactPeriodic = "periodic"
	CompactRevision = "revision"
)

// revisionCompactionInterval is how often revision mode compacts (etcd's).
const revisionCompactionInterval = 5 * time.Minute

// ParseAutoCompaction reads etcd's two flags: mode periodic with a retention
// that is a duration ("30m", "72h") or a number of hours ("1"), or mode
// revision with a retention that is a number of revisions. A retention of
// "0" or "" turns automatic compaction off.
func ParseAutoCompaction(mode, retention string) (AutoCompaction, error) {
	if retention == "" || retention == "0" {
		if mode != CompactPeriodic && mode != CompactRevision {
			return AutoCompaction{}, fmt.Errorf("mode %q is not %s or %s", mode, CompactPeriodic, CompactRevision)
		}
		return AutoCompaction{}, nil
	}
	switch mode {
	case CompactPeriodic:
		d, err := time.ParseDuration(retention)
		if err != nil {
			hours, herr := strconv.ParseFloat(retention, 64)
			if herr != nil {
				return AutoCompaction{}, fmt.Errorf("retention %q is neither a duration nor a number of hours", retention)
			}
			d = time.Duration(hours * float64(time.Hour))
		}
		if d <= 0 {
			return AutoCompaction{}, fmt.Errorf("retention %q is not positive", retention)
		}
		return AutoCompaction{Mode: CompactPeriodic, Retention: d}, nil
	case CompactRevision:
		n, err := strconv.ParseInt(strings.TrimSpace(retention), 10, 64)
		if err != nil || n <= 0 {
			return AutoCompaction{}, fmt.Errorf("retention %q is not a positive number of revisions", retention)
		}
		return AutoCompaction{Mode: CompactRevision, Revisions: n}, nil
	}
	return AutoCompaction{}, fmt.Errorf("mode %q is not %s or %s", mode, CompactPeriodic, CompactRevision)
}

func (a AutoCompaction) validate() error {
	switch a.Mode {
	case "":
	case CompactPeriodic:
		if a.Retention <= 0 {
			return fmt.Errorf("server: config: periodic auto-compaction with retention %v", a.Retention)
		}
	case CompactRevision:
		if a.Revisions <= 0 {
			return fmt.Errorf("server: config: revision auto-compaction keeping %d revisions", a.Revisions)
		}
	default:
		return fmt.Errorf("server: config: auto-compaction mode %q is not %s or %s", a.Mode, CompactPeriodic, CompactRevision)
	}
	return nil
}

// checkInterval is how often the compactor looks: a tenth of the retention
// (at most an hour) in periodic mode, so that history is kept between 1 and
// 1.1 retention periods; every five minutes in revision mode.
func (a AutoCompaction) checkInterval() time.Duration {
	if a.interval > 0 {
		return a.interval
	}
	if a.Mode == CompactPeriodic {
		return min(max(a.Retention/10, time.Millisecond), time.Hour)
	}
	return revisionCompactionInterval
}

// revSample is the revision seen at a time.
type revSample struct {
	at  time.Time
	rev int64
}

// compactor runs on every member and acts while it leads: every
// checkInterval it works out the revision to compact to and proposes the
// compaction if that is past the last one. A new leader starts afresh, as
// it has no samples of the time before (periodic mode then waits a full
// retention).
func (s *Server) compactor() {
	defer s.wg.Done()
	a := s.cfg.AutoCompaction
	t := time.NewTicker(a.checkInterval())
	defer t.Stop()
	var samples []revSample
	for {
		var now time.Time
		select {
		case <-s.ctx.Done():
			return
		case now = <-t.C:
		}
		if s.Leader() != s.self.ID {
			samples = nil
			continue
		}
		rev := s.sm.kv.Revision()
		var target int64
		switch a.Mode {
		case CompactPeriodic:
			samples = append(samples, revSample{now, rev})
			// The newest sample at least Retention old is the target; the
			// ones before it are no longer needed.
			i := 0
			for i+1 < len(samples) && now.Sub(samples[i+1].at) >= a.Retention {
				i++
			}
			if now.Sub(samples[i].at) >= a.Retention {
				target = samples[i].rev
			}
			samples = samples[i:]
		case CompactRevision:
			target = rev - a.Revisions
		}
		if target <= s.sm.kv.CompactRevision() || target <= 1 {
			continue
		}
		_, err := s.propose(s.ctx, kv.Command{Compact: &kv.CompactRequest{Revision: target}})
		switch {
		case err == nil:
			s.cfg.Logger.Info("compacted the key-value history", "revision", target, "mode", a.Mode)
		case s.ctx.Err() != nil:
			return
		case errors.Is(err, rpctypes.ErrGRPCCompacted):
			// A client compacted further meanwhile.
		default:
			s.cfg.Logger.Warn("automatic compaction failed", "revision", target, "err", err)
		}
	}
}
