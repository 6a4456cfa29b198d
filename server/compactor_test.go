package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestParseAutoCompaction(t *testing.T) {
	for _, tc := range []struct {
		mode, retention string
		want            AutoCompaction
		err             string
	}{
		{"periodic", "0", AutoCompaction{}, ""},
		{"periodic", "", AutoCompaction{}, ""},
		{"periodic", "1", AutoCompaction{Mode: CompactPeriodic, Retention: time.Hour}, ""},
		{"periodic", "0.5", AutoCompaction{Mode: CompactPeriodic, Retention: 30 * time.Minute}, ""},
		{"periodic", "90s", AutoCompaction{Mode: CompactPeriodic, Retention: 90 * time.Second}, ""},
		{"revision", "1000", AutoCompaction{Mode: CompactRevision, Revisions: 1000}, ""},
		{"periodic", "soon", AutoCompaction{}, `retention "soon" is neither a duration nor a number of hours`},
		{"periodic", "-1h", AutoCompaction{}, `retention "-1h" is not positive`},
		{"revision", "1h", AutoCompaction{}, `retention "1h" is not a positive number of revisions`},
		{"hourly", "1", AutoCompaction{}, `mode "hourly" is not periodic or revision`},
		{"hourly", "0", AutoCompaction{}, `mode "hourly" is not periodic or revision`},
	} {
		got, err := ParseAutoCompaction(tc.mode, tc.retention)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s %q: got %+v, %v; want error %q", tc.mode, tc.retention, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %q: got %+v, %v; want %+v", tc.mode, tc.retention, got, err, tc.want)
		}
	}
}

// waitCompacted polls until every member has compacted to at least rev.
func (c *testCluster) waitCompacted(rev int64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		low := int64(-1)
		for _, s := range c.servers {
			if cr := s.sm.kv.CompactRevision(); low < 0 || cr < low {
				low = cr
			}
		}
		if low >= rev {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("members compacted to %d at least, want %d", low, rev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// In revision mode the leader keeps the last Revisions revisions: older
// reads fail as compacted, newer ones still work.
func TestAutoCompactionKeepsRevisions(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.AutoCompaction = AutoCompaction{Mode: CompactRevision, Revisions: 5, interval: 20 * time.Millisecond}
	})
	lead := c.waitLeader()
	cli := c.client(lead)
	ctx := testCtx(t)
	var last int64
	for i := range 20 {
		put, err := cli.Put(ctx, "ac/k", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = put.Header.Revision
	}
	c.waitCompacted(last - 5)
	if _, err := cli.Get(ctx, "ac/k", clientv3.WithRev(last-10)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read 10 revisions back: got %v, want %v", err, rpctypes.ErrCompacted)
	}
	got, err := cli.Get(ctx, "ac/k", clientv3.WithRev(last-5))
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("read 5 revisions back: got %v, %v", got, err)
	}
	if cr := c.servers[lead].sm.kv.CompactRevision(); cr > last-5 {
		t.Fatalf("compacted to %d, past the %d revisions kept (current %d)", cr, 5, last)
	}
}

// In periodic mode the leader compacts to the revision it saw a retention
// period ago, and not before a period has passed.
func TestAutoCompactionKeepsAPeriod(t *testing.T) {
	const retention = 400 * time.Millisecond
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.AutoCompaction = AutoCompaction{Mode: CompactPeriodic, Retention: retention, interval: 20 * time.Millisecond}
	})
	lead := c.waitLeader()
	cli := c.client(lead)
	ctx := testCtx(t)
	first, err := cli.Put(ctx, "ac/p", "1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := cli.Put(ctx, "ac/p", "2"); err != nil {
		t.Fatal(err)
	}
	if cr := c.servers[lead].sm.kv.CompactRevision(); cr >= first.Header.Revision && time.Since(start) < retention/2 {
		t.Fatalf("compacted to %d before a retention period passed", cr)
	}
	c.waitCompacted(first.Header.Revision)
	if took := time.Since(start); took < retention/2 {
		t.Fatalf("compacted after %v; retention is %v", took, retention)
	}
}
