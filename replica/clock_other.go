//go:build !linux

package replica

import "time"

// bootClock is Go's monotonic clock where CLOCK_BOOTTIME is not available:
// it counts while the process is paused, though not, on some systems, while
// the machine is suspended.
func bootClock() (func() time.Duration, error) {
	start := time.Now()
	return func() time.Duration { return time.Since(start) }, nil
}
