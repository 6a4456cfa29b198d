package storage

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error that reports damaged data on disk
// (test with errors.Is; errors.As with *CorruptError gives the location).
var ErrCorrupt = errors.New("storage: corrupt data")

// ErrClosed is returned by a Store after Close.
var ErrClosed = errors.New("storage: store is closed")

// CorruptError locates damaged or inconsistent data on disk.
type CorruptError struct {
	File   string // path of the damaged file
	Offset int64  // byte offset of the damage within File
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("storage: %s in %s at offset %d", e.Reason, e.File, e.Offset)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(file string, off int64, format string, args ...any) error {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
