package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

// benchFlags loads a running cluster the way etcd's benchmark tool does
// (put: random keys over a key space; get: one key), and prints throughput
// and latency percentiles.
func benchFlags(fs *flag.FlagSet) func([]string, io.Writer) error {
	var o clientOptions
	o.register(fs)
	clients := fs.Int("clients", 1, "concurrent requests in flight")
	conns := fs.Int("conns", 1, "gRPC connections the clients share")
	total := fs.Int("total", 10000, "requests to send (ignored with --duration)")
	duration := fs.Duration("duration", 0, "send requests for this long instead of --total")
	keySize := fs.Int("key-size", 8, "put: key bytes")
	keySpace := fs.Int("key-space", 100000, "put: number of distinct keys")
	valSize := fs.Int("val-size", 256, "put: value bytes")
	key := fs.String("read-key", "anchor-key", "get: the key read (written once first)")
	consistency := fs.String("consistency", "l", "get: l (linearizable) or s (serializable)")
	targetLeader := fs.Bool("target-leader", false, "send every request to the leader's endpoint")
	watchers := fs.Int("watchers", 0, "idle watchers to open first, on keys the benchmark never writes (the cost of watch fan-out)")
	return func(args []string, w io.Writer) error {
		if len(args) != 1 || (args[0] != "put" && args[0] != "get") {
			return usageErr("want put or get")
		}
		switch {
		case *clients < 1 || *clients > 100000:
			return usageErr("--clients: %d is not in 1..100000", *clients)
		case *conns < 1 || *conns > *clients:
			return usageErr("--conns: %d is not in 1..--clients", *conns)
		case *duration <= 0 && *total < 1:
			return usageErr("--total: %d is not positive", *total)
		case *keySize < 1 || *keySize > 1024:
			return usageErr("--key-size: %d is not in 1..1024", *keySize)
		case *keySpace < 1:
			return usageErr("--key-space: %d is not positive", *keySpace)
		case *valSize < 0 || *valSize > 1<<20:
			return usageErr("--val-size: %d is not in 0..1048576", *valSize)
		case *consistency != "l" && *consistency != "s":
			return usageErr("--consistency: %q is not l or s", *consistency)
		case *watchers < 0 || *watchers > maxBenchWatchers:
			return usageErr("--watchers: %d is not in 0..%d", *watchers, maxBenchWatchers)
		}
		eps := o.endpointList()
		if len(eps) == 0 {
			return usageErr("--endpoints: no endpoint")
		}
		tc, err := o.clientTLS()
		if err != nil {
			return err
		}
		if *targetLeader {
			lead, err := leaderEndpoint(eps, o.timeout, tc)
			if err != nil {
				return err
			}
			eps = []string{lead}
		}
		clis := make([]*clientv3.Client, *conns)
		defer func() {
			for _, c := range clis {
				if c != nil {
					c.Close()
				}
			}
		}()
		for i := range clis {
			// Connection i talks to one endpoint, the endpoints taking
			// turns, as etcd's benchmark tool does (a client of several
			// endpoints would spread each connection's requests over all).
			ep := eps[i%len(eps)]
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: o.timeout, TLS: tc, Logger: zap.NewNop()})
			if err != nil {
				return err
			}
			clis[i] = c
		}
		wctx, wcancel := context.WithCancel(context.Background())
		defer wcancel()
		if err := openIdleWatchers(wctx, clis[0], *watchers, o.timeout); err != nil {
			return err
		}
		value := strings.Repeat("v", *valSize)
		var getOpts []clientv3.OpOption
		if *consistency == "s" {
			getOpts = append(getOpts, clientv3.WithSerializable())
		}
		if args[0] == "get" {
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			_, err := clis[0].Put(ctx, *key, value)
			cancel()
			if err != nil {
				return fmt.Errorf("writing %s before the reads: %w", *key, err)
			}
		}

		var issued, failed atomic.Int64
		var firstErr atomic.Value
		deadline := time.Time{}
		if *duration > 0 {
			deadline = time.Now().Add(*duration)
		}
		lat := make([][]time.Duration, *clients)
		var wg sync.WaitGroup
		start := time.Now()
		for c := 0; c < *clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cli := clis[c%len(clis)]
				rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
				kb := make([]byte, *keySize)
				for {
					if deadline.IsZero() {
						if issued.Add(1) > int64(*total) {
							return
						}
					} else if time.Now().After(deadline) {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
					t0 := time.Now()
					var err error
					if args[0] == "put" {
						var n [8]byte
						binary.BigEndian.PutUint64(n[:], uint64(rng.IntN(*keySpace)))
						copy(kb, n[max(0, 8-len(kb)):])
						_, err = cli.Put(ctx, string(kb), value)
					} else {
						_, err = cli.Get(ctx, *key, getOpts...)
					}
					cancel()
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		slices.Sort(all)
		pct := func(p float64) time.Duration {
			if len(all) == 0 {
				return 0
			}
			return all[min(len(all)-1, int(p*float64(len(all))))]
		}
		mode := args[0]
		if mode == "get" {
			mode += map[string]string{"l": " (linearizable)", "s": " (serializable)"}[*consistency]
		}
		fmt.Fprintf(w, "%s: %d clients, %d conns: %d ok, %d failed in %.2fs: %.0f ops/s, latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms\n",
			mode, *clients, *conns, len(all), failed.Load(), elapsed.Seconds(), float64(len(all))/elapsed.Seconds(),
			ms(pct(0.50)), ms(pct(0.90)), ms(pct(0.99)), ms(pct(1)))
		if err, ok := firstErr.Load().(error); ok {
			fmt.Fprintf(w, "first error: %v\n", err)
		}
		return nil
	}
}

// maxBenchWatchers bounds --watchers.
const maxBenchWatchers = 1_000_000

// openIdleWatchers opens n watchers, each on its own key outside the put
// key space (a put key is --key-size bytes, shorter than these), and waits
// until the server has created them all. They are spread over streams of
// 1,000, under the server's limit per stream.
func openIdleWatchers(ctx context.Context, cli *clientv3.Client, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout + time.Duration(n)*time.Millisecond)
	for i := 0; i < n; i++ {
		// clientv3 shares a stream among watches with the same metadata.
		sctx := metadata.AppendToOutgoingContext(ctx, "lockstep-bench-stream", strconv.Itoa(i/1000))
		wch := cli.Watch(sctx, fmt.Sprintf("lockstep-bench-idle-watch/%d", i), clientv3.WithCreatedNotify())
		select {
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil || !resp.Created {
				return fmt.Errorf("opening idle watcher %d: %v", i, resp.Err())
			}
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("opening idle watchers: %d of %d created within %v", i, n, timeout)
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// leaderEndpoint asks the endpoints which of them leads.
func leaderEndpoint(eps []string, timeout time.Duration, tc *tls.Config) (string, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: timeout, TLS: tc, Logger: zap.NewNop()})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, ep := range eps {
		st, err := cli.Status(ctx, ep)
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return ep, nil
		}
	}
	return "", fmt.Errorf("none of %s is the leader", strings.Join(eps, ","))
}
