// Package storagetest is the contract every raftcore.Storage with a write
// side must meet, as one test suite: raftcore.MemoryStorage and the WAL
// storage in raftcore/disk both run it, so that a node behaves the same on
// either. A durable storage also passes a reopen function, and the suite then
// checks that everything holds again after the storage is closed and opened.
package storagetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/raftlab/raftlab/raftcore"
)

// Storage is a raftcore.Storage with the write calls a node makes while it
// handles a Ready.
type Storage interface {
	raftcore.Storage
	// Save persists hs (unless empty) and ents, cutting any conflicting
	// suffix first.
	Save(hs raftcore.HardState, ents []raftcore.Entry) error
	ApplySnapshot(snap raftcore.Snapshot) error
	CreateSnapshot(i uint64, cfg raftcore.Config, data []byte) (raftcore.Snapshot, error)
	Compact(i uint64) error
}

// Harness makes the storages under test.
type Harness struct {
	// New returns an empty storage.
	New func(t *testing.T) Storage
	// Reopen closes s and opens its data again (nil for a volatile storage).
	Reopen func(t *testing.T, s Storage) Storage
}

func ents(term, lo, hi uint64) []raftcore.Entry {
	var out []raftcore.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, raftcore.Entry{Term: term, Index: i, Data: fmt.Appendf(nil, "e%d.%d", term, i)})
	}
	return out
}

var cfg = raftcore.NewConfig([]string{"a", "b", "c"})

// Run runs the contract.
func Run(t *testing.T, h Harness) {
	// check runs fn on s and, for a durable storage, again after a reopen.
	check := func(t *testing.T, s Storage, fn func(s Storage)) Storage {
		t.Helper()
		fn(s)
		if h.Reopen != nil {
			s = h.Reopen(t, s)
			fn(s)
		}
		return s
	}

	t.Run("empty", func(t *testing.T) {
		check(t, h.New(t), func(s Storage) {
			expectBounds(t, s, 1, 0)
			if term, err := s.Term(0); err != nil || term != 0 {
				t.Fatalf("Term(0) = %d, %v; want 0, nil", term, err)
			}
			if hs, err := s.InitialState(); err != nil || !hs.IsEmpty() {
				t.Fatalf("InitialState = %+v, %v; want empty", hs, err)
			}
			if snap, err := s.Snapshot(); err != nil || !snap.IsEmpty() {
				t.Fatalf("Snapshot = %+v, %v; want empty", snap.Meta, err)
			}
		})
	})

	t.Run("append-and-read", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(raftcore.HardState{Term: 2, Vote: "a", Commit: 3}, ents(1, 1, 10)))
		check(t, s, func(s Storage) {
			expectBounds(t, s, 1, 10)
			if hs, _ := s.InitialState(); hs != (raftcore.HardState{Term: 2, Vote: "a", Commit: 3}) {
				t.Fatalf("InitialState = %+v", hs)
			}
			got, err := s.Entries(3, 7, 1<<20)
			must(t, err)
			expectEntries(t, got, ents(1, 3, 6))
			// maxSize trims but always returns at least one entry.
			got, err = s.Entries(3, 7, 1)
			must(t, err)
			expectEntries(t, got, ents(1, 3, 3))
			if _, err := s.Entries(5, 12, 1<<20); !errors.Is(err, raftcore.ErrUnavailable) {
				t.Fatalf("Entries past the end: %v, want ErrUnavailable", err)
			}
			if _, err := s.Term(11); !errors.Is(err, raftcore.ErrUnavailable) {
				t.Fatalf("Term past the end: %v, want ErrUnavailable", err)
			}
		})
	})

	t.Run("conflict-truncates-suffix", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(raftcore.HardState{Term: 1, Commit: 2}, ents(1, 1, 10)))
		must(t, s.Save(raftcore.HardState{Term: 2, Commit: 2}, ents(2, 6, 8)))
		check(t, s, func(s Storage) {
			expectBounds(t, s, 1, 8)
			got, err := s.Entries(1, 9, 1<<20)
			must(t, err)
			expectEntries(t, got, append(ents(1, 1, 5), ents(2, 6, 8)...))
		})
	})

	t.Run("gap-refused", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(raftcore.HardState{}, ents(1, 1, 5)))
		if err := s.Save(raftcore.HardState{}, ents(1, 7, 8)); err == nil {
			t.Fatal("append leaving a gap after index 5 was accepted")
		}
		check(t, s, func(s Storage) { expectBounds(t, s, 1, 5) })
	})

	t.Run("create-snapshot-and-compact", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(raftcore.HardState{Term: 3, Commit: 8}, append(ents(1, 1, 4), ents(3, 5, 10)...)))
		snap, err := s.CreateSnapshot(6, cfg, []byte("state@6"))
		must(t, err)
		if snap.Meta.Index != 6 || snap.Meta.Term != 3 {
			t.Fatalf("snapshot meta %+v, want index 6 term 3", snap.Meta)
		}
		if _, err := s.CreateSnapshot(5, cfg, nil); !errors.Is(err, raftcore.ErrSnapOutOfDate) {
			t.Fatalf("older snapshot: %v, want ErrSnapOutOfDate", err)
		}
		must(t, s.Compact(6))
		s = check(t, s, func(s Storage) {
			expectBounds(t, s, 7, 10)
			if term, err := s.Term(6); err != nil || term != 3 {
				t.Fatalf("Term(snapshot index) = %d, %v; want 3", term, err)
			}
			if _, err := s.Entries(5, 8, 1<<20); !errors.Is(err, raftcore.ErrCompacted) {
				t.Fatalf("Entries before the snapshot: %v, want ErrCompacted", err)
			}
			got, err := s.Snapshot()
			must(t, err)
			if got.Meta.Index != 6 || got.Meta.Term != 3 || string(got.Data) != "state@6" || got.Meta.Config.String() != cfg.String() {
				t.Fatalf("Snapshot() = %+v %q", got.Meta, got.Data)
			}
			e, err := s.Entries(7, 11, 1<<20)
			must(t, err)
			expectEntries(t, e, ents(3, 7, 10))
		})
		// Entries the snapshot covers are ignored; the rest appended.
		must(t, s.Save(raftcore.HardState{}, ents(3, 5, 11)))
		check(t, s, func(s Storage) { expectBounds(t, s, 7, 11) })
	})

	t.Run("apply-snapshot-replaces-log", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(raftcore.HardState{Term: 1, Commit: 2}, ents(1, 1, 5)))
		snap := raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: 20, Term: 4, Config: cfg}, Data: []byte("state@20")}
		must(t, s.ApplySnapshot(snap))
		must(t, s.Save(raftcore.HardState{Term: 4, Commit: 20}, nil))
		if err := s.ApplySnapshot(raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: 10, Term: 4, Config: cfg}}); !errors.Is(err, raftcore.ErrSnapOutOfDate) {
			t.Fatalf("older snapshot: %v, want ErrSnapOutOfDate", err)
		}
		s = check(t, s, func(s Storage) {
			expectBounds(t, s, 21, 20)
			if term, _ := s.Term(20); term != 4 {
				t.Fatalf("Term(20) = %d, want 4", term)
			}
			if got, _ := s.Snapshot(); string(got.Data) != "state@20" {
				t.Fatalf("snapshot data %q", got.Data)
			}
		})
		must(t, s.Save(raftcore.HardState{}, ents(4, 21, 23)))
		check(t, s, func(s Storage) { expectBounds(t, s, 21, 23) })
	})

	t.Run("apply-snapshot-over-a-matching-log", func(t *testing.T) {
		// A leader's snapshot replaces the log even where the log holds the
		// same entry: what follows it is the leader's to send.
		s := h.New(t)
		must(t, s.Save(raftcore.HardState{Term: 2, Commit: 3}, ents(2, 1, 12)))
		must(t, s.ApplySnapshot(raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: 8, Term: 2, Config: cfg}}))
		check(t, s, func(s Storage) { expectBounds(t, s, 9, 8) })
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func expectBounds(t *testing.T, s Storage, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	must(t, err)
	l, err := s.LastIndex()
	must(t, err)
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

func expectEntries(t *testing.T, got, want []raftcore.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].Index != want[i].Index || got[i].Term != want[i].Term || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("entry %d = %v, want %v", i, got[i], want[i])
		}
	}
}
