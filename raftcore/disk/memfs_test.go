package disk

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// crashOutcomes runs setup on a fresh MemFS, crashes it with each of n rng
// seeds and returns how often each outcome (as classify names it) occurred.
func crashOutcomes(t *testing.T, n int, setup func(fs *MemFS), classify func(fs *MemFS) string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		fs := NewMemFS()
		fs.MkdirAll("/d")
		setup(fs)
		fs.Crash(rand.New(rand.NewPCG(seed, 7)))
		got[classify(fs)]++
	}
	return got
}

func mustWrite(t *testing.T, f File, p []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

// A crash between creating a file and syncing it, as the segment creation of
// older builds did under the segment's own name: the name may be gone, or
// hold no bytes, zeros as long as what was written (the size reached the
// disk, the data did not), a part of it, or all of it.
func TestMemFSCrashBeforeTheFirstSync(t *testing.T) {
	header := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: 1, FirstIndex: 1})
	whole := append(append([]byte(nil), header...), make([]byte, 300-len(header))...)
	got := crashOutcomes(t, 400, func(fs *MemFS) {
		f, err := fs.Create("/d/seg")
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, header, 0)
		mustWrite(t, f, whole[len(header):], int64(len(header)))
	}, func(fs *MemFS) string {
		b, err := fs.ReadFile("/d/seg")
		switch {
		case err != nil:
			return "gone"
		case len(b) == 0:
			return "empty"
		case bytes.Equal(b, whole):
			return "whole"
		case len(b) == len(whole) && allZero(b):
			return "zeros"
		case bytes.HasPrefix(whole, b):
			return "prefix"
		}
		return "other"
	})
	t.Logf("outcomes: %v", got)
	for _, want := range []string{"gone", "empty", "zeros", "prefix", "whole"} {
		if got[want] == 0 {
			t.Errorf("no crash left the file %s: %v", want, got)
		}
	}
	if got["other"] > 0 {
		t.Errorf("a crash left bytes that were never written: %v", got)
	}
}

// After the file's Sync, only its name is at stake: gone, or whole.
func TestMemFSCrashAfterSyncBeforeDirSync(t *testing.T) {
	data := []byte("header and preallocation")
	got := crashOutcomes(t, 200, func(fs *MemFS) {
		f, _ := fs.Create("/d/f")
		mustWrite(t, f, data, 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}, func(fs *MemFS) string {
		b, err := fs.ReadFile("/d/f")
		switch {
		case err != nil:
			return "gone"
		case bytes.Equal(b, data):
			return "whole"
		}
		return "other"
	})
	if got["gone"] == 0 || got["whole"] == 0 || got["other"] > 0 {
		t.Fatalf("outcomes %v, want gone and whole only", got)
	}
}

// A rename not followed by a directory sync may be lost at a crash (the old
// name is back) or kept; it is atomic: never both names, never neither. A
// SyncDir makes it durable.
func TestMemFSRenameAndDirSync(t *testing.T) {
	data := []byte("synced")
	create := func(fs *MemFS) {
		f, _ := fs.Create("/d/x.tmp")
		mustWrite(t, f, data, 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		if err := fs.Rename("/d/x.tmp", "/d/x"); err != nil {
			t.Fatal(err)
		}
	}
	names := func(fs *MemFS) string {
		_, errTmp := fs.ReadFile("/d/x.tmp")
		b, errX := fs.ReadFile("/d/x")
		switch {
		case errTmp == nil && errX != nil:
			return "old name"
		case errTmp != nil && errX == nil && bytes.Equal(b, data):
			return "new name"
		}
		return "other: " + fs.String()
	}
	got := crashOutcomes(t, 200, create, names)
	if got["old name"] == 0 || got["new name"] == 0 || len(got) != 2 {
		t.Fatalf("rename without SyncDir: outcomes %v, want the old name or the new one", got)
	}
	got = crashOutcomes(t, 50, func(fs *MemFS) {
		create(fs)
		if err := fs.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
	}, names)
	if got["new name"] != 50 {
		t.Fatalf("rename then SyncDir: outcomes %v, want the new name every time", got)
	}
}

// A removal not followed by a directory sync may be undone.
func TestMemFSRemoveWithoutDirSync(t *testing.T) {
	got := crashOutcomes(t, 200, func(fs *MemFS) {
		fs.WriteFile("/d/f", []byte("durable"))
		if err := fs.Remove("/d/f"); err != nil {
			t.Fatal(err)
		}
	}, func(fs *MemFS) string {
		if b, err := fs.ReadFile("/d/f"); err == nil && string(b) == "durable" {
			return "back"
		} else if err != nil {
			return "gone"
		}
		return "other"
	})
	if got["back"] == 0 || got["gone"] == 0 || len(got) != 2 {
		t.Fatalf("outcomes %v, want back or gone", got)
	}
}

// Name changes reach the disk in the order they were made (a journal), and
// a SyncDir makes those of its directory durable, not another's.
func TestMemFSNameChangesInOrder(t *testing.T) {
	fs0 := func(fs *MemFS) {
		fs.MkdirAll("/e")
		for _, n := range []string{"/d/1", "/e/2", "/d/3"} {
			f, _ := fs.Create(n)
			mustWrite(t, f, []byte(n), 0)
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	exists := func(fs *MemFS, n string) bool { ok, _ := fs.Exists(n); return ok }
	got := crashOutcomes(t, 200, fs0, func(fs *MemFS) string {
		a, b, c := exists(fs, "/d/1"), exists(fs, "/e/2"), exists(fs, "/d/3")
		switch {
		case (b && !a) || (c && !b):
			return "out of order"
		case c:
			return "all"
		case b:
			return "two"
		case a:
			return "one"
		}
		return "none"
	})
	if got["out of order"] > 0 || got["none"] == 0 || got["all"] == 0 {
		t.Fatalf("outcomes %v, want prefixes of the changes in order", got)
	}
	got = crashOutcomes(t, 200, func(fs *MemFS) {
		fs0(fs)
		if err := fs.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
	}, func(fs *MemFS) string {
		switch {
		case !exists(fs, "/d/1") || !exists(fs, "/d/3"):
			return "lost a synced name"
		case exists(fs, "/e/2"):
			return "other dir kept"
		}
		return "other dir lost"
	})
	if got["lost a synced name"] > 0 || got["other dir kept"] == 0 || got["other dir lost"] == 0 {
		t.Fatalf("SyncDir(/d): outcomes %v", got)
	}
}

// CrashLosingUnsynced keeps exactly what was synced: a synced file's synced
// bytes under its dir-synced name, and none of the name changes (create,
// rename, remove) or the writes made since, with a pending list that no
// power of two bounds (IntN over a constant source would loop on it).
func TestMemFSCrashLosingUnsynced(t *testing.T) {
	fs := NewMemFS()
	fs.MkdirAll("/d")
	f, err := fs.Create("/d/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("synced"), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte(" and not"), 6)
	// Three pending name changes: a create, a rename and a remove.
	g, err := fs.Create("/d/new")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, []byte("new"), 0)
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename("/d/new", "/d/renamed"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("/d/f"); err != nil {
		t.Fatal(err)
	}
	fs.CrashLosingUnsynced()
	if b, err := fs.ReadFile("/d/f"); err != nil || string(b) != "synced" {
		t.Fatalf("after the crash /d/f = %q, %v; want exactly the synced bytes", b, err)
	}
	for _, name := range []string{"/d/new", "/d/renamed"} {
		if ok, _ := fs.Exists(name); ok {
			t.Errorf("%s, a name no SyncDir covered, survived the crash", name)
		}
	}
	// Nothing is pending any more: a second crash changes nothing.
	fs.CrashLosingUnsynced()
	if b, err := fs.ReadFile("/d/f"); err != nil || string(b) != "synced" {
		t.Fatalf("after a second crash /d/f = %q, %v", b, err)
	}
}
