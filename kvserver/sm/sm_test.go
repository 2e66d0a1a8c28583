package sm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func put(id string, seq uint64, k, v string) []byte {
	return Command{ClientID: id, Seq: seq, Op: OpPut, Key: k, Value: []byte(v)}.Encode()
}

func TestApplyAndExactlyOnce(t *testing.T) {
	m := New()
	if r := m.Apply(1, put("c1", 1, "k", "a")); r.Existed || r.Duplicate {
		t.Fatalf("first put: %+v", r)
	}
	// c2 overwrites; then c1's retry of seq 1 arrives (its first reply was
	// lost): it must not be applied again, and answers as the first time.
	m.Apply(2, put("c2", 1, "k", "b"))
	if r := m.Apply(3, put("c1", 1, "k", "a")); !r.Duplicate || r.Existed {
		t.Fatalf("retried put: %+v, want a duplicate answering Existed=false", r)
	}
	if v, _ := m.Get("k"); string(v) != "b" {
		t.Fatalf("k = %q after a duplicate, want b (the duplicate applied twice)", v)
	}
	// A late copy of a request older than the session's newest is not
	// applied again: it answers the first result if the session still
	// knows it (seq 1 was applied, with Existed=false).
	m.Apply(4, put("c1", 2, "x", "1"))
	if r := m.Apply(5, put("c1", 1, "k", "a")); !r.Duplicate || r.Existed || r.Stale {
		t.Fatalf("older seq: %+v, want a duplicate answering Existed=false", r)
	}
	if v, _ := m.Get("k"); string(v) != "b" {
		t.Fatalf("k = %q after a late copy, want b", v)
	}
	// Another command under an applied seq is no copy: refused.
	if r := m.Apply(6, put("c1", 1, "x", "old")); !r.Mismatch || r.Duplicate || r.Stale {
		t.Fatalf("another command under seq 1: %+v, want a mismatch", r)
	}
	if v, _ := m.Get("x"); string(v) != "1" {
		t.Fatalf("x = %q", v)
	}
	del := Command{ClientID: "c2", Seq: 2, Op: OpDelete, Key: "k"}.Encode()
	if r := m.Apply(7, del); !r.Existed {
		t.Fatalf("delete of a present key: %+v", r)
	}
	if _, ok := m.Get("k"); ok {
		t.Fatal("k still present after delete")
	}
	if r := m.Apply(8, []byte("garbage")); !errors.Is(r.Err, ErrBadCommand) || m.Applied() != 8 {
		t.Fatalf("garbage entry: %+v applied=%d", r, m.Applied())
	}
}

// Snapshots carry the sessions: a retry after a restore from a snapshot is
// still a duplicate. Two machines with the same history give the same bytes.
func TestSnapshotRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := New(), New()
	last := map[string][]byte{} // each client's last command
	for i := uint64(1); i <= 500; i++ {
		id := fmt.Sprintf("c%d", rng.IntN(8))
		p := put(id, i, fmt.Sprintf("k%d", rng.IntN(50)), fmt.Sprint(rng.Int()))
		if rng.IntN(4) == 0 {
			p = Command{ClientID: id, Seq: i, Op: OpDelete, Key: fmt.Sprintf("k%d", rng.IntN(50))}.Encode()
		}
		a.Apply(i, p)
		b.Apply(i, p)
		last[id] = p
	}
	snap := a.Snapshot()
	if !bytes.Equal(snap, b.Snapshot()) {
		t.Fatal("two replicas with one history give different snapshots")
	}
	c := New()
	if err := c.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Snapshot(), snap) || c.Applied() != 500 || c.Len() != a.Len() {
		t.Fatalf("restore differs: applied %d len %d/%d", c.Applied(), c.Len(), a.Len())
	}
	// The last write of each client, retried after the restore; and
	// another command under its seq.
	index := uint64(500)
	for id, p := range last {
		index++
		if r := c.Apply(index, p); !r.Duplicate {
			t.Fatalf("retry of %s's last write after restore: %+v, want duplicate", id, r)
		}
		index++
		if r := c.Apply(index, put(id, c.sessions[id].seq, "zz", "again")); !r.Mismatch {
			t.Fatalf("another command under %s's last seq after restore: %+v, want mismatch", id, r)
		}
	}
	if _, ok := c.Get("zz"); ok {
		t.Fatal("a refused command after restore was applied")
	}
	for _, bad := range [][]byte{{9}, snap[:len(snap)-1], append(append([]byte{}, snap...), 0)} {
		if err := New().Restore(bad); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("Restore(%d bytes) = %v, want ErrBadSnapshot", len(bad), err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(put("client-1", 7, "key", "value"))
	f.Add(Command{ClientID: "c", Seq: 1, Op: OpDelete, Key: "k"}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		if again, err := Decode(c.Encode()); err != nil || again.Key != c.Key || again.Seq != c.Seq || !bytes.Equal(again.Value, c.Value) {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}
