package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockstep/lockstep/internal/leaktest"
	"github.com/lockstep/lockstep/server/servertest"
)

// TestLeaderSIGKILLed starts three `lockstep serve` processes, kills the
// leader with SIGKILL in the middle of a write workload, and checks that
// writes continue, that every acknowledged write survives, and that the old
// leader, restarted on its data dir, rejoins and catches up.
func TestLeaderSIGKILLed(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	c := newProcCluster(t, 3)
	all := newClient(t, c.endpoints())
	lead := c.leader(all, -1)
	cli := newClient(t, c.endpoints(lead))

	w := servertest.StartWrites(context.Background(), []*clientv3.Client{cli}, 4, 10*time.Second)
	defer w.Stop()
	w.WaitAcked(t, 100, 60*time.Second)
	c.members[lead].p.kill() // SIGKILL
	killedAt := w.Acked()
	newLead := c.leader(cli, lead)
	if newLead == lead {
		t.Fatalf("the killed member %d still leads", lead)
	}
	w.WaitAcked(t, killedAt+100, 60*time.Second)
	w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.Check(ctx, cli); err != nil {
		t.Fatalf("after the leader was killed: %v", err)
	}

	c.startState(lead, "existing")
	old := newClient(t, []string{c.members[lead].endpoint()})
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := w.Check(ctx, old, clientv3.WithSerializable())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted member did not catch up within 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It takes part again: a write through it commits.
	if _, err := old.Put(ctx, "after-rejoin", "yes"); err != nil {
		t.Fatalf("write through the rejoined member: %v", err)
	}
	t.Logf("%d writes acknowledged, %d before the leader was killed", w.Acked(), killedAt)

	// SIGTERM stops a member cleanly: exit status 0.
	m := c.members[0]
	m.p.cmd.Process.Signal(sigterm)
	if err := m.p.waitExit(t, 30*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v; output:\n%s", err, m.p.output())
	}
}

// TestDemo runs `lockstep demo`, writes and reads through the endpoints it
// prints with the lockstep client (and etcdctl when installed), and stops
// it with SIGINT.
func TestDemo(t *testing.T) {
	bin := lockstepBinary(t)
	p := startProc(t, bin, "demo")
	p.waitOutput(t, "Press Ctrl-C to stop.", 60*time.Second)
	var eps []string
	for _, l := range lines(p.output()) {
		if _, after, ok := strings.Cut(l, "clients http://"); ok {
			eps = append(eps, strings.Fields(after)[0])
		}
	}
	if len(eps) != 3 {
		t.Fatalf("demo printed %d client endpoints, want 3:\n%s", len(eps), p.output())
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("lockstep %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("put", "--endpoints="+eps[0], "greeting", "hello")
	if got := run("get", "--endpoints="+eps[1], "greeting"); got != "greeting\nhello\n" {
		t.Fatalf("get through another member: got %q", got)
	}
	if etcdctl, err := exec.LookPath("etcdctl"); err == nil {
		cmd := exec.Command(etcdctl, "--endpoints="+strings.Join(eps, ","), "put", "foo", "bar")
		cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "OK" {
			t.Fatalf("etcdctl put against the demo: %v, %q", err, out)
		}
		cmd = exec.Command(etcdctl, "--endpoints="+eps[2], "get", "foo")
		cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
		if out, err := cmd.CombinedOutput(); err != nil || string(out) != "foo\nbar\n" {
			t.Fatalf("etcdctl get against the demo: %v, %q", err, out)
		}
	} else {
		t.Log("etcdctl not installed: checked the demo with lockstep's client only")
	}
	p.cmd.Process.Signal(sigint)
	if err := p.waitExit(t, 30*time.Second); err != nil {
		t.Fatalf("demo after SIGINT: %v", err)
	}
	_, after, ok := strings.Cut(p.output(), "stopping\n")
	if !ok {
		t.Fatalf("demo did not say it was stopping:\n%s", p.output())
	}
	if strings.Contains(after, "level=WARN") || strings.Contains(after, "level=ERROR") {
		t.Fatalf("demo logged warnings or errors while stopping:\n%s", after)
	}
}
