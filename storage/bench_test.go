package storage

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
//
// The disk may be shared and its speed drift by 2x within seconds, so
// BenchmarkWALPaired alternates, op by op, a raw write+fdatasync of the same
// size with a Save, and reports x_raw, the ratio of their total times: drift
// hits both sides alike.
//
// On Linux every Save benchmark also reports what the disk saw per Save,
// from /proc/diskstats of the device holding the directory (other processes
// using the same device add to it): disk_KB/op written and flushes/op (cache
// flushes, which is what journal commits and fdatasync cost).
//
// Run briefly, e.g. go test -run XXX -bench WAL -count 3 -benchtime 2s ./storage.

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
	d0 := readDiskStats(filepath.Dir(f.Name()))
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
	b.StopTimer()
	d0.report(b, readDiskStats(filepath.Dir(f.Name())))
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

// saver appends batches of n entries of size bytes to a store on the OS.
type saver struct {
	s     *Store
	dir   string
	data  []byte
	batch []raft.Entry
	next  raft.Index
}

func newSaver(b *testing.B, size, n int) *saver {
	dir := benchDir(b)
	s, err := Open(vfs.OS, dir, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return &saver{s: s, dir: dir, data: data, batch: make([]raft.Entry, n), next: 1}
}

func (v *saver) save(b *testing.B) {
	for j := range v.batch {
		v.batch[j] = raft.Entry{Term: 1, Index: v.next, Data: v.data}
		v.next++
	}
	if err := v.s.Save(raft.HardState{Term: 1, Commit: v.next - 1}, v.batch); err != nil {
		b.Fatal(err)
	}
}

func benchSave(b *testing.B, size, n int) {
	v := newSaver(b, size, n)
	b.SetBytes(int64(size * n))
	b.ReportAllocs()
	d0 := readDiskStats(v.dir)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v.save(b)
	}
	b.StopTimer()
	d0.report(b, readDiskStats(v.dir))
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

// BenchmarkWALPaired measures the targets of issue 4 drift-free: each
// iteration does one raw write+fdatasync (4 KiB for one entry per Save, the
// batch's size otherwise) on a file of written zeros, then one Save, and
// x_raw is Save time / raw time.
func BenchmarkWALPaired(b *testing.B) {
	for _, c := range []struct{ size, n int }{{16, 1}, {256, 1}, {256, 256}, {4096, 256}} {
		b.Run(fmt.Sprintf("%dB/x%d", c.size, c.n), func(b *testing.B) {
			chunk := 4096
			if c.n > 1 {
				chunk = batchBytes(c.size, c.n)
			}
			const size = 64 << 20
			f := zeroedFile(b, size)
			buf := make([]byte, chunk)
			for i := range buf {
				buf[i] = byte(i)
			}
			v := newSaver(b, c.size, c.n)
			var raw, save time.Duration
			var off int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if off+int64(chunk) > size {
					off = 0
				}
				t0 := time.Now()
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				v.save(b)
				raw, save = raw+t1.Sub(t0), save+time.Since(t1)
				off += int64(chunk)
			}
			b.ReportMetric(float64(b.N)/raw.Seconds(), "raw_fsyncs/s")
			b.ReportMetric(float64(b.N)/save.Seconds(), "save_fsyncs/s")
			b.ReportMetric(save.Seconds()/raw.Seconds(), "x_raw")
		})
	}
}

// diskStats are the write counters of one block device.
type diskStats struct {
	ok             bool
	sectors, flush uint64
}

// readDiskStats reads /proc/diskstats for the device holding dir.
func readDiskStats(dir string) diskStats {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return diskStats{}
	}
	major, minor := uint64(st.Dev>>8&0xfff), uint64(st.Dev&0xff|st.Dev>>12&^0xff)
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return diskStats{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 20 || f[0] != strconv.FormatUint(major, 10) || f[1] != strconv.FormatUint(minor, 10) {
			continue
		}
		sectors, _ := strconv.ParseUint(f[9], 10, 64)
		flush, _ := strconv.ParseUint(f[18], 10, 64)
		return diskStats{ok: true, sectors: sectors, flush: flush}
	}
	return diskStats{}
}

func (d diskStats) report(b *testing.B, after diskStats) {
	if !d.ok || !after.ok || b.N == 0 {
		return
	}
	b.ReportMetric(float64(after.sectors-d.sectors)*512/1024/float64(b.N), "disk_KB/op")
	b.ReportMetric(float64(after.flush-d.flush)/float64(b.N), "flushes/op")
}
