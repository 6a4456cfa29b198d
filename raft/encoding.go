package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The binary encoding of raft's types, shared by the write-ahead log and the
// transport. It is little-endian, uses uvarints for integers and length
// prefixes, and carries no version byte: callers frame and version it.
// Decoding never panics and never allocates more than the input's length.

// ErrShortBuffer is returned when input ends in the middle of a value.
var ErrShortBuffer = errors.New("raft: encoded value is truncated")

// AppendEntry appends the encoding of e to b.
func AppendEntry(b []byte, e *Entry) []byte {
	b = binary.AppendUvarint(b, uint64(e.Term))
	b = binary.AppendUvarint(b, uint64(e.Index))
	b = append(b, byte(e.Type))
	b = binary.AppendUvarint(b, uint64(len(e.Data)))
	return append(b, e.Data...)
}

// AppendHardState appends the encoding of h to b.
func AppendHardState(b []byte, h HardState) []byte {
	b = binary.AppendUvarint(b, uint64(h.Term))
	b = binary.AppendUvarint(b, uint64(h.Vote))
	return binary.AppendUvarint(b, uint64(h.Commit))
}

// AppendConfState appends the encoding of c to b.
func AppendConfState(b []byte, c ConfState) []byte {
	for _, ids := range [][]NodeID{c.Voters, c.Learners, c.VotersOutgoing, c.LearnersNext} {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.AppendUvarint(b, uint64(id))
		}
	}
	return b
}

// AppendSnapshotMeta appends the encoding of m to b.
func AppendSnapshotMeta(b []byte, m SnapshotMeta) []byte {
	b = binary.AppendUvarint(b, uint64(m.Index))
	b = binary.AppendUvarint(b, uint64(m.Term))
	return AppendConfState(b, m.ConfState)
}

// AppendMessage appends the encoding of m to b. The snapshot's Data is
// included; transports that stream snapshots separately clear it first.
func AppendMessage(b []byte, m *Message) []byte {
	b = append(b, byte(m.Type))
	b = binary.AppendUvarint(b, uint64(m.From))
	b = binary.AppendUvarint(b, uint64(m.To))
	b = binary.AppendUvarint(b, uint64(m.Term))
	b = binary.AppendUvarint(b, uint64(m.LogTerm))
	b = binary.AppendUvarint(b, uint64(m.Index))
	b = binary.AppendUvarint(b, uint64(m.Commit))
	flags := byte(0)
	if m.Reject {
		flags |= 1
	}
	if m.Snapshot != nil {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(m.RejectHint))
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for i := range m.Entries {
		b = AppendEntry(b, &m.Entries[i])
	}
	if m.Snapshot != nil {
		b = AppendSnapshotMeta(b, m.Snapshot.Meta)
		b = binary.AppendUvarint(b, uint64(len(m.Snapshot.Data)))
		b = append(b, m.Snapshot.Data...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Context)))
	return append(b, m.Context...)
}

// decoder reads values from a buffer, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		if n == 0 {
			d.err = ErrShortBuffer
		} else {
			d.err = errors.New("raft: encoded integer overflows 64 bits")
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = ErrShortBuffer
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes returns a length-prefixed byte string, copied so that the result
// does not alias the input buffer.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("raft: encoded length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[:n])
	d.b = d.b[n:]
	return out
}

// count reads a element count and checks it against the bytes left, given
// that each element takes at least minSize bytes: a hostile count cannot make
// the decoder allocate more than the input's size.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.err = fmt.Errorf("raft: encoded count %d exceeds what %d bytes can hold", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) entry() Entry {
	var e Entry
	e.Term = Term(d.uvarint())
	e.Index = Index(d.uvarint())
	e.Type = EntryType(d.byte())
	if d.err == nil && e.Type > EntryConfChange {
		d.err = fmt.Errorf("raft: unknown entry type %d", e.Type)
	}
	e.Data = d.bytes()
	return e
}

func (d *decoder) ids() []NodeID {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ids := make([]NodeID, n)
	for i := range ids {
		ids[i] = NodeID(d.uvarint())
	}
	return ids
}

func (d *decoder) confState() ConfState {
	return ConfState{Voters: d.ids(), Learners: d.ids(), VotersOutgoing: d.ids(), LearnersNext: d.ids()}
}

func (d *decoder) snapshotMeta() SnapshotMeta {
	return SnapshotMeta{Index: Index(d.uvarint()), Term: Term(d.uvarint()), ConfState: d.confState()}
}

func (d *decoder) finish(what string) error {
	if d.err != nil {
		return fmt.Errorf("raft: decoding %s: %w", what, d.err)
	}
	return nil
}

// DecodeEntry decodes one entry from the start of b and returns the bytes
// after it.
func DecodeEntry(b []byte) (Entry, []byte, error) {
	d := decoder{b: b}
	e := d.entry()
	return e, d.b, d.finish("entry")
}

// DecodeHardState decodes a HardState from the start of b.
func DecodeHardState(b []byte) (HardState, []byte, error) {
	d := decoder{b: b}
	h := HardState{Term: Term(d.uvarint()), Vote: NodeID(d.uvarint()), Commit: Index(d.uvarint())}
	return h, d.b, d.finish("hard state")
}

// DecodeConfState decodes a ConfState from the start of b.
func DecodeConfState(b []byte) (ConfState, []byte, error) {
	d := decoder{b: b}
	c := d.confState()
	return c, d.b, d.finish("conf state")
}

// DecodeSnapshotMeta decodes a SnapshotMeta from the start of b.
func DecodeSnapshotMeta(b []byte) (SnapshotMeta, []byte, error) {
	d := decoder{b: b}
	m := d.snapshotMeta()
	return m, d.b, d.finish("snapshot metadata")
}

// DecodeMessage decodes a message that fills b exactly.
func DecodeMessage(b []byte) (Message, error) {
	d := decoder{b: b}
	var m Message
	m.Type = MessageType(d.byte())
	if d.err == nil && !m.Type.Valid() {
		return Message{}, fmt.Errorf("raft: decoding message: unknown message type %d", m.Type)
	}
	m.From = NodeID(d.uvarint())
	m.To = NodeID(d.uvarint())
	m.Term = Term(d.uvarint())
	m.LogTerm = Term(d.uvarint())
	m.Index = Index(d.uvarint())
	m.Commit = Index(d.uvarint())
	flags := d.byte()
	m.Reject = flags&1 != 0
	m.RejectHint = Index(d.uvarint())
	// An entry takes at least 4 bytes (term, index, type, length).
	if n := d.count(4); n > 0 {
		m.Entries = make([]Entry, n)
		for i := range m.Entries {
			m.Entries[i] = d.entry()
		}
	}
	if flags&2 != 0 {
		m.Snapshot = &Snapshot{Meta: d.snapshotMeta()}
		m.Snapshot.Data = d.bytes()
	}
	m.Context = d.bytes()
	if err := d.finish("message"); err != nil {
		return Message{}, err
	}
	if len(d.b) != 0 {
		return Message{}, fmt.Errorf("raft: decoding message: %d trailing bytes", len(d.b))
	}
	return m, nil
}
