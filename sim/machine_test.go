package sim

import (
	"bytes"
	"testing"
)

// TestMachineAnswersLikeTheModel: each client write, translated to kv
// commands and applied by kv, answers what the porcupine model expects, a
// retry is answered with its first answer without applying twice, and a
// restored snapshot is the same state, byte for byte.
func TestMachineAnswersLikeTheModel(t *testing.T) {
	m := newMachine(0)
	steps := []struct {
		cmd  Command
		want Answer
	}{
		{Command{Kind: OpCAS, ClientID: 1, ReqID: 1, Key: "k", Expected: "", Value: "x"}, Answer{}},
		{Command{Kind: OpDelete, ClientID: 1, ReqID: 2, Key: "k"}, Answer{}},
		{Command{Kind: OpPut, ClientID: 1, ReqID: 3, Key: "k", Value: "a"}, Answer{OK: true}},
		{Command{Kind: OpPut, ClientID: 2, ReqID: 1, Key: "k", Value: "b"}, Answer{OK: true, Value: "a", Found: true}},
		{Command{Kind: OpCAS, ClientID: 1, ReqID: 4, Key: "k", Expected: "a", Value: "c"}, Answer{Value: "b", Found: true}},
		{Command{Kind: OpCAS, ClientID: 1, ReqID: 5, Key: "k", Expected: "b", Value: "c"}, Answer{OK: true, Value: "b", Found: true}},
		// A retry of request 5: the first answer, and no second swap.
		{Command{Kind: OpCAS, ClientID: 1, ReqID: 5, Key: "k", Expected: "b", Value: "c"}, Answer{OK: true, Value: "b", Found: true}},
		{Command{Kind: OpDelete, ClientID: 2, ReqID: 2, Key: "k"}, Answer{OK: true, Value: "c", Found: true}},
		{Command{Kind: OpPut, ClientID: 2, ReqID: 3, Key: "j", Value: "d"}, Answer{OK: true}},
	}
	index := uint64(1)
	for i, s := range steps {
		index++ // leave gaps for no-ops
		if _, _, _, _, err := m.Apply(index, nil); err != nil {
			t.Fatalf("step %d: no-op: %v", i, err)
		}
		index++
		client, req, got, answered, err := m.Apply(index, encodeCommand(s.cmd))
		if err != nil || !answered || client != s.cmd.ClientID || req != s.cmd.ReqID || got != s.want {
			t.Fatalf("step %d %s: got %+v (answered %v, #%d.%d, err %v), want %+v", i, describeCmd(s.cmd), got, answered, client, req, err, s.want)
		}
	}
	if v, ok := m.Get("k"); ok {
		t.Fatalf("get k: got %q, want no key", v)
	}
	if v, ok := m.Get("j"); !ok || v != "d" {
		t.Fatalf("get j: got %q %v, want d", v, ok)
	}
	// An older request than the last one applied is neither applied nor
	// answered.
	if _, _, _, answered, err := m.Apply(index+1, encodeCommand(Command{Kind: OpPut, ClientID: 2, ReqID: 1, Key: "k", Value: "old"})); err != nil || answered {
		t.Fatalf("stale request: answered %v, err %v; want neither", answered, err)
	}
	if _, ok := m.Get("k"); ok {
		t.Fatalf("a stale request was applied")
	}

	snap := m.Snapshot()
	r := newMachine(0)
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Snapshot(), snap) || r.Digest() != m.Digest() {
		t.Fatalf("restored state differs: digest %x, want %x", r.Digest(), m.Digest())
	}
	// The restored machine goes on alike.
	next := encodeCommand(Command{Kind: OpCAS, ClientID: 3, ReqID: 1, Key: "j", Expected: "d", Value: "e"})
	_, _, a1, _, err1 := m.Apply(index+2, next)
	_, _, a2, _, err2 := r.Apply(index+2, next)
	if err1 != nil || err2 != nil || a1 != a2 || !bytes.Equal(m.Snapshot(), r.Snapshot()) {
		t.Fatalf("after restore: answers %+v (%v) and %+v (%v), snapshots equal %v", a1, err1, a2, err2, bytes.Equal(m.Snapshot(), r.Snapshot()))
	}
	if err := r.Restore(snap[:len(snap)-1]); err == nil {
		t.Fatalf("restore of a truncated image: got nil error")
	}
	if !bytes.Equal(m.Snapshot(), r.Snapshot()) {
		t.Fatalf("a failed restore changed the state")
	}
}
