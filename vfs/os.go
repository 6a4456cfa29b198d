package vfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// OS is the operating system's filesystem.
var OS FS = osFS{}

type osFS struct{}

type osFile struct {
	f *os.File
}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vfs: create: %w", err)
	}
	return osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("vfs: open: %w", err)
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error {
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("vfs: remove: %w", err)
	}
	return nil
}

func (osFS) Rename(oldname, newname string) error {
	if err := os.Rename(oldname, newname); err != nil {
		return fmt.Errorf("vfs: rename: %w", err)
	}
	return nil
}

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("vfs: list: %w", err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("vfs: mkdir: %w", err)
	}
	// The new directories' own entries must be durable too.
	for d := dir; ; {
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		if err := syncDir(parent); err != nil {
			return err
		}
		d = parent
	}
	return nil
}

func (osFS) SyncDir(dir string) error { return syncDir(dir) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("vfs: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vfs: sync dir %s: %w", dir, err)
	}
	return nil
}

func (f osFile) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

func (f osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }

func (f osFile) Sync() error {
	if err := datasync(f.f); err != nil {
		return fmt.Errorf("vfs: sync %s: %w", f.f.Name(), err)
	}
	return nil
}

func (f osFile) Truncate(size int64) error { return f.f.Truncate(size) }

func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil {
		return err
	}
	if cur >= size {
		return nil
	}
	if err := preallocate(f.f, cur, size); err != nil {
		return fmt.Errorf("vfs: preallocate %s to %d bytes: %w", f.f.Name(), size, err)
	}
	return nil
}

func (f osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Close() error { return f.f.Close() }

func (f osFile) Name() string { return f.f.Name() }
