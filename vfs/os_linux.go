package vfs

import (
	"errors"
	"os"
	"syscall"
)

// datasync is fdatasync: it skips the metadata a log does not need
// (timestamps). Only blocks already written (with zeros, say) make it a pure
// data flush: into fallocated blocks it also commits the extent conversion
// (see storage's ZeroFill option).
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// preallocate uses fallocate, which extends the file and reserves blocks
// without writing them; it falls back to Truncate on filesystems without it.
func preallocate(f *os.File, cur, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, cur, size-cur)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			return f.Truncate(size)
		default:
			return err
		}
	}
}
