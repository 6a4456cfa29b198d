package replica

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootClock is CLOCK_BOOTTIME: monotonic, and unlike CLOCK_MONOTONIC (Go's
// monotonic clock) it keeps counting while the machine is suspended, so a
// leader resumed from a suspend sees that its lease ran out.
func bootClock() (func() time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return nil, err
	}
	return func() time.Duration {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
			// It worked once; should it ever fail, time stands still,
			// and leases run out as if it went on forever.
			return 1<<63 - 1
		}
		return time.Duration(ts.Nano())
	}, nil
}
