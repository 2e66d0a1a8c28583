package disk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/raftcore"
)

// segmentBytes returns the content of every WAL segment (not temporary
// files), by path.
func segmentBytes(t *testing.T, fs *MemFS) map[string][]byte {
	t.Helper()
	dir := filepath.Join(dataDir, walDir)
	names, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if _, _, ok := parseSegName(n); ok {
			b, err := fs.ReadFile(filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Join(dir, n)] = b
		}
	}
	return out
}

// checkBuiltState checks that s holds what buildDir(t, 20, 0) wrote, plus
// the entries and hard state written after it.
func checkBuiltState(t *testing.T, when string, s *Storage, wantHS raftcore.HardState, extra []raftcore.Entry) {
	t.Helper()
	wantLast := uint64(20) + uint64(len(extra))
	last, _ := s.LastIndex()
	hs, _ := s.InitialState()
	if last != wantLast || hs != wantHS {
		t.Fatalf("%s: last index %d, hard state %+v; want last index %d, hard state %+v (what was reported durable)", when, last, hs, wantLast, wantHS)
	}
	ents, err := s.Entries(1, wantLast+1, 1<<30)
	if err != nil || uint64(len(ents)) != wantLast {
		t.Fatalf("%s: Entries(1, %d) = %d entries, %v", when, wantLast+1, len(ents), err)
	}
	for i, e := range ents[:20] {
		if want := fmt.Sprintf("value-%03d-%s", i+1, strings.Repeat("x", 40)); e.Index != uint64(i+1) || string(e.Data) != want {
			t.Fatalf("%s: entry %d = %d %q, want %q", when, i+1, e.Index, e.Data, want)
		}
	}
	for i, e := range extra {
		if got := ents[20+i]; got.Index != e.Index || got.Term != e.Term || !bytes.Equal(got.Data, e.Data) {
			t.Fatalf("%s: entry %d = %+v, want %+v", when, e.Index, got, e)
		}
	}
}

// checkSegmentsHaveHeaders checks the invariant of segment creation: no
// segment name exists without a durable header.
func checkSegmentsHaveHeaders(t *testing.T, when string, fs *MemFS) {
	t.Helper()
	for path, b := range segmentBytes(t, fs) {
		if typ, _, _, err := decodeRecord(b); err != nil || typ != recHeader {
			t.Fatalf("%s: %s (%d bytes) does not start with a segment header (%v)\nfiles:\n%s", when, path, len(b), err, fs)
		}
	}
}

// Issue 12, defect 4: a crash while the old code created a segment could
// leave its name with no durable header (an empty file, zero-filled
// preallocation, or a torn header). Recovery then wiped the segment before
// it, and records written to an empty one made the next start refuse the
// directory. Recovery drops such a last segment and touches nothing else:
// every entry and the hard state survive, over restarts with and without
// new writes.
func TestUnfinishedLastSegmentKeepsEarlierOnes(t *testing.T) {
	header := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: 99, FirstIndex: 21})
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"empty file", []byte{}},
		{"preallocated zeros", make([]byte, 300)},
		{"torn header", append(append([]byte(nil), header[:5]...), make([]byte, 295)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := buildDir(t, 20, 0) // entries 1..20, term 1, vote a, commit 18, synced
			// A new term and vote, synced, in the last segment: losing
			// it would let the node vote a second time in term 3.
			wantHS := raftcore.HardState{Term: 3, Vote: "c", Commit: 18}
			s := openOK(t, fs)
			if err := s.Save(wantHS, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segPaths(t, fs)
			last := segs[len(segs)-1]
			seq, _, _ := parseSegName(filepath.Base(last))
			// The rotation that was creating the next segment had cut the
			// preallocated zeros of this one (rotate), durably, first.
			b, _ := fs.ReadFile(last)
			if err := fs.Truncate(last, int64(recordsEnd(t, b))); err != nil {
				t.Fatal(err)
			}
			before := segmentBytes(t, fs)
			unfinished := filepath.Join(dataDir, walDir, segName(seq+1, 21))
			fs.WriteFile(unfinished, tc.content)

			s = openOK(t, fs)
			checkBuiltState(t, "first open", s, wantHS, nil)
			if rec := s.Recovered(); rec.DroppedSegment != unfinished {
				t.Fatalf("Recovered = %+v, want DroppedSegment %s", rec, unfinished)
			}
			after := segmentBytes(t, fs)
			for path, b := range before {
				if !bytes.Equal(after[path], b) {
					t.Fatalf("recovery changed %s, an earlier segment than the unfinished one (%d bytes before, %d after)", path, len(b), len(after[path]))
				}
			}
			checkSegmentsHaveHeaders(t, "after the first open", fs)

			// A clean restart with no new writes.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openOK(t, fs)
			checkBuiltState(t, "restart without writes", s, wantHS, nil)

			// New writes, then another restart: they land in a segment
			// with a header, so the directory is not refused.
			extra := []raftcore.Entry{{Term: 4, Index: 21, Data: []byte("after the restart")}}
			wantHS = raftcore.HardState{Term: 4, Vote: "b", Commit: 20}
			if err := s.Save(wantHS, extra); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dataDir, Options{FS: fs, SegmentSize: 300})
			if err != nil {
				t.Fatalf("restart after new writes: %v", err)
			}
			checkBuiltState(t, "restart after new writes", s, wantHS, extra)
			checkSegmentsHaveHeaders(t, "after new writes", fs)
		})
	}
}

// A crash at each file operation of a rotation (sync and cut the old segment,
// create, write and preallocate the new one under its temporary name, sync,
// rename, sync wal/), each with many crash outcomes: the name of a segment
// never exists without a header, the temporary file is left empty,
// zero-filled or partial, and recovery removes it and returns exactly what
// was durable, plus the new append if its Save returned (or a prefix of its
// records if it did not).
func TestCrashDuringSegmentCreation(t *testing.T) {
	const rngSeeds = 40
	counts := map[string]int{}
	for k := 1; k <= 12; k++ {
		for seed := uint64(1); seed <= rngSeeds; seed++ {
			replay := fmt.Sprintf("crash after %d operations, rng seed %d", k, seed)
			fs := NewMemFS()
			s, err := Open(dataDir, Options{FS: fs, SegmentSize: 300})
			if err != nil {
				t.Fatal(err)
			}
			var i uint64
			for !nextAppendRotates(s) {
				i++
				hs := raftcore.HardState{Term: 1, Vote: "a", Commit: i - 1}
				if err := s.Save(hs, []raftcore.Entry{{Term: 1, Index: i, Data: []byte(strings.Repeat("v", 40))}}); err != nil {
					t.Fatal(err)
				}
			}
			durable := capture(s)
			next := raftcore.Entry{Term: 2, Index: i + 1, Data: []byte("in the new segment")}
			nextHS := raftcore.HardState{Term: 2, Vote: "b", Commit: i}
			// The Save writes the entry, then the hard state: a crash may
			// keep the first record alone.
			m := durable.restore()
			m.Append([]raftcore.Entry{next})
			withEntry := capture(m)
			m.SetHardState(nextHS)
			withNext := capture(m)

			fs.CrashAfter(k)
			acked := s.Save(nextHS, []raftcore.Entry{next}) == nil
			fs.Recover(rand.New(rand.NewPCG(seed, uint64(k))))

			for path, b := range walFiles(t, fs) {
				switch {
				case strings.HasSuffix(path, tmpSuffix) && len(b) == 0:
					counts["temporary file empty"]++
				case strings.HasSuffix(path, tmpSuffix) && allZero(b):
					counts["temporary file zero-filled"]++
				case strings.HasSuffix(path, tmpSuffix):
					counts["temporary file partial"]++
				}
			}
			checkSegmentsHaveHeaders(t, replay, fs)
			if len(segmentBytes(t, fs)) == 2 {
				counts["new segment in place"]++
			}

			s, err = Open(dataDir, Options{FS: fs, SegmentSize: 300})
			if err != nil {
				t.Fatalf("%s: recovery failed: %v\nfiles:\n%s", replay, err, fs)
			}
			got := capture(s)
			switch {
			case got.equal(withNext):
				counts["new append survived"]++
			case acked:
				t.Fatalf("%s: Save returned, then recovery returned %v, want %v", replay, got, withNext)
			case !got.equal(durable) && !got.equal(withEntry):
				t.Fatalf("%s: recovered %v, want the durable state %v (or it with a prefix of the new append's records)", replay, got, durable)
			}
			for path := range walFiles(t, fs) {
				if strings.HasSuffix(path, tmpSuffix) {
					t.Fatalf("%s: recovery left the temporary file %s", replay, path)
				}
			}
			checkSegmentsHaveHeaders(t, replay+", after recovery", fs)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dataDir, Options{FS: fs, SegmentSize: 300})
			if err != nil {
				t.Fatalf("%s: second restart: %v", replay, err)
			}
			if again := capture(s); !again.equal(got) {
				t.Fatalf("%s: second restart returned %v, the first %v", replay, again, got)
			}
		}
	}
	t.Logf("%v", counts)
	for _, want := range []string{"temporary file empty", "temporary file zero-filled", "temporary file partial", "new segment in place", "new append survived"} {
		if counts[want] == 0 {
			t.Errorf("no crash reached %q: %v", want, counts)
		}
	}
}

// walFiles returns the content of every file in wal/, by path.
func walFiles(t *testing.T, fs *MemFS) map[string][]byte {
	t.Helper()
	dir := filepath.Join(dataDir, walDir)
	names, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := fs.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Join(dir, n)] = b
	}
	return out
}

// A temporary file left by an interrupted creation is removed, even a whole
// one (its rename never became durable), and nothing else changes.
func TestLeftoverTemporarySegmentIsRemoved(t *testing.T) {
	fs := buildDir(t, 20, 0)
	segs := segPaths(t, fs)
	seq, _, _ := parseSegName(filepath.Base(segs[len(segs)-1]))
	before := segmentBytes(t, fs)
	tmp := filepath.Join(dataDir, walDir, segName(seq+1, 21)+tmpSuffix)
	whole := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: seq + 1, FirstIndex: 21})
	fs.WriteFile(tmp, append(whole, make([]byte, 300-len(whole))...))
	s := openOK(t, fs)
	checkBuiltState(t, "open", s, raftcore.HardState{Term: 1, Vote: "a", Commit: 18}, nil)
	if ok, _ := fs.Exists(tmp); ok {
		t.Fatalf("recovery left %s", tmp)
	}
	if rec := s.Recovered(); rec.DroppedSegment != "" {
		t.Fatalf("Recovered = %+v, want no dropped segment", rec)
	}
	after := segmentBytes(t, fs)
	if len(after) != len(before) {
		t.Fatalf("segments %d before, %d after", len(before), len(after))
	}
	for path, b := range before {
		if !bytes.Equal(after[path], b) {
			t.Fatalf("recovery changed %s", path)
		}
	}
}
