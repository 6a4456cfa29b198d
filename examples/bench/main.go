// Command bench measures lockstep's replication runtime the way
// ../shared/bench/peers measures hashicorp/raft and dragonboat: three
// replicas in this process over loopback TCP, each with its own on-disk log
// (fsync on), a trivial state machine, and client goroutines proposing to
// the leader. Latency runs from just before Propose to the applied result.
//
//	go run ./examples/bench -payload 16 -clients 64 -duration 15s
//	go run ./examples/bench -mode async -clients 16 -window 1024
//
// It prints one line in the peers harness's format, so the figures sit
// side by side with theirs.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/replica"
)

// sink is the benchmark's state machine: it counts commands and bytes.
type sink struct {
	count atomic.Uint64
	bytes atomic.Uint64
}

func (s *sink) Apply(cmds []replica.Command, results []uint64) error {
	for i, c := range cmds {
		s.bytes.Add(uint64(len(c.Data)))
		results[i] = s.count.Add(1)
	}
	return nil
}

func (s *sink) Snapshot(w io.Writer) error {
	_, err := w.Write(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, s.count.Load()), s.bytes.Load()))
	return err
}

func (s *sink) Restore(r io.Reader) error {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	s.count.Store(binary.LittleEndian.Uint64(b[:8]))
	s.bytes.Store(binary.LittleEndian.Uint64(b[8:]))
	return nil
}

func main() {
	payload := flag.Int("payload", 16, "command payload size in bytes")
	clients := flag.Int("clients", 1, "concurrent proposers")
	duration := flag.Duration("duration", 15*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 3*time.Second, "warm-up under load before measuring (excluded)")
	mode := flag.String("mode", "sync", "sync: one blocking proposal at a time per client; async: up to -window outstanding per client")
	window := flag.Int("window", 1024, "async mode: outstanding proposals per client")
	nodes := flag.Int("nodes", 3, "cluster size")
	store := flag.String("store", "disk", "disk (fsync on) or mem (no durability, for profiling)")
	tmp := flag.String("tmp", os.TempDir(), "parent of the per-run data directory (removed at exit)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured window to this file")
	flag.Parse()
	if *mode != "sync" && *mode != "async" {
		fatalf("-mode must be sync or async, not %q", *mode)
	}
	if *store != "disk" && *store != "mem" {
		fatalf("-store must be disk or mem, not %q", *store)
	}
	if *payload < 0 || *clients < 1 || *window < 1 || *nodes < 1 {
		fatalf("-payload, -clients, -window and -nodes must be positive")
	}
	dir, err := os.MkdirTemp(*tmp, "lockstep-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)

	t0 := time.Now()
	cl, err := startCluster(*nodes, *store, dir)
	if err != nil {
		fatalf("%v", err)
	}
	defer cl.stop()
	lead, err := cl.waitLeader()
	if err != nil {
		fatalf("%v", err)
	}
	startup := time.Since(t0)

	cmd := make([]byte, *payload)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatalf("%v", err)
		}
		defer f.Close()
		go func() {
			// Profile the measured window only, not start-up and warm-up.
			time.Sleep(*warmup)
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "bench: cpu profile:", err)
			}
		}()
		defer pprof.StopCPUProfile()
	}
	res := measure(cl.replicas[lead], cmd, *mode, *clients, *window, *warmup, *duration)
	slices.Sort(res.lat)
	pct := func(p float64) float64 {
		if len(res.lat) == 0 {
			return 0
		}
		return float64(res.lat[min(len(res.lat)-1, int(p*float64(len(res.lat))))]) / 1e6
	}
	fmt.Printf("lib=lockstep mode=%s payload=%d clients=%d ops_s=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f cpu_cores=%.2f ops=%d errors=%d window_s=%.2f startup_s=%.2f applied_total=%d\n",
		*mode, *payload, *clients, float64(res.ops)/res.wall.Seconds(), pct(0.50), pct(0.99), pct(0.999),
		res.cpu.Seconds()/res.wall.Seconds(), res.ops, res.errs, res.wall.Seconds(), startup.Seconds(), cl.sms[lead].count.Load())
	if res.firstErr != nil {
		fmt.Fprintf(os.Stderr, "first error: %v\n", res.firstErr)
	}
}

type cluster struct {
	replicas map[raft.NodeID]*replica.Replica[uint64]
	sms      map[raft.NodeID]*sink
}

func startCluster(n int, store, dir string) (*cluster, error) {
	peers := map[raft.NodeID]string{}
	lns := map[raft.NodeID]net.Listener{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns[raft.NodeID(i)], peers[raft.NodeID(i)] = ln, ln.Addr().String()
	}
	cl := &cluster{replicas: map[raft.NodeID]*replica.Replica[uint64]{}, sms: map[raft.NodeID]*sink{}}
	for id, ln := range lns {
		var ls replica.LogStore
		if store == "mem" {
			ls = replica.NewMemoryLogStore()
		} else {
			var err error
			if ls, err = replica.OpenDiskStore(fmt.Sprintf("%s/node%d", dir, id), nil); err != nil {
				return nil, err
			}
		}
		sm := &sink{}
		r, err := replica.Start[uint64](replica.Config{ID: id, ClusterID: 1, Peers: peers, Listener: ln, Store: ls}, sm)
		if err != nil {
			return nil, err
		}
		cl.replicas[id], cl.sms[id] = r, sm
	}
	return cl, nil
}

func (cl *cluster) waitLeader() (raft.NodeID, error) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for id, r := range cl.replicas {
			if l, _ := r.Leader(); l == id {
				return id, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return raft.None, errors.New("no leader within 15s")
}

func (cl *cluster) stop() {
	for _, r := range cl.replicas {
		r.Stop()
	}
}

type result struct {
	lat      []int64
	ops      uint64
	errs     uint64
	wall     time.Duration
	cpu      time.Duration
	firstErr error
}

type stats struct {
	mu   sync.Mutex // guards all fields: collectors may outlive the window
	lat  []int64
	ops  uint64
	errs uint64
	err  error
}

func measure(r *replica.Replica[uint64], cmd []byte, mode string, clients, window int, warmup, duration time.Duration) result {
	base := time.Now()
	from, to := warmup, warmup+duration
	var stop atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	all := make([]*stats, clients)
	var wg sync.WaitGroup
	record := func(s *stats, start time.Duration, err error) {
		end := time.Since(base)
		if end < from || end >= to {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.errs++
			if s.err == nil {
				s.err = err
			}
			return
		}
		s.ops++
		s.lat = append(s.lat, int64(end-start))
	}
	for i := range all {
		s := &stats{lat: make([]int64, 0, 1<<14)}
		all[i] = s
		if mode == "sync" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					start := time.Since(base)
					_, err := r.Propose(ctx, cmd)
					record(s, start, err)
					if err != nil {
						time.Sleep(time.Millisecond)
					}
				}
			}()
			continue
		}
		type pending struct {
			f     *replica.Future[uint64]
			err   error
			start time.Duration
		}
		q := make(chan pending, window)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(q)
			for !stop.Load() {
				start := time.Since(base)
				f, err := r.ProposeAsync(ctx, cmd)
				q <- pending{f: f, err: err, start: start}
				if err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for p := range q {
				err := p.err
				if err == nil {
					_, err = p.f.Wait(ctx)
				}
				record(s, p.start, err)
			}
		}()
	}
	var ru0, ru1 syscall.Rusage
	time.Sleep(time.Until(base.Add(from)))
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	w0 := time.Now()
	time.Sleep(time.Until(base.Add(to)))
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	wall := time.Since(w0)
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// Results are final: only completions inside the window count.
		cancel()
		<-done
	}
	res := result{wall: wall, cpu: time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())}
	for _, s := range all {
		s.mu.Lock()
		res.lat = append(res.lat, s.lat...)
		res.ops += s.ops
		res.errs += s.errs
		if res.firstErr == nil {
			res.firstErr = s.err
		}
		s.mu.Unlock()
	}
	return res
}

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...)
	os.Exit(2)
}
