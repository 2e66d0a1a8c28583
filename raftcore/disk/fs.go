package disk

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
)

// FS is the seam between the storage and the operating system. OSFS is the
// real one; MemFS simulates a disk that loses or tears what was not synced,
// for crash tests and for the deterministic simulator.
//
// Durability contract (what Storage relies on, and what MemFS models): data
// written to a File is durable once File.Sync returns nil; a file's name (its
// creation, a rename onto it, its removal) is durable once SyncDir of its
// directory returns nil. Truncate is durable when it returns. Before that,
// a crash may keep any of it: a name change may or may not survive (name
// changes reach the disk in the order they were made, a rename whole or not
// at all), and unsynced data may be lost, torn, or only its size kept, the
// rest reading as zeros. So a name whose file was never synced can exist
// empty or zero-filled after a crash.
type FS interface {
	// MkdirAll creates dir and its parents (0o755).
	MkdirAll(dir string) error
	// ReadDir lists the names in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// Create creates (or truncates) a file for writing.
	Create(name string) (File, error)
	// OpenFile opens an existing file for writing.
	OpenFile(name string) (File, error)
	// ReadFile returns a whole file.
	ReadFile(name string) ([]byte, error)
	// Rename renames a file, replacing newname.
	Rename(oldname, newname string) error
	// Remove removes a file.
	Remove(name string) error
	// Truncate cuts a file to size bytes and makes that durable.
	Truncate(name string, size int64) error
	// SyncDir makes the names in dir durable.
	SyncDir(dir string) error
	// Exists reports whether name exists.
	Exists(name string) (bool, error)
}

// File is a file open for writing.
type File interface {
	// WriteAt writes p at offset off, extending the file if needed.
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes everything written so far durable (fsync).
	Sync() error
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

var _ FS = OSFS{}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		names = append(names, de.Name())
	}
	sort.Strings(names)
	return names, nil
}

// Create implements FS.
func (OSFS) Create(name string) (File, error) {
	return openOS(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
}

// OpenFile implements FS.
func (OSFS) OpenFile(name string) (File, error) {
	return openOS(name, os.O_WRONLY)
}

func openOS(name string, flag int) (File, error) {
	f, err := os.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// osFile syncs with fdatasync where the system has it: it makes the data
// and the metadata needed to read it back (the size) durable, and skips the
// modification time, which fsync would journal on every commit. WAL
// segments are preallocated, so a commit changes no size at all.
type osFile struct{ *os.File }

// Sync implements File.
func (f osFile) Sync() error { return datasync(f.File) }

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Truncate implements FS.
func (OSFS) Truncate(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Exists implements FS.
func (OSFS) Exists(name string) (bool, error) {
	_, err := os.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// writeFileDurably writes data to name through a temporary file: write, sync,
// rename, sync the directory. A crash leaves either the old file or the new
// one, never a part of it, under name.
func writeFileDurably(fs FS, name string, data []byte) error {
	tmp := name + tmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}
