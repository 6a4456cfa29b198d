package storage

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/lockstep/lockstep/raft"
	"github.com/lockstep/lockstep/vfs"
)

// The benchmarks run on a real temporary directory (set LOCKSTEP_BENCH_DIR to
// choose the disk). BenchmarkWAL measures the raw disk first, in the same
// run, and reports every Save rate as a ratio to it:
//
//	x_raw_fsync: Saves per second / raw 4 KiB write+fdatasync per second
//	x_raw_seq:   MB/s of entry data / raw MB/s of the same-size write+fdatasync
//
// Run briefly, e.g. go test -run XXX -bench WAL -benchtime 2s ./storage.

func benchDir(b *testing.B) string {
	if d := os.Getenv("LOCKSTEP_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "walbench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// zeroedFile returns a file of size bytes of written zeros, synced: the best
// case for overwrite+fdatasync, what a raw disk rate should be measured on.
func zeroedFile(b *testing.B, size int64) vfs.File {
	f, err := vfs.OS.Create(filepath.Join(benchDir(b), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// rawWriteSync writes chunk-sized blocks sequentially (wrapping around) with
// one fdatasync after each, and returns the syncs per second.
func rawWriteSync(b *testing.B, chunk int) float64 {
	const size = 64 << 20
	f := zeroedFile(b, size)
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(int64(chunk))
	b.ResetTimer()
	var off int64
	for i := 0; i < b.N; i++ {
		if off+int64(chunk) > size {
			off = 0
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		off += int64(chunk)
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "fsyncs/s")
	return rate
}

var (
	rawFsyncRate float64         // 4 KiB write+fdatasync per second
	rawSeqMBps   map[int]float64 // by write size: MB/s with one fdatasync per write
)

func BenchmarkWAL(b *testing.B) {
	rawSeqMBps = map[int]float64{}
	b.Run("RawFsync", func(b *testing.B) { rawFsyncRate = rawWriteSync(b, 4096) })
	sizes := []int{16, 256, 4096}
	batches := []int{1, 16, 256}
	for _, size := range sizes {
		for _, n := range batches {
			chunk := batchBytes(size, n)
			if _, done := rawSeqMBps[chunk]; done || n == 1 {
				continue
			}
			b.Run(fmt.Sprintf("RawSeqWrite/%dB", chunk), func(b *testing.B) {
				rawSeqMBps[chunk] = rawWriteSync(b, chunk) * float64(chunk) / 1e6
			})
		}
	}
	b.Run("RawStream/1MiB", func(b *testing.B) {
		// Sequential bandwidth with one fdatasync per 64 MiB: the disk's
		// streaming rate, which no per-batch fsync can reach.
		const size = 64 << 20
		f := zeroedFile(b, size)
		buf := make([]byte, 1<<20)
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		var off int64
		for i := 0; i < b.N; i++ {
			if off+int64(len(buf)) > size {
				off = 0
			}
			f.WriteAt(buf, off)
			off += int64(len(buf))
			if off%(64<<20) == 0 {
				f.Sync()
			}
		}
		f.Sync()
	})
	for _, size := range sizes {
		for _, n := range batches {
			b.Run(fmt.Sprintf("Save/%dB/x%d", size, n), func(b *testing.B) { benchSave(b, size, n) })
		}
	}
}

// batchBytes approximates the bytes one Save of n entries of size bytes
// writes (records with headers), to pick the matching raw write size.
func batchBytes(size, n int) int {
	e := raft.Entry{Term: 1, Index: 1 << 20, Data: make([]byte, size)}
	return n * (recordHeaderSize + len(raft.AppendEntry(nil, &e)))
}

func benchSave(b *testing.B, size, n int) {
	s, err := Open(vfs.OS, benchDir(b), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	batch := make([]raft.Entry, n)
	next := raft.Index(1)
	b.SetBytes(int64(size * n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j] = raft.Entry{Term: 1, Index: next, Data: data}
			next++
		}
		if err := s.Save(raft.HardState{Term: 1, Commit: next - 1}, batch); err != nil {
			b.Fatal(err)
		}
	}
	secs := b.Elapsed().Seconds()
	saves := float64(b.N) / secs
	b.ReportMetric(saves*float64(n), "entries/s")
	b.ReportMetric(saves, "fsyncs/s")
	if rawFsyncRate > 0 {
		b.ReportMetric(rawFsyncRate/saves, "x_raw_fsync")
	}
	if raw := rawSeqMBps[batchBytes(size, n)]; raw > 0 {
		mbps := float64(b.N) * float64(batchBytes(size, n)) / secs / 1e6
		b.ReportMetric(raw/mbps, "x_raw_seq")
	}
}
