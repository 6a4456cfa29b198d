//go:build !linux

package replica

import "time"

// bootClock reads Go's monotonic clock, in nanoseconds, where
// CLOCK_BOOTTIME is not available: it counts while the process is paused,
// though not, on some systems, while the machine is suspended.
func bootClock() (func() int64, error) {
	start := time.Now()
	return func() int64 { return int64(time.Since(start)) }, nil
}
