package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/lockstep/lockstep/kv"
	"github.com/lockstep/lockstep/replica"
)

// Log entries the server proposes start with a tag byte, so that the log can
// carry the server's own bookkeeping (members' client URLs, which etcd
// clients read from MemberList) next to kv's commands without putting it in
// the user's key space.
const (
	tagKV      byte = 1 // followed by a kv.EncodeCommand encoding
	tagPublish byte = 2 // followed by an encoded memberAttrs
)

// snapshotVersion is the first byte of the machine's snapshot image:
//
//	image  = version:1 headerLen:uvarint header kvImage
//	header = count:uvarint { id:uvarint name:bytes urls:uvarint { url:bytes } }
//	bytes  = len:uvarint data
const snapshotVersion byte = 1

// Bounds on what a publish command may carry, so that decoding a log entry
// or a snapshot allocates a bounded amount.
const (
	maxPublishedURLs  = 16
	maxPublishedBytes = 4096
	maxMembers        = 64
)

var errBadEntry = errors.New("server: bad log entry")

// memberAttrs is what a member publishes about itself through the log.
type memberAttrs struct {
	ID         uint64
	Name       string
	ClientURLs []string
}

// machine is the replicated state machine behind a Server: kv.Store for the
// key space, plus the members' published attributes.
type machine struct {
	kv      *kv.Store
	changes *changes

	mu      sync.RWMutex // guards members
	members map[uint64]memberAttrs
}

// newMachine returns the state machine; ch hears of every change, a
// restored snapshot included, so watchers look at the store again.
func newMachine(cfg kv.Config, ch *changes) (*machine, error) {
	cfg.Notify = ch.notify
	st, err := kv.New(cfg)
	if err != nil {
		return nil, err
	}
	return &machine{kv: st, changes: ch, members: map[uint64]memberAttrs{}}, nil
}

// Apply implements replica.StateMachine. A malformed entry is rejected in
// its result, the same way on every replica; only kv's contract failures
// stop the replica.
func (m *machine) Apply(cmds []replica.Command, results []kv.Result) error {
	for i, c := range cmds {
		if len(c.Data) == 0 {
			results[i] = kv.Result{Err: errBadEntry}
			continue
		}
		switch c.Data[0] {
		case tagKV:
			res, err := m.kv.Apply(uint64(c.Index), c.Data[1:])
			if err != nil {
				return err
			}
			results[i] = res
		case tagPublish:
			a, err := decodeAttrs(c.Data[1:])
			if err != nil {
				results[i] = kv.Result{Err: err}
				continue
			}
			m.mu.Lock()
			if _, ok := m.members[a.ID]; ok || len(m.members) < maxMembers {
				m.members[a.ID] = a
			}
			m.mu.Unlock()
			results[i] = kv.Result{}
		default:
			results[i] = kv.Result{Err: fmt.Errorf("%w: unknown tag %d", errBadEntry, c.Data[0])}
		}
	}
	return nil
}

// Snapshot implements replica.StateMachine.
func (m *machine) Snapshot(w io.Writer) error { return m.CaptureSnapshot()(w) }

// CaptureSnapshot implements replica.SnapshotCapturer: the members and
// kv's index are copied now, the image written later.
func (m *machine) CaptureSnapshot() func(io.Writer) error {
	m.mu.RLock()
	ids := make([]uint64, 0, len(m.members))
	for id := range m.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	hdr := binary.AppendUvarint(nil, uint64(len(ids)))
	for _, id := range ids {
		hdr = appendAttrs(hdr, m.members[id])
	}
	m.mu.RUnlock()
	writeKV := m.kv.CaptureSnapshot()
	return func(w io.Writer) error {
		out := binary.AppendUvarint([]byte{snapshotVersion}, uint64(len(hdr)))
		if _, err := w.Write(append(out, hdr...)); err != nil {
			return err
		}
		return writeKV(w)
	}
}

// Restore implements replica.StateMachine.
func (m *machine) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	v, err := br.ReadByte()
	if err != nil {
		return fmt.Errorf("server: snapshot: reading the version: %w", err)
	}
	if v != snapshotVersion {
		return fmt.Errorf("server: snapshot: version %d, want %d", v, snapshotVersion)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > maxMembers*(maxPublishedBytes+32) {
		return fmt.Errorf("server: snapshot: bad header length %d (%v)", n, err)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return fmt.Errorf("server: snapshot: reading the header: %w", err)
	}
	members, err := decodeMembers(hdr)
	if err != nil {
		return err
	}
	if err := m.kv.Restore(br); err != nil {
		return err
	}
	m.mu.Lock()
	m.members = members
	m.mu.Unlock()
	// kv does not report the events between the old state and the
	// restored one: watchers re-read from their next revision (and get
	// ErrCompacted if the image no longer holds it).
	m.changes.notify(nil)
	return nil
}

// published returns the attributes member id published, if any.
func (m *machine) published(id uint64) (memberAttrs, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.members[id]
	return a, ok
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAttrs(b []byte, a memberAttrs) []byte {
	b = binary.AppendUvarint(b, a.ID)
	b = appendString(b, a.Name)
	b = binary.AppendUvarint(b, uint64(len(a.ClientURLs)))
	for _, u := range a.ClientURLs {
		b = appendString(b, u)
	}
	return b
}

// encodePublish returns the log entry publishing a.
func encodePublish(a memberAttrs) []byte {
	return appendAttrs([]byte{tagPublish}, a)
}

// attrReader decodes the encodings above; the first error sticks.
type attrReader struct {
	b   []byte
	err error
}

func (d *attrReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: malformed varint", errBadEntry)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *attrReader) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) || n > maxPublishedBytes {
		d.err = fmt.Errorf("%w: string of %d bytes, %d left", errBadEntry, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *attrReader) attrs() memberAttrs {
	a := memberAttrs{ID: d.uvarint(), Name: d.str()}
	n := d.uvarint()
	if n > maxPublishedURLs {
		d.err = fmt.Errorf("%w: %d client URLs, limit %d", errBadEntry, n, maxPublishedURLs)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		a.ClientURLs = append(a.ClientURLs, d.str())
	}
	return a
}

func decodeAttrs(b []byte) (memberAttrs, error) {
	d := &attrReader{b: b}
	a := d.attrs()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errBadEntry, len(d.b))
	}
	return a, d.err
}

func decodeMembers(b []byte) (map[uint64]memberAttrs, error) {
	d := &attrReader{b: b}
	n := d.uvarint()
	if n > maxMembers {
		return nil, fmt.Errorf("server: snapshot: %d members, limit %d", n, maxMembers)
	}
	out := make(map[uint64]memberAttrs, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		a := d.attrs()
		out[a.ID] = a
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errBadEntry, len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("server: snapshot: members: %w", d.err)
	}
	return out, nil
}
