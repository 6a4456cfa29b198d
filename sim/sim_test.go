package sim

import (
	"flag"
	"os"
	"strconv"
	"testing"
	"time"
)

var (
	flagSeed  = flag.Uint64("seed", 0, "run only this seed (TestSeeds)")
	flagSeeds = flag.Int("seeds", 0, "number of seeds TestSeeds runs (default 200, or $LOCKSTEP_SIM_SEEDS)")
	flagFirst = flag.Uint64("first", 1, "first seed TestSeeds runs")
	flagTrace = flag.String("trace", "", "write the readable event trace of -seed to this file")
)

// defaultSeeds keeps `go test ./sim` (and -race in CI) within its budget;
// LOCKSTEP_SIM_SEEDS or -seeds runs long soaks.
const defaultSeeds = 200

func seedCount(t *testing.T) int {
	if *flagSeeds > 0 {
		return *flagSeeds
	}
	if s := os.Getenv("LOCKSTEP_SIM_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("LOCKSTEP_SIM_SEEDS=%q: %v", s, err)
		}
		return n
	}
	if testing.Short() {
		return defaultSeeds / 10
	}
	return defaultSeeds
}

// runSeed runs one seed with its random options, writing the trace if
// asked, and fails the test with the replay command.
func runSeed(t *testing.T, seed uint64, trace string) *Result {
	t.Helper()
	opt := RandomOptions(seed)
	if trace != "" {
		f, err := os.Create(trace)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		opt.Trace = f
	}
	res := Run(opt)
	if res.Failed() {
		t.Errorf("%s", res)
	} else if testing.Verbose() && *flagSeed != 0 {
		t.Logf("%s", res)
	}
	return res
}

// TestSeeds runs a fixed range of seeds through the whole checker: random
// faults under a client workload, then healing, liveness, convergence and
// linearizability. Any failure prints the seed and the command replaying it.
func TestSeeds(t *testing.T) {
	if *flagSeed != 0 {
		runSeed(t, *flagSeed, *flagTrace)
		return
	}
	n := seedCount(t)
	start := time.Now()
	failed := 0
	var stats Stats
	for i := 0; i < n; i++ {
		res := runSeed(t, *flagFirst+uint64(i), "")
		if res.Failed() {
			failed++
			if failed >= 10 {
				t.Fatalf("stopping after %d failed seeds", failed)
			}
		}
		stats.add(res.Stats)
	}
	d := time.Since(start)
	t.Logf("%d seeds in %v (%.1f seeds/s), %d failed; %+v", n, d.Round(time.Millisecond), float64(n)/d.Seconds(), failed, stats)
}
