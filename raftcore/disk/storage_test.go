package disk

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/raftlab/raftlab/raftcore"
)

const dataDir = "/data"

// buildDir writes entries 1..n (commit n-2) through a Storage on a fresh
// MemFS with small segments, and closes it.
func buildDir(t *testing.T, n uint64, snapAt uint64) *MemFS {
	t.Helper()
	fs := NewMemFS()
	s, err := Open(dataDir, Options{FS: fs, SegmentSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= n; i++ {
		hs := raftcore.HardState{Term: 1, Vote: "a", Commit: i - min(i, 2)}
		if err := s.Save(hs, []raftcore.Entry{{Term: 1, Index: i, Data: fmt.Appendf(nil, "value-%03d-%s", i, strings.Repeat("x", 40))}}); err != nil {
			t.Fatal(err)
		}
		if i == snapAt {
			if _, err := s.CreateSnapshot(i-2, cfg3, []byte("app-state")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// recordOffsets returns the offset of every record in a segment.
func recordOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(b) && !allZero(b[off:]); {
		_, _, n, err := decodeRecord(b[off:])
		if err != nil {
			t.Fatalf("record at %d: %v", off, err)
		}
		offs = append(offs, off)
		off += n
	}
	return offs
}

func segPaths(t *testing.T, fs *MemFS) []string {
	t.Helper()
	names, err := fs.ReadDir(filepath.Join(dataDir, walDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(dataDir, walDir, n))
	}
	if len(out) < 3 {
		t.Fatalf("want at least 3 segments, got %v", out)
	}
	return out
}

func openErr(t *testing.T, fs *MemFS, kind error, want string) {
	t.Helper()
	_, err := Open(dataDir, Options{FS: fs, SegmentSize: 300})
	if err == nil {
		t.Fatalf("Open succeeded, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %v is not %v", err, kind)
	}
	if err.Error() != want {
		t.Fatalf("error\n got: %s\nwant: %s", err, want)
	}
}

func openOK(t *testing.T, fs *MemFS) *Storage {
	t.Helper()
	s, err := Open(dataDir, Options{FS: fs, SegmentSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const fixText = "the node cannot tell which entries were committed; restore the data directory from a backup, or remove it and add the node back to the cluster as a new member (it then catches up from the leader)"

// recordsEnd is where the records of a segment end (the zeros after are
// preallocated space).
func recordsEnd(t *testing.T, b []byte) int {
	offs := recordOffsets(t, b)
	_, _, n, _ := decodeRecord(b[offs[len(offs)-1]:])
	return offs[len(offs)-1] + n
}

func TestTornTailPartialRecordIsTruncated(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	last := segs[len(segs)-1]
	b, _ := fs.ReadFile(last)
	offs := recordOffsets(t, b)
	// A crash during the last write: the entry before the final hard state
	// reached the disk only up to its 5th byte, the rest of the write not
	// at all (the preallocated zeros are still there).
	entryOff := offs[len(offs)-2]
	for i := entryOff + 5; i < len(b); i++ {
		b[i] = 0
	}
	fs.WriteFile(last, b)
	s := openOK(t, fs)
	rec := s.Recovered()
	if rec.TornFile != last || rec.TornOffset != int64(entryOff) || rec.TornBytes != 5 {
		t.Fatalf("Recovered = %+v, want torn tail %s at %d (5 bytes)", rec, last, entryOff)
	}
	if l, _ := s.LastIndex(); l != 19 {
		t.Fatalf("LastIndex = %d, want 19 (entry 20 was torn)", l)
	}
	after, _ := fs.ReadFile(last)
	if !allZero(after[entryOff:]) {
		t.Fatalf("the torn bytes at %d were not cut", entryOff)
	}
	// The storage goes on appending after the cut, and that survives.
	if err := s.Save(raftcore.HardState{Term: 2, Commit: 18}, []raftcore.Entry{{Term: 2, Index: 20, Data: []byte("again")}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openOK(t, fs)
	if l, _ := s.LastIndex(); l != 20 || s.Recovered().TornFile != "" {
		t.Fatalf("after the second open LastIndex = %d, torn %q; want 20 and no torn tail", l, s.Recovered().TornFile)
	}
}

func TestTornTailBadCRCInLastRecordIsTruncated(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	last := segs[len(segs)-1]
	b, _ := fs.ReadFile(last)
	offs := recordOffsets(t, b)
	lastOff := offs[len(offs)-1]
	if err := fs.Corrupt(last, int64(recordsEnd(t, b)-1)); err != nil { // the last byte of the last record
		t.Fatal(err)
	}
	s := openOK(t, fs)
	if rec := s.Recovered(); rec.TornFile != last || rec.TornOffset != int64(lastOff) {
		t.Fatalf("Recovered = %+v, want the torn tail at %s:%d", rec, last, lastOff)
	}
	if l, _ := s.LastIndex(); l != 20 {
		t.Fatalf("LastIndex = %d, want 20 (only the final hard state was lost)", l)
	}
}

func TestCorruptionBeforeTheTailRefusesToStart(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	last := segs[len(segs)-1]
	b, _ := fs.ReadFile(last)
	offs := recordOffsets(t, b)
	bad := offs[2] // an entry with intact records after it
	if err := fs.Corrupt(last, int64(bad+recordHeaderSize+3)); err != nil {
		t.Fatal(err)
	}
	openErr(t, fs, ErrCorrupt, fmt.Sprintf("raftcore/disk: WAL corrupt: %s at offset %d: damaged record (record CRC mismatch), intact records follow it; %s", last, bad, fixText))
	// Nothing was changed: the file is as it was.
	if fs.Size(last) != int64(len(b)) {
		t.Fatalf("a refused open changed %s", last)
	}
}

func TestCorruptionInEarlierSegmentRefusesToStart(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	first := segs[0]
	b, _ := fs.ReadFile(first)
	offs := recordOffsets(t, b)
	// Even the last record of a segment that is not the last is not a torn
	// tail: the segment was synced before the next one was created.
	lastOff := offs[len(offs)-1]
	if err := fs.Corrupt(first, int64(recordsEnd(t, b)-1)); err != nil {
		t.Fatal(err)
	}
	openErr(t, fs, ErrCorrupt, fmt.Sprintf("raftcore/disk: WAL corrupt: %s at offset %d: damaged record (record CRC mismatch), in a segment that is not the last one; %s", first, lastOff, fixText))
}

func TestMissingSegmentRefusesToStart(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	if err := fs.Remove(segs[1]); err != nil {
		t.Fatal(err)
	}
	openErr(t, fs, ErrMissingSegment, fmt.Sprintf("raftcore/disk: WAL segment missing: %s: segment 3 comes after %s: segments 2-2 are missing; put the missing segments back from a backup, or remove the data directory and add the node back to the cluster as a new member",
		segs[2], filepath.Base(segs[0])))
}

func TestMissingFirstSegmentRefusesToStart(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	if err := fs.Remove(segs[0]); err != nil {
		t.Fatal(err)
	}
	_, first, _ := parseSegName(filepath.Base(segs[1]))
	openErr(t, fs, ErrMissingSegment, fmt.Sprintf("raftcore/disk: WAL segment missing: %s: the log starts at entry %d but the snapshot ends at 0: entries 1-%d are in no segment (a segment was removed); %s",
		segs[1], first, first-1, fixText))
}

func TestSnapshotCRCMismatchRefusesToStart(t *testing.T) {
	fs := buildDir(t, 20, 12)
	snapPath := filepath.Join(dataDir, snapDir, snapName(1, 10))
	size := fs.Size(snapPath)
	if size < 0 {
		t.Fatalf("no snapshot file %s among %v", snapPath, fs.Files())
	}
	if err := fs.Corrupt(snapPath, size-6); err != nil { // a byte of the data
		t.Fatal(err)
	}
	b, _ := fs.ReadFile(snapPath)
	_, _, _, what := decodeSnapshot(b)
	openErr(t, fs, ErrSnapshotCorrupt, fmt.Sprintf("raftcore/disk: snapshot corrupt: %s at offset %d: %s; the WAL before this snapshot may already be gone; restore the data directory from a backup, or remove it and add the node back to the cluster as a new member",
		snapPath, size-4, what))
	if !strings.HasPrefix(what, "CRC-32C mismatch") {
		t.Fatalf("what = %q", what)
	}
}

func TestSnapshotNamedByWALButMissingRefusesToStart(t *testing.T) {
	fs := buildDir(t, 20, 12)
	snapPath := filepath.Join(dataDir, snapDir, snapName(1, 10))
	if err := fs.Remove(snapPath); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dataDir, Options{FS: fs, SegmentSize: 300})
	if !errors.Is(err, ErrSnapshotCorrupt) {
		t.Fatalf("Open: %v, want ErrSnapshotCorrupt", err)
	}
	var re *RecoveryError
	if !errors.As(err, &re) || re.File != snapPath || !strings.Contains(re.What, "records this snapshot, but the file is missing") {
		t.Fatalf("Open: %#v", err)
	}
}

func TestSnapshotDropsSegmentsAndSurvivesReopen(t *testing.T) {
	fs := buildDir(t, 20, 12)
	s := openOK(t, fs)
	if f, _ := s.FirstIndex(); f != 11 {
		t.Fatalf("FirstIndex = %d, want 11 (snapshot at 10)", f)
	}
	segs := s.Segments()
	_, first, _ := parseSegName(segs[0])
	if first > 11 {
		t.Fatalf("segments %v: entries after the snapshot were dropped", segs)
	}
	if _, f2, _ := parseSegName(segs[1]); f2 <= 11 {
		t.Fatalf("segments %v: a segment covered by the snapshot was kept", segs)
	}
	ents, err := s.Entries(11, 21, 1<<20)
	if err != nil || len(ents) != 10 {
		t.Fatalf("Entries(11, 21) = %d entries, %v", len(ents), err)
	}
}

func TestVersionMismatchRefusesToStart(t *testing.T) {
	fs := buildDir(t, 3, 0)
	fs.WriteFile(filepath.Join(dataDir, versionFile), []byte("raftlab data directory, format 7\n"))
	openErr(t, fs, ErrVersion, "raftcore/disk: data directory format version mismatch: /data/VERSION: the directory is in format 7, this build reads format 1; run a raftlab build that reads that format, or remove the directory and add the node back as a new member")
}

func TestSegmentOfAnotherVersionRefusesToStart(t *testing.T) {
	fs := NewMemFS()
	seg := filepath.Join(dataDir, walDir, segName(1, 1))
	fs.WriteFile(filepath.Join(dataDir, versionFile), fmt.Appendf(nil, versionText, FormatVersion))
	fs.WriteFile(seg, appendHeader(nil, segmentHeader{Version: 2, Seq: 1, FirstIndex: 1}))
	fs.MkdirAll(filepath.Join(dataDir, snapDir))
	openErr(t, fs, ErrVersion, fmt.Sprintf("raftcore/disk: data directory format version mismatch: %s at offset 0: segment in format 2, this build reads format 1; %s", seg, fixText))
}

func TestFilesWithoutVersionAreNotADataDir(t *testing.T) {
	fs := buildDir(t, 3, 0)
	if err := fs.Remove(filepath.Join(dataDir, versionFile)); err != nil {
		t.Fatal(err)
	}
	openErr(t, fs, ErrNotDataDir, `raftcore/disk: not a raftlab data directory: /data/VERSION: wal/ holds 1 files but the VERSION file is missing; restore the VERSION file from a backup of this node (it reads "raftlab data directory, format 1" in this format) or use another directory`)
}

func TestCommitPastTheLogRefusesToStart(t *testing.T) {
	fs := NewMemFS()
	seg := filepath.Join(dataDir, walDir, segName(1, 1))
	fs.WriteFile(filepath.Join(dataDir, versionFile), fmt.Appendf(nil, versionText, FormatVersion))
	fs.MkdirAll(filepath.Join(dataDir, snapDir))
	b := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: 1, FirstIndex: 1})
	b = appendEntry(b, &raftcore.Entry{Term: 1, Index: 1})
	b = appendHardState(b, raftcore.HardState{Term: 1, Commit: 3})
	fs.WriteFile(seg, b)
	openErr(t, fs, ErrMissingSegment, fmt.Sprintf("raftcore/disk: WAL segment missing: %s: the hard state says entry 3 is committed but the log ends at 1: committed entries are missing; %s", seg, fixText))
}

func TestEntryGapRefusesToStart(t *testing.T) {
	fs := NewMemFS()
	seg := filepath.Join(dataDir, walDir, segName(1, 1))
	fs.WriteFile(filepath.Join(dataDir, versionFile), fmt.Appendf(nil, versionText, FormatVersion))
	fs.MkdirAll(filepath.Join(dataDir, snapDir))
	b := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: 1, FirstIndex: 1})
	b = appendEntry(b, &raftcore.Entry{Term: 1, Index: 1})
	off := len(b)
	b = appendEntry(b, &raftcore.Entry{Term: 1, Index: 3})
	fs.WriteFile(seg, b)
	openErr(t, fs, ErrCorrupt, fmt.Sprintf("raftcore/disk: WAL corrupt: %s at offset %d: entry 3 follows entry 1: entries are missing; %s", seg, off, fixText))
}

// A full disk: the write that does not fit fails, the storage stops
// acknowledging, and everything acknowledged before survives a restart.
func TestDiskFullStopsAcknowledging(t *testing.T) {
	fs := NewMemFS()
	s, err := Open(dataDir, Options{FS: fs, SegmentSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	acked := uint64(0)
	fs.SetCapacity(fs.used() + 2000)
	var werr error
	for i := uint64(1); i <= 100; i++ {
		werr = s.Save(raftcore.HardState{Term: 1, Commit: acked}, []raftcore.Entry{{Term: 1, Index: i, Data: make([]byte, 100)}})
		if werr != nil {
			break
		}
		acked = i
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("write past the capacity: %v, want ENOSPC", werr)
	}
	var we *WriteError
	if !errors.As(werr, &we) || (we.Op != "write" && we.Op != "preallocate") {
		t.Fatalf("error %v is not a WriteError of a write", werr)
	}
	// Sticky: nothing more is acknowledged, even once space is back.
	fs.SetCapacity(0)
	if err := s.Save(raftcore.HardState{}, []raftcore.Entry{{Term: 1, Index: acked + 2}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Save after the failure: %v, want the sticky ENOSPC", err)
	}
	if _, err := s.CreateSnapshot(1, cfg3, nil); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("CreateSnapshot after the failure: %v, want the sticky ENOSPC", err)
	}
	s2 := openOK(t, fs)
	if l, _ := s2.LastIndex(); l < acked {
		t.Fatalf("after restart LastIndex = %d, want at least %d (every acknowledged entry)", l, acked)
	}
}

func TestFsyncErrorStopsAcknowledging(t *testing.T) {
	fs := NewMemFS()
	s, err := Open(dataDir, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(raftcore.HardState{Term: 1}, []raftcore.Entry{{Term: 1, Index: 1}}); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	fs.FailSync(eio)
	if err := s.Save(raftcore.HardState{}, []raftcore.Entry{{Term: 1, Index: 2}}); !errors.Is(err, eio) {
		t.Fatalf("Save with a failing fsync: %v", err)
	}
	if d := s.DurableIndex(); d != 1 {
		t.Fatalf("DurableIndex = %d after a failed fsync, want 1", d)
	}
	fs.FailSync(nil)
	// After a failed fsync the page cache cannot be trusted (a retry may
	// report success for lost data): only a restart goes on.
	if err := s.Save(raftcore.HardState{}, []raftcore.Entry{{Term: 1, Index: 2}}); !errors.Is(err, eio) {
		t.Fatalf("Save after a failed fsync: %v, want the sticky error", err)
	}
}

// Concurrent writers sharing fsyncs (run under -race by `make test`): every
// entry whose Sync returned is durable, in log order, after a reopen.
func TestConcurrentWritersGroupCommit(t *testing.T) {
	fs := NewMemFS()
	s, err := Open(dataDir, Options{FS: fs, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 50
	var order sync.Mutex
	next := uint64(1)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				order.Lock()
				idx := next
				next++
				tk, err := s.Append(raftcore.HardState{}, []raftcore.Entry{{Term: 1, Index: idx, Data: fmt.Appendf(nil, "%d", idx)}})
				order.Unlock()
				if err == nil {
					err = s.Sync(tk)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if d := s.DurableIndex(); d < idx {
					t.Errorf("Sync of entry %d returned with DurableIndex %d", idx, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.Crash(rand.New(rand.NewPCG(1, 2)))
	s2 := openOK(t, fs)
	got, err := s2.Entries(1, writers*each+1, 1<<30)
	if err != nil || len(got) != writers*each {
		t.Fatalf("after reopen: %d entries, %v", len(got), err)
	}
	for i, e := range got {
		if string(e.Data) != fmt.Sprint(i+1) {
			t.Fatalf("entry %d holds %q", e.Index, e.Data)
		}
	}
	if len(s2.Segments()) < 2 {
		t.Fatalf("segments %v: the test meant to cross rotations", s2.Segments())
	}
}
