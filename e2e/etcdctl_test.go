package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEtcdctl drives etcd's own command-line client (etcdctl 3.4, from
// `apt-get install etcd-client`) against three `lockstep serve` processes.
func TestEtcdctl(t *testing.T) {
	etcdctl, err := exec.LookPath("etcdctl")
	if err != nil {
		if testing.Short() {
			t.Skip("e2e: multi-process test skipped with -short")
		}
		t.Skip("e2e: etcdctl is not installed (apt-get install -y etcd-client; .ci/setup-extra does it in CI), skipping the etcdctl test")
	}
	c := newProcCluster(t, 3)
	all := strings.Join(c.endpoints(), ",")
	ctl := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(etcdctl, args...)
		cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ep := func(i int) string { return "--endpoints=" + c.members[i].endpoint() }

	if got := ctl("", ep(0), "put", "k1", "v1"); got != "OK\n" {
		t.Fatalf("put: got %q, want OK", got)
	}
	ctl("", ep(1), "put", "k2", "v2")
	if got := ctl("", ep(2), "get", "k1"); got != "k1\nv1\n" {
		t.Fatalf("get: got %q", got)
	}
	if got := ctl("", ep(0), "get", "k", "--prefix", "--keys-only"); strings.Fields(got)[0] != "k1" || strings.Fields(got)[1] != "k2" {
		t.Fatalf("get --prefix --keys-only: got %q", got)
	}
	if got := ctl("", ep(1), "get", "k1", "--consistency=s"); got != "k1\nv1\n" {
		t.Fatalf("serializable get: got %q", got)
	}
	// etcdctl txn reads compares, success ops and failure ops from stdin.
	txn := "value(\"k1\") = \"v1\"\n\nput k1 v1b\n\nget k1\n\n"
	if got := ctl(txn, ep(2), "txn"); !strings.HasPrefix(got, "SUCCESS") || !strings.Contains(got, "OK") {
		t.Fatalf("txn whose compare holds: got %q", got)
	}
	if got := ctl(txn, ep(0), "txn"); !strings.HasPrefix(got, "FAILURE") || !strings.Contains(got, "v1b") {
		t.Fatalf("txn whose compare fails: got %q, want FAILURE and k1's value", got)
	}
	if got := ctl("", ep(0), "del", "k", "--prefix"); got != "2\n" {
		t.Fatalf("del --prefix: got %q", got)
	}

	// Leases: grant, attach, inspect, revoke (through different members).
	grant := ctl("", ep(0), "lease", "grant", "60")
	f := strings.Fields(grant) // lease 694d77aa9e38260f granted with TTL(60s)
	if len(f) < 2 || f[0] != "lease" || !strings.Contains(grant, "granted with TTL(60s)") {
		t.Fatalf("lease grant: got %q", grant)
	}
	id := f[1]
	ctl("", ep(1), "put", "leased", "v", "--lease="+id)
	if got := ctl("", ep(2), "lease", "timetolive", id, "--keys"); !strings.Contains(got, "granted with TTL(60s)") || !strings.Contains(got, "attached keys([leased])") {
		t.Fatalf("lease timetolive: got %q", got)
	}
	if got := ctl("", ep(1), "lease", "revoke", id); !strings.Contains(got, "revoked") {
		t.Fatalf("lease revoke: got %q", got)
	}
	if got := ctl("", ep(0), "get", "leased"); got != "" {
		t.Fatalf("get of a revoked lease's key: got %q", got)
	}
	// Watch from revision 1 replays the history (etcdctl watch runs until
	// killed: give it a few seconds).
	wctx, wcancel := context.WithTimeout(context.Background(), 3*time.Second)
	wcmd := exec.CommandContext(wctx, etcdctl, ep(2), "watch", "k1", "--rev=1")
	wcmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
	wout, _ := wcmd.CombinedOutput()
	wcancel()
	if got := string(wout); !strings.Contains(got, "PUT\nk1\nv1\n") || !strings.Contains(got, "PUT\nk1\nv1b\n") || !strings.Contains(got, "DELETE\nk1\n") {
		t.Fatalf("watch --rev=1: got %q, want k1's puts and delete", got)
	}

	status := ctl("", "--endpoints="+all, "endpoint", "status")
	if n := len(lines(status)); n != 3 {
		t.Fatalf("endpoint status: got %d lines, want 3:\n%s", n, status)
	}
	leaders := 0
	for _, l := range lines(status) {
		// endpoint, ID, version, db size, is leader, is learner, raft term,
		// raft index, raft applied index, errors
		f := strings.Split(l, ", ")
		if len(f) < 9 || f[2] != "3.5.0" {
			t.Fatalf("endpoint status line %q: want etcd's fields and version 3.5.0", l)
		}
		if f[4] == "true" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("endpoint status: %d leaders, want 1:\n%s", leaders, status)
	}
	if got := ctl("", "--endpoints="+all, "endpoint", "health"); strings.Count(got, "is healthy") != 3 {
		t.Fatalf("endpoint health: got %q", got)
	}

	// Members publish their names and client URLs through the log shortly
	// after they start; until then etcdctl lists them as unstarted.
	missing := func(members string) string {
		for _, m := range c.members {
			want := fmt.Sprintf("started, %s, %s, %s, false", m.name, m.peerURL, m.clientURL)
			if !strings.Contains(members, want) {
				return want
			}
		}
		return ""
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		members := ctl("", ep(1), "member", "list")
		want := missing(members)
		if want == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list: no %q in\n%s", want, members)
		}
		time.Sleep(100 * time.Millisecond)
	}
	table := ctl("", ep(0), "member", "list", "-w", "table")
	if !strings.Contains(table, "| STATUS  | NAME |") {
		t.Errorf("member list -w table: got\n%s", table)
	}
}
