package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// ErrCrashed is returned by every MemFS call between the moment a scheduled
// crash happens (CrashAfter) and Recover.
var ErrCrashed = errors.New("disk: simulated crash: the machine is down")

// MemFS is an in-memory FS that models what a crash keeps. Each file has the
// bytes written to it and the length of its prefix that a Sync made durable;
// each directory has the names a SyncDir made durable. Crash turns the state
// into what a disk would show after power loss: files whose name was never
// made durable vanish, renames and removals not followed by SyncDir are undone,
// and each file keeps its synced prefix plus, at random, none, all, or a part
// of its unsynced tail cut at a random byte (a torn write).
//
// It also injects faults: a capacity after which writes fail with ENOSPC
// (writing as much as fits first, as a real disk does), and a countdown after
// which the machine "crashes" in the middle of whatever the caller is doing.
// Safe for concurrent use; it starts no goroutines and reads no clock, so the
// simulator stays deterministic.
type MemFS struct {
	mu    sync.Mutex
	dirs  map[string]bool
	files map[string]*memInode // the current namespace
	// durable is the namespace a crash would leave: name -> inode, per
	// directory as of its last SyncDir.
	durable map[string]*memInode
	gen     int // bumped by Crash/Recover; older handles stop working

	capacity  int64 // 0: unlimited
	countdown int   // >0: mutating calls left before a crash
	crashed   bool
	failSync  error
}

type memInode struct {
	data   []byte
	synced int
}

// NewMemFS returns an empty file system.
func NewMemFS() *MemFS {
	return &MemFS{dirs: map[string]bool{"/": true, ".": true}, files: map[string]*memInode{}, durable: map[string]*memInode{}}
}

var _ FS = (*MemFS)(nil)

// SetCapacity makes writes fail with ENOSPC once the files hold n bytes in
// all (0: no limit).
func (m *MemFS) SetCapacity(n int64) { m.mu.Lock(); m.capacity = n; m.mu.Unlock() }

// FailSync makes every File.Sync and SyncDir return err (nil: stop).
func (m *MemFS) FailSync(err error) { m.mu.Lock(); m.failSync = err; m.mu.Unlock() }

// CrashAfter schedules a crash: after n more mutating calls (writes, syncs,
// creates, renames, removes, truncates) every call fails with ErrCrashed
// until Recover.
func (m *MemFS) CrashAfter(n int) { m.mu.Lock(); m.countdown = n; m.mu.Unlock() }

// Crashed reports whether a scheduled crash has happened.
func (m *MemFS) Crashed() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.crashed }

// Crash powers the machine off now and back on: see the type's doc for what
// survives. Handles opened before stop working. rng decides the torn tails.
func (m *MemFS) Crash(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	files := map[string]*memInode{}
	seen := map[*memInode]*memInode{}
	for name, ino := range m.durable {
		if n, ok := seen[ino]; ok { // hard links cannot happen here, but keep identity
			files[name] = n
			continue
		}
		keep := ino.synced
		if tail := len(ino.data) - ino.synced; tail > 0 {
			switch rng.IntN(3) {
			case 0: // lost
			case 1: // all reached the disk
				keep = len(ino.data)
			default: // torn at a random byte
				keep += rng.IntN(tail + 1)
			}
		}
		n := &memInode{data: append([]byte(nil), ino.data[:keep]...), synced: keep}
		seen[ino] = n
		files[name] = n
	}
	m.files = files
	m.durable = map[string]*memInode{}
	for k, v := range files {
		m.durable[k] = v
	}
	m.gen++
	m.crashed = false
	m.countdown = 0
}

// Recover is Crash after a crash scheduled by CrashAfter.
func (m *MemFS) Recover(rng *rand.Rand) { m.Crash(rng) }

// tick counts a mutating call toward a scheduled crash. Called with m.mu held.
func (m *MemFS) tick() error {
	if m.crashed {
		return ErrCrashed
	}
	if m.countdown > 0 {
		m.countdown--
		if m.countdown == 0 {
			m.crashed = true
			return ErrCrashed
		}
	}
	return nil
}

func clean(name string) string { return filepath.Clean(name) }

// MkdirAll implements FS. Directories are always durable (the storage makes
// them once, before anything is written in them).
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return ErrCrashed
	}
	for d := clean(dir); ; d = filepath.Dir(d) {
		m.dirs[d] = true
		if d == filepath.Dir(d) {
			break
		}
	}
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return nil, ErrCrashed
	}
	dir = clean(dir)
	if !m.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for name := range m.files {
		if filepath.Dir(name) == dir {
			names = append(names, filepath.Base(name))
		}
	}
	for d := range m.dirs {
		if d != dir && filepath.Dir(d) == dir {
			names = append(names, filepath.Base(d))
		}
	}
	sort.Strings(names)
	return names, nil
}

func (m *MemFS) checkDir(op, name string) error {
	if !m.dirs[filepath.Dir(name)] {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tick(); err != nil {
		return nil, err
	}
	name = clean(name)
	if err := m.checkDir("create", name); err != nil {
		return nil, err
	}
	ino := &memInode{}
	m.files[name] = ino
	return &memFile{fs: m, ino: ino, name: name, gen: m.gen}, nil
}

// OpenAppend implements FS.
func (m *MemFS) OpenAppend(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return nil, ErrCrashed
	}
	name = clean(name)
	ino, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{fs: m, ino: ino, name: name, gen: m.gen}, nil
}

// ReadFile implements FS.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return nil, ErrCrashed
	}
	ino, ok := m.files[clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), ino.data...), nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tick(); err != nil {
		return err
	}
	oldname, newname = clean(oldname), clean(newname)
	ino, ok := m.files[oldname]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if err := m.checkDir("rename", newname); err != nil {
		return err
	}
	delete(m.files, oldname)
	m.files[newname] = ino
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tick(); err != nil {
		return err
	}
	name = clean(name)
	if _, ok := m.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.files, name)
	return nil
}

// Truncate implements FS.
func (m *MemFS) Truncate(name string, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tick(); err != nil {
		return err
	}
	ino, ok := m.files[clean(name)]
	if !ok {
		return &fs.PathError{Op: "truncate", Path: name, Err: fs.ErrNotExist}
	}
	if int(size) < len(ino.data) {
		ino.data = ino.data[:size]
	}
	if ino.synced > len(ino.data) {
		ino.synced = len(ino.data)
	}
	return nil
}

// SyncDir implements FS: the names under dir become durable as they are now.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.tick(); err != nil {
		return err
	}
	if m.failSync != nil {
		return m.failSync
	}
	dir = clean(dir)
	for name := range m.durable {
		if filepath.Dir(name) == dir {
			delete(m.durable, name)
		}
	}
	for name, ino := range m.files {
		if filepath.Dir(name) == dir {
			m.durable[name] = ino
		}
	}
	return nil
}

// Exists implements FS.
func (m *MemFS) Exists(name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crashed {
		return false, ErrCrashed
	}
	name = clean(name)
	_, ok := m.files[name]
	return ok || m.dirs[name], nil
}

// Corrupt flips the bits of the byte at offset in name, for tests of damaged
// files. The change counts as durable.
func (m *MemFS) Corrupt(name string, offset int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.files[clean(name)]
	if !ok || offset < 0 || offset >= int64(len(ino.data)) {
		return fmt.Errorf("memfs: corrupt %s at %d: no such byte", name, offset)
	}
	ino.data[offset] ^= 0xff
	return nil
}

// Size returns the length of name, or -1.
func (m *MemFS) Size(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ino, ok := m.files[clean(name)]; ok {
		return int64(len(ino.data))
	}
	return -1
}

// Files lists every file path, sorted (for tests and debugging).
func (m *MemFS) Files() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.files {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// WriteFile puts a whole durable file in place (for tests that build a data
// directory by hand).
func (m *MemFS) WriteFile(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = clean(name)
	for d := filepath.Dir(name); !m.dirs[d]; d = filepath.Dir(d) {
		m.dirs[d] = true
	}
	ino := &memInode{data: append([]byte(nil), data...), synced: len(data)}
	m.files[name] = ino
	m.durable[name] = ino
}

func (m *MemFS) used() int64 {
	var n int64
	for _, ino := range m.files {
		n += int64(len(ino.data))
	}
	return n
}

type memFile struct {
	fs     *MemFS
	ino    *memInode
	name   string
	gen    int
	closed bool
}

func (f *memFile) check(op string) error {
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if f.gen != f.fs.gen {
		return &fs.PathError{Op: op, Path: f.name, Err: errors.New("handle from before a crash")}
	}
	return nil
}

func (f *memFile) Write(p []byte) (int, error) {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if m.crashed {
		return 0, ErrCrashed
	}
	if m.countdown > 0 && m.countdown == 1 && len(p) > 0 {
		// The crash lands in the middle of this write: part of it reaches
		// the page cache (and may reach the disk, or be torn, at Recover).
		cut := len(p) / 2
		f.ino.data = append(f.ino.data, p[:cut]...)
		m.tick()
		return cut, ErrCrashed
	}
	if err := m.tick(); err != nil {
		return 0, err
	}
	if m.capacity > 0 {
		if room := m.capacity - m.used(); room < int64(len(p)) {
			if room < 0 {
				room = 0
			}
			f.ino.data = append(f.ino.data, p[:room]...)
			return int(room), &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	}
	f.ino.data = append(f.ino.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	if err := m.tick(); err != nil {
		return err
	}
	if m.failSync != nil {
		return m.failSync
	}
	f.ino.synced = len(f.ino.data)
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// String describes the file system (for test failure messages).
func (m *MemFS) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	names := make([]string, 0, len(m.files))
	for n := range m.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ino := m.files[n]
		_, durable := m.durable[n]
		fmt.Fprintf(&b, "%s len=%d synced=%d durable-name=%v\n", n, len(ino.data), ino.synced, durable)
	}
	return b.String()
}
