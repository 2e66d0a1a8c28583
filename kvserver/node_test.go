package kvserver

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/kvserver/sm"
	"github.com/raftlab/raftlab/raftcore"
)

// StartOneNodeWithSessionLimits, for the tests of package kvserver_test,
// starts a one-node cluster whose state machine has the given limits
// (raft-kv itself always runs with sm.DefaultLimits) and waits for it to
// lead.
func StartOneNodeWithSessionLimits(t *testing.T, l sm.Limits) *Server {
	tc := newTestCluster(t, 1, nil)
	s := tc.servers["kv-0"]
	tc.leader()
	s.n.call(func() {
		m := sm.NewWithLimits(l)
		if err := m.Restore(s.n.sm.Snapshot()); err != nil {
			t.Error(err)
		}
		s.n.sm = m
	})
	return s
}

// The outcome of each kind of applied write.
func TestWriteOutcome(t *testing.T) {
	for _, tt := range []struct {
		res     sm.Result
		outcome string
		mention string
	}{
		{sm.Result{Existed: true}, OutcomeOK, ""},
		{sm.Result{Duplicate: true}, OutcomeOK, ""},
		{sm.Result{Stale: true}, OutcomeFailed, "never applied"},
		{sm.Result{Stale: true, Forgotten: true}, OutcomeUnknown, "no longer remembers"},
		{sm.Result{SessionExpired: true}, OutcomeUnknown, "new client id"},
	} {
		out := writeOutcome(tt.res, 3)
		if out.outcome != tt.outcome || out.index != 3 || (tt.mention == "") != (out.err == nil) ||
			(out.err != nil && !strings.Contains(out.err.Error(), tt.mention)) {
			t.Errorf("%+v: %+v", tt.res, out)
		}
	}
}

// ReadIndex contexts of two nodes, or of two starts of one node, never
// collide at the leader, and a node takes only its own ReadStates.
func TestReadContextsAreUnique(t *testing.T) {
	nonce := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	tags := [][]byte{
		newReadTag("kv-0", nonce),
		newReadTag("kv-1", nonce),  // another node, same nonce
		newReadTag("kv-10", nonce), // an id extending another
		newReadTag("kv-0", bootNonce()),
		newReadTag("kv-0", bootNonce()), // two more starts of kv-0
	}
	seen := map[string]int{}
	for i, tag := range tags {
		for n := uint64(1); n <= 300; n++ {
			ctx := readCtx(tag, n)
			if j, dup := seen[string(ctx)]; dup {
				t.Fatalf("tag %d batch %d gives the context of tag %d: %x", i, n, j, ctx)
			}
			seen[string(ctx)] = i
			for j, other := range tags {
				if got, ours := parseReadCtx(other, ctx); ours != (i == j) || (ours && got != n) {
					t.Fatalf("tag %d's context %d parsed with tag %d: %d %v", i, n, j, got, ours)
				}
			}
		}
	}
	// The old contexts: a bare counter, the same on every node.
	if old := binary.BigEndian.AppendUint64(nil, 1); bytes.Equal(readCtx(tags[0], 1), old) {
		t.Fatal("a context is the bare counter")
	}
	if a := testing.AllocsPerRun(100, func() { _ = readCtx(tags[0], 7) }); a > 1 {
		t.Fatalf("readCtx: %v allocations", a)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = parseReadCtx(tags[0], readCtx(tags[0], 7)) }); a > 1 {
		t.Fatalf("parseReadCtx: %v allocations", a)
	}

	// A node releases a batch only for its own full context: a ReadState
	// for the same batch number of another node, or of its previous start,
	// leaves the batch waiting.
	mine := &readReq{key: "k"}
	n := &node{readTag: tags[3], readBatches: map[uint64][]*readReq{1: {mine}}}
	n.takeReadStates([]raftcore.ReadState{
		{Index: 5, RequestCtx: readCtx(tags[0], 1)},                   // kv-0's previous start
		{Index: 6, RequestCtx: readCtx(tags[1], 1)},                   // kv-1
		{Index: 7, RequestCtx: binary.BigEndian.AppendUint64(nil, 1)}, // the old encoding
		{Index: 8, RequestCtx: nil},
	})
	if len(n.waitingReads) != 0 || len(n.readBatches[1]) != 1 {
		t.Fatalf("foreign ReadStates released reads: waiting %d", len(n.waitingReads))
	}
	n.takeReadStates([]raftcore.ReadState{{Index: 9, RequestCtx: readCtx(tags[3], 1)}})
	if len(n.waitingReads) != 1 || mine.index != 9 || len(n.readBatches) != 0 {
		t.Fatalf("own ReadState: waiting %d, index %d", len(n.waitingReads), mine.index)
	}
	// Before a start issued any read, nothing is its own.
	fresh := &node{readBatches: map[uint64][]*readReq{1: {{key: "k"}}}}
	fresh.takeReadStates([]raftcore.ReadState{{Index: 5, RequestCtx: binary.BigEndian.AppendUint64(nil, 1)}})
	if len(fresh.waitingReads) != 0 {
		t.Fatal("a node with no read issued took a ReadState")
	}
}
