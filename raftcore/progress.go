package raftcore

import "fmt"

// ProgressState is how the leader replicates to one follower.
type ProgressState uint8

const (
	// ProgressProbe: one AppendEntries at a time until the follower's match
	// is found (after a rejection, at start, after a lost connection).
	ProgressProbe ProgressState = iota
	// ProgressReplicate: pipelining; several AppendEntries in flight, bounded
	// by the inflight window (flow control).
	ProgressReplicate
	// ProgressSnapshot: an InstallSnapshot is in flight; nothing else is sent.
	ProgressSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case ProgressProbe:
		return "probe"
	case ProgressReplicate:
		return "replicate"
	case ProgressSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("progress(%d)", int(s))
}

// inflights is a ring of the last indexes of the AppendEntries in flight to
// one follower; when it is full the leader pauses that follower.
type inflights struct {
	start, count int
	buf          []uint64
}

func newInflights(size int) *inflights { return &inflights{buf: make([]uint64, size)} }

func (in *inflights) full() bool { return in.count == len(in.buf) }

func (in *inflights) add(last uint64) {
	if in.full() {
		return
	}
	in.buf[(in.start+in.count)%len(in.buf)] = last
	in.count++
}

// freeLE frees every in-flight message whose last index is <= to.
func (in *inflights) freeLE(to uint64) {
	for in.count > 0 && in.buf[in.start] <= to {
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

func (in *inflights) reset() { in.start, in.count = 0, 0 }

// progress is the leader's view of one member (Raft paper Figure 2,
// nextIndex and matchIndex, plus flow-control state).
type progress struct {
	match, next     uint64
	state           ProgressState
	pendingSnapshot uint64
	snapshotWait    int  // heartbeat rounds spent waiting for a snapshot to land
	recentActive    bool // heard from within the last election timeout (CheckQuorum)
	probeSent       bool
	isLearner       bool
	inflights       *inflights
	// round is the highest heartbeat round of the leader's term this member
	// acknowledged; reads queued before a round wait for a quorum of it.
	round uint64
}

func (pr *progress) resetState(s ProgressState) {
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.snapshotWait = 0
	pr.state = s
	pr.inflights.reset()
}

func (pr *progress) becomeProbe() {
	if pr.state == ProgressSnapshot {
		pending := pr.pendingSnapshot
		pr.resetState(ProgressProbe)
		pr.next = max(pr.match+1, pending+1)
		return
	}
	pr.resetState(ProgressProbe)
	pr.next = pr.match + 1
}

func (pr *progress) becomeReplicate() {
	pr.resetState(ProgressReplicate)
	pr.next = pr.match + 1
}

func (pr *progress) becomeSnapshot(i uint64) {
	pr.resetState(ProgressSnapshot)
	pr.pendingSnapshot = i
}

// maybeUpdate records an acknowledgement of index n; false if it is stale.
func (pr *progress) maybeUpdate(n uint64) bool {
	updated := false
	if pr.match < n {
		pr.match = n
		updated = true
		pr.probeSent = false
	}
	pr.next = max(pr.next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the append after index rejected; hint
// is the follower's (or our term-skipped) guess of the last matching index.
// False when the rejection is stale.
func (pr *progress) maybeDecrTo(rejected, hint uint64) bool {
	if pr.state == ProgressReplicate {
		if rejected <= pr.match {
			return false
		}
		pr.next = pr.match + 1
		return true
	}
	if pr.next-1 != rejected {
		return false
	}
	next := max(min(rejected, hint+1), pr.match+1)
	if next == pr.next {
		// No way back: the follower rejects at its known match (its
		// committed entries conflict with ours, which only an unsafe mode
		// can cause). Stay paused until the next heartbeat instead of
		// resending in a tight loop.
		pr.probeSent = true
		return false
	}
	pr.next = next
	pr.probeSent = false
	return true
}

func (pr *progress) isPaused() bool {
	switch pr.state {
	case ProgressProbe:
		return pr.probeSent
	case ProgressReplicate:
		return pr.inflights.full()
	default:
		return true
	}
}

// progressMap implements quorum.AckedIndexer over match indexes.
type progressMap map[string]*progress

func (m progressMap) AckedIndex(id string) (uint64, bool) {
	pr, ok := m[id]
	if !ok {
		return 0, false
	}
	return pr.match, true
}
