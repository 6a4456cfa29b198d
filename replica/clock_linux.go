package replica

import "golang.org/x/sys/unix"

// bootClock reads CLOCK_BOOTTIME, in nanoseconds: monotonic, and unlike
// CLOCK_MONOTONIC (Go's monotonic clock) it keeps counting while the
// machine is suspended, so a leader resumed from a suspend sees that its
// lease ran out.
func bootClock() (func() int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return nil, err
	}
	return func() int64 {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
			// It worked once. Should it ever fail, the far future: no
			// lease holds then, and reads take a heartbeat round.
			return 1<<63 - 1
		}
		return ts.Nano()
	}, nil
}
