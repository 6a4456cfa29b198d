package servertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LinDuration is how long a linearizability run lasts:
// LOCKSTEP_LINEARIZABLE_SECONDS if set, else def.
func LinDuration(t testing.TB, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv("LOCKSTEP_LINEARIZABLE_SECONDS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("LOCKSTEP_LINEARIZABLE_SECONDS=%q: want a positive number of seconds", s)
	}
	return time.Duration(n) * time.Second
}

// RunLinClient issues random operations on three keys (lin-0..lin-2)
// through cli until ctx ends, recording each in h: put, linearizable get,
// compare-and-set on the value this client last read, and delete. Each
// operation gets 2 s. id names the client in the history and seeds its
// choices.
func RunLinClient(ctx context.Context, h *LinHistory, cli *clientv3.Client, id int) {
	r := rand.New(rand.NewPCG(uint64(id), 99))
	last := map[string]string{}
	for n := 0; ctx.Err() == nil; n++ {
		key := fmt.Sprintf("lin-%d", r.IntN(3))
		val := fmt.Sprintf("c%d-%d", id, n)
		in := linInput{key: key}
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		call := h.now()
		var out linOutput
		var err error
		switch k := r.IntN(10); {
		case k < 3:
			in.kind, in.value = "put", val
			var resp *clientv3.PutResponse
			if resp, err = cli.Put(octx, key, val); err == nil {
				out.rev = resp.Header.Revision
			}
		case k < 7:
			in.kind = "get"
			var resp *clientv3.GetResponse
			if resp, err = cli.Get(octx, key); err == nil && len(resp.Kvs) > 0 {
				out.found, out.value = true, string(resp.Kvs[0].Value)
				last[key] = out.value
			}
		case k < 9:
			in.kind, in.value, in.expect = "cas", val, last[key]
			var resp *clientv3.TxnResponse
			resp, err = cli.Txn(octx).
				If(clientv3.Compare(clientv3.Value(key), "=", in.expect)).
				Then(clientv3.OpPut(key, val)).Commit()
			if err == nil {
				out.ok = resp.Succeeded
				if out.ok {
					out.rev = resp.Header.Revision
				}
			}
		default:
			in.kind = "delete"
			var resp *clientv3.DeleteResponse
			if resp, err = cli.Delete(octx, key); err == nil {
				out.ok = resp.Deleted > 0
				if out.ok {
					out.rev = resp.Header.Revision
				}
			}
		}
		cancel()
		ret := h.now()
		if err != nil {
			if ctx.Err() != nil && in.kind == "get" {
				return
			}
			out = linOutput{unknown: true}
		}
		h.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
		if err != nil && ctx.Err() != nil {
			return
		}
	}
}

// LinHistory records operations with times from the monotonic clock, for
// a linearizability check (Check). Safe for concurrent use.
type LinHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewLinHistory starts an empty history.
func NewLinHistory() *LinHistory { return &LinHistory{start: time.Now()} }

func (h *LinHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *LinHistory) add(o porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

// Check checks the history: writes that changed a key must report distinct
// revisions (two acknowledgments with one revision mean one of them reports
// another command's outcome), the workload must have done each kind of
// operation at least once, and the whole must be linearizable. htmlFile, if
// not empty, receives porcupine's picture of a history that is not. It
// returns the operation counts by kind and outcome, for the log.
func (h *LinHistory) Check(t testing.TB, htmlFile string) map[string]int {
	t.Helper()
	ops, counts := h.operations()
	if counts["get ok"] == 0 || counts["put ok"] == 0 || counts["cas ok"] == 0 {
		t.Fatalf("the workload did too little to check: %v", counts)
	}
	byRev := map[int64]linInput{}
	for _, o := range ops {
		out := o.Output.(linOutput)
		if out.rev == 0 {
			continue
		}
		if prev, dup := byRev[out.rev]; dup {
			t.Errorf("two acknowledged writes at revision %d: %+v and %+v", out.rev, prev, o.Input)
		}
		byRev[out.rev] = o.Input.(linInput)
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, ops, time.Minute)
	switch res {
	case porcupine.Illegal:
		if htmlFile != "" {
			if out, err := os.Create(htmlFile); err == nil {
				porcupine.Visualize(linModel, info, out)
				out.Close()
			}
		}
		t.Fatalf("the history of %d operations is not linearizable (%v)", len(ops), counts)
	case porcupine.Unknown:
		t.Fatalf("the linearizability check timed out on %d operations", len(ops))
	}
	return counts
}

// operations returns the history for porcupine: a failed write may have
// taken effect at any time after its call, so it returns after everything
// else; a failed read changed nothing and is left out. counts tallies the
// operations by kind and outcome.
func (h *LinHistory) operations() ([]porcupine.Operation, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	end := h.now() + 1
	counts := map[string]int{}
	var ops []porcupine.Operation
	for _, o := range h.ops {
		kind := o.Input.(linInput).kind
		if o.Output.(linOutput).unknown {
			counts[kind+" failed"]++
			if kind == "get" {
				continue
			}
			o.Return = end
		} else {
			counts[kind+" ok"]++
		}
		ops = append(ops, o)
	}
	return ops, counts
}

type linInput struct {
	kind               string // put, get, cas, delete
	key, value, expect string
}

type linOutput struct {
	unknown bool
	found   bool   // get
	value   string // get
	ok      bool   // cas: succeeded; delete: deleted a key
	rev     int64  // the revision of a write that changed a key
}

type linState struct {
	found bool
	value string
}

// linModel is one key's sequential specification (the history is
// partitioned by key). A compare on the value of a missing key compares
// against "", as in etcd.
var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, o := range history {
			k := o.Input.(linInput).key
			byKey[k] = append(byKey[k], o)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(linState), input.(linInput), output.(linOutput)
		switch in.kind {
		case "put":
			return true, linState{found: true, value: in.value}
		case "get":
			return out.found == s.found && out.value == s.value, s
		case "cas":
			// etcd compares a missing key's value as absent: the compare
			// fails whatever the expected value.
			ok := s.found && s.value == in.expect
			if !out.unknown && out.ok != ok {
				return false, s
			}
			if ok {
				return true, linState{found: true, value: in.value}
			}
			return true, s
		case "delete":
			return out.unknown || out.ok == s.found, linState{}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := fmt.Sprintf("%+v", out)
		if out.unknown {
			res = "unknown"
		}
		return fmt.Sprintf("%s(%s %s %s) -> %s", in.kind, in.key, in.expect, in.value, res)
	},
}

// LinNemesis is how RunLin disturbs the cluster: every Every, it stops a
// member (the leader two times in three, else another one; always the
// leader with OnlyLeader) for Down, then starts it again.
type LinNemesis struct {
	Members     int
	Leader      func() int // the current leader's index; waits for one
	Stop, Start func(i int)
	Every, Down time.Duration
	Seed        uint64
	OnlyLeader  bool
}

// RunLin runs RunLinClient on each of clients (client i as id i) for run
// while the nemesis works, lets the cluster settle, then checks the history
// (Check, with LOCKSTEP_LINEARIZABLE_HTML for the picture) and logs what
// happened.
func RunLin(t testing.TB, clients []*clientv3.Client, run time.Duration, n LinNemesis) {
	t.Helper()
	h := NewLinHistory()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for id, cli := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			RunLinClient(ctx, h, cli, id)
		}()
	}
	restarts, leaders := 0, 0
	r := rand.New(rand.NewPCG(n.Seed, n.Seed))
	deadline := time.Now().Add(run)
	for time.Now().Before(deadline) {
		time.Sleep(n.Every)
		victim := n.Leader()
		if !n.OnlyLeader && r.IntN(3) == 0 {
			victim = (victim + 1 + r.IntN(n.Members-1)) % n.Members
		} else {
			leaders++
		}
		n.Stop(victim)
		time.Sleep(n.Down)
		n.Start(victim)
		restarts++
	}
	time.Sleep(n.Down)
	cancel()
	wg.Wait()
	counts := h.Check(t, os.Getenv("LOCKSTEP_LINEARIZABLE_HTML"))
	t.Logf("a member was stopped or cut off %d times (%d of them the leader); %v", restarts, leaders, counts)
}
