package kvserver

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/raftlab/raftlab/kvserver/sm"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/disk"
)

// Outcome of a client request, as the API reports it.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"  // definitely not applied
	OutcomeUnknown = "unknown" // may or may not be applied
)

// waitKey names a pending write: the command's session.
type waitKey struct {
	client string
	seq    uint64
}

// writeResult is what a waiting write gets.
type writeResult struct {
	res     sm.Result
	index   uint64
	outcome string
	err     error
}

// A proposal is one attempt of a write: made by newProposal, answered
// exactly once, by the loop, through answer.
type proposal struct {
	key      waitKey
	data     []byte
	done     chan writeResult // capacity 1; only answer sends on it
	deadline time.Time

	// Loop-owned.
	answered bool
	// proposed: this attempt went into a ProposeBatch that succeeded.
	proposed bool
	// earlier: an earlier attempt of the request, which this one
	// superseded, was proposed (and may still be applied).
	earlier bool
}

func newProposal(key waitKey, data []byte, deadline time.Time) *proposal {
	return &proposal{key: key, data: data, done: make(chan writeResult, 1), deadline: deadline}
}

// answer gives the attempt its result, once: it reports false, and sends
// nothing, if the attempt was already answered. Only the loop calls it, and
// nothing else sends on done, whose one slot is therefore free: the send
// never blocks, whether or not anyone still waits for the answer.
func (p *proposal) answer(r writeResult) bool {
	if p.answered {
		return false
	}
	p.answered = true
	select {
	case p.done <- r:
	default: // unreachable (see above); never block the loop
	}
	return true
}

// readResult is what a waiting read gets.
type readResult struct {
	value  []byte
	found  bool
	index  uint64
	failed error
}

// A readReq is one read: made by newReadReq, answered exactly once, by the
// loop, through answer.
type readReq struct {
	key      string
	done     chan readResult // capacity 1; only answer sends on it
	deadline time.Time
	index    uint64 // read point, once known (loop-owned)
	answered bool   // loop-owned
}

func newReadReq(key string, deadline time.Time) *readReq {
	return &readReq{key: key, done: make(chan readResult, 1), deadline: deadline}
}

// answer gives the read its result, once; like proposal.answer it never
// blocks.
func (r *readReq) answer(res readResult) bool {
	if r.answered {
		return false
	}
	r.answered = true
	select {
	case r.done <- res:
	default: // unreachable: done's one slot is free until answered
	}
	return true
}

// addrTag starts a normal entry that records a member's peer address (the
// admin's add-learner writes one before the configuration entry, so that
// every node, and every later leader, can reach the new member).
const addrTag = 0xA7

func encodeAddrRecord(id, addr string) []byte {
	b := []byte{addrTag, 1}
	b = appendString(b, id)
	return appendString(b, addr)
}

func decodeAddrRecord(b []byte) (id, addr string, ok bool) {
	if len(b) < 2 || b[0] != addrTag || b[1] != 1 {
		return "", "", false
	}
	d := decoder{b: b[2:]}
	id, addr = string(d.bytes()), string(d.bytes())
	return id, addr, d.err == nil && id != ""
}

// The snapshot envelope: the address book, then the state machine.
const snapEnvelopeVersion = 1

func encodeSnapshot(addrs map[string]string, machine []byte) []byte {
	b := []byte{snapEnvelopeVersion}
	ids := make([]string, 0, len(addrs))
	for id := range addrs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = appendString(b, id)
		b = appendString(b, addrs[id])
	}
	return append(b, machine...)
}

func decodeSnapshot(b []byte) (addrs map[string]string, machine []byte, err error) {
	if len(b) == 0 || b[0] != snapEnvelopeVersion {
		return nil, nil, errors.New("kvserver: snapshot: unknown envelope version")
	}
	d := decoder{b: b[1:]}
	n := d.uvarint()
	addrs = map[string]string{}
	for i := uint64(0); i < n && d.err == nil; i++ {
		id := string(d.bytes())
		addrs[id] = string(d.bytes())
	}
	if d.err != nil {
		return nil, nil, fmt.Errorf("kvserver: snapshot: %w", d.err)
	}
	return addrs, d.b, nil
}

// loopStats are the node's figures, written by the loop and read by
// /metrics, /readyz and status without entering the loop.
type loopStats struct {
	term, commit, applied, lastIndex atomic.Uint64
	lead                             atomic.Pointer[string]
	isLeader                         atomic.Bool
	// member: this node is a voter or learner of its configuration.
	member                   atomic.Bool
	leaderChanges, proposals atomic.Uint64
	proposalsFailed          atomic.Uint64
	snapshots, snapshotBytes atomic.Uint64
	readyLoops               atomic.Uint64
}

// node owns the RawNode, the storage and the state machine, and runs the
// one goroutine (the loop) that touches them. Everything else talks to it
// through channels: proposals, reads, messages and calls.
type node struct {
	cfg   Config
	rn    *raftcore.RawNode
	st    *disk.Storage
	sm    *sm.Machine
	tr    *transport
	m     *metrics
	stats loopStats

	propc chan *proposal
	readc chan *readReq
	recvc chan raftcore.Message
	callc chan func()
	// syncc feeds the syncer; syncErr reports its storage failure (buffered
	// 1); syncDone is closed when it ended.
	syncc    chan syncJob
	syncErr  chan error
	syncDone chan struct{}
	stopc    chan struct{}
	donec    chan struct{}
	// fatal receives the error that stopped the loop (storage failure).
	fatal chan error

	// Loop-owned state.
	waiters      map[waitKey]*proposal
	readBatches  map[uint64][]*readReq // ReadIndex ctx counter -> reads
	readNext     uint64
	readTag      []byte // this node start's ReadIndex contexts begin with it; see newReadTag
	queuedReads  []*readReq
	waitingReads []*readReq // read point known, waiting for apply
	addrs        map[string]string
	committedCfg raftcore.Config
	committedIdx uint64
	lastSnapIdx  uint64
	lastSnapAt   time.Time
	lead         string
	// leaderHistory is this node's record of the leaders it saw take over
	// (term, leader, when), newest last, at most leaderHistoryLen: the
	// operator judges leadership flapping from the members' own record,
	// not from what it happened to observe (a restarted operator would
	// forget).
	leaderHistory []LeaderChangeJSON

	// events is GET /admin/events; lastEv the state last reported there
	// and prevUnknown whether committedIdx came from a snapshot (whose
	// configuration entry index is not known) rather than an entry.
	events      eventRing
	lastEv      EventJSON
	prevUnknown bool
}

func (n *node) logf(format string, args ...any) {
	if n.cfg.Logf != nil {
		n.cfg.Logf(format, args...)
	}
}

// call runs f in the loop and waits for it; false if the node stopped.
func (n *node) call(f func()) bool {
	done := make(chan struct{})
	select {
	case n.callc <- func() { f(); close(done) }:
	case <-n.donec:
		return false
	}
	select {
	case <-done:
		return true
	case <-n.donec:
		return false
	}
}

func (n *node) receive(m raftcore.Message) {
	select {
	case n.recvc <- m:
	case <-n.donec:
	}
}

// run is the loop. It handles one event (or a batch of queued proposals),
// then every Ready: persist (one group-committed fsync), send, apply, advance.
//
// No send from the loop blocks on a client: every request is answered
// through its answer method, once, into its own channel's one slot. The
// loop's other sends: fatal (capacity 1, sent once, then the loop ends) and
// syncc (the syncer's queue; a full queue waits for the syncer, which
// never waits for the loop, or ends at a storage failure reported on
// syncErr, which that wait also takes).
func (n *node) run() {
	go n.syncer()
	defer func() {
		close(n.syncc)
		<-n.syncDone
		close(n.donec)
	}()
	ticker := time.NewTicker(n.cfg.Heartbeat)
	defer ticker.Stop()
	props := make([]*proposal, 0, 256)
	datas := make([][]byte, 0, 256)
	for {
		select {
		case <-n.stopc:
			return
		case <-ticker.C:
			n.rn.Tick()
			n.expire(time.Now())
		case m := <-n.recvc:
			n.step(m)
			// Take every message already here before persisting, so one
			// fsync covers them all.
			for i := 0; i < 512; i++ {
				select {
				case m := <-n.recvc:
					n.step(m)
					continue
				default:
				}
				break
			}
		case p := <-n.propc:
			props = append(props[:0], p)
		drain:
			for len(props) < 1024 {
				select {
				case p := <-n.propc:
					props = append(props, p)
				default:
					break drain
				}
			}
			n.proposeBatch(props, datas[:0])
			clear(props)
		case r := <-n.readc:
			n.queuedReads = append(n.queuedReads, r)
		drainReads:
			for {
				select {
				case r := <-n.readc:
					n.queuedReads = append(n.queuedReads, r)
				default:
					break drainReads
				}
			}
		case f := <-n.callc:
			f()
		case err := <-n.syncErr:
			n.stop(err)
			return
		}
		n.issueReads()
		if err := n.handleReady(); err != nil {
			n.stop(err)
			return
		}
	}
}

// stop reports the error that ends the loop: fatal has room for the one
// report of a loop's life.
func (n *node) stop(err error) {
	select {
	case n.fatal <- err:
	default:
	}
}

var errSuperseded = errors.New("superseded by a later attempt with the same client id and sequence number (that attempt is answered with the request's result)")

// proposeBatch proposes a batch of write attempts in one ProposeBatch. An
// attempt waits in waiters, by its request (client id, sequence number),
// for its entry to be applied; a later attempt of a request supersedes the
// one waiting, which is answered unknown if it was proposed (it may still
// be applied) and with the batch's outcome if it is in this batch.
func (n *node) proposeBatch(props []*proposal, datas [][]byte) {
	for _, p := range props {
		if old := n.waiters[p.key]; old != nil && old != p {
			// A waiter was proposed, or is in this batch (a failed
			// batch leaves none behind): answered below.
			p.earlier = old.earlier || old.proposed
			if old.proposed {
				old.answer(writeResult{outcome: OutcomeUnknown, err: errSuperseded})
			}
		}
		n.waiters[p.key] = p
		datas = append(datas, p.data)
	}
	n.stats.proposals.Add(uint64(len(props)))
	err := n.rn.ProposeBatch(datas)
	if err != nil {
		n.stats.proposalsFailed.Add(uint64(len(props)))
	}
	for _, p := range props {
		current := n.waiters[p.key] == p
		switch {
		case err == nil && current:
			p.proposed = true
		case err == nil:
			// Proposed, and superseded in this batch: its entry may be
			// the one applied, answering the attempt that superseded it.
			p.proposed = true
			p.answer(writeResult{outcome: OutcomeUnknown, err: errSuperseded})
		default:
			if current {
				delete(n.waiters, p.key)
			}
			if p.earlier {
				// This attempt was not proposed, but an earlier one of
				// the request was: the request is not settled.
				p.answer(writeResult{outcome: OutcomeUnknown, err: fmt.Errorf("this attempt was not proposed (%w), but an earlier attempt of the request was, and may still be applied", err)})
			} else {
				p.answer(writeResult{outcome: OutcomeFailed, err: err})
			}
		}
	}
}

func (n *node) step(m raftcore.Message) {
	if err := n.rn.Step(m); err != nil && !errors.Is(err, raftcore.ErrProposalDropped) {
		n.logf("step %s: %v", m.Type, err)
	}
}

// issueReads asks for one read point for every read queued since the last
// one (ReadIndex, Raft thesis §6.4): one quorum round serves the batch.
func (n *node) issueReads() {
	if len(n.queuedReads) == 0 {
		return
	}
	if n.readTag == nil {
		n.readTag = newReadTag(n.cfg.ID, bootNonce())
	}
	n.readNext++
	if err := n.rn.ReadIndex(readCtx(n.readTag, n.readNext)); err != nil {
		for _, r := range n.queuedReads {
			r.answer(readResult{failed: err})
		}
	} else {
		n.readBatches[n.readNext] = n.queuedReads
	}
	n.queuedReads = nil
}

// A ReadIndex request context names the node, the node's start and the
// batch: tag (an 8-byte boot nonce, then the node id) followed by a
// big-endian counter. The leader serves every node's requests, so contexts
// of different nodes, and of this node before a restart (its counter starts
// at 1 again), must differ; a ReadState whose context is not one of ours is
// ignored. Two contexts are equal only if nonce, id and counter are: the
// length fixes the id's length, so the parts cannot shift.
func newReadTag(id string, nonce [8]byte) []byte {
	tag := make([]byte, 0, len(nonce)+len(id))
	tag = append(tag, nonce[:]...)
	return append(tag, id...)
}

// bootNonce is random for every start of a node.
func bootNonce() [8]byte {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return b
}

// readCtx is the context of batch n: one allocation.
func readCtx(tag []byte, n uint64) []byte {
	ctx := make([]byte, len(tag)+8)
	copy(ctx, tag)
	binary.BigEndian.PutUint64(ctx[len(tag):], n)
	return ctx
}

// parseReadCtx returns the batch number of one of our contexts; false for
// any other context.
func parseReadCtx(tag, ctx []byte) (uint64, bool) {
	if len(ctx) != len(tag)+8 || !bytes.Equal(ctx[:len(tag)], tag) {
		return 0, false
	}
	return binary.BigEndian.Uint64(ctx[len(tag):]), true
}

// takeReadStates moves the reads whose read point the ReadStates give to
// waitingReads, ignoring ReadStates for contexts that are not ours.
func (n *node) takeReadStates(rss []raftcore.ReadState) {
	if n.readTag == nil {
		return // this start asked for no read point: none is ours
	}
	for _, rs := range rss {
		id, ours := parseReadCtx(n.readTag, rs.RequestCtx)
		if !ours {
			continue
		}
		for _, r := range n.readBatches[id] {
			r.index = rs.Index
			n.waitingReads = append(n.waitingReads, r)
		}
		delete(n.readBatches, id)
	}
}

// expire answers the requests whose deadline passed: a write as unknown
// (it may still commit), a read as failed.
func (n *node) expire(now time.Time) {
	for k, p := range n.waiters {
		if now.After(p.deadline) {
			delete(n.waiters, k)
			p.answer(writeResult{outcome: OutcomeUnknown, err: errors.New("timed out waiting for commit")})
		}
	}
	for ctx, rs := range n.readBatches {
		if len(rs) > 0 && now.After(rs[0].deadline) {
			delete(n.readBatches, ctx)
			for _, r := range rs {
				r.answer(readResult{failed: errors.New("timed out waiting for a read point (no leader, or no quorum)")})
			}
		}
	}
	n.waitingReads = slices.DeleteFunc(n.waitingReads, func(r *readReq) bool {
		if now.After(r.deadline) {
			r.answer(readResult{failed: errors.New("timed out waiting to apply up to the read point")})
			return true
		}
		return false
	})
}

func (n *node) handleReady() error {
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		n.stats.readyLoops.Add(1)
		if !rd.Snapshot.IsEmpty() {
			if err := n.st.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raftcore.ErrSnapOutOfDate) {
				return fmt.Errorf("install snapshot %d: %w", rd.Snapshot.Meta.Index, err)
			}
		}
		ticket, err := n.st.Append(rd.HardState, rd.Entries)
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		if k := len(rd.CommittedEntries); k > 0 && rd.CommittedEntries[k-1].Index > n.st.DurableIndex() {
			// Nothing is applied (and acknowledged) before it is durable
			// here too. With peers this almost never waits: the entries
			// reached a follower only after this node's fsync released the
			// messages carrying them. A single voter waits here.
			if err := n.syncNow(ticket); err != nil {
				return err
			}
		}
		// The messages may promise what was just appended: the syncer
		// sends them once the append is durable, while this loop goes on
		// taking proposals into the next append (group commit).
		select {
		case n.syncc <- syncJob{ticket: ticket, msgs: rd.Messages, mustSync: rd.MustSync}:
		case err := <-n.syncErr:
			return err
		}
		if !rd.Snapshot.IsEmpty() {
			if err := n.restore(rd.Snapshot); err != nil {
				return err
			}
		}
		for i := range rd.CommittedEntries {
			n.apply(&rd.CommittedEntries[i])
		}
		n.takeReadStates(rd.ReadStates)
		n.serveReads()
		if rd.SoftState != nil && rd.SoftState.Lead != n.lead {
			n.lead = rd.SoftState.Lead
			lead := n.lead
			n.stats.lead.Store(&lead)
			n.stats.leaderChanges.Add(1)
			if lead != "" {
				n.noteLeader(lead, n.rn.BasicStatus().Term)
			}
			n.stats.isLeader.Store(rd.SoftState.State == raftcore.StateLeader)
		} else if rd.SoftState != nil {
			n.stats.isLeader.Store(rd.SoftState.State == raftcore.StateLeader)
		}
		n.rn.Advance(rd)
		// After each Ready, not once per call: one call can pass through
		// several states (a single voter appends and commits a joint
		// configuration in two Readies of one call: entering, then
		// committed). The gate keeps this free on the hot path.
		if n.mayChangeState(&rd) {
			n.noteState(n.rn.BasicStatus())
		}
	}
	bs := n.rn.BasicStatus()
	n.noteState(bs)
	n.stats.member.Store(bs.Config.IsMember(n.cfg.ID))
	n.stats.term.Store(bs.Term)
	n.stats.commit.Store(bs.Commit)
	n.stats.applied.Store(n.sm.Applied())
	n.stats.lastIndex.Store(bs.LastIndex)
	return n.maybeSnapshot(bs.Applied)
}

// leaderHistoryLen bounds a node's leader history: enough for any flap
// window at election timeouts of a second.
const leaderHistoryLen = 64

// noteLeader records that lead leads term, once per term.
func (n *node) noteLeader(lead string, term uint64) {
	if k := len(n.leaderHistory); k > 0 && n.leaderHistory[k-1].Term == term {
		return
	}
	if len(n.leaderHistory) == leaderHistoryLen {
		n.leaderHistory = append(n.leaderHistory[:0], n.leaderHistory[1:]...)
	}
	n.leaderHistory = append(n.leaderHistory, LeaderChangeJSON{Term: term, Leader: lead, At: time.Now().UTC()})
}

// mayChangeState reports whether the Ready rd, now advanced, may have
// changed what a state event reports (role, term, leader, configuration
// index, joint state), from the fields of rd and the last event only: no
// allocation (BasicStatus clones the configuration). It may say yes when
// nothing changed (noteState then finds no change), never no when
// something did: the role and leader come with a SoftState, the term and
// the commit index (which moves a joint state from entering to committed,
// or from leaving to none) with a HardState, a configuration with an
// appended configuration entry, a snapshot, or a truncation of the log at
// or below the configuration's entry. Loop only.
func (n *node) mayChangeState(rd *raftcore.Ready) bool {
	last := &n.lastEv
	if last.Kind == "" || rd.SoftState != nil || !rd.Snapshot.IsEmpty() {
		return true
	}
	hs := rd.HardState
	if !hs.IsEmpty() && (hs.Term != last.Term || ((last.JointState == "entering" || last.JointState == "leaving") && hs.Commit >= last.ConfigIndex)) {
		return true
	}
	for i := range rd.Entries {
		if rd.Entries[i].Type == raftcore.EntryConfig || rd.Entries[i].Index <= last.ConfigIndex {
			return true
		}
	}
	return false
}

// noteState adds a state event to /admin/events when the node's role,
// term, leader, configuration or joint state differs from the last one
// reported. It runs after every Ready that may change them (and at the
// end of every handleReady), so every state the loop passes through is
// reported: a configuration appended and committed in two Readies shows
// entering, then committed, even within one handleReady. Loop only.
func (n *node) noteState(bs raftcore.Status) {
	// Compared field by field first: this runs on every loop turn, and
	// only a change allocates.
	last := &n.lastEv
	role, joint := bs.State.String(), bs.JointState.String()
	var changed []string
	switch {
	case last.Kind == "":
		changed = []string{"start"}
	default:
		if role != last.Role {
			changed = append(changed, "role")
		}
		if bs.Term != last.Term {
			changed = append(changed, "term")
		}
		if bs.Lead != last.Leader {
			changed = append(changed, "leader")
		}
		if bs.ConfigIndex != last.ConfigIndex {
			changed = append(changed, "config")
		}
		if joint != last.JointState {
			changed = append(changed, "joint")
		}
	}
	if len(changed) == 0 {
		return
	}
	cj := configJSON(bs.Config)
	e := EventJSON{Kind: EventState, Changed: changed, Role: role, Term: bs.Term, Leader: bs.Lead,
		ConfigIndex: bs.ConfigIndex, JointState: joint, Commit: bs.Commit, Config: &cj}
	n.lastEv = e
	n.events.add(e)
}

// syncJob is one Ready's messages, to be sent once its append is durable.
type syncJob struct {
	ticket   disk.Ticket
	msgs     []raftcore.Message
	mustSync bool
}

func (n *node) syncNow(t disk.Ticket) error {
	start := time.Now()
	if err := n.st.Sync(t); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	n.m.fsync.Observe(time.Since(start).Seconds())
	return nil
}

// syncer makes appends durable and only then sends the messages that
// depend on them (Raft paper, Figure 2), in Ready order. It takes every job
// queued and covers them with one fsync: the loop keeps appending while a
// sync runs, so one fsync carries many proposals. It ends when syncc is
// closed.
func (n *node) syncer() {
	defer close(n.syncDone)
	var jobs []syncJob
	failed := false
	for job := range n.syncc {
		jobs = append(jobs[:0], job)
	drain:
		for {
			select {
			case j, ok := <-n.syncc:
				if !ok {
					break drain
				}
				jobs = append(jobs, j)
			default:
				break drain
			}
		}
		if failed {
			continue // a storage failure stops the node; send nothing more
		}
		var last disk.Ticket
		sync := false
		for _, j := range jobs {
			if j.mustSync {
				sync, last = true, max(last, j.ticket)
			}
		}
		if sync {
			if err := n.syncNow(last); err != nil {
				failed = true
				n.syncErr <- err
				continue
			}
		}
		for _, j := range jobs {
			n.tr.send(j.msgs)
		}
		clear(jobs)
	}
}

func (n *node) serveReads() {
	if len(n.waitingReads) == 0 {
		return
	}
	applied := n.sm.Applied()
	n.waitingReads = slices.DeleteFunc(n.waitingReads, func(r *readReq) bool {
		if r.index > applied {
			return false
		}
		v, ok := n.sm.Get(r.key)
		r.answer(readResult{value: v, found: ok, index: applied})
		return true
	})
}

func (n *node) apply(e *raftcore.Entry) {
	switch {
	case e.Type == raftcore.EntryConfig:
		n.sm.Skip(e.Index)
		if c, err := raftcore.DecodeConfig(e.Data); err == nil {
			cj := configJSON(c)
			n.events.add(EventJSON{Kind: EventConfigApplied, Index: e.Index, Config: &cj, PrevConfigIndex: n.committedIdx, PrevUnknown: n.prevUnknown})
			n.committedCfg, n.committedIdx, n.prevUnknown = c, e.Index, false
		}
		return
	case len(e.Data) == 0:
		n.sm.Skip(e.Index)
		return
	case e.Data[0] == addrTag:
		n.sm.Skip(e.Index)
		if id, addr, ok := decodeAddrRecord(e.Data); ok {
			if n.committedCfg.IsMember(id) {
				// A record never re-addresses a member (admin.go).
				n.logf("entry %d: address record of member %s ignored", e.Index, id)
				return
			}
			n.addrs[id] = addr
			n.tr.setAddr(id, addr)
		}
		return
	}
	res := n.sm.Apply(e.Index, e.Data)
	if res.Err != nil {
		n.logf("entry %d: %v (applied as a no-op)", e.Index, res.Err)
		return
	}
	if len(n.waiters) == 0 {
		return
	}
	c, err := sm.Decode(e.Data)
	if err != nil {
		return
	}
	key := waitKey{c.ClientID, c.Seq}
	// Only the request's own command answers its attempt: another command
	// under the same client id and sequence number (a client reusing them)
	// leaves it waiting for its own entry, which the state machine refuses
	// (Mismatch) if this one was applied.
	if p := n.waiters[key]; p != nil && bytes.Equal(p.data, e.Data) {
		delete(n.waiters, key)
		p.answer(writeOutcome(res, e.Index))
	}
}

// writeOutcome is what a write whose entry was applied at index answers
// (http.go turns it into the response). The outcome is the request's, not
// just this entry's: every refusal below applied nothing at index, but only
// a plain stale one proves that no copy of the request ever was.
func writeOutcome(res sm.Result, index uint64) writeResult {
	out := writeResult{res: res, index: index, outcome: OutcomeOK}
	switch {
	case res.SessionExpired:
		out.outcome = OutcomeUnknown
		out.err = errors.New("session expired: there is no session for this client id (it expired, or was never opened at sequence number 1); " +
			"this copy of the request was not applied, nor will any later one under this client id be, but one sent before the session expired may have been; " +
			"go on under a new client id starting at sequence number 1")
	case res.TableFull:
		out.outcome = OutcomeFailed
		out.err = errors.New("too many active sessions: every session in the full table was active recently, so none may make room for this client's new one; " +
			"this request was not applied; retry later")
	case res.Mismatch:
		out.outcome = OutcomeFailed
		out.err = errors.New("request mismatch: this client id and sequence number were already applied to another command (another operation, key or value; " +
			"a client reusing its id, e.g. restarted with a fixed id); this command was not applied, nor will it be under this sequence number; " +
			"go on under a new client id starting at sequence number 1")
	case res.Stale && res.Forgotten:
		out.outcome = OutcomeUnknown
		out.err = errors.New("stale request: this client already sent a newer sequence number, and the session no longer remembers whether this one was applied")
	case res.Stale:
		out.outcome = OutcomeFailed
		out.err = errors.New("stale request: this client already sent a newer sequence number, and this one was never applied (nor will be)")
	}
	return out
}

// restore replaces the state machine with a snapshot's.
func (n *node) restore(s raftcore.Snapshot) error {
	addrs, machine, err := decodeSnapshot(s.Data)
	if err != nil {
		return err
	}
	m := sm.NewWithLimits(n.sm.Limits())
	if err := m.Restore(machine); err != nil {
		return fmt.Errorf("kvserver: snapshot %d: %w", s.Meta.Index, err)
	}
	m.Skip(s.Meta.Index)
	n.sm = m
	n.addrs = addrs
	for id, a := range addrs {
		n.tr.setAddr(id, a)
	}
	n.committedCfg, n.committedIdx, n.prevUnknown = s.Meta.Config, s.Meta.Index, true
	n.lastSnapIdx, n.lastSnapAt = s.Meta.Index, time.Now()
	cj := configJSON(s.Meta.Config)
	n.events.add(EventJSON{Kind: EventSnapshotRestored, Index: s.Meta.Index, Config: &cj})
	return nil
}

func (n *node) maybeSnapshot(applied uint64) error {
	if applied <= n.lastSnapIdx {
		return nil
	}
	due := n.cfg.SnapshotEntries > 0 && applied-n.lastSnapIdx >= n.cfg.SnapshotEntries
	due = due || (n.cfg.SnapshotInterval > 0 && time.Since(n.lastSnapAt) >= n.cfg.SnapshotInterval)
	if !due {
		return nil
	}
	return n.snapshot()
}

// snapshot writes a snapshot at the applied index and compacts the log.
func (n *node) snapshot() error {
	applied := n.sm.Applied()
	if applied <= n.lastSnapIdx {
		return nil
	}
	data := encodeSnapshot(n.addrs, n.sm.Snapshot())
	if _, err := n.st.CreateSnapshot(applied, n.committedCfg, data); err != nil {
		if errors.Is(err, raftcore.ErrSnapOutOfDate) {
			return nil
		}
		return fmt.Errorf("snapshot at %d: %w", applied, err)
	}
	n.lastSnapIdx, n.lastSnapAt = applied, time.Now()
	n.stats.snapshots.Add(1)
	n.stats.snapshotBytes.Store(uint64(len(data)))
	if keep := n.cfg.SnapshotKeep; applied > keep {
		if err := n.st.Compact(applied - keep); err != nil && !errors.Is(err, raftcore.ErrCompacted) {
			return fmt.Errorf("compact to %d: %w", applied-keep, err)
		}
	}
	return nil
}
