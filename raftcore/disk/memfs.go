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
// bytes written to it and what a Sync made durable; the namespace has the
// names a SyncDir made durable and, in the order they were made, the changes
// since (creations, renames, removals). Crash turns the state into what a
// disk would show after power loss:
//
//   - Names: the durable namespace plus a random prefix (none, some or all)
//     of the changes no SyncDir covered, as a journaling file system commits
//     metadata in order and may commit it before any fsync asks (another
//     file's fsync commits the journal). So a file created but not
//     dir-synced may vanish or stay; a rename not dir-synced may be undone
//     (the old name is back) or kept, never both or neither; a removal may be
//     undone.
//   - Data: each file keeps what a Sync made durable plus, at random, none of
//     its unsynced writes, all of them, a part of them in the order they were
//     made with the last one kept cut at a random byte (a torn write), or
//     only the new size: the file grew, but the bytes it grew by read as
//     zeros (the size reached the journal before the data reached its
//     blocks, as ext4 and XFS allow).
//
// So a crash between creating a file and syncing what was written to it can
// leave its name with no bytes, with zeros as long as what was written, or
// with a part of it: what Storage's segment creation must survive (see
// startSegment).
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
	// durable is the namespace as of the last SyncDir of each directory:
	// name -> inode. Applying pending to it in order gives files.
	durable map[string]*memInode
	// pending are the namespace changes no SyncDir has made durable yet, in
	// the order they were made. A crash keeps a prefix of them.
	pending []memNameOp
	gen     int // bumped by Crash/Recover; older handles stop working

	capacity  int64 // 0: unlimited
	countdown int   // >0: mutating calls left before a crash
	crashed   bool
	failSync  error
}

// memNameOp is one change to the namespace: each name is linked to an inode,
// or unlinked (nil). A rename is one op of two links, so that a crash keeps
// it whole or not at all.
type memNameOp []memLink

type memLink struct {
	name string
	ino  *memInode // nil: the name is removed
}

// in reports whether op changes a name in dir.
func (op memNameOp) in(dir string) bool {
	for _, l := range op {
		if filepath.Dir(l.name) == dir {
			return true
		}
	}
	return false
}

// applyTo makes the change in ns.
func (op memNameOp) applyTo(ns map[string]*memInode) {
	for _, l := range op {
		if l.ino == nil {
			delete(ns, l.name)
		} else {
			ns[l.name] = l.ino
		}
	}
}

type memInode struct {
	data []byte
	// undo holds, for every write since the last Sync, what it overwrote:
	// a crash keeps a prefix of those writes (the last one perhaps torn)
	// and undoes the rest.
	undo []memWrite
}

type memWrite struct {
	off    int
	old    []byte // the bytes the write replaced (within the old length)
	n      int    // bytes written
	oldLen int    // the file's length before the write
}

// crashKeep returns the inode's content after a crash that keeps the first
// keep bytes of its unsynced writes (in write order).
func (ino *memInode) crashKeep(keep int) []byte {
	data := append([]byte(nil), ino.data...)
	// Undo from the newest write back; a write is undone from byte cut on.
	total := 0
	cuts := make([]int, len(ino.undo))
	for i, w := range ino.undo {
		cuts[i] = min(w.n, max(0, keep-total))
		total += w.n
	}
	for i := len(ino.undo) - 1; i >= 0; i-- {
		w, cut := ino.undo[i], cuts[i]
		if cut == w.n {
			continue
		}
		// Restore the overwritten bytes from cut on, then the length.
		for j := cut; j < w.n; j++ {
			if j < len(w.old) {
				data[w.off+j] = w.old[j]
			}
		}
		if newLen := max(w.oldLen, w.off+cut); newLen < len(data) {
			data = data[:newLen]
		}
	}
	return data
}

// crashSizeOnly returns the inode's content after a crash that kept the size
// the file reached after the first keep bytes of its unsynced writes, but
// none of their data: what they overwrote reads as before, what they added
// as zeros.
func (ino *memInode) crashSizeOnly(keep int) []byte {
	data := ino.crashKeep(0)
	if n := len(ino.crashKeep(keep)); n > len(data) {
		data = append(data, make([]byte, n-len(data))...)
	}
	return data
}

func (ino *memInode) unsynced() int {
	n := 0
	for _, w := range ino.undo {
		n += w.n
	}
	return n
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
func (m *MemFS) Crash(rng *rand.Rand) { m.crash(rng) }

// CrashLosingUnsynced is the crash that keeps nothing the code did not
// sync: no name change since the last SyncDir of its directory, no byte
// written after the last Sync of its file. It is the worst case of Crash,
// chosen outright rather than drawn.
func (m *MemFS) CrashLosingUnsynced() { m.crash(nil) }

// crash is Crash; a nil rng loses every unsynced change.
func (m *MemFS) crash(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The names: what SyncDir made durable, then the changes since that
	// reached the disk anyway, a prefix of them in the order they were made.
	names := map[string]*memInode{}
	for name, ino := range m.durable {
		names[name] = ino
	}
	kept := 0
	if rng != nil {
		kept = rng.IntN(len(m.pending) + 1)
	}
	for _, op := range m.pending[:kept] {
		op.applyTo(names)
	}
	// The data of every file that kept a name. Visit the names in order so
	// that the rng, hence the outcome, depends on the seed alone.
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Strings(sorted)
	files := map[string]*memInode{}
	seen := map[*memInode]*memInode{}
	for _, name := range sorted {
		ino := names[name]
		if n, ok := seen[ino]; ok { // hard links cannot happen here, but keep identity
			files[name] = n
			continue
		}
		data := ino.data
		if tail := ino.unsynced(); tail > 0 && rng == nil {
			data = ino.crashKeep(0)
		} else if tail > 0 {
			switch rng.IntN(4) {
			case 0: // lost
				data = ino.crashKeep(0)
			case 1: // all reached the disk
				data = ino.crashKeep(tail)
			case 2: // torn at a random byte
				data = ino.crashKeep(rng.IntN(tail + 1))
			default: // the size reached the disk, the data did not
				data = ino.crashSizeOnly(tail)
			}
		}
		n := &memInode{data: append([]byte(nil), data...)}
		seen[ino] = n
		files[name] = n
	}
	m.files = files
	m.pending = nil
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
	m.link(memNameOp{{name, ino}})
	return &memFile{fs: m, ino: ino, name: name, gen: m.gen}, nil
}

// link changes the namespace now; the change is durable once a SyncDir of
// its directory returns. m.mu held.
func (m *MemFS) link(op memNameOp) {
	op.applyTo(m.files)
	m.pending = append(m.pending, op)
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string) (File, error) {
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
	if oldname != newname {
		m.link(memNameOp{{oldname, nil}, {newname, ino}})
	}
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
	m.link(memNameOp{{name, nil}})
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
	ino.undo = nil // durable, with the writes before it (OSFS syncs the file)
	return nil
}

// SyncDir implements FS: the names under dir become durable as they are now.
// A change that also touches another directory (a rename out of dir) becomes
// durable whole.
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
	rest := m.pending[:0]
	for _, op := range m.pending {
		if op.in(dir) {
			op.applyTo(m.durable)
		} else {
			rest = append(rest, op)
		}
	}
	clear(m.pending[len(rest):])
	m.pending = rest
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
	ino := &memInode{data: append([]byte(nil), data...)}
	m.files[name] = ino
	m.durable[name] = ino
	// Earlier changes to the name that are not durable yet are overtaken.
	for i, op := range m.pending {
		kept := op[:0:0]
		for _, l := range op {
			if l.name != name {
				kept = append(kept, l)
			}
		}
		m.pending[i] = kept
	}
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

// write applies p at off, recording what it replaced. m.mu held.
func (f *memFile) write(p []byte, off int) {
	ino := f.ino
	w := memWrite{off: off, n: len(p), oldLen: len(ino.data)}
	if off < len(ino.data) {
		w.old = append([]byte(nil), ino.data[off:min(len(ino.data), off+len(p))]...)
	}
	if end := off + len(p); end > len(ino.data) {
		ino.data = append(ino.data, make([]byte, end-len(ino.data))...)
	}
	copy(ino.data[off:], p)
	ino.undo = append(ino.undo, w)
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if m.crashed {
		return 0, ErrCrashed
	}
	if m.countdown == 1 && len(p) > 0 {
		// The crash lands in the middle of this write: part of it reaches
		// the page cache (and may reach the disk, or be torn, at Recover).
		cut := len(p) / 2
		f.write(p[:cut], int(off))
		m.tick()
		return cut, ErrCrashed
	}
	if err := m.tick(); err != nil {
		return 0, err
	}
	if m.capacity > 0 {
		grow := int64(off) + int64(len(p)) - int64(len(f.ino.data))
		if room := m.capacity - m.used(); grow > room {
			fit := max(0, int64(len(f.ino.data))+room-off)
			fit = min(fit, int64(len(p)))
			f.write(p[:fit], int(off))
			return int(fit), &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
	}
	f.write(p, int(off))
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
	f.ino.undo = nil
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
		fmt.Fprintf(&b, "%s len=%d unsynced=%d durable-name=%v\n", n, len(ino.data), ino.unsynced(), m.durable[n] == ino)
	}
	if len(m.pending) > 0 {
		fmt.Fprintf(&b, "(%d name changes not dir-synced)\n", len(m.pending))
	}
	return b.String()
}
