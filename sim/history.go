package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// op is one client operation in the history.
type op struct {
	client int
	cmd    Command
	// call and ret are positions in the history's own clock, which ticks
	// once per invocation or completion: distinct, and ordered as they
	// happened in virtual time.
	call, ret int64
	done      bool
	res       Answer
}

type history struct {
	clock int64
	ops   []*op
}

func (h *history) invoke(client int, cmd Command) *op {
	h.clock++
	o := &op{client: client, cmd: cmd, call: h.clock}
	h.ops = append(h.ops, o)
	return o
}

func (h *history) complete(o *op, res Answer) {
	h.clock++
	o.ret, o.done, o.res = h.clock, true, res
}

// kvInput and kvOutput are the porcupine operation values.
type kvInput struct {
	kind          OpKind
	key           string
	value, expect string
}

type kvOutput struct {
	unknown bool // the client never learned the outcome
	res     Answer
}

// kvState is one key's value in the model.
type kvState struct {
	value string
	found bool
}

// kvModel is the sequential specification of one key; the history is
// partitioned by key, since operations on different keys commute.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range history {
			k := o.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		slices.Sort(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		s := state.(kvState)
		in := input.(kvInput)
		out := output.(kvOutput)
		r := out.res
		switch in.kind {
		case OpGet:
			return out.unknown || (r.Found == s.found && r.Value == s.value), s
		case OpPut:
			return true, kvState{value: in.value, found: true}
		case OpDelete:
			return out.unknown || r.OK == s.found, kvState{}
		case OpCAS:
			ok := s.found && s.value == in.expect
			if !out.unknown && r.OK != ok {
				return false, s
			}
			if ok {
				return true, kvState{value: in.value, found: true}
			}
			return true, s
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		out := output.(kvOutput)
		res := fmt.Sprintf("%+v", out.res)
		if out.unknown {
			res = "unknown"
		}
		switch in.kind {
		case OpPut:
			return fmt.Sprintf("put(%s, %s) -> %s", in.key, in.value, res)
		case OpCAS:
			return fmt.Sprintf("cas(%s, %s, %s) -> %s", in.key, in.expect, in.value, res)
		case OpDelete:
			return fmt.Sprintf("delete(%s) -> %s", in.key, res)
		}
		return fmt.Sprintf("get(%s) -> %s", in.key, res)
	},
}

// operations converts the history for porcupine. A write whose outcome is
// unknown to its client may have taken effect at any point after its
// invocation, so it completes at the end of time. Two kinds of unanswered
// operations are left out, since they changed nothing: reads, and writes
// that the simulator saw never executed (executed reports which did; the
// history ends once every replica applied the whole log, so a write not
// executed by then never takes effect within it). Leaving them out keeps
// porcupine's search small.
func (h *history) operations(executed func(Command) bool) []porcupine.Operation {
	end := h.clock + 1
	var ops []porcupine.Operation
	for _, o := range h.ops {
		in := kvInput{kind: o.cmd.Kind, key: o.cmd.Key, value: o.cmd.Value, expect: o.cmd.Expected}
		switch {
		case o.done:
			ops = append(ops, porcupine.Operation{ClientId: o.client, Input: in, Call: o.call, Output: kvOutput{res: o.res}, Return: o.ret})
		case o.cmd.Kind != OpGet && executed(o.cmd):
			end++
			ops = append(ops, porcupine.Operation{ClientId: o.client, Input: in, Call: o.call, Output: kvOutput{unknown: true}, Return: end})
		}
	}
	return ops
}

// linearizable checks the history. A check that runs out of time is
// reported as such rather than passed silently.
func (h *history) linearizable(executed func(Command) bool, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(kvModel, h.operations(executed), timeout)
}
