package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockstep/lockstep/internal/leaktest"
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

	var mu sync.Mutex // guards acked
	acked := map[string]string{}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d/%05d", w, n), fmt.Sprint(n)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := cli.Put(ctx, k, v)
				cancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}
	waitCount := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("only %d writes acknowledged within 60s, want %d", count(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCount(100)
	c.members[lead].p.kill() // SIGKILL
	killedAt := count()
	newLead := c.leader(cli, lead)
	if newLead == lead {
		t.Fatalf("the killed member %d still leads", lead)
	}
	waitCount(killedAt + 100)
	close(stop)
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	check := func(cli *clientv3.Client, opts ...clientv3.OpOption) error {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range acked {
			get, err := cli.Get(ctx, k, opts...)
			if err != nil {
				return err
			}
			if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != v {
				return fmt.Errorf("acknowledged %s=%s, read %v", k, v, get.Kvs)
			}
		}
		return nil
	}
	if err := check(cli); err != nil {
		t.Fatalf("after the leader was killed: %v", err)
	}

	c.startState(lead, "existing")
	old := newClient(t, []string{c.members[lead].endpoint()})
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := check(old, clientv3.WithSerializable())
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
	t.Logf("%d writes acknowledged, %d before the leader was killed", count(), killedAt)

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
	if !strings.Contains(p.output(), "stopping") {
		t.Fatalf("demo did not say it was stopping:\n%s", p.output())
	}
}
