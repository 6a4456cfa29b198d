package kv

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

func benchStore(b *testing.B, keys int) (*Store, [][]byte) {
	s, _ := New(Config{})
	ks := make([][]byte, keys)
	for i := range ks {
		ks[i] = []byte(fmt.Sprintf("/registry/pods/default/pod-%06d", i))
		cmd, _ := EncodeCommand(Command{Put: &PutRequest{Key: ks[i], Value: make([]byte, 128)}})
		if _, err := s.Apply(uint64(i+1), cmd); err != nil {
			b.Fatal(err)
		}
	}
	return s, ks
}

// BenchmarkPut overwrites existing keys through Apply, the hot path: decode,
// one new version, one log entry, the response.
func BenchmarkPut(b *testing.B) {
	s, ks := benchStore(b, 10000)
	cmds := make([][]byte, len(ks))
	for i := range ks {
		cmds[i], _ = EncodeCommand(Command{Put: &PutRequest{Key: ks[i], Value: make([]byte, 128)}})
	}
	index := s.AppliedIndex()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		index++
		if _, err := s.Apply(index, cmds[i%len(cmds)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutNewKeys inserts fresh keys.
func BenchmarkPutNewKeys(b *testing.B) {
	cmds := make([][]byte, 1<<16)
	for i := range cmds {
		cmds[i], _ = EncodeCommand(Command{Put: &PutRequest{Key: []byte(fmt.Sprintf("key-%08d", i)), Value: make([]byte, 128)}})
	}
	benchmarkFreshPuts(b, cmds)
}

// benchmarkFreshPuts applies cmds in turn to a new store, and again to
// another new one once they are all applied.
func benchmarkFreshPuts(b *testing.B, cmds [][]byte) {
	s, _ := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(cmds) == 0 {
			b.StopTimer()
			s, _ = New(Config{})
			b.StartTimer()
		}
		if _, err := s.Apply(uint64(i+1), cmds[i%len(cmds)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangeSingleKey(b *testing.B) {
	s, ks := benchStore(b, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Range(&RangeRequest{Key: ks[i%len(ks)]}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangePrefix100(b *testing.B) {
	s, ks := benchStore(b, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := (i * 100) % (len(ks) - 100)
		r := &RangeRequest{Key: ks[j], RangeEnd: ks[j+100]}
		if resp, err := s.Range(r); err != nil || len(resp.Kvs) != 100 {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePut(b *testing.B) {
	c := Command{Put: &PutRequest{Key: []byte("/registry/pods/default/pod-000001"), Value: make([]byte, 128)}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = AppendCommand(buf[:0], c)
	}
}

// BenchmarkPutRandomShortKeys overwrites 100,000 random 8-byte keys in random
// order, as etcd's benchmark tool does: a tree too large for the cache, so a
// lookup's cost is mostly the memory it touches.
func BenchmarkPutRandomShortKeys(b *testing.B) {
	s, _ := New(Config{})
	r := rand.New(rand.NewPCG(1, 2))
	cmds := make([][]byte, 100000)
	for i := range cmds {
		k := binary.BigEndian.AppendUint64(nil, r.Uint64())
		cmds[i], _ = EncodeCommand(Command{Put: &PutRequest{Key: k, Value: make([]byte, 256)}})
		if _, err := s.Apply(uint64(i+1), cmds[i]); err != nil {
			b.Fatal(err)
		}
	}
	r.Shuffle(len(cmds), func(i, j int) { cmds[i], cmds[j] = cmds[j], cmds[i] })
	index := s.AppliedIndex()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		index++
		if _, err := s.Apply(index, cmds[i%len(cmds)]); err != nil {
			b.Fatal(err)
		}
		if i%50000 == 49999 {
			// Keep the history from growing without bound.
			b.StopTimer()
			index++
			cmd, _ := EncodeCommand(Command{Compact: &CompactRequest{Revision: s.Revision()}})
			if res, err := s.Apply(index, cmd); err != nil || res.Err != nil {
				b.Fatal(err, res.Err)
			}
			b.StartTimer()
		}
	}
}

// BenchmarkPutRandomNewKeys inserts random 8-byte keys into a store that
// grows to 100,000 of them, then starts again: each put adds a key to a
// tree too large for the cache, as most of the puts in etcd's benchmark
// tool do on a fresh cluster.
func BenchmarkPutRandomNewKeys(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	cmds := make([][]byte, 100000)
	for i := range cmds {
		k := binary.BigEndian.AppendUint64(nil, r.Uint64())
		cmds[i], _ = EncodeCommand(Command{Put: &PutRequest{Key: k, Value: make([]byte, 256)}})
	}
	benchmarkFreshPuts(b, cmds)
}
