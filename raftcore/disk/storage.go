package disk

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// FormatVersion is the version of the data directory layout and of the WAL
// and snapshot formats that this build writes and reads.
const FormatVersion = 1

const (
	versionFile = "VERSION"
	walDir      = "wal"
	snapDir     = "snapshots"
	versionText = "raftlab data directory, format %d\n"
	// DefaultSegmentSize is the size of a WAL segment: each is zero-filled
	// to this size when created, and the WAL moves on to a new one once its
	// records fill it.
	DefaultSegmentSize = 16 << 20
	// tmpSuffix marks a file being written under a temporary name (a segment
	// or a snapshot before its rename into place). Recovery removes them.
	tmpSuffix = ".tmp"
)

// Options configure Open.
type Options struct {
	// FS is the file system; nil means the operating system's (OSFS).
	FS FS
	// SegmentSize is the size after which the WAL moves on to a new
	// segment; 0 means DefaultSegmentSize.
	SegmentSize int64
}

// Ticket names an Append; Sync(t) waits until it is durable.
type Ticket uint64

// Storage is raftcore's durable storage: a WAL and snapshot files in one data
// directory, with the log also held in memory (a raftcore.MemoryStorage) so
// that reads never touch the disk. It implements raftcore.Storage.
//
// Writers call Append (cheap: it encodes into a buffer) and then Sync, which
// makes every append made so far durable with one write and one fsync: the
// appends of all writers waiting at that moment share it (group commit). Save
// is Append then Sync. Nothing is reported durable (Sync returning, or
// DurableIndex) before the fsync that covers it has returned.
//
// Safe for concurrent use.
type Storage struct {
	fs      FS
	dir     string
	segSize int64
	mem     *raftcore.MemoryStorage

	// mu guards everything below it and the in-memory log's writes. The
	// snapshot calls hold it throughout; Sync releases it for the fsync.
	mu        sync.Mutex
	syncing   bool          // an fsync runs outside mu
	syncDone  sync.Cond     // signalled (with mu) when it ends
	segs      []segmentInfo // live segments in sequence order; the last is open
	cur       File
	curSize   int64  // bytes of records in the current segment, counting pending
	curOff    int64  // bytes of records written to the current segment's file
	pending   []byte // encoded records not yet written to the file
	retired   []File // rotated-out segments, synced; closed after the running fsync
	written   uint64 // number of appends so far (the last Ticket)
	lastIndex uint64 // the log's last index after the last append
	hs        raftcore.HardState
	err       error // sticky: a failed write or sync
	closed    bool

	synced  atomic.Uint64 // highest Ticket known durable (written under mu)
	durable atomic.Uint64 // log's last index as of synced (written under mu)
	fsyncs  atomic.Uint64
	// fsyncNanos is the time spent in the fsyncs of Sync (not the lock
	// waits around them), for the fsync latency metric.
	fsyncNanos atomic.Int64
	recovered  Recovery
}

type segmentInfo struct {
	seq, first uint64
	name       string // base name
}

func segName(seq, first uint64) string { return fmt.Sprintf("%016x-%016x.wal", seq, first) }

func parseSegName(name string) (seq, first uint64, ok bool) {
	if len(name) != 37 || !strings.HasSuffix(name, ".wal") || name[16] != '-' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &seq, &first); err != nil {
		return 0, 0, false
	}
	return seq, first, true
}

// Recovery describes what Open found.
type Recovery struct {
	Segments      int    // WAL segments read
	Entries       int    // log entries after the snapshot
	SnapshotIndex uint64 // 0: none
	// TornFile and TornOffset locate a torn tail that was cut off (a partial
	// or damaged last record, left by a crash during a write); TornBytes is
	// how many bytes it had, up to the last non-zero one. Empty when the
	// WAL ended cleanly.
	TornFile   string
	TornOffset int64
	TornBytes  int64
	// DroppedSegment is the path of a last segment that had no intact
	// record, not even its header, and was removed: a crash came while it
	// was being created, by a build that created segments under their own
	// name (this one never leaves a segment name without a durable header).
	// Nothing in it was ever reported durable. Empty when there was none.
	DroppedSegment string
}

var _ raftcore.Storage = (*Storage)(nil)

// Open opens the data directory dir, creating it if it does not exist, and
// recovers its state: the newest snapshot, then every WAL record after it.
// A torn tail is truncated (see Recovered). Any other damage is a
// *RecoveryError and nothing is changed.
func Open(dir string, opts Options) (*Storage, error) {
	s := &Storage{fs: opts.FS, dir: dir, segSize: opts.SegmentSize}
	s.syncDone.L = &s.mu
	if s.fs == nil {
		s.fs = OSFS{}
	}
	if s.segSize <= 0 {
		s.segSize = DefaultSegmentSize
	}
	if err := s.initDir(); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Storage) walPath(name string) string { return filepath.Join(s.dir, walDir, name) }

// initDir checks the directory's format version, or lays out a new one. The
// VERSION file is written last, so a crash while creating leaves empty
// wal/ and snapshots/ folders that the next Open completes.
func (s *Storage) initDir() error {
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return fmt.Errorf("raftcore/disk: cannot create data directory %s: %w", s.dir, err)
	}
	vpath := filepath.Join(s.dir, versionFile)
	ok, err := s.fs.Exists(vpath)
	if err != nil {
		return err
	}
	if ok {
		b, err := s.fs.ReadFile(vpath)
		if err != nil {
			return err
		}
		var v int
		if _, err := fmt.Sscanf(string(b), versionText, &v); err != nil {
			return &RecoveryError{Kind: ErrNotDataDir, File: vpath, Offset: 0, What: fmt.Sprintf("unexpected content %q", firstLine(b)),
				Fix: "point the node at its own data directory, or at an empty one to start a new member"}
		}
		if v != FormatVersion {
			return &RecoveryError{Kind: ErrVersion, File: vpath, Offset: -1, What: fmt.Sprintf("the directory is in format %d, this build reads format %d", v, FormatVersion),
				Fix: "run a raftlab build that reads that format, or remove the directory and add the node back as a new member"}
		}
		return nil
	}
	for _, sub := range []string{walDir, snapDir} {
		p := filepath.Join(s.dir, sub)
		if names, err := s.fs.ReadDir(p); err == nil && len(names) > 0 {
			return &RecoveryError{Kind: ErrNotDataDir, File: vpath, Offset: -1, What: fmt.Sprintf("%s/ holds %d files but the VERSION file is missing", sub, len(names)),
				Fix: "restore the VERSION file from a backup of this node (it reads \"" + strings.TrimSpace(fmt.Sprintf(versionText, FormatVersion)) + "\" in this format) or use another directory"}
		}
	}
	for _, sub := range []string{walDir, snapDir} {
		if err := s.fs.MkdirAll(filepath.Join(s.dir, sub)); err != nil {
			return fmt.Errorf("raftcore/disk: cannot create %s: %w", filepath.Join(s.dir, sub), err)
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return &WriteError{Op: "sync directory", File: s.dir, Err: err}
	}
	if err := writeFileDurably(s.fs, vpath, fmt.Appendf(nil, versionText, FormatVersion)); err != nil {
		return &WriteError{Op: "write", File: vpath, Err: err}
	}
	return nil
}

func firstLine(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// Recovered reports what Open found.
func (s *Storage) Recovered() Recovery { return s.recovered }

// Dir returns the data directory.
func (s *Storage) Dir() string { return s.dir }

// --- raftcore.Storage: reads come from memory ---

// InitialState implements raftcore.Storage.
func (s *Storage) InitialState() (raftcore.HardState, error) { return s.mem.InitialState() }

// Entries implements raftcore.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]raftcore.Entry, error) {
	return s.mem.Entries(lo, hi, maxSize)
}

// Term implements raftcore.Storage.
func (s *Storage) Term(i uint64) (uint64, error) { return s.mem.Term(i) }

// LastIndex implements raftcore.Storage.
func (s *Storage) LastIndex() (uint64, error) { return s.mem.LastIndex() }

// FirstIndex implements raftcore.Storage.
func (s *Storage) FirstIndex() (uint64, error) { return s.mem.FirstIndex() }

// Snapshot implements raftcore.Storage.
func (s *Storage) Snapshot() (raftcore.Snapshot, error) { return s.mem.Snapshot() }

// --- writes ---

// usable returns why the storage cannot write, if it cannot. mu held.
func (s *Storage) usable() error {
	if s.closed {
		return ErrClosed
	}
	return s.err
}

// fail makes err sticky. mu held.
func (s *Storage) fail(op, file string, err error) error {
	if s.err == nil {
		s.err = &WriteError{Op: op, File: file, Err: err}
	}
	return s.err
}

// Err returns the sticky write error, if the storage has stopped.
func (s *Storage) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Append adds hs (unless empty or unchanged) and ents to the log, truncating
// any suffix that conflicts with ents[0] (a follower's log repaired by its
// leader). It does not wait for the disk: pass the Ticket to Sync before
// sending any message that depends on this state (Raft paper, Figure 2). The
// entries are readable at once.
//
// Entries the log already holds are skipped. It refuses, writing nothing,
// entries that leave a gap after the last index or that would replace an
// entry the hard state already says is committed.
func (s *Storage) Append(hs raftcore.HardState, ents []raftcore.Entry) (Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return 0, err
	}
	if len(ents) > 0 {
		first, _ := s.mem.FirstIndex()
		for len(ents) > 0 && ents[0].Index < first {
			ents = ents[1:] // already covered by the snapshot
		}
		// Entries the log already holds (same index and term, hence the
		// same entry by the Log Matching Property) are not written again.
		for len(ents) > 0 && ents[0].Index <= s.lastIndex {
			if t, err := s.mem.Term(ents[0].Index); err != nil || t != ents[0].Term {
				break
			}
			ents = ents[1:]
		}
	}
	if len(ents) > 0 {
		for i := 1; i < len(ents); i++ {
			if ents[i].Index != ents[i-1].Index+1 {
				return 0, fmt.Errorf("raftcore/disk: append: entry %d follows entry %d", ents[i].Index, ents[i-1].Index)
			}
		}
		at := ents[0].Index
		if at > s.lastIndex+1 {
			return 0, fmt.Errorf("raftcore/disk: append at index %d leaves a gap after the last index %d", at, s.lastIndex)
		}
		if at <= s.lastIndex && at <= s.hs.Commit {
			return 0, fmt.Errorf("raftcore/disk: append at index %d would truncate committed entries (commit index %d)", at, s.hs.Commit)
		}
	}
	if s.curSize >= s.segSize {
		if err := s.rotate(); err != nil {
			return 0, err
		}
	}
	before := len(s.pending)
	for i := range ents {
		s.pending = appendEntry(s.pending, &ents[i])
	}
	if !hs.IsEmpty() && hs != s.hs {
		s.pending = appendHardState(s.pending, hs)
		s.hs = hs
		s.mem.SetHardState(hs)
	}
	s.curSize += int64(len(s.pending) - before)
	if len(ents) > 0 {
		if err := s.mem.Append(ents); err != nil {
			return 0, s.fail("append", s.dir, err) // checked above; cannot happen
		}
		s.lastIndex = ents[len(ents)-1].Index
	}
	s.written++
	return Ticket(s.written), nil
}

// Sync returns once the append t and every append before it is durable.
// Group commit: one caller at a time runs an fsync, outside the lock, for
// everything appended until it started; the others wait, and when it ends
// they all wake at once, those it covered return, and one of the rest starts
// the next fsync for everything appended meanwhile.
func (s *Storage) Sync(t Ticket) error {
	if s.synced.Load() >= uint64(t) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	yielded := false
	for s.synced.Load() < uint64(t) {
		if err := s.usable(); err != nil {
			return err
		}
		if s.syncing {
			s.syncDone.Wait()
			continue
		}
		if !yielded {
			// Let the writers that the last fsync just released append
			// before this fsync starts, so that it covers them too:
			// otherwise the writers split into two groups that take turns,
			// each fsync covering half of them.
			yielded = true
			s.mu.Unlock()
			runtime.Gosched()
			s.mu.Lock()
			continue
		}
		if err := s.syncOnce(); err != nil {
			return err
		}
	}
	return nil
}

// syncOnce writes what is pending and fsyncs it, releasing mu during the
// fsync so that writers keep appending. mu held.
func (s *Storage) syncOnce() error {
	target, last := s.written, s.lastIndex
	if err := s.flush(); err != nil {
		return err
	}
	f, name := s.cur, s.segs[len(s.segs)-1].name
	s.syncing = true
	s.mu.Unlock()
	start := time.Now()
	err := f.Sync()
	s.fsyncNanos.Add(int64(time.Since(start)))
	s.mu.Lock()
	s.syncing = false
	s.syncDone.Broadcast()
	for _, r := range s.retired {
		r.Close() // synced when it was rotated out; closing loses nothing
	}
	s.retired = nil
	if err != nil {
		return s.fail("sync", s.walPath(name), err)
	}
	s.fsyncs.Add(1)
	s.markSynced(target, last)
	return nil
}

// Save appends hs and ents and waits until they are durable.
func (s *Storage) Save(hs raftcore.HardState, ents []raftcore.Entry) error {
	t, err := s.Append(hs, ents)
	if err != nil {
		return err
	}
	return s.Sync(t)
}

// DurableIndex returns the log's last index as of the last fsync: every
// entry up to it (as the log stood then) survives a crash.
func (s *Storage) DurableIndex() uint64 { return s.durable.Load() }

// Fsyncs counts the WAL fsyncs done so far (for benchmarks and metrics).
func (s *Storage) Fsyncs() uint64 { return s.fsyncs.Load() }

// FsyncTime is the total time Sync spent in fsync calls.
func (s *Storage) FsyncTime() time.Duration { return time.Duration(s.fsyncNanos.Load()) }

// markSynced records that appends up to t are durable. mu held.
func (s *Storage) markSynced(t, last uint64) {
	if t > s.synced.Load() {
		s.synced.Store(t)
		s.durable.Store(last)
	}
}

// flush hands the pending records to the operating system. mu held.
func (s *Storage) flush() error {
	if len(s.pending) == 0 {
		return nil
	}
	n, err := s.cur.WriteAt(s.pending, s.curOff)
	s.curOff += int64(n)
	if err != nil {
		// A partial write is a torn tail at the end of the last segment,
		// which recovery truncates; writing more after it would bury it.
		return s.fail("write", s.walPath(s.segs[len(s.segs)-1].name), err)
	}
	s.pending = s.pending[:0]
	return nil
}

// rotate syncs and retires the current segment and starts the next, which
// begins with a header and the current hard state, so that replay can start
// from any segment once the ones before it are dropped. mu held.
func (s *Storage) rotate() error {
	if err := s.flush(); err != nil {
		return err
	}
	old := s.segs[len(s.segs)-1]
	// The old segment must be whole on disk before the next one exists:
	// recovery treats damage in any segment but the last as corruption.
	if err := s.cur.Sync(); err != nil {
		return s.fail("sync", s.walPath(old.name), err)
	}
	// Cut the preallocated zeros: only the last segment may end in them.
	if err := s.fs.Truncate(s.walPath(old.name), s.curOff); err != nil {
		return s.fail("truncate", s.walPath(old.name), err)
	}
	s.markSynced(s.written, s.lastIndex)
	s.retired = append(s.retired, s.cur)
	s.cur = nil
	return s.startSegment(old.seq+1, s.lastIndex+1)
}

// startSegment creates segment seq, whose first entry will be first, and
// makes it the current one. mu held.
//
// Invariant: a segment name never exists without a durable header. A crash
// between creating a file and syncing it can leave the file empty, or as long
// as what was written but all zeros (a file system may make the size durable
// before the data); under the segment's own name, recovery could not tell
// that from a segment whose records were lost. So the segment is written
// under a temporary name (header, hard state, preallocated zeros), synced,
// renamed into place, and wal/ synced, before anything is appended to it. A
// crash before the rename leaves a temporary file, which recovery removes; a
// crash after it leaves a whole header under the name, or no name at all if
// the rename was not yet durable.
func (s *Storage) startSegment(seq, first uint64) error {
	name := segName(seq, first)
	path := s.walPath(name)
	tmp := path + tmpSuffix
	f, err := s.fs.Create(tmp)
	if err != nil {
		return s.fail("create segment", tmp, err)
	}
	buf := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: seq, FirstIndex: first})
	if !s.hs.IsEmpty() {
		buf = appendHardState(buf, s.hs)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		f.Close()
		return s.fail("write", tmp, err)
	}
	if err := preallocate(f, int64(len(buf)), s.segSize); err != nil {
		f.Close()
		return s.fail("preallocate", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return s.fail("sync", tmp, err)
	}
	// Closed before the rename, which some systems refuse for an open file.
	if err := f.Close(); err != nil {
		return s.fail("close", tmp, err)
	}
	if err := s.fs.Rename(tmp, path); err != nil {
		return s.fail("rename", path, err)
	}
	if err := s.fs.SyncDir(filepath.Join(s.dir, walDir)); err != nil {
		return s.fail("sync directory", filepath.Join(s.dir, walDir), err)
	}
	if f, err = s.fs.OpenFile(path); err != nil {
		return s.fail("open", path, err)
	}
	s.segs = append(s.segs, segmentInfo{seq: seq, first: first, name: name})
	s.cur = f
	s.curSize, s.curOff = int64(len(buf)), int64(len(buf))
	return nil
}

// preallocate fills [from, to) of f with zeros. Writing the blocks once,
// when a segment is created, is what makes later fsyncs cheap: they then
// overwrite allocated blocks of a file whose size does not change, instead
// of allocating blocks and journaling the new size on every commit (the
// reason PostgreSQL zero-fills its WAL segments and etcd preallocates).
func preallocate(f File, from, to int64) error {
	if to <= from {
		return nil
	}
	zeros := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// Bootstrap writes the founding configuration of a new cluster, as
// raftcore.Bootstrap does for a MemoryStorage, and makes it durable.
func (s *Storage) Bootstrap(c raftcore.Config) error {
	tmp := raftcore.NewMemoryStorage()
	if err := raftcore.Bootstrap(tmp, c); err != nil {
		return err
	}
	s.mu.Lock()
	empty := s.lastIndex == 0 && s.hs.IsEmpty()
	s.mu.Unlock()
	if !empty {
		return fmt.Errorf("raftcore/disk: bootstrap of %s, which already holds a log", s.dir)
	}
	hs, _ := tmp.InitialState()
	ents, _ := tmp.Entries(1, 2, 1<<20)
	return s.Save(hs, ents)
}

// --- snapshots ---

// CreateSnapshot records a durable snapshot of the application state at
// index i (applied, so committed), taken in configuration cfg. Once the
// snapshot file and the WAL's note of it are synced, older snapshot files and
// the WAL segments that only hold entries up to i are removed. It does not
// compact the in-memory log; Compact does.
func (s *Storage) CreateSnapshot(i uint64, cfg raftcore.Config, data []byte) (raftcore.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waitSyncing()
	if err := s.usable(); err != nil {
		return raftcore.Snapshot{}, err
	}
	cur, _ := s.mem.Snapshot()
	if i <= cur.Meta.Index {
		return raftcore.Snapshot{}, raftcore.ErrSnapOutOfDate
	}
	term, err := s.mem.Term(i)
	if err != nil {
		return raftcore.Snapshot{}, fmt.Errorf("raftcore/disk: snapshot at %d: %w", i, err)
	}
	snap := raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: i, Term: term, Config: cfg.Clone()}, Data: data}
	if err := s.persistSnapshot(snap, false); err != nil {
		return raftcore.Snapshot{}, err
	}
	if _, err := s.mem.CreateSnapshot(i, cfg, data); err != nil {
		return raftcore.Snapshot{}, s.fail("snapshot", s.dir, err) // checked above
	}
	return snap, s.dropBefore(i)
}

// ApplySnapshot makes a snapshot received from the leader (Ready.Snapshot)
// durable and replaces the log with it.
func (s *Storage) ApplySnapshot(snap raftcore.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waitSyncing()
	if err := s.usable(); err != nil {
		return err
	}
	cur, _ := s.mem.Snapshot()
	if snap.Meta.Index <= cur.Meta.Index {
		return raftcore.ErrSnapOutOfDate
	}
	if err := s.persistSnapshot(snap, true); err != nil {
		return err
	}
	if err := s.mem.ApplySnapshot(snap); err != nil {
		return s.fail("snapshot", s.dir, err) // checked above
	}
	return s.dropBefore(snap.Meta.Index)
}

// Compact drops in-memory entries before i (see raftcore.MemoryStorage);
// the WAL is trimmed by the snapshot calls.
func (s *Storage) Compact(i uint64) error { return s.mem.Compact(i) }

// waitSyncing waits until no fsync runs outside mu, so that the caller can
// use and retire the current segment alone. mu held.
func (s *Storage) waitSyncing() {
	for s.syncing {
		s.syncDone.Wait()
	}
}

// persistSnapshot writes the snapshot file durably (temporary name, sync,
// rename, directory sync), then notes it in the WAL and syncs that, then
// removes older snapshot files. mu held, no fsync running.
func (s *Storage) persistSnapshot(snap raftcore.Snapshot, replaces bool) error {
	// First make every earlier append durable, so that the snapshot never
	// overtakes the log: recovery returns the WAL up to some record, then
	// at most one snapshot more.
	if err := s.syncCurrent(); err != nil {
		return err
	}
	name := snapName(snap.Meta.Term, snap.Meta.Index)
	path := s.snapPath(name)
	if err := writeFileDurably(s.fs, path, encodeSnapshot(snap, replaces)); err != nil {
		return s.fail("write snapshot", path, err)
	}
	before := len(s.pending)
	s.pending = appendMarker(s.pending, snapshotMarker{Index: snap.Meta.Index, Term: snap.Meta.Term, Replaces: replaces})
	s.curSize += int64(len(s.pending) - before)
	s.written++
	if replaces {
		s.lastIndex = snap.Meta.Index
	}
	if err := s.syncCurrent(); err != nil {
		return err
	}
	return s.pruneSnapshots(snap.Meta.Index)
}

// syncCurrent writes what is pending and fsyncs the current segment. mu
// held.
func (s *Storage) syncCurrent() error {
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.cur.Sync(); err != nil {
		return s.fail("sync", s.walPath(s.segs[len(s.segs)-1].name), err)
	}
	s.fsyncs.Add(1)
	s.markSynced(s.written, s.lastIndex)
	return nil
}

// pruneSnapshots removes snapshot files older than index and leftover
// temporary files. mu held.
func (s *Storage) pruneSnapshots(index uint64) error {
	dir := filepath.Join(s.dir, snapDir)
	names, err := s.fs.ReadDir(dir)
	if err != nil {
		return s.fail("list", dir, err)
	}
	removed := false
	for _, n := range names {
		_, idx, ok := parseSnapName(n)
		if (ok && idx < index) || strings.HasSuffix(n, ".snap"+tmpSuffix) {
			if err := s.fs.Remove(filepath.Join(dir, n)); err != nil {
				return s.fail("remove", filepath.Join(dir, n), err)
			}
			removed = true
		}
	}
	if removed {
		if err := s.fs.SyncDir(dir); err != nil {
			return s.fail("sync directory", dir, err)
		}
	}
	return nil
}

// dropBefore removes the oldest segments whose entries are all covered by a
// durable snapshot at index: segment k goes when segment k+1 starts at or
// before index+1 (every entry written in k is below k+1's first index). The
// current segment always stays. Oldest first, so a crash in between leaves
// a contiguous run of segments. mu held.
func (s *Storage) dropBefore(index uint64) error {
	n := 0
	for n+1 < len(s.segs) && s.segs[n+1].first <= index+1 {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, seg := range s.segs[:n] {
		if err := s.fs.Remove(s.walPath(seg.name)); err != nil {
			return s.fail("remove", s.walPath(seg.name), err)
		}
	}
	s.segs = append(s.segs[:0], s.segs[n:]...)
	if err := s.fs.SyncDir(filepath.Join(s.dir, walDir)); err != nil {
		return s.fail("sync directory", filepath.Join(s.dir, walDir), err)
	}
	return nil
}

// Close makes everything appended durable and closes the files.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waitSyncing()
	if s.closed {
		return ErrClosed
	}
	var err error
	if s.err == nil {
		err = s.syncCurrent()
	}
	for _, f := range append(s.retired, s.cur) {
		if f != nil {
			f.Close()
		}
	}
	s.retired, s.cur, s.closed = nil, nil, true
	return err
}

// Segments lists the WAL segment file names, oldest first (for tests and
// operators).
func (s *Storage) Segments() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.segs))
	for i, seg := range s.segs {
		out[i] = seg.name
	}
	return out
}

// sortSegs orders segments by sequence number.
func sortSegs(segs []segmentInfo) {
	sort.Slice(segs, func(i, j int) bool { return segs[i].seq < segs[j].seq })
}
