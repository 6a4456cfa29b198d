// Command ledger is lockstep's smallest complete example: a replicated bank
// ledger on three replicas in one process, talking over loopback TCP. It
// makes deposits and transfers, reads linearizably from a follower, kills
// the leader mid-way and shows the service carrying on under a new leader,
// then restarts the old leader and shows it catching up.
//
//	go run ./examples/ledger
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// op is a ledger command, JSON-encoded in the log for readability.
type op struct {
	Kind   string `json:"kind"` // "deposit" or "transfer"
	From   string `json:"from,omitempty"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
}

// result is what applying an op returns to the proposer.
type result struct {
	Balance int64 // the receiving account's balance after the op
	// Rejected explains a transfer refused by the ledger's rules. It is a
	// result, not a failure: every replica rejects it the same way.
	Rejected string
}

// ledger is the state machine: balances by account.
type ledger struct {
	mu       sync.RWMutex // guards balances
	balances map[string]int64
}

func newLedger() *ledger { return &ledger{balances: map[string]int64{}} }

func (l *ledger) Apply(cmds []replica.Command, results []result) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range cmds {
		var o op
		if err := json.Unmarshal(c.Data, &o); err != nil {
			// Every replica sees the same bytes: reject deterministically.
			results[i] = result{Rejected: "malformed command"}
			continue
		}
		switch {
		case o.Amount <= 0:
			results[i] = result{Rejected: "amount must be positive"}
		case o.Kind == "deposit":
			l.balances[o.To] += o.Amount
			results[i] = result{Balance: l.balances[o.To]}
		case o.Kind == "transfer" && l.balances[o.From] < o.Amount:
			results[i] = result{Rejected: fmt.Sprintf("%s has %d, cannot send %d", o.From, l.balances[o.From], o.Amount)}
		case o.Kind == "transfer":
			l.balances[o.From] -= o.Amount
			l.balances[o.To] += o.Amount
			results[i] = result{Balance: l.balances[o.To]}
		default:
			results[i] = result{Rejected: "unknown operation " + o.Kind}
		}
	}
	return nil
}

func (l *ledger) Snapshot(w io.Writer) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return json.NewEncoder(w).Encode(l.balances)
}

func (l *ledger) Restore(r io.Reader) error {
	b := map[string]int64{}
	if err := json.NewDecoder(r).Decode(&b); err != nil {
		return fmt.Errorf("ledger: restoring: %w", err)
	}
	l.mu.Lock()
	l.balances = b
	l.mu.Unlock()
	return nil
}

func (l *ledger) total() (int64, string) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := make([]string, 0, len(l.balances))
	var sum int64
	for n, v := range l.balances {
		names = append(names, n)
		sum += v
	}
	sort.Strings(names)
	s := ""
	for _, n := range names {
		s += fmt.Sprintf("%s=%d ", n, l.balances[n])
	}
	return sum, s
}

type node struct {
	r  *replica.Replica[result]
	sm *ledger
}

func main() {
	verbose := flag.Bool("v", false, "log replica events")
	flag.Parse()
	if err := run(*verbose); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

// quietLogger discards the store's routine recovery messages unless -v.
var quietLogger = slog.New(slog.DiscardHandler)

func run(verbose bool) error {
	logger := quietLogger
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		quietLogger = logger
	}
	dir, err := os.MkdirTemp("", "lockstep-ledger-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	peers := map[raft.NodeID]string{}
	lns := map[raft.NodeID]net.Listener{}
	for id := raft.NodeID(1); id <= 3; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns[id], peers[id] = ln, ln.Addr().String()
	}
	stores := map[raft.NodeID]replica.LogStore{}
	nodes := map[raft.NodeID]*node{}
	start := func(id raft.NodeID, ln net.Listener) error {
		if ln == nil {
			if ln, err = net.Listen("tcp", peers[id]); err != nil {
				return err
			}
		}
		if stores[id] == nil {
			if stores[id], err = openStore(dir, id); err != nil {
				return err
			}
		}
		sm := newLedger()
		r, err := replica.Start[result](replica.Config{
			ID: id, ClusterID: 1, Peers: peers, Listener: ln, Store: stores[id], Logger: logger,
		}, sm)
		if err != nil {
			return err
		}
		nodes[id] = &node{r: r, sm: sm}
		return nil
	}
	for id := raft.NodeID(1); id <= 3; id++ {
		if err := start(id, lns[id]); err != nil {
			return err
		}
	}
	defer func() {
		for _, n := range nodes {
			n.r.Stop()
		}
	}()
	fmt.Printf("three replicas on %s, %s, %s\n", peers[1], peers[2], peers[3])

	lead, err := waitLeader(nodes, raft.None)
	if err != nil {
		return err
	}
	fmt.Printf("replica %d leads\n", lead)

	submit := func(via raft.NodeID, o op) (result, error) {
		b, _ := json.Marshal(o)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			res, err := nodes[via].r.Propose(ctx, b)
			cancel()
			// Only retry what surely did not apply, so no deposit is made
			// twice.
			if err == nil || !(errors.Is(err, replica.ErrNoLeader) || errors.Is(err, replica.ErrProposalDropped)) || time.Now().After(deadline) {
				return res, err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	follower := raft.NodeID(1)
	if follower == lead {
		follower = 2
	}
	for _, o := range []op{
		{Kind: "deposit", To: "alice", Amount: 100},
		{Kind: "deposit", To: "bob", Amount: 50},
		{Kind: "transfer", From: "alice", To: "bob", Amount: 30},
		{Kind: "transfer", From: "bob", To: "carol", Amount: 500},
	} {
		res, err := submit(follower, o)
		if err != nil {
			return fmt.Errorf("%s: %w", o.Kind, err)
		}
		if res.Rejected != "" {
			fmt.Printf("  %-8s %-5s -> %-5s %4d  rejected: %s\n", o.Kind, o.From, o.To, o.Amount, res.Rejected)
		} else {
			fmt.Printf("  %-8s %-5s -> %-5s %4d  %s now has %d\n", o.Kind, o.From, o.To, o.Amount, o.To, res.Balance)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var sum int64
	var balances string
	if err := nodes[follower].r.Read(ctx, replica.ReadLinearizable, func() error {
		sum, balances = nodes[follower].sm.total()
		return nil
	}); err != nil {
		return err
	}
	fmt.Printf("linearizable read on follower %d: %s(total %d)\n", follower, balances, sum)

	fmt.Printf("killing leader %d\n", lead)
	nodes[lead].r.Stop()
	delete(nodes, lead)
	// Stop closed its log; the restart reopens it from disk.
	stores[lead] = nil
	t0 := time.Now()
	newLead, err := waitLeader(nodes, lead)
	if err != nil {
		return err
	}
	fmt.Printf("replica %d leads after %v\n", newLead, time.Since(t0).Round(time.Millisecond))
	for i := 0; i < 5; i++ {
		if _, err := submit(follower, op{Kind: "deposit", To: "dave", Amount: 10}); err != nil {
			return fmt.Errorf("deposit after failover: %w", err)
		}
	}
	sum, balances = nodes[newLead].sm.total()
	fmt.Printf("after failover, on the new leader: %s(total %d)\n", balances, sum)

	fmt.Printf("restarting replica %d\n", lead)
	if err := start(lead, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, b := nodes[lead].sm.total()
		if got == sum {
			fmt.Printf("replica %d caught up: %s(total %d)\n", lead, b, got)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %d did not catch up: total %d, want %d", lead, got, sum)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// waitLeader waits until the running replicas agree on a leader other than
// not.
func waitLeader(nodes map[raft.NodeID]*node, not raft.NodeID) (raft.NodeID, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var lead raft.NodeID
		ok := true
		for _, n := range nodes {
			l, _ := n.r.Leader()
			if l == raft.None || l == not || (lead != raft.None && l != lead) || nodes[l] == nil {
				ok = false
				break
			}
			lead = l
		}
		if ok && lead != raft.None {
			return lead, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return raft.None, errors.New("no leader elected within 10s")
}
