package server

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// TestConcurrencyElection runs clientv3/concurrency's election from clients
// of different members: one leader at a time, in the order they campaigned
// (the recipe waits on the create revisions of earlier candidates), Resign
// hands over, and Observe reports each new leader.
func TestConcurrencyElection(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader()
	ctx := testCtx(t)

	var elections []*concurrency.Election
	for i := 0; i < 3; i++ {
		sess, err := concurrency.NewSession(c.client(i), concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		elections = append(elections, concurrency.NewElection(sess, "/election"))
	}
	octx, ocancel := context.WithCancel(ctx)
	observing := make(chan struct{})
	// The observer ends when octx does; the test waits for it.
	defer func() { ocancel(); <-observing }()
	// Observe reports the current leader: each change, once it looks again
	// (it is not a history: a leader that came and went while no one
	// received from it is not reported).
	var omu sync.Mutex
	var seen []string
	go func() {
		defer close(observing)
		for resp := range elections[0].Observe(octx) {
			omu.Lock()
			if v := string(resp.Kvs[0].Value); len(seen) == 0 || seen[len(seen)-1] != v {
				seen = append(seen, v)
			}
			omu.Unlock()
		}
	}()
	waitObserved := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			omu.Lock()
			last := ""
			if len(seen) > 0 {
				last = seen[len(seen)-1]
			}
			omu.Unlock()
			if last == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Observe did not report %s as leader within 10s (saw %v)", want, seen)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if err := elections[0].Campaign(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	waitObserved("n0")
	// The others queue behind n0, in this order.
	won := make(chan string, 2)
	var wg sync.WaitGroup
	for i := 1; i < 3; i++ {
		if i == 2 {
			// n1 must have its key before n2 campaigns.
			waitKeys(t, c.client(0), 2)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("n", i)
			if err := elections[i].Campaign(ctx, name); err != nil {
				t.Error(err)
				return
			}
			won <- name
		}()
	}
	waitKeys(t, c.client(0), 3)
	select {
	case w := <-won:
		t.Fatalf("%s won while n0 leads", w)
	case <-time.After(200 * time.Millisecond):
	}
	leader, err := elections[1].Leader(ctx)
	if err != nil || string(leader.Kvs[0].Value) != "n0" {
		t.Fatalf("leader as seen by n1: %v %v, want n0", leader, err)
	}

	for resign, want := range []string{"n1", "n2"} {
		if err := elections[resign].Resign(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case w := <-won:
			if w != want {
				t.Fatalf("after n%d resigned %s won, want %s", resign, w, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nobody won within 10s of n%d resigning", resign)
		}
		waitObserved(want)
	}
	wg.Wait()

	omu.Lock()
	defer omu.Unlock()
	if fmt.Sprint(seen) != "[n0 n1 n2]" {
		t.Fatalf("Observe saw %v, want [n0 n1 n2]", seen)
	}
}

// waitKeys waits until the election has n candidate keys.
func waitKeys(t *testing.T, cli *clientv3.Client, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cli.Get(context.Background(), "/election/", withPrefixCount()...)
		if err == nil && resp.Count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the election did not reach %d candidates within 10s (%v, %v)", n, resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrencySTM runs clientv3/concurrency's software transactional
// memory (serializable isolation: every read's mod revision is compared at
// commit, conflicting transactions retry) from clients of every member:
// concurrent increments of one counter and transfers between two accounts
// lose nothing.
func TestConcurrencySTM(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader()
	ctx := testCtx(t)
	cli := c.client()
	if _, err := cli.Put(ctx, "a", "100"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "b", "100"); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 6, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wcli := c.client(w % 3)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				_, err := concurrency.NewSTM(wcli, func(s concurrency.STM) error {
					n, _ := strconv.Atoi(s.Get("counter"))
					s.Put("counter", strconv.Itoa(n+1))
					from, to := "a", "b"
					if (w+r)%2 == 0 {
						from, to = to, from
					}
					f, _ := strconv.Atoi(s.Get(from))
					g, _ := strconv.Atoi(s.Get(to))
					s.Put(from, strconv.Itoa(f-3))
					s.Put(to, strconv.Itoa(g+3))
					return nil
				}, concurrency.WithAbortContext(ctx))
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	get := func(k string) int {
		resp, err := cli.Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v %v", k, resp, err)
		}
		n, _ := strconv.Atoi(string(resp.Kvs[0].Value))
		return n
	}
	if n := get("counter"); n != workers*rounds {
		t.Errorf("counter = %d after %d increments", n, workers*rounds)
	}
	if a, b := get("a"), get("b"); a+b != 200 {
		t.Errorf("a + b = %d + %d = %d after transfers, want 200", a, b, a+b)
	}
}

func withPrefixCount() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
