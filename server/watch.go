package server

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/lockstep/lockstep/kv"
)

// Watch limits.
const (
	// maxWatchersPerStream bounds the watchers one stream may create.
	maxWatchersPerStream = 4096
	// watchSendQueue bounds the responses waiting for a stream's sender;
	// a full queue blocks the stream's watchers (a slow client slows only
	// itself: watchers pull events from kv's history, nothing queues up).
	watchSendQueue = 64
	// watchBatch is how many events one response carries at most (a
	// revision is never split, so a larger revision goes whole).
	watchBatch = 1000
	// progressInterval is how often a watcher created with progress_notify
	// reports its revision when idle (etcd's default, 10 minutes).
	progressInterval = 10 * time.Minute
)

// changes wakes the watchers a write concerns. kv reports each command's
// events through Config.Notify; a watcher whose key or range holds one of
// them is woken and reads the events from kv's history (Store.Events), so
// no event is ever queued per watcher, and a write wakes only the watchers
// of the keys it touched, however many others watch.
type changes struct {
	mu sync.Mutex
	// keys holds the watchers of a single key, by key; ranges the watchers
	// of a range (a prefix, or every key from one on).
	keys   map[string]map[*subscription]struct{}
	ranges map[*subscription]struct{}
}

// subscription is one watcher's interest in a key or range.
type subscription struct {
	key, end []byte
	// wake holds a token once a write in the range (or a restored
	// snapshot) happened since the watcher last took it.
	wake chan struct{}
}

func (s *subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func newChanges() *changes {
	return &changes{keys: map[string]map[*subscription]struct{}{}, ranges: map[*subscription]struct{}{}}
}

// subscribe registers interest in key (with end, a range as in a
// RangeRequest); the caller reads history after subscribing, so that no
// write between its read and its wait goes unnoticed.
func (c *changes) subscribe(key, end []byte) *subscription {
	sub := &subscription{key: key, end: end, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(end) == 0 {
		set := c.keys[string(key)]
		if set == nil {
			set = map[*subscription]struct{}{}
			c.keys[string(key)] = set
		}
		set[sub] = struct{}{}
	} else {
		c.ranges[sub] = struct{}{}
	}
	return sub
}

func (c *changes) unsubscribe(sub *subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(sub.end) == 0 {
		set := c.keys[string(sub.key)]
		delete(set, sub)
		if len(set) == 0 {
			delete(c.keys, string(sub.key))
		}
	} else {
		delete(c.ranges, sub)
	}
}

// notify wakes the watchers of the events' keys; nil (a restored snapshot,
// whose changes kv does not report) wakes every watcher.
func (c *changes) notify(evs []kv.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if evs == nil {
		for _, set := range c.keys {
			for sub := range set {
				sub.poke()
			}
		}
		for sub := range c.ranges {
			sub.poke()
		}
		return
	}
	for i := range evs {
		k := evs[i].Kv.Key
		for sub := range c.keys[string(k)] {
			sub.poke()
		}
		for sub := range c.ranges {
			if kv.InRange(k, sub.key, sub.end) {
				sub.poke()
			}
		}
	}
}

// watchService implements etcd's Watch service.
type watchService struct{ s *Server }

// watchStream is one Watch RPC: many watchers, one sender.
type watchStream struct {
	s      *Server
	stream pb.Watch_WatchServer
	ctx    context.Context
	sendc  chan *pb.WatchResponse
	wg     sync.WaitGroup

	mu       sync.Mutex // guards watchers, nextID
	watchers map[int64]*watcher
	nextID   int64
}

type watcher struct {
	id           int64
	key, end     []byte
	prevKV       bool
	noPut, noDel bool
	progress     bool
	cancel       context.CancelFunc
	mu           sync.Mutex // guards next
	next         int64      // the first revision not yet sent
}

func (w watchService) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	ws := &watchStream{
		s:        w.s,
		stream:   stream,
		ctx:      ctx,
		sendc:    make(chan *pb.WatchResponse, watchSendQueue),
		watchers: map[int64]*watcher{},
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- ws.sendLoop() }()
	err := ws.recvLoop()
	cancel()
	ws.wg.Wait()
	if serr := <-sendErr; err == nil {
		err = serr
	}
	return err
}

func (ws *watchStream) sendLoop() error {
	for {
		select {
		case r := <-ws.sendc:
			if err := ws.stream.Send(r); err != nil {
				return err
			}
		case <-ws.ctx.Done():
			return nil
		}
	}
}

// send queues r for the client; false if the stream ended.
func (ws *watchStream) send(r *pb.WatchResponse) bool {
	select {
	case ws.sendc <- r:
		return true
	case <-ws.ctx.Done():
		return false
	}
}

func (ws *watchStream) recvLoop() error {
	for {
		req, err := ws.stream.Recv()
		if err != nil {
			if errors.Is(err, context.Canceled) || ws.ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch u := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if u.CreateRequest == nil {
				continue
			}
			ws.create(u.CreateRequest)
		case *pb.WatchRequest_CancelRequest:
			if u.CancelRequest == nil {
				continue
			}
			ws.mu.Lock()
			w := ws.watchers[u.CancelRequest.WatchId]
			ws.mu.Unlock()
			if w != nil {
				// The watcher sends the canceled response itself, after
				// its last events, and removes itself.
				w.cancel()
			}
		case *pb.WatchRequest_ProgressRequest:
			ws.send(&pb.WatchResponse{Header: ws.s.header(ws.progressRev()), WatchId: -1})
		}
	}
}

// progressRev is a revision every watcher of the stream has been sent all
// events up to: the client may take it as "no events at or below it are
// still coming".
func (ws *watchStream) progressRev() int64 {
	rev := ws.s.sm.kv.Revision()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.watchers {
		w.mu.Lock()
		rev = min(rev, w.next-1)
		w.mu.Unlock()
	}
	return rev
}

func (ws *watchStream) create(r *pb.WatchCreateRequest) {
	fail := func(reason string) {
		ws.send(&pb.WatchResponse{Header: ws.s.header(ws.s.sm.kv.Revision()), WatchId: -1, Created: true, Canceled: true, CancelReason: reason})
	}
	if len(r.Key) > ws.s.cfg.MaxKeyBytes || len(r.RangeEnd) > ws.s.cfg.MaxKeyBytes {
		fail(errGRPCKeyTooLarge.Error())
		return
	}
	w := &watcher{key: r.Key, end: r.RangeEnd, prevKV: r.PrevKv, progress: r.ProgressNotify}
	for _, f := range r.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDel = true
		}
	}
	ws.mu.Lock()
	if len(ws.watchers) >= maxWatchersPerStream {
		ws.mu.Unlock()
		fail("etcdserver: too many watchers on one stream")
		return
	}
	if r.WatchId != 0 {
		if _, dup := ws.watchers[r.WatchId]; dup || r.WatchId < 0 {
			ws.mu.Unlock()
			fail("etcdserver: duplicate or invalid watch ID")
			return
		}
		w.id = r.WatchId
	} else {
		for ws.watchers[ws.nextID] != nil {
			ws.nextID++
		}
		w.id = ws.nextID
		ws.nextID++
	}
	rev := ws.s.sm.kv.Revision()
	w.next = r.StartRevision
	if w.next <= 0 {
		w.next = rev + 1
	}
	var ctx context.Context
	ctx, w.cancel = context.WithCancel(ws.ctx)
	ws.watchers[w.id] = w
	ws.mu.Unlock()
	ws.send(&pb.WatchResponse{Header: ws.s.header(rev), WatchId: w.id, Created: true})
	ws.wg.Add(1)
	go ws.run(ctx, w)
}

// run delivers w's events from kv's history, from w.next on, until the
// watcher is canceled or the stream ends.
func (ws *watchStream) run(ctx context.Context, w *watcher) {
	defer ws.wg.Done()
	defer func() {
		ws.mu.Lock()
		delete(ws.watchers, w.id)
		ws.mu.Unlock()
		w.cancel()
	}()
	var progress <-chan time.Time
	if w.progress {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		progress = t.C
	}
	st := ws.s.sm.kv
	sub := ws.s.changes.subscribe(w.key, w.end)
	defer ws.s.changes.unsubscribe(sub)
	for {
		w.mu.Lock()
		from := w.next
		w.mu.Unlock()
		evs, next, err := st.Events(from, w.key, w.end, watchBatch)
		if errors.Is(err, kv.ErrCompacted) {
			ws.send(&pb.WatchResponse{
				Header:          ws.s.header(st.Revision()),
				WatchId:         w.id,
				Canceled:        true,
				CompactRevision: st.CompactRevision(),
				CancelReason:    rpctypes.ErrGRPCCompacted.Error(),
			})
			return
		}
		if err != nil {
			ws.send(&pb.WatchResponse{Header: ws.s.header(st.Revision()), WatchId: w.id, Canceled: true, CancelReason: err.Error()})
			return
		}
		if out := w.convert(evs); len(out) > 0 {
			if !ws.send(&pb.WatchResponse{Header: ws.s.header(next - 1), WatchId: w.id, Events: out}) {
				return
			}
		}
		w.mu.Lock()
		w.next = next
		w.mu.Unlock()
		if ctx.Err() != nil {
			// Cancelled while catching up: stop now, not once history is
			// exhausted.
			if ws.ctx.Err() == nil {
				ws.send(&pb.WatchResponse{Header: ws.s.header(st.Revision()), WatchId: w.id, Canceled: true})
			}
			return
		}
		if next <= st.Revision() {
			continue // more history to read
		}
		select {
		case <-sub.wake:
		case <-progress:
			ws.send(&pb.WatchResponse{Header: ws.s.header(next - 1), WatchId: w.id})
		case <-ctx.Done():
			if ws.ctx.Err() == nil {
				ws.send(&pb.WatchResponse{Header: ws.s.header(st.Revision()), WatchId: w.id, Canceled: true})
			}
			return
		}
	}
}

func (w *watcher) convert(evs []kv.Event) []*mvccpb.Event {
	var out []*mvccpb.Event
	for i := range evs {
		e := &evs[i]
		if (e.Type == kv.EventPut && w.noPut) || (e.Type == kv.EventDelete && w.noDel) {
			continue
		}
		pe := &mvccpb.Event{Type: mvccpb.Event_EventType(e.Type), Kv: kvToPB(&e.Kv)}
		if w.prevKV && e.PrevKv != nil {
			pe.PrevKv = kvToPB(e.PrevKv)
		}
		out = append(out, pe)
	}
	return out
}
