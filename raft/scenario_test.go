package raft

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/scenarios against the test
// cluster and compares their output with the golden output in the files.
// Regenerate with
//
//	go test ./raft -run TestScenarios -rewrite
//
// and review the diff: a golden file is a claim about the protocol.
//
// The command language (node IDs are numbers):
//
//	cluster n=3 [prevote] [checkquorum] [lease] [max-inflight=N] [max-msg-bytes=N]
//	campaign ID             Node.Campaign
//	propose ID DATA         Node.Propose
//	tick ID [N]             N ticks of one node, nothing delivered
//	tick-all [N]            N rounds of: tick every node, stabilize
//	deliver                 one round: handle every Ready, deliver what is in flight once
//	stabilize               handle Readys and deliver until nothing is left
//	isolate ID | cut FROM TO | heal
//	read-index ID CTX       Node.ReadIndex
//	transfer ID TARGET      Node.TransferLeadership on ID
//	compact ID INDEX        snapshot the storage at INDEX and compact it
//	restart ID              crash and restart from storage
//	status [ID...]          node summaries (the leader's progress indented)
//	log ID                  the stored log and the applied commands
//
// deliver, stabilize and tick-all print the messages delivered or dropped
// and what each Ready changed (role, applied entries, reads), then status.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, s.run)
	})
}

type scenario struct {
	c     *cluster
	trace strings.Builder
}

func (s *scenario) run(t *testing.T, d *datadriven.TestData) string {
	if d.Cmd != "cluster" && s.c == nil {
		d.Fatalf(t, "%s before cluster", d.Cmd)
	}
	arg := func(i int) string {
		if i >= len(d.CmdArgs) {
			d.Fatalf(t, "%s: missing argument %d", d.Cmd, i+1)
		}
		return d.CmdArgs[i].Key
	}
	num := func(i int) uint64 {
		v, err := strconv.ParseUint(arg(i), 10, 64)
		if err != nil {
			d.Fatalf(t, "%s: argument %d: %v", d.Cmd, i+1, err)
		}
		return v
	}
	numOr := func(i int, def uint64) uint64 {
		if i >= len(d.CmdArgs) {
			return def
		}
		return num(i)
	}
	node := func(i int) *Node {
		n := s.c.nodes[NodeID(num(i))]
		if n == nil {
			d.Fatalf(t, "%s: no node %s", d.Cmd, arg(i))
		}
		return n
	}
	errOut := func(err error) string {
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return ""
	}
	switch d.Cmd {
	case "cluster":
		return s.newCluster(t, d)
	case "campaign":
		node(0).Campaign()
	case "propose":
		return errOut(node(0).Propose([]byte(arg(1))))
	case "tick":
		node(0)
		for i := uint64(0); i < numOr(1, 1); i++ {
			s.c.tickNode(NodeID(num(0)))
		}
	case "pause":
		node(0)
		s.c.pause(NodeID(num(0)), int(num(1)))
	case "tick-all":
		return s.traced(func() { s.c.tickAll(int(numOr(0, 1))) })
	case "deliver":
		return s.traced(func() {
			for _, id := range s.c.ids {
				s.c.process(id)
			}
			s.c.deliver()
		})
	case "stabilize":
		return s.traced(s.c.stabilize)
	case "isolate":
		s.c.isolate(NodeID(num(0)))
	case "cut":
		s.c.cutLink(NodeID(num(0)), NodeID(num(1)))
	case "heal":
		s.c.heal()
	case "read-index":
		return errOut(node(0).ReadIndex([]byte(arg(1))))
	case "transfer":
		return errOut(node(0).TransferLeadership(NodeID(num(1))))
	case "compact":
		return errOut(s.c.compact(NodeID(num(0)), Index(num(1))))
	case "restart":
		node(0)
		s.c.restart(NodeID(num(0)))
	case "status":
		return s.status(d)
	case "log":
		id := NodeID(num(0))
		st := s.c.nodes[id].Status()
		snap, _ := s.c.storage[id].Snapshot()
		return fmt.Sprintf("snapshot %d/%d, log %s\napplied %q\n", snap.Meta.Index, snap.Meta.Term, describeEntries(s.c.storedLog(id)), s.c.appliedData(id)) +
			fmt.Sprintf("commit %d\n", st.Commit)
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return ""
}

func (s *scenario) newCluster(t *testing.T, d *datadriven.TestData) string {
	n := 3
	var opts []func(*Config)
	for _, a := range d.CmdArgs {
		val := func() uint64 {
			if len(a.Vals) != 1 {
				d.Fatalf(t, "cluster: %s needs a value", a.Key)
			}
			v, err := strconv.ParseUint(a.Vals[0], 10, 64)
			if err != nil {
				d.Fatalf(t, "cluster: %s: %v", a.Key, err)
			}
			return v
		}
		switch a.Key {
		case "n":
			n = int(val())
		case "prevote":
			opts = append(opts, func(c *Config) { c.PreVote = true })
		case "checkquorum":
			opts = append(opts, func(c *Config) { c.CheckQuorum = true })
		case "lease":
			opts = append(opts, func(c *Config) { c.ReadOnly = ReadOnlyLeaseBased })
		case "max-inflight":
			v := int(val())
			opts = append(opts, func(c *Config) { c.MaxInflightMsgs = v })
		case "max-msg-bytes":
			v := val()
			opts = append(opts, func(c *Config) { c.MaxBytesPerMsg = v })
		default:
			d.Fatalf(t, "cluster: unknown option %s", a.Key)
		}
	}
	s.c = newCluster(n, func(c *Config) {
		for _, o := range opts {
			o(c)
		}
	})
	s.c.trace = &s.trace
	return s.status(&datadriven.TestData{})
}

// traced runs f and returns what it delivered and changed, then the state of
// every node. A Step error from an honest peer fails the scenario.
func (s *scenario) traced(f func()) string {
	s.trace.Reset()
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		f()
	}()
	out := s.trace.String()
	s.trace.Reset()
	if panicked != nil {
		out += fmt.Sprintf("panic: %v\n", panicked)
	}
	if len(s.c.stepErrs) > 0 {
		out += fmt.Sprintf("step errors: %v\n", errors.Join(s.c.stepErrs...))
		s.c.stepErrs = nil
	}
	return out + "states:\n" + s.status(&datadriven.TestData{})
}

func (s *scenario) status(d *datadriven.TestData) string {
	ids := s.c.ids
	if len(d.CmdArgs) > 0 {
		ids = nil
		for _, a := range d.CmdArgs {
			v, _ := strconv.ParseUint(a.Key, 10, 64)
			ids = append(ids, NodeID(v))
		}
	}
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(describeNode(s.c.nodes[id]))
		b.WriteByte('\n')
	}
	return b.String()
}
