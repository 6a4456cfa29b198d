package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
)

// OpKind names a client operation.
type OpKind uint8

const (
	OpPut OpKind = iota + 1
	OpGet
	OpCAS
	OpDelete
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpGet:
		return "get"
	case OpCAS:
		return "cas"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Command is one client request. Writes travel in entry data; gets are
// served through ReadIndex and never enter the log. ClientID and ReqID let
// the state machine apply a retried write once and answer the retry with the
// first answer.
type Command struct {
	Kind     OpKind
	ClientID uint64
	ReqID    uint64
	Key      string
	Value    string // put, cas: the new value
	Expected string // cas: the value that must be present
}

// Answer is what a Command returns to its client.
type Answer struct {
	// OK: cas swapped; delete found the key. Always true for put.
	OK bool
	// Value and Found: the value read (get), or held before (cas, delete).
	Value string
	Found bool
}

// encodeCommand is the entry-data format of a write:
// kind, client id, request id (uvarints), then key, value, expected
// (length-prefixed).
func encodeCommand(c Command) []byte {
	b := make([]byte, 0, 32+len(c.Key)+len(c.Value)+len(c.Expected))
	b = append(b, byte(c.Kind))
	b = binary.AppendUvarint(b, c.ClientID)
	b = binary.AppendUvarint(b, c.ReqID)
	for _, s := range []string{c.Key, c.Value, c.Expected} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errBadCommand = errors.New("sim: malformed command")

func decodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) == 0 {
		return c, errBadCommand
	}
	c.Kind = OpKind(b[0])
	b = b[1:]
	var n int
	if c.ClientID, n = binary.Uvarint(b); n <= 0 {
		return c, errBadCommand
	}
	b = b[n:]
	if c.ReqID, n = binary.Uvarint(b); n <= 0 {
		return c, errBadCommand
	}
	b = b[n:]
	var strs [3]string
	for i := range strs {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return c, errBadCommand
		}
		strs[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	c.Key, c.Value, c.Expected = strs[0], strs[1], strs[2]
	if c.Kind != OpPut && c.Kind != OpCAS && c.Kind != OpDelete {
		return c, fmt.Errorf("sim: command kind %s cannot be in the log", c.Kind)
	}
	return c, nil
}

// Machine is the replicated state machine as the simulated runtime sees
// it. It is deterministic: the same entries in the same order give the same
// state and answers. Package kv is meant to slot in behind it.
type Machine interface {
	// Apply applies the entry at index (empty data is a leader's no-op). It
	// returns the command and its result when the entry is a client write
	// that this call (or an earlier application of the same request)
	// decided. A retry is answered from the deduplication table.
	Apply(index uint64, data []byte) (cmd Command, res Answer, isCmd bool, err error)
	// Get reads a key without going through the log (for ReadIndex reads).
	Get(key string) (value string, found bool)
	// Snapshot returns an image of the whole state, deduplication included.
	Snapshot() []byte
	// Restore replaces the whole state with a Snapshot image.
	Restore(data []byte) error
	// Digest is a hash chained over every command applied so far; two
	// replicas that applied the same commands in the same order agree on it.
	Digest() uint64
}

// kvMachine is the simulator's own key-value map.
type kvMachine struct {
	data map[string]string
	// sessions holds, per client, the last request applied and its result:
	// clients have one write outstanding at a time, so that suffices to
	// apply each request once.
	sessions map[uint64]session
	digest   uint64
	// lossyEvery is a test-only fault: a put whose value hashes to 0
	// modulo lossyEvery is acknowledged without being stored (on every
	// replica alike, since it depends only on the command). It proves the
	// checker notices a lost write.
	lossyEvery int
}

type session struct {
	req uint64
	res Answer
}

func newKVMachine() *kvMachine {
	return &kvMachine{data: map[string]string{}, sessions: map[uint64]session{}}
}

func (m *kvMachine) Apply(index uint64, data []byte) (Command, Answer, bool, error) {
	m.chain(index, data)
	if len(data) == 0 {
		return Command{}, Answer{}, false, nil
	}
	c, err := decodeCommand(data)
	if err != nil {
		return c, Answer{}, false, fmt.Errorf("sim: entry %d: %w", index, err)
	}
	if s, ok := m.sessions[c.ClientID]; ok && s.req >= c.ReqID {
		// A retry of an applied request (or an older one that lost the
		// race): answer with what was decided, change nothing.
		if s.req == c.ReqID {
			return c, s.res, true, nil
		}
		return c, Answer{}, false, nil
	}
	var res Answer
	old, found := m.data[c.Key]
	switch c.Kind {
	case OpPut:
		res = Answer{OK: true, Value: old, Found: found}
		if m.lossyEvery > 0 && hashString(c.Value)%uint64(m.lossyEvery) == 0 {
			break
		}
		m.data[c.Key] = c.Value
	case OpCAS:
		res = Answer{Value: old, Found: found}
		if found && old == c.Expected {
			res.OK = true
			m.data[c.Key] = c.Value
		}
	case OpDelete:
		res = Answer{OK: found, Value: old, Found: found}
		delete(m.data, c.Key)
	}
	m.sessions[c.ClientID] = session{req: c.ReqID, res: res}
	return c, res, true, nil
}

func (m *kvMachine) chain(index uint64, data []byte) {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], m.digest)
	binary.LittleEndian.PutUint64(b[8:], index)
	h.Write(b[:])
	h.Write(data)
	m.digest = h.Sum64()
}

func (m *kvMachine) Get(key string) (string, bool) {
	v, ok := m.data[key]
	return v, ok
}

func (m *kvMachine) Digest() uint64 { return m.digest }

// Snapshot encodes the state with keys sorted, so that equal states give
// equal bytes.
func (m *kvMachine) Snapshot() []byte {
	b := binary.LittleEndian.AppendUint64(nil, m.digest)
	keys := make([]string, 0, len(m.data))
	for k := range m.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m.data[k])
	}
	clients := make([]uint64, 0, len(m.sessions))
	for c := range m.sessions {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	b = binary.AppendUvarint(b, uint64(len(clients)))
	for _, c := range clients {
		s := m.sessions[c]
		b = binary.AppendUvarint(b, c)
		b = binary.AppendUvarint(b, s.req)
		b = appendBool(b, s.res.OK)
		b = appendBool(b, s.res.Found)
		b = appendString(b, s.res.Value)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func (m *kvMachine) Restore(data []byte) error {
	d := reader{b: data}
	digest := d.u64()
	nm := newKVMachine()
	nm.lossyEvery = m.lossyEvery
	nm.digest = digest
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		k := d.str()
		nm.data[k] = d.str()
	}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		c := d.uvarint()
		var s session
		s.req = d.uvarint()
		s.res.OK = d.byte() == 1
		s.res.Found = d.byte() == 1
		s.res.Value = d.str()
		nm.sessions[c] = s
	}
	if d.err != nil {
		return fmt.Errorf("sim: restoring state machine: %w", d.err)
	}
	*m = *nm
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("sim: truncated snapshot")
	}
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if uint64(len(r.b)) < n {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
