package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
	"github.com/raftlab/raftlab/runner/sim"
)

// TestRefusedWritesAreNotOK: a write the state machine refuses (stale,
// mismatch) is answered Failed, not OK (issue 13).
func TestRefusedWritesAreNotOK(t *testing.T) {
	ctx := context.Background()
	cl := startLeadingCluster(t, ctx, "refusal")
	do := func(op backend.Op) backend.Result {
		t.Helper()
		var res *backend.Result
		cl.Do(cl.Observe(ctx).Leader, op, 2*time.Second, func(r backend.Result) { res = &r })
		if !cl.WaitUntil(ctx, func(func() backend.View) bool { return res != nil }, 3*time.Second) {
			t.Fatalf("%+v: no answer", op)
		}
		return *res
	}
	put := func(seq uint64, v string) backend.Op {
		return backend.Op{Kind: backend.Put, Key: "k", Value: v, ClientID: "c", Seq: seq}
	}
	if r := do(put(2, "a")); r.Outcome != backend.OK {
		t.Fatalf("put (c, 2): %+v, want ok", r)
	}
	if r := do(put(2, "a")); r.Outcome != backend.OK {
		t.Fatalf("retried put (c, 2): %+v, want ok (duplicate)", r)
	}
	if r := do(put(1, "b")); r.Outcome != backend.Failed || r.Err == "" {
		t.Fatalf("stale put (c, 1): %+v, want failed with a reason", r)
	}
	if r := do(put(2, "other")); r.Outcome != backend.Failed || r.Err == "" {
		t.Fatalf("mismatched put (c, 2): %+v, want failed with a reason", r)
	}
	if r := do(backend.Op{Kind: backend.Get, Key: "k", ClientID: "c", Seq: 3}); r.Outcome != backend.OK || !r.Found || r.Value != "a" {
		t.Fatalf("get k: %+v, want ok a", r)
	}
}

// TestOnlyTheOwnEntryAnswersAWrite: two writes under one client id and
// sequence number in flight at once; the first one's entry must not answer
// the second (whose own entry the state machine refuses: Mismatch).
func TestOnlyTheOwnEntryAnswersAWrite(t *testing.T) {
	ctx := context.Background()
	cl := startLeadingCluster(t, ctx, "own-entry")
	lead := cl.Observe(ctx).Leader
	var first, second *backend.Result
	cl.Do(lead, backend.Op{Kind: backend.Put, Key: "k", Value: "a", ClientID: "c", Seq: 1}, 2*time.Second,
		func(r backend.Result) { first = &r })
	cl.Do(lead, backend.Op{Kind: backend.Put, Key: "k", Value: "b", ClientID: "c", Seq: 1}, 2*time.Second,
		func(r backend.Result) { second = &r })
	if !cl.WaitUntil(ctx, func(func() backend.View) bool { return first != nil && second != nil }, 3*time.Second) {
		t.Fatalf("no answers: %+v %+v", first, second)
	}
	if second.Outcome != backend.Failed {
		t.Fatalf("second put (c, 1) = b: %+v, want failed (mismatch)", *second)
	}
	if first.Outcome == backend.Failed {
		t.Fatalf("first put (c, 1) = a: %+v, but it was applied", *first)
	}
}

// startLeadingCluster starts a 3-replica sim cluster and waits for a leader.
func startLeadingCluster(t *testing.T, ctx context.Context, name string) backend.Cluster {
	t.Helper()
	src := "apiVersion: raftlab/v1\nkind: Experiment\nmetadata: {name: " + name + "}\n" +
		"cluster: {replicas: 3}\nworkload: {clients: 1, rate: 1, duration: 1s}\nexpect: {linearizable: true}\n"
	exp, err := experiment.Parse(name+".yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sim.Backend{}.Start(ctx, exp, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if !cl.WaitUntil(ctx, func(func() backend.View) bool { return cl.Observe(ctx).Leader != "" }, 10*time.Second) {
		t.Fatal("no leader elected")
	}
	return cl
}
