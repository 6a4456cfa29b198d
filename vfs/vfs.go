package vfs

import (
	"errors"
	"io/fs"
)

// File is an open file. Offsets and sizes are in bytes.
//
// Concurrency: ReadAt may be called concurrently with other ReadAt and
// WriteAt calls on the same File; calls that change the size (Truncate,
// Preallocate, WriteAt past the end) must not race with each other.
type File interface {
	// ReadAt reads len(p) bytes at off. Like io.ReaderAt it returns an error
	// (io.EOF at the end of the file) when it reads fewer.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at off, extending the file with zeros if off is past
	// the end. The bytes are durable only after Sync.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes the file's contents and size durable (fdatasync: other
	// metadata such as timestamps may be lost).
	Sync() error
	// Truncate sets the size, cutting or extending with zeros.
	Truncate(size int64) error
	// Preallocate makes the file at least size bytes long, reading as zeros
	// past the old end, and reserves the space where the system supports it
	// so that later writes inside it do not run out of space.
	Preallocate(size int64) error
	// Size returns the current size.
	Size() (int64, error)
	// Close releases the handle. It does not sync.
	Close() error
	// Name returns the name the file was opened with.
	Name() string
}

// FS is a filesystem. Names are slash-separated paths.
type FS interface {
	// Create creates the named file, or truncates it if it exists, and opens
	// it for reading and writing. The new directory entry is durable only
	// after SyncDir of its directory.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing. It returns an
	// error wrapping fs.ErrNotExist if there is none.
	Open(name string) (File, error)
	// Remove removes a file. Durable after SyncDir.
	Remove(name string) error
	// Rename renames a file, replacing newname if it exists. Durable after
	// SyncDir of the directory (both directories if they differ).
	Rename(oldname, newname string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// MkdirAll creates dir and its parents as needed.
	MkdirAll(dir string) error
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
}

// ErrNotExist is fs.ErrNotExist, repeated here so callers need not import
// io/fs to test for it.
var ErrNotExist = fs.ErrNotExist

// ErrInjected is returned by MemFS operations after the limit set by
// FailAfter is reached.
var ErrInjected = errors.New("vfs: injected failure")

// ErrStaleHandle is returned by a MemFS file opened before a Crash.
var ErrStaleHandle = errors.New("vfs: file handle is from before a crash")

// ErrClosed is returned by operations on a closed MemFS file.
var ErrClosed = errors.New("vfs: file already closed")
