package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/lockstep/lockstep/kv"
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

// Command is one client request as the client and the history see it.
// Writes travel in entry data as kv commands (encodeCommand); gets are
// served through ReadIndex from kv.Store.Range and never enter the log.
// ClientID and ReqID let the state machine apply a retried write once and
// answer the retry with the first answer.
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
	// Value and Found: the value read (get), or held before (put, cas,
	// delete).
	Value string
	Found bool
}

// kvCommand translates a client write into the kv command that performs
// it. Every write asks for the previous version, which is what Answer
// reports:
//   - put is a Put;
//   - cas is a Txn whose Compare checks the value (a VALUE compare on a
//     missing key is false, as the model wants), with the Put in Success
//     and a Range of the key in Failure to report what was there;
//   - delete is a DeleteRange of the one key.
func kvCommand(c Command) kv.Command {
	key := []byte(c.Key)
	switch c.Kind {
	case OpPut:
		return kv.Command{Put: &kv.PutRequest{Key: key, Value: []byte(c.Value), PrevKv: true}}
	case OpCAS:
		return kv.Command{Txn: &kv.TxnRequest{
			Compare: []kv.Compare{{Result: kv.CompareEqual, Target: kv.CompareValue, Key: key, Value: []byte(c.Expected)}},
			Success: []kv.RequestOp{{Put: &kv.PutRequest{Key: key, Value: []byte(c.Value), PrevKv: true}}},
			Failure: []kv.RequestOp{{Range: &kv.RangeRequest{Key: key}}},
		}}
	case OpDelete:
		return kv.Command{DeleteRange: &kv.DeleteRangeRequest{Key: key, PrevKv: true}}
	}
	panic(fmt.Sprintf("sim: %s is not a write", c.Kind))
}

// The entry data of a write is an envelope around a kv command:
//
//	envelope = magic:byte clientID:uvarint reqID:uvarint kvCommand
//
// Deduplication of retries lives in the sim's machine, beside the
// kv.Store, not in kv: kv commands mirror etcd's requests, which carry no
// request identity (etcd too wraps them, in InternalRaftRequest with a
// header ID), and answering a retry with its first answer needs that answer
// stored, which no kv command can write as a function of its own outcome.
// So the envelope carries the IDs, the machine keeps a table of the last
// request and answer per client, and its snapshot holds that table and the
// kv snapshot together. ClientID 0 marks a command of the simulator itself
// (compaction), which is never deduplicated or answered.
const envelopeMagic = 0x5e

// encodeCommand returns the entry data of a client write.
func encodeCommand(c Command) []byte {
	return encodeEnvelope(c.ClientID, c.ReqID, kvCommand(c))
}

func encodeEnvelope(client, req uint64, c kv.Command) []byte {
	b := make([]byte, 0, 64)
	b = append(b, envelopeMagic)
	b = binary.AppendUvarint(b, client)
	b = binary.AppendUvarint(b, req)
	b, err := kv.AppendCommand(b, c)
	if err != nil {
		// The sim builds every command itself; one kv cannot encode is a
		// bug in kvCommand.
		panic(fmt.Sprintf("sim: encoding %+v: %v", c, err))
	}
	return b
}

var errBadEnvelope = errors.New("sim: malformed command envelope")

// decodeEnvelope splits entry data into its request IDs and kv command
// bytes.
func decodeEnvelope(b []byte) (client, req uint64, cmd []byte, err error) {
	if len(b) == 0 || b[0] != envelopeMagic {
		return 0, 0, nil, errBadEnvelope
	}
	b = b[1:]
	var n int
	if client, n = binary.Uvarint(b); n <= 0 {
		return 0, 0, nil, errBadEnvelope
	}
	b = b[n:]
	if req, n = binary.Uvarint(b); n <= 0 {
		return 0, 0, nil, errBadEnvelope
	}
	return client, req, b[n:], nil
}

// machine is the replicated state machine of a simulated node: a kv.Store,
// the production state machine, plus the deduplication table the
// simulated clients' retries need. It is deterministic: the same entries
// in the same order give the same state, answers and snapshot bytes.
type machine struct {
	store *kv.Store
	// sessions holds, per client, the last request applied and its answer:
	// clients have one write outstanding at a time, so that suffices to
	// apply each request once.
	sessions map[uint64]session
	// digest is a hash chained over every entry applied and the answer it
	// got; two replicas that applied the same entries in the same order
	// and decided them alike agree on it.
	digest uint64
	// lossyEvery is a test-only fault: a put whose value hashes to 0
	// modulo lossyEvery is acknowledged without reaching kv (on every
	// replica alike, since it depends only on the command). It proves the
	// checker notices a lost write.
	lossyEvery int
}

type session struct {
	req uint64
	res Answer
}

func newMachine(lossyEvery int) *machine {
	st, err := kv.New(kv.Config{})
	if err != nil {
		panic(err) // the zero Config is valid
	}
	return &machine{store: st, sessions: map[uint64]session{}, lossyEvery: lossyEvery}
}

// Apply applies the entry at index (empty data is a leader's no-op, which
// kv never sees). For a client write it returns the request IDs and the
// answer when this call, or an earlier application of the same request,
// decided it; a retry is answered from the deduplication table. An error
// means the replica must stop: the entry is not a command the simulator
// wrote, or kv rejected a command the simulator only builds valid.
func (m *machine) Apply(index uint64, data []byte) (client, req uint64, res Answer, answered bool, err error) {
	if len(data) == 0 {
		m.chain(index, data, Answer{})
		return 0, 0, Answer{}, false, nil
	}
	client, req, cmd, err := decodeEnvelope(data)
	if err != nil {
		return 0, 0, Answer{}, false, fmt.Errorf("sim: entry %d: %w", index, err)
	}
	if s, ok := m.sessions[client]; client != 0 && ok && s.req >= req {
		// A retry of an applied request (or an older one that lost the
		// race): answer with what was decided, change nothing.
		m.chain(index, data, Answer{})
		if s.req == req {
			return client, req, s.res, true, nil
		}
		return client, req, Answer{}, false, nil
	}
	if m.lossyEvery > 0 {
		if lost, ok := m.lossyPut(cmd); ok {
			m.sessions[client] = session{req: req, res: lost}
			m.chain(index, data, lost)
			return client, req, lost, true, nil
		}
	}
	r, err := m.store.Apply(index, cmd)
	if err != nil {
		return 0, 0, Answer{}, false, fmt.Errorf("sim: entry %d: %w", index, err)
	}
	if client == 0 {
		// The simulator's own compaction: a rejection (a compaction
		// proposed twice) is a legal, deterministic outcome.
		m.chain(index, data, Answer{OK: r.Err == nil})
		return 0, 0, Answer{}, false, nil
	}
	res, err = answerOf(r)
	if err != nil {
		return 0, 0, Answer{}, false, fmt.Errorf("sim: entry %d: %w", index, err)
	}
	m.sessions[client] = session{req: req, res: res}
	m.chain(index, data, res)
	return client, req, res, true, nil
}

// lossyPut reports whether cmd is a put the lossyEvery fault drops, and
// the answer a real put would have given.
func (m *machine) lossyPut(cmd []byte) (Answer, bool) {
	c, err := kv.DecodeCommand(cmd)
	if err != nil || c.Put == nil || hashBytes(c.Put.Value)%uint64(m.lossyEvery) != 0 {
		return Answer{}, false
	}
	v, found := m.Get(string(c.Put.Key))
	return Answer{OK: true, Value: v, Found: found}, true
}

// answerOf turns kv's result of a client write back into the client's
// Answer. The shapes are the ones kvCommand builds.
func answerOf(r kv.Result) (Answer, error) {
	if r.Err != nil {
		return Answer{}, fmt.Errorf("kv rejected a client write: %w", r.Err)
	}
	switch {
	case r.Put != nil:
		return prevAnswer(true, r.Put.PrevKv), nil
	case r.DeleteRange != nil:
		var prev *kv.KeyValue
		if len(r.DeleteRange.PrevKvs) > 0 {
			prev = &r.DeleteRange.PrevKvs[0]
		}
		return prevAnswer(r.DeleteRange.Deleted > 0, prev), nil
	case r.Txn != nil && len(r.Txn.Responses) == 1:
		op := r.Txn.Responses[0]
		switch {
		case r.Txn.Succeeded && op.Put != nil:
			return prevAnswer(true, op.Put.PrevKv), nil
		case !r.Txn.Succeeded && op.Range != nil:
			var prev *kv.KeyValue
			if len(op.Range.Kvs) > 0 {
				prev = &op.Range.Kvs[0]
			}
			return prevAnswer(false, prev), nil
		}
	}
	return Answer{}, fmt.Errorf("sim: unexpected kv result %+v", r)
}

func prevAnswer(ok bool, prev *kv.KeyValue) Answer {
	if prev == nil {
		return Answer{OK: ok}
	}
	return Answer{OK: ok, Value: string(prev.Value), Found: true}
}

// chain folds an applied entry and its answer into the digest.
func (m *machine) chain(index uint64, data []byte, res Answer) {
	h := fnv.New64a()
	var b [18]byte
	binary.LittleEndian.PutUint64(b[:8], m.digest)
	binary.LittleEndian.PutUint64(b[8:16], index)
	if res.OK {
		b[16] = 1
	}
	if res.Found {
		b[17] = 1
	}
	h.Write(b[:])
	h.Write(data)
	h.Write([]byte(res.Value))
	m.digest = h.Sum64()
}

// Get reads a key at the current revision, without going through the log
// (for ReadIndex reads, once the read index is applied).
func (m *machine) Get(key string) (string, bool) {
	r, err := m.store.Range(&kv.RangeRequest{Key: []byte(key)})
	if err != nil || len(r.Kvs) == 0 {
		return "", false
	}
	return string(r.Kvs[0].Value), true
}

// Digest is the chained digest of everything applied so far.
func (m *machine) Digest() uint64 { return m.digest }

// Snapshot image:
//
//	image   = magic:"LKSIMSM1" digest:uint64le n:uvarint session*n kvSnapshot
//	session = client:uvarint req:uvarint ok:byte found:byte value:bytes   (ascending client)
//
// kv's image is deterministic and so is the session order, so equal states
// give equal bytes: hashing an image is a digest of the whole state.
const snapshotMagic = "LKSIMSM1"

// Snapshot returns an image of the whole state, deduplication included.
func (m *machine) Snapshot() []byte {
	var b bytes.Buffer
	b.WriteString(snapshotMagic)
	b.Write(binary.LittleEndian.AppendUint64(nil, m.digest))
	clients := make([]uint64, 0, len(m.sessions))
	for c := range m.sessions {
		clients = append(clients, c)
	}
	slices.Sort(clients)
	var s []byte
	s = binary.AppendUvarint(s, uint64(len(clients)))
	for _, c := range clients {
		ss := m.sessions[c]
		s = binary.AppendUvarint(s, c)
		s = binary.AppendUvarint(s, ss.req)
		s = appendBool(s, ss.res.OK)
		s = appendBool(s, ss.res.Found)
		s = binary.AppendUvarint(s, uint64(len(ss.res.Value)))
		s = append(s, ss.res.Value...)
	}
	b.Write(s)
	if err := m.store.Snapshot(&b); err != nil {
		// A bytes.Buffer does not fail to write.
		panic(fmt.Sprintf("sim: kv snapshot: %v", err))
	}
	return b.Bytes()
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Restore replaces the whole state with a Snapshot image; on error the
// state is unchanged.
func (m *machine) Restore(data []byte) error {
	if len(data) < len(snapshotMagic)+8 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return errors.New("sim: restoring state machine: bad snapshot header")
	}
	d := reader{b: data[len(snapshotMagic):]}
	digest := d.u64()
	sessions := map[uint64]session{}
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		c := d.uvarint()
		var s session
		s.req = d.uvarint()
		s.res.OK = d.byte() == 1
		s.res.Found = d.byte() == 1
		s.res.Value = d.str()
		sessions[c] = s
	}
	if d.err != nil {
		return fmt.Errorf("sim: restoring state machine: %w", d.err)
	}
	st, err := kv.New(kv.Config{})
	if err != nil {
		return err
	}
	if err := st.Restore(bytes.NewReader(d.b)); err != nil {
		return fmt.Errorf("sim: restoring state machine: %w", err)
	}
	m.store, m.sessions, m.digest = st, sessions, digest
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
