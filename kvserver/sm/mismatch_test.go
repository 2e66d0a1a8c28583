package sm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Issue 14, defect 2: a command under a (client, seq) that the session
// applied for another command is a Mismatch: not applied, not answered as
// the other command's duplicate. A true copy is still a duplicate.
func TestMismatchNotDuplicate(t *testing.T) {
	m := NewWithLimits(Limits{})
	m.Apply(1, put("c", 1, "k", "a"))
	for i, cmd := range [][]byte{
		put("c", 1, "k", "b"),
		put("c", 1, "x", "a"),
		put("c", 1, "k", "a\x00"),
		Command{ClientID: "c", Seq: 1, Op: OpDelete, Key: "k"}.Encode(),
	} {
		if r := m.Apply(uint64(2+i), cmd); r.Duplicate || !r.Mismatch || r.Stale || r.Existed {
			t.Errorf("command %d under c/1, applied for put k=a: %+v, want a mismatch", i, r)
		}
	}
	if r := m.Apply(6, put("c", 1, "k", "a")); !r.Duplicate || r.Mismatch {
		t.Fatalf("a copy of c/1: %+v, want a duplicate", r)
	}
	if v, _ := m.Get("k"); string(v) != "a" {
		t.Fatalf("k = %q", v)
	}
	if _, ok := m.Get("x"); ok {
		t.Fatal("a mismatched command was applied")
	}
	// A delete and a put of an empty value differ.
	m.Apply(7, Command{ClientID: "d", Seq: 1, Op: OpDelete, Key: "k"}.Encode())
	if r := m.Apply(8, put("d", 1, "k", "")); !r.Mismatch {
		t.Fatalf("put k=\"\" under a delete's seq: %+v", r)
	}
}

// The session's answers for seqs up to its newest follow from what it
// applied under each (a model of the window), across gaps, windows that
// slide and restores from snapshots.
func TestSessionWindowModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	type rec struct {
		cmd     []byte
		existed bool
	}
	m := NewWithLimits(Limits{})
	model := map[uint64]rec{}
	var newest uint64
	present := map[string]bool{}
	for index := uint64(1); index <= 20000; index++ {
		if index%1000 == 0 {
			r := NewWithLimits(Limits{})
			if err := r.Restore(m.Snapshot()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.Snapshot(), m.Snapshot()) {
				t.Fatal("restore changed the snapshot")
			}
			m = r
		}
		key := fmt.Sprintf("k%d", rng.IntN(5))
		switch k := rng.IntN(10); {
		case k < 4 && newest > 0:
			// An old seq: a copy of what was sent, or another command.
			seq := newest - min(newest-1, rng.Uint64N(80))
			cmd := put("c", seq, key, fmt.Sprint(rng.IntN(3)))
			if old, ok := model[seq]; ok && rng.IntN(2) == 0 {
				cmd = old.cmd
			}
			got := m.Apply(index, cmd)
			old, applied := model[seq]
			var want Result
			switch {
			case newest-seq >= window:
				want = Result{Stale: true, Forgotten: true}
			case !applied:
				want = Result{Stale: true}
			case bytes.Equal(old.cmd, cmd):
				want = Result{Duplicate: true, Existed: old.existed}
			default:
				want = Result{Mismatch: true}
			}
			if got != want {
				t.Fatalf("entry %d, seq %d (newest %d, applied %v): %+v, want %+v", index, seq, newest, applied, got, want)
			}
		default:
			newest += 1 + rng.Uint64N(3) // gaps: seqs never applied
			var cmd []byte
			if rng.IntN(3) == 0 {
				cmd = Command{ClientID: "c", Seq: newest, Op: OpDelete, Key: key}.Encode()
			} else {
				cmd = put("c", newest, key, fmt.Sprint(index))
			}
			got := m.Apply(index, cmd)
			if got != (Result{Existed: present[key]}) {
				t.Fatalf("entry %d, new seq %d: %+v", index, newest, got)
			}
			model[newest] = rec{cmd, present[key]}
			c, _ := Decode(cmd)
			present[key] = c.Op == OpPut
		}
		if s := m.sessions["c"]; s != nil && len(s.digests) > window {
			t.Fatalf("%d digests kept", len(s.digests))
		}
	}
}

// A version 2 snapshot (before digests) still restores: its remembered
// results have no digest, so a copy of one is a duplicate whatever its
// command, as before; results recorded after the restore have digests.
func TestRestoreVersion2(t *testing.T) {
	var b []byte
	b = append(b, 2)
	b = append(b, 9, 0) // applied, expired
	b = append(b, 1)    // one key
	b = appendBytes(b, []byte("k"))
	b = appendBytes(b, []byte("v"))
	b = append(b, 1) // one session
	b = appendBytes(b, []byte("a"))
	b = append(b, 5, 9, 0b101, 0b100, 1) // seq 5, last 9, seqs 5 and 3 applied, 3 existed, from 1
	m := NewWithLimits(Limits{})
	if err := m.Restore(b); err != nil {
		t.Fatal(err)
	}
	if r := m.Apply(10, put("a", 3, "other", "x")); !r.Duplicate || !r.Existed {
		t.Fatalf("a/3 from a version 2 snapshot: %+v, want a duplicate", r)
	}
	if r := m.Apply(11, put("a", 4, "k", "x")); !r.Stale || r.Forgotten {
		t.Fatalf("a/4: %+v, want stale", r)
	}
	m.Apply(12, put("a", 6, "k", "six"))
	if r := m.Apply(13, put("a", 6, "k", "other")); !r.Mismatch {
		t.Fatalf("another command under a/6, applied after the restore: %+v, want a mismatch", r)
	}
	if r := m.Apply(14, put("a", 5, "k", "other")); !r.Duplicate {
		t.Fatalf("a/5 from a version 2 snapshot: %+v, want a duplicate", r)
	}
	// The snapshot is version 3 now, and keeps the unknown digests.
	snap := m.Snapshot()
	if snap[0] != snapVersion {
		t.Fatalf("snapshot version %d", snap[0])
	}
	r := NewWithLimits(Limits{})
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Snapshot(), snap) {
		t.Fatal("restore changed the snapshot")
	}
	if got := r.Apply(15, put("a", 3, "again", "x")); !got.Duplicate {
		t.Fatalf("a/3 after a second restore: %+v", got)
	}
	if got := r.Apply(16, put("a", 6, "k", "other")); !got.Mismatch {
		t.Fatalf("a/6 after a second restore: %+v", got)
	}
	// Digests that the window's bits do not account for are refused.
	for _, bad := range [][]byte{snap[:len(snap)-1], append(bytes.Clone(snap), 0)} {
		if err := NewWithLimits(Limits{}).Restore(bad); err == nil {
			t.Fatalf("Restore of %d bytes accepted", len(bad))
		}
	}
}

func TestDigest(t *testing.T) {
	cmds := []Command{
		{Op: OpPut, Key: "k", Value: []byte("v")},
		{Op: OpPut, Key: "k", Value: []byte("w")},
		{Op: OpPut, Key: "kv", Value: nil},
		{Op: OpPut, Key: "k", Value: []byte("vv")},
		{Op: OpPut, Key: "", Value: []byte("kv")},
		{Op: OpPut, Key: "k", Value: []byte{}},
		{Op: OpDelete, Key: "k"},
	}
	seen := map[uint64]int{}
	for i, c := range cmds {
		d := c.Digest()
		if j, dup := seen[d]; dup || d == 0 {
			t.Fatalf("commands %d and %d: digest %x", i, j, d)
		}
		seen[d] = i
		// The session fields are not part of it.
		c.ClientID, c.Seq = "x", 9
		if c.Digest() != d {
			t.Fatalf("command %d: the digest depends on the client id or seq", i)
		}
	}
	if (Command{Op: OpPut, Key: "k"}).Digest() != (Command{Op: OpPut, Key: "k", Value: []byte{}}).Digest() {
		t.Fatal("nil and empty values differ")
	}
}
