package kvserver

import (
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver/sm"
)

// noLeaderNode starts kv-0 alone in a three-voter configuration whose other
// voters never start: it never has a leader, so every ProposeBatch fails.
func noLeaderNode(t *testing.T) *node {
	t.Helper()
	ghosts := freeAddrs(t, 2)
	tc := newTestCluster(t, 1, func(c *Config) {
		peers := map[string]string{"kv-1": ghosts[0], "kv-2": ghosts[1]}
		for id, a := range c.Peers {
			peers[id] = a
		}
		c.Peers = peers
	})
	return tc.servers["kv-0"].n
}

// holdLoop runs a call in the loop that blocks until the returned function
// is called, so that what the test queues meanwhile is taken as one batch.
func holdLoop(t *testing.T, n *node) (release func()) {
	t.Helper()
	held, rel := make(chan struct{}), make(chan struct{})
	select {
	case n.callc <- func() { close(held); <-rel }:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop takes no call")
	}
	<-held
	return func() { close(rel) }
}

// loopAlive reports whether the loop runs a call within d.
func loopAlive(n *node, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		n.call(func() {})
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Issue 14, defect 1: two attempts of one request (same client id and
// sequence number) in one batch whose ProposeBatch fails. Their clients
// have gone: nothing reads the answers. The loop must answer each attempt
// once and go on (ticks, Raft, shutdown), never block on an answer.
func TestLoopFailedBatchWithTwoAttemptsOfOneRequest(t *testing.T) {
	n := noLeaderNode(t)
	key := waitKey{"c", 1}
	data := sm.Command{ClientID: "c", Seq: 1, Op: sm.OpPut, Key: "k", Value: []byte("v")}.Encode()
	deadline := time.Now().Add(time.Minute)
	first, retry := newProposal(key, data, deadline), newProposal(key, data, deadline)
	release := holdLoop(t, n)
	n.propc <- first
	n.propc <- retry
	release()
	// The attempts are answered in order: once the retry is, the first
	// attempt was, and the loop went on.
	select {
	case got := <-retry.done:
		retry.done <- got // put back, to be counted below
	case <-time.After(5 * time.Second):
		// Unblock the loop (it waits to give first a second answer) so
		// that the test's cleanup can stop the node.
		got := <-first.done
		t.Fatalf("the loop hangs after a failed batch with two attempts of one request (the first attempt was answered %q, %v, and the loop blocks answering it again)",
			got.outcome, got.err)
	}
	if !loopAlive(n, 5*time.Second) {
		t.Fatal("the loop hangs after the failed batch")
	}
	for name, p := range map[string]*proposal{"first": first, "retry": retry} {
		if k := len(p.done); k != 1 {
			t.Fatalf("%s attempt: %d answers, want 1", name, k)
		}
		got := <-p.done
		if got.outcome != OutcomeFailed {
			t.Errorf("%s attempt: %s (%v), want failed: no attempt was proposed", name, got.outcome, got.err)
		}
	}
	var waiting int
	n.call(func() { waiting = len(n.waiters) })
	if waiting != 0 {
		t.Fatalf("%d waiters left after the failed batch", waiting)
	}
}

// A request is answered once: a second answer is dropped, and never
// blocks, whether or not the first was taken.
func TestAnswerOnce(t *testing.T) {
	p := newProposal(waitKey{"c", 1}, nil, time.Now())
	if cap(p.done) != 1 || !p.answer(writeResult{outcome: OutcomeUnknown}) || p.answer(writeResult{outcome: OutcomeFailed}) {
		t.Fatal("a proposal answered twice")
	}
	if got := <-p.done; got.outcome != OutcomeUnknown || len(p.done) != 0 || p.answer(writeResult{}) {
		t.Fatalf("proposal: %+v", got)
	}
	r := newReadReq("k", time.Now())
	if cap(r.done) != 1 || !r.answer(readResult{found: true}) || r.answer(readResult{}) || len(r.done) != 1 {
		t.Fatal("a read answered twice")
	}
}

// A retry in a failed batch, of a request whose earlier attempt was
// proposed: the earlier attempt is answered unknown (superseded, it may
// still be applied) and so is the retry (it was not proposed, but the
// request is not settled); each once.
func TestLoopFailedRetryOfAProposedRequest(t *testing.T) {
	n := noLeaderNode(t)
	key := waitKey{"c", 1}
	data := sm.Command{ClientID: "c", Seq: 1, Op: sm.OpPut, Key: "k", Value: []byte("v")}.Encode()
	deadline := time.Now().Add(time.Minute)
	earlier, retry := newProposal(key, data, deadline), newProposal(key, data, deadline)
	// earlier was proposed when there was a leader.
	n.call(func() {
		earlier.proposed = true
		n.waiters[key] = earlier
	})
	release := holdLoop(t, n)
	n.propc <- retry
	release()
	for name, p := range map[string]*proposal{"earlier": earlier, "retry": retry} {
		select {
		case got := <-p.done:
			if got.outcome != OutcomeUnknown {
				t.Errorf("%s attempt: %s (%v), want unknown", name, got.outcome, got.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s attempt: no answer", name)
		}
	}
	if !loopAlive(n, 5*time.Second) {
		t.Fatal("the loop hangs")
	}
	if len(earlier.done)+len(retry.done) != 0 {
		t.Fatal("an attempt answered twice")
	}
}

// With a leader: two attempts of one request in one batch are both
// proposed; the first is answered unknown (superseded), the retry with
// the request's result. Another command under the same client id and
// sequence number is no attempt of the request: the first command's entry
// does not answer it; its own entry is refused (request mismatch).
func TestLoopAttemptsInOneBatchWithALeader(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	tc.leader()
	n := tc.servers["kv-0"].n
	deadline := time.Now().Add(time.Minute)
	answer := func(name string, p *proposal) writeResult {
		t.Helper()
		select {
		case got := <-p.done:
			return got
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer", name)
		}
		return writeResult{}
	}
	put := func(seq uint64, v string) []byte {
		return sm.Command{ClientID: "c", Seq: seq, Op: sm.OpPut, Key: "k", Value: []byte(v)}.Encode()
	}

	first, retry := newProposal(waitKey{"c", 1}, put(1, "a"), deadline), newProposal(waitKey{"c", 1}, put(1, "a"), deadline)
	release := holdLoop(t, n)
	n.propc <- first
	n.propc <- retry
	release()
	if got := answer("retry", retry); got.outcome != OutcomeOK || got.res.Existed {
		t.Fatalf("retry: %+v", got)
	}
	if got := answer("first", first); got.outcome != OutcomeUnknown {
		t.Fatalf("first (superseded): %+v", got)
	}

	a, b := newProposal(waitKey{"c", 2}, put(2, "b"), deadline), newProposal(waitKey{"c", 2}, put(2, "other"), deadline)
	release = holdLoop(t, n)
	n.propc <- a
	n.propc <- b
	release()
	if got := answer("other command", b); got.outcome != OutcomeFailed || !got.res.Mismatch {
		t.Fatalf("another command under c/2: %+v, want failed, mismatch", got)
	}
	if got := answer("c/2", a); got.outcome != OutcomeUnknown {
		t.Fatalf("c/2 (superseded): %+v", got)
	}
	var v []byte
	n.call(func() { v, _ = n.sm.Get("k") })
	if string(v) != "b" {
		t.Fatalf("k = %q, want b", v)
	}
	if !loopAlive(n, 5*time.Second) || len(first.done)+len(retry.done)+len(a.done)+len(b.done) != 0 {
		t.Fatal("an attempt answered twice, or the loop hangs")
	}
}
