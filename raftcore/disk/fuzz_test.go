package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/raftlab/raftlab/raftcore"
)

// The seed corpora of both fuzz targets are committed under
// testdata/fuzz/<target>/ and run as ordinary tests by `go test`; run
// `go test ./raftcore/disk -run '^$' -fuzz FuzzRecover -fuzztime 60s` to
// search further. RAFTLAB_WRITE_CORPUS=1 go test ./raftcore/disk -run
// TestWriteFuzzCorpus rewrites the seeds.

// FuzzDecodeRecord: the record decoder never panics, never accepts a record
// longer than the input, and what it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n != recordHeaderSize+len(payload) {
			t.Fatalf("decoded size %d of %d input bytes, payload %d", n, len(b), len(payload))
		}
		buf, start := beginRecord(nil)
		buf = append(buf, payload...)
		buf = finishRecord(buf, start, typ)
		if !bytes.Equal(buf, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", buf, b[:n])
		}
		// The payload decoders never panic either.
		switch typ {
		case recHeader:
			decodeHeader(payload)
		case recEntry:
			if e, err := decodeEntry(payload); err == nil {
				if got := appendEntry(nil, &e); !bytes.Equal(got, b[:n]) {
					t.Fatalf("entry %v re-encodes differently", e)
				}
			}
		case recHardState:
			decodeHardState(payload)
		case recSnapshot:
			decodeMarker(payload)
		}
	})
}

// FuzzRecover: Open of a directory whose last segment and snapshot file are
// arbitrary bytes never panics; it either refuses with a RecoveryError or
// returns a consistent log, and opening again returns the same state (a
// truncated torn tail stays truncated).
func FuzzRecover(f *testing.F) {
	f.Fuzz(func(t *testing.T, seg2, snap []byte) {
		fs := NewMemFS()
		fs.WriteFile(filepath.Join(dataDir, versionFile), fmt.Appendf(nil, versionText, FormatVersion))
		fs.MkdirAll(filepath.Join(dataDir, snapDir))
		// Segment 1 is well-formed; segment 2 is the fuzzer's.
		b := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: 1, FirstIndex: 1})
		b = appendEntry(b, &raftcore.Entry{Term: 1, Index: 1, Type: raftcore.EntryConfig, Data: raftcore.EncodeConfig(cfg3)})
		b = appendHardState(b, raftcore.HardState{Term: 1, Commit: 1})
		fs.WriteFile(filepath.Join(dataDir, walDir, segName(1, 1)), b)
		if seg2 != nil {
			fs.WriteFile(filepath.Join(dataDir, walDir, segName(2, 2)), seg2)
		}
		if snap != nil {
			fs.WriteFile(filepath.Join(dataDir, snapDir, snapName(1, 1)), snap)
		}
		s, err := Open(dataDir, Options{FS: fs})
		if err != nil {
			var re *RecoveryError
			if !errors.As(err, &re) {
				t.Fatalf("Open failed without a RecoveryError: %v", err)
			}
			return
		}
		got := capture(s)
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first > last+1 || got.hs.Commit > last {
			t.Fatalf("inconsistent state: first %d last %d hs %+v", first, last, got.hs)
		}
		for i, e := range got.ents {
			if e.Index != got.snap.Meta.Index+1+uint64(i) {
				t.Fatalf("entries not contiguous after the snapshot: %v", got)
			}
		}
		s.Close()
		s2, err := Open(dataDir, Options{FS: fs})
		if err != nil {
			t.Fatalf("second Open failed after a successful one: %v", err)
		}
		if again := capture(s2); !again.equal(got) {
			t.Fatalf("second Open returned %v, the first %v", again, got)
		}
	})
}

// fuzzSeeds builds meaningful starting points: valid records and segments,
// each cut and damaged.
func fuzzSeeds() (records [][]byte, segs [][]byte, snaps [][]byte) {
	hdr := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: 2, FirstIndex: 2})
	e2 := appendEntry(nil, &raftcore.Entry{Term: 1, Index: 2, Data: []byte("put k=v")})
	e3 := appendEntry(nil, &raftcore.Entry{Term: 2, Index: 3, Data: []byte("put k=w")})
	cut := appendEntry(nil, &raftcore.Entry{Term: 2, Index: 2, Data: []byte("after a cut")})
	hs := appendHardState(nil, raftcore.HardState{Term: 2, Vote: "b", Commit: 2})
	mk := appendMarker(nil, snapshotMarker{Index: 1, Term: 1})
	records = [][]byte{hdr, e2, e3, hs, mk, {}, make([]byte, 9)}
	whole := bytes.Join([][]byte{hdr, e2, e3, hs}, nil)
	bad := append([]byte(nil), whole...)
	bad[len(hdr)+12] ^= 0xff
	segs = [][]byte{whole, whole[:len(whole)-3], bad, bytes.Join([][]byte{hdr, e2, e3, cut, hs}, nil), bytes.Join([][]byte{hdr, mk, e2}, nil), nil}
	snap := encodeSnapshot(raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: 1, Term: 1, Config: cfg3}, Data: []byte("state")}, false)
	snaps = [][]byte{snap, snap[:len(snap)-1], nil}
	return
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("RAFTLAB_WRITE_CORPUS") == "" {
		t.Skip("set RAFTLAB_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	records, segs, snaps := fuzzSeeds()
	write := func(target string, i int, args ...[]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			fmt.Fprintf(&b, "[]byte(%q)\n", a)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range records {
		write("FuzzDecodeRecord", i, r)
	}
	n := 0
	for _, s := range segs {
		for _, sn := range snaps {
			write("FuzzRecover", n, s, sn)
			n++
		}
	}
}

// TestFuzzCorpusPresent fails if the committed seed corpora are gone, since
// without them the fuzz targets test nothing in a normal run.
func TestFuzzCorpusPresent(t *testing.T) {
	for _, target := range []string{"FuzzDecodeRecord", "FuzzRecover"} {
		names, err := os.ReadDir(filepath.Join("testdata", "fuzz", target))
		if err != nil || len(names) < 5 {
			t.Fatalf("testdata/fuzz/%s: %d seeds, %v; want the committed corpus", target, len(names), err)
		}
	}
}
