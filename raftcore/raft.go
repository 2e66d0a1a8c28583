package raftcore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/raftlab/raftlab/raftcore/quorum"
)

// Options configures a node. Times are in ticks: the caller decides how long
// a tick is.
type Options struct {
	// ID is this node's id, for example "kv-0". Required.
	ID string
	// ElectionTick: a follower that hears no leader for a randomized
	// [ElectionTick, 2*ElectionTick) ticks campaigns. Default 10.
	ElectionTick int
	// HeartbeatTick: a leader sends heartbeats every HeartbeatTick ticks.
	// Must be less than ElectionTick. Default 1.
	HeartbeatTick int
	// Storage is the node's persisted state. Required.
	Storage Storage
	// Applied is the last index the application has applied (after a
	// restart: the index of the snapshot it restored).
	Applied uint64
	// MaxSizePerMsg bounds the payload of one AppendEntries (at least one
	// entry is always sent). Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds the AppendEntries in flight to one follower
	// while pipelining (flow control). Default 256.
	MaxInflightMsgs int
	// CheckQuorum: a leader that has not heard from a quorum within an
	// election timeout steps down, and followers ignore vote requests while
	// they have a live leader (Raft thesis §6.2, §4.2.3).
	CheckQuorum bool
	// PreVote: a node first asks whether it could win before it bumps its
	// term (Raft thesis §9.6), so a partitioned node does not disrupt.
	PreVote bool
	// Seed seeds the randomized election timeout; nodes should differ.
	Seed uint64

	// UnsafeStartupMembership reproduces docs/BUGS.md's unsafe-early-vote: the
	// node takes this membership at start-up instead of the one its log
	// gives, votes and campaigns in it at once, until the next configuration
	// entry reaches its log. Never set it in a real deployment.
	UnsafeStartupMembership *Config
	// UnsafeAllowMultiVoterOneStep reproduces docs/BUGS.md's unsafe-no-joint: a
	// one-step change may alter any number of voters. Never set it in a real
	// deployment.
	UnsafeAllowMultiVoterOneStep bool
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.ID == None {
		return c, errors.New("raftcore: Options.ID is required")
	}
	if c.Storage == nil {
		return c, errors.New("raftcore: Options.Storage is required")
	}
	if c.ElectionTick == 0 {
		c.ElectionTick = 10
	}
	if c.HeartbeatTick == 0 {
		c.HeartbeatTick = 1
	}
	if c.HeartbeatTick <= 0 || c.ElectionTick <= c.HeartbeatTick {
		return c, fmt.Errorf("raftcore: ElectionTick (%d) must be greater than HeartbeatTick (%d) > 0", c.ElectionTick, c.HeartbeatTick)
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs <= 0 {
		c.MaxInflightMsgs = 256
	}
	if c.UnsafeStartupMembership != nil {
		if err := c.UnsafeStartupMembership.Validate(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// campaignTransfer marks vote requests of a leader transfer: they bypass the
// CheckQuorum lease because the leader itself asked for them (thesis §3.10).
var campaignTransfer = []byte("transfer")

// readRequest is a pending ReadIndex request (thesis §6.4): the commit index
// when it arrived, and the first heartbeat round sent after it arrived. A
// quorum acknowledging that round (or a later one) proves that the leader
// was still the leader after the read arrived, so no other leader can have
// committed anything beyond index before the read was requested.
type readRequest struct {
	index uint64
	round uint64
	ctx   []byte
	from  string
}

// ReadState answers a ReadIndex request: once the application has applied
// Index, a read that started before the request is linearizable.
type ReadState struct {
	Index      uint64
	RequestCtx []byte
}

// ElectionRecord is how the node won its last election: the term, the
// configuration it counted in, and the voters whose grants it counted. It
// exists so that checkers can verify that no learner ever counted.
type ElectionRecord struct {
	Term    uint64
	Config  Config
	Granted []string
}

// Counters are statistics a server exports.
type Counters struct {
	// DroppedMessages counts messages refused by Step: malformed, stale
	// (lower term) or from unknown peers.
	DroppedMessages uint64
	// RejectedProposals counts proposals dropped (no leader, transfer).
	RejectedProposals uint64
}

// raft is the protocol state machine. Not safe for concurrent use.
type raft struct {
	id    string
	opts  Options
	Term  uint64
	Vote  string
	log   *raftLog
	state StateType
	lead  string

	cfg      Config
	cfgIndex uint64
	cfgGen   uint64 // log.confGen the current cfg was taken from
	cfgSet   bool   // cfgGen is meaningful
	prs      progressMap
	votes    map[string]bool

	msgs       []Message
	readStates []ReadState
	// readQueue holds the reads waiting for their heartbeat round, in
	// arrival order, so with non-decreasing rounds.
	readQueue []readRequest
	// hbRound is the last heartbeat round sent in this term as leader.
	// Responses carry the round they answer, never a request context: a
	// delayed answer to an earlier round cannot release a later read.
	hbRound uint64
	// pendingReads wait for the leader's first commit in its term.
	pendingReads []Message

	leadTransferee string

	electionElapsed           int
	heartbeatElapsed          int
	randomizedElectionTimeout int
	rng                       *rand.Rand

	lastElection ElectionRecord
	counters     Counters
	step         func(*raft, Message) error
}

func newRaft(o Options) (*raft, error) {
	opts, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	l, err := newLog(opts.Storage)
	if err != nil {
		return nil, err
	}
	hs, err := opts.Storage.InitialState()
	if err != nil {
		return nil, err
	}
	r := &raft{
		id:   opts.ID,
		opts: opts,
		log:  l,
		prs:  progressMap{},
		rng:  rand.New(rand.NewPCG(opts.Seed, hashID(opts.ID))),
	}
	if !hs.IsEmpty() {
		if hs.Commit < l.committed || hs.Commit > l.lastIndex() {
			return nil, fmt.Errorf("raftcore: persisted commit %d is outside the log [%d, %d]", hs.Commit, l.committed, l.lastIndex())
		}
		r.Term, r.Vote = hs.Term, hs.Vote
		l.committed = hs.Commit
	}
	if opts.Applied > 0 {
		if opts.Applied > l.committed {
			return nil, fmt.Errorf("raftcore: Options.Applied %d is beyond the commit index %d", opts.Applied, l.committed)
		}
		l.applied = max(l.applied, opts.Applied)
	}
	r.syncConfigFromLog()
	if opts.UnsafeStartupMembership != nil {
		r.cfg = opts.UnsafeStartupMembership.normalized()
		r.resetProgress()
	}
	r.becomeFollower(r.Term, None)
	return r, nil
}

// hashID spreads node ids over the random stream so that nodes with the
// same Seed still draw different election timeouts.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// syncConfigFromLog makes the configuration the last one in the log, if the
// log's history changed: membership takes effect on append (Raft paper §6)
// and reverts when a truncation removes the entry.
func (r *raft) syncConfigFromLog() {
	if r.cfgSet && r.cfgGen == r.log.confGen {
		return
	}
	lc := r.log.lastConf()
	r.cfgGen, r.cfgSet = r.log.confGen, true
	r.cfgIndex = lc.index
	r.cfg = lc.cfg
	r.resetProgress()
	if r.state == StateLeader {
		if r.leadTransferee != None && !slices.Contains(r.cfg.Voters, r.leadTransferee) {
			r.leadTransferee = None
		}
		// The quorum changed: rounds already acknowledged may now release
		// queued reads (and new voters, at round 0, may hold them back
		// until the next round, which is safe).
		r.releaseAckedReads()
		// A smaller quorum may commit more at once.
		if r.maybeCommit() {
			r.bcastAppend()
		}
	}
}

// resetProgress makes the progress map match the configuration, keeping the
// progress of members that stay.
//
// Members that the last configuration removed keep their progress until it
// is committed, so that they receive C_new and the commit index, learn that
// they are out, and stop campaigning (thesis §4.2.3 on removed servers).
// They are never in a quorum: quorums come from r.cfg alone.
func (r *raft) resetProgress() {
	members := r.cfg.Members()
	if prev, ok := r.log.prevConf(); ok && r.cfgIndex > r.log.committed {
		for _, id := range prev.cfg.Members() {
			if !slices.Contains(members, id) {
				members = append(members, id)
			}
		}
	}
	for id := range r.prs {
		if !slices.Contains(members, id) {
			delete(r.prs, id)
		}
	}
	last := r.log.lastIndex()
	for _, id := range members {
		pr := r.prs[id]
		if pr == nil {
			pr = &progress{next: last + 1, recentActive: true, inflights: newInflights(r.opts.MaxInflightMsgs)}
			if id == r.id {
				pr.match = last
			}
			r.prs[id] = pr
		}
		pr.isLearner = !r.cfg.IsVoter(id)
	}
}

// maybePruneRemoved drops the progress of removed members once the
// configuration that removed them is committed (and was sent to them).
func (r *raft) maybePruneRemoved() {
	if r.state == StateLeader && r.cfgIndex <= r.log.committed && len(r.prs) > len(r.cfg.Members()) {
		r.resetProgress()
	}
}

func (r *raft) hardState() HardState {
	return HardState{Term: r.Term, Vote: r.Vote, Commit: r.log.committed}
}

// promotable: a voter of its own configuration campaigns; learners and nodes
// outside the configuration do not. One exception keeps a cluster live: a
// node whose latest configuration removed it, while that configuration is not
// known to be committed, may still campaign if it was a voter before. It
// counts votes in its latest configuration, where its own does not count, so
// this cannot break safety; without it, a removed leader that lost its
// leadership before C_new committed would hold the longest log, refuse every
// other candidate its vote, and never campaign itself (Raft thesis §4.2.2: a
// server outside C_new manages the cluster until C_new is committed).
func (r *raft) promotable() bool {
	if r.cfg.IsVoter(r.id) {
		return true
	}
	if r.cfgIndex <= r.log.committed {
		return false
	}
	prev, ok := r.log.prevConf()
	return ok && prev.cfg.IsVoter(r.id)
}

// send queues m for the network. From is set only where it is empty: a
// forwarded request (MsgProp, MsgReadIndex, MsgTransferLeader) keeps its
// originator, so that the leader answers a read to the node that asked for
// it and transfers leadership to the node that was named, not to the
// follower that passed the request on.
func (r *raft) send(m Message) {
	if m.From == None {
		m.From = r.id
	}
	switch m.Type {
	case MsgVote, MsgVoteResp, MsgPreVote, MsgPreVoteResp:
		// The term of these is set by the caller: a pre-vote carries the
		// term the node would have, a response echoes the request's.
	case MsgProp, MsgReadIndex, MsgTransferLeader:
		// Forwarded requests carry no term: they are not protocol messages.
		m.Term = 0
	default:
		m.Term = r.Term
	}
	r.msgs = append(r.msgs, m)
}

func (r *raft) resetRandomizedElectionTimeout() {
	r.randomizedElectionTimeout = r.opts.ElectionTick + r.rng.IntN(r.opts.ElectionTick)
}

func (r *raft) reset(term uint64) {
	if r.Term != term {
		r.Term = term
		r.Vote = None
	}
	r.lead = None
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.resetRandomizedElectionTimeout()
	r.leadTransferee = None
	r.votes = map[string]bool{}
	r.readQueue = nil
	r.pendingReads = nil
	r.hbRound = 0
	last := r.log.lastIndex()
	for id, pr := range r.prs {
		pr.round = 0
		pr.match, pr.next = 0, last+1
		pr.resetState(ProgressProbe)
		pr.recentActive = true
		if id == r.id {
			pr.match = last
		}
	}
}

func (r *raft) becomeFollower(term uint64, lead string) {
	r.step = stepFollower
	r.reset(term)
	r.lead = lead
	r.state = StateFollower
}

func (r *raft) becomePreCandidate() {
	// PreVote does not change the term or the vote (thesis §9.6).
	r.step = stepCandidate
	r.votes = map[string]bool{}
	r.lead = None
	r.state = StatePreCandidate
}

func (r *raft) becomeCandidate() {
	r.step = stepCandidate
	r.reset(r.Term + 1)
	r.Vote = r.id
	r.state = StateCandidate
}

func (r *raft) becomeLeader() {
	r.step = stepLeader
	r.resetProgress()
	r.reset(r.Term)
	r.lead = r.id
	r.state = StateLeader
	if pr := r.prs[r.id]; pr != nil {
		pr.becomeReplicate()
	}
	// A no-op of the new term: the leader can commit (and so learn the
	// commit index, and serve reads, and change membership) only once an
	// entry of its own term is committed (Raft paper §5.4.2, §8).
	r.appendEntry(Entry{Type: EntryNormal})
}

func (r *raft) tick() {
	if r.state == StateLeader {
		r.tickHeartbeat()
	} else {
		r.tickElection()
	}
}

func (r *raft) tickElection() {
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		_ = r.stepInternal(Message{From: r.id, Type: MsgHup})
	}
}

func (r *raft) tickHeartbeat() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.electionElapsed >= r.opts.ElectionTick {
		r.electionElapsed = 0
		if r.opts.CheckQuorum && !r.quorumActive() {
			r.becomeFollower(r.Term, None)
			return
		}
		// A transfer that did not finish within an election timeout is
		// abandoned, so that proposals are accepted again (thesis §3.10).
		r.leadTransferee = None
	}
	if r.heartbeatElapsed >= r.opts.HeartbeatTick {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
	}
}

// quorumActive reports whether a quorum of the voters was heard from since
// the last check, and clears the marks.
func (r *raft) quorumActive() bool {
	active := map[string]bool{}
	for id, pr := range r.prs {
		if id == r.id {
			active[id] = true
			continue
		}
		if !pr.isLearner {
			active[id] = pr.recentActive
		}
		pr.recentActive = false
	}
	return r.cfg.Quorum().VoteResult(active) == quorum.VoteWon
}

func (r *raft) hup(transfer bool) {
	if r.state == StateLeader || !r.promotable() {
		return
	}
	if r.opts.PreVote && !transfer {
		r.campaign(true, false)
	} else {
		r.campaign(false, transfer)
	}
}

func (r *raft) campaign(pre, transfer bool) {
	var voteMsg MessageType
	var term uint64
	if pre {
		r.becomePreCandidate()
		voteMsg, term = MsgPreVote, r.Term+1
	} else {
		r.becomeCandidate()
		voteMsg, term = MsgVote, r.Term
	}
	if r.poll(r.id, true) == quorum.VoteWon {
		// A single voter wins at once.
		r.won(pre)
		return
	}
	var ctx []byte
	if transfer {
		ctx = campaignTransfer
	}
	for _, id := range r.voterIDs() {
		if id == r.id {
			continue
		}
		r.send(Message{To: id, Type: voteMsg, Term: term, Index: r.log.lastIndex(), LogTerm: r.log.lastTerm(), Context: ctx})
	}
}

func (r *raft) won(pre bool) {
	if pre {
		r.campaign(false, false)
		return
	}
	var granted []string
	for id, v := range r.votes {
		if v && r.cfg.IsVoter(id) {
			granted = append(granted, id)
		}
	}
	slices.Sort(granted)
	r.lastElection = ElectionRecord{Term: r.Term, Config: r.cfg.Clone(), Granted: granted}
	r.becomeLeader()
	r.bcastAppend()
}

// voterIDs lists the voters of both halves, sorted, each once.
func (r *raft) voterIDs() []string {
	ids := slices.Concat(r.cfg.Voters, r.cfg.OutgoingVoters)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// poll records a vote and counts the votes in this node's configuration:
// the candidate's configuration decides whose votes count, so a learner's
// grant is recorded but never counted.
func (r *raft) poll(id string, granted bool) quorum.VoteResult {
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	return r.cfg.Quorum().VoteResult(r.votes)
}

// stepInternal is Step without the checks for messages from the network.
func (r *raft) stepInternal(m Message) error {
	switch {
	case m.Term == 0:
		// Local message or forwarded request.
	case m.Term > r.Term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			force := slices.Equal(m.Context, campaignTransfer)
			inLease := r.opts.CheckQuorum && r.lead != None && r.electionElapsed < r.opts.ElectionTick
			if !force && inLease {
				// A live leader's followers ignore disruptive candidates
				// (thesis §4.2.3). Not counted as dropped: it is the rule.
				return nil
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// Never change the term for a pre-vote.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote echoes the future term; the term changes
			// only when the real election starts.
		default:
			if m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap {
				r.becomeFollower(m.Term, m.From)
			} else {
				r.becomeFollower(m.Term, None)
			}
		}
	case m.Term < r.Term:
		if m.Type == MsgHeartbeat || m.Type == MsgApp {
			// A stale leader: the answer carries our term and makes it step
			// down (Raft paper, Figure 2: "reply false if term <
			// currentTerm"), instead of it leading forever a cluster that
			// has moved on.
			r.send(Message{To: m.From, Type: MsgAppResp})
		} else if m.Type == MsgPreVote || m.Type == MsgVote {
			// Reject with our term so that a stale candidate catches up
			// (paper, Figure 2); silence can leave it campaigning forever
			// at a term nobody answers when we are not in its voter set.
			resp := MsgPreVoteResp
			if m.Type == MsgVote {
				resp = MsgVoteResp
			}
			r.send(Message{To: m.From, Term: r.Term, Type: resp, Reject: true})
		} else {
			r.counters.DroppedMessages++
		}
		return nil
	}

	switch m.Type {
	case MsgHup:
		r.hup(false)
	case MsgVote, MsgPreVote:
		respType := MsgVoteResp
		if m.Type == MsgPreVote {
			respType = MsgPreVoteResp
		}
		canVote := r.Vote == m.From ||
			(r.Vote == None && r.lead == None) ||
			(m.Type == MsgPreVote && m.Term > r.Term)
		// Every node answers, whatever its own configuration says of it: a
		// learner in its (older) configuration may be a voter in the
		// candidate's newer one, and only the candidate counts.
		if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
			r.send(Message{To: m.From, Term: m.Term, Type: respType})
			if m.Type == MsgVote {
				r.electionElapsed = 0
				r.Vote = m.From
			}
		} else {
			r.send(Message{To: m.From, Term: r.Term, Type: respType, Reject: true})
		}
	default:
		err := r.step(r, m)
		r.maybePruneRemoved()
		r.maybeStepDownRemoved()
		return err
	}
	return nil
}

func (r *raft) appendEntry(es ...Entry) {
	li := r.log.lastIndex()
	for i := range es {
		es[i].Term = r.Term
		es[i].Index = li + 1 + uint64(i)
	}
	li = r.log.append(es...)
	r.syncConfigFromLog()
	if pr := r.prs[r.id]; pr != nil {
		pr.maybeUpdate(li)
	}
	r.maybeCommit()
}

// maybeCommit advances the commit index to what a quorum of the current
// configuration has, but only to an entry of the current term: entries of
// earlier terms are committed indirectly (Raft paper §5.4.2, Figure 8).
func (r *raft) maybeCommit() bool {
	if r.state != StateLeader {
		return false
	}
	mci := r.cfg.Quorum().CommittedIndex(r.prs)
	if mci == ^uint64(0) || mci <= r.log.committed {
		return false
	}
	if r.log.zeroTermOnErr(r.log.term(mci)) != r.Term {
		return false
	}
	r.log.commitTo(mci)
	r.afterCommit()
	return true
}

func (r *raft) committedEntryInCurrentTerm() bool {
	return r.log.zeroTermOnErr(r.log.term(r.log.committed)) == r.Term
}

func (r *raft) afterCommit() {
	if r.committedEntryInCurrentTerm() && len(r.pendingReads) > 0 {
		pending := r.pendingReads
		r.pendingReads = nil
		for _, m := range pending {
			r.handleReadIndex(m)
		}
	}
}

// maybeStepDownRemoved: a leader that is not in C_new manages the cluster
// until C_new is committed, then steps down (Raft thesis §4.2.2).
func (r *raft) maybeStepDownRemoved() {
	if r.state == StateLeader && !r.cfg.IsJoint() && !r.cfg.IsVoter(r.id) && r.cfgIndex <= r.log.committed {
		r.becomeFollower(r.Term, None)
	}
}

func (r *raft) bcastAppend() {
	for _, id := range r.sortedPeers() {
		r.maybeSendAppend(id, true)
	}
}

// bcastHeartbeat sends the next heartbeat round. Every round, periodic or
// sent for a read, can release the reads queued before it, so a read whose
// round was lost is retried by the next periodic heartbeat.
func (r *raft) bcastHeartbeat() {
	r.hbRound++
	if pr := r.prs[r.id]; pr != nil {
		pr.round = r.hbRound
	}
	for _, id := range r.sortedPeers() {
		pr := r.prs[id]
		// Never tell a follower to commit beyond what it is known to hold.
		commit := min(pr.match, r.log.committed)
		r.send(Message{To: id, Type: MsgHeartbeat, Commit: commit, Round: r.hbRound})
	}
	// With no other voter left to answer (the configuration shrank to this
	// node), the leader's own round is the quorum.
	r.releaseAckedReads()
}

// sortedPeers lists the other members in a fixed order, so that the
// messages of a Ready are deterministic.
func (r *raft) sortedPeers() []string {
	ids := make([]string, 0, len(r.prs))
	for id := range r.prs {
		if id != r.id {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// maybeSendAppend sends entries (or a snapshot) to a member if its flow
// control allows; with sendIfEmpty it also sends an empty append that
// carries the commit index. It reports whether it sent.
func (r *raft) maybeSendAppend(to string, sendIfEmpty bool) bool {
	pr := r.prs[to]
	if pr == nil || pr.isPaused() {
		return false
	}
	prevIndex := pr.next - 1
	prevTerm, errt := r.log.term(prevIndex)
	ents, erre := r.log.entries(pr.next, r.opts.MaxSizePerMsg)
	if len(ents) == 0 && !sendIfEmpty && errt == nil && erre == nil {
		return false
	}
	if errt != nil || erre != nil {
		// The entries the follower needs are compacted: send the snapshot.
		snap, err := r.log.snapshot()
		if err != nil || snap.IsEmpty() {
			return false
		}
		r.send(Message{To: to, Type: MsgSnap, Snapshot: &snap})
		pr.becomeSnapshot(snap.Meta.Index)
		return true
	}
	r.send(Message{To: to, Type: MsgApp, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	switch pr.state {
	case ProgressReplicate:
		if n := len(ents); n > 0 {
			last := ents[n-1].Index
			pr.next = last + 1
			pr.inflights.add(last)
		}
	case ProgressProbe:
		pr.probeSent = true
	}
	return true
}

func (r *raft) sendTimeoutNow(to string) {
	r.send(Message{To: to, Type: MsgTimeoutNow})
}

func stepLeader(r *raft, m Message) error {
	switch m.Type {
	case MsgBeat:
		r.bcastHeartbeat()
		return nil
	case MsgProp:
		if len(m.Entries) == 0 {
			return fmt.Errorf("%w: empty proposal", ErrBadMessage)
		}
		if r.leadTransferee != None {
			r.counters.RejectedProposals++
			return fmt.Errorf("%w: leadership is being transferred to %s", ErrProposalDropped, r.leadTransferee)
		}
		for i := range m.Entries {
			if m.Entries[i].Type != EntryNormal {
				// Membership changes go through proposeConfChange, where
				// they are checked; never through a plain proposal.
				return fmt.Errorf("%w: a proposal cannot carry a %s entry", ErrBadMessage, m.Entries[i].Type)
			}
		}
		r.appendEntry(m.Entries...)
		r.bcastAppend()
		return nil
	case MsgReadIndex:
		r.handleReadIndex(m)
		return nil
	case MsgTransferLeader:
		return r.handleTransferLeader(m.From)
	}

	pr := r.prs[m.From]
	if pr == nil {
		r.counters.DroppedMessages++
		return nil
	}
	switch m.Type {
	case MsgAppResp:
		pr.recentActive = true
		if m.Reject {
			hint := m.RejectHint
			if m.LogTerm > 0 {
				// Skip every entry of ours whose term is above the
				// follower's term at its hint: they cannot match.
				hint, _ = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
			}
			if pr.maybeDecrTo(m.Index, hint) {
				if pr.state == ProgressReplicate {
					pr.becomeProbe()
				}
				r.maybeSendAppend(m.From, true)
			}
			return nil
		}
		wasPaused := pr.isPaused()
		// An empty probe acknowledged exactly at the match moves nothing,
		// yet proves where the follower stands: leave probe state and
		// send it entries now instead of waiting for the next heartbeat
		// response (etcd-io/raft does the same).
		// The ack must answer the probe outstanding (next == m.Index+1):
		// a delayed old ack after a snapshot must not rewind next.
		probeAtMatch := pr.state == ProgressProbe && pr.match == m.Index && pr.next == m.Index+1
		if !pr.maybeUpdate(m.Index) && !probeAtMatch {
			return nil
		}
		switch {
		case pr.state == ProgressProbe:
			pr.becomeReplicate()
		case pr.state == ProgressSnapshot && pr.match+1 >= r.log.firstIndex():
			pr.becomeProbe()
			pr.becomeReplicate()
		case pr.state == ProgressReplicate:
			pr.inflights.freeLE(m.Index)
		}
		if r.maybeCommit() {
			r.bcastAppend()
		} else if wasPaused {
			r.maybeSendAppend(m.From, true)
		}
		// Pipelining: fill the window.
		for r.maybeSendAppend(m.From, false) {
		}
		if m.From == r.leadTransferee && pr.match == r.log.lastIndex() {
			r.sendTimeoutNow(m.From)
		}
	case MsgHeartbeatResp:
		pr.recentActive = true
		pr.probeSent = false
		if pr.state == ProgressReplicate && pr.inflights.full() {
			pr.inflights.freeFirst()
		}
		if pr.state == ProgressSnapshot {
			// The snapshot may have been lost: after a few rounds without
			// an acknowledgement, probe again (which resends it if needed).
			pr.snapshotWait++
			if pr.snapshotWait > 3 {
				pr.becomeProbe()
			}
		}
		if pr.match < r.log.lastIndex() {
			r.maybeSendAppend(m.From, true)
		}
		// A round this leader never sent is a confused or hostile peer.
		if m.Round > pr.round && m.Round <= r.hbRound {
			pr.round = m.Round
			r.releaseAckedReads()
		}
	case MsgSnapStatus:
		if pr.state != ProgressSnapshot {
			return nil
		}
		if m.Reject {
			pr.pendingSnapshot = 0
		}
		pr.becomeProbe()
		// Wait for the follower's answer before probing further.
		pr.probeSent = !m.Reject
	case MsgUnreachable:
		if pr.state == ProgressReplicate {
			pr.becomeProbe()
		}
	}
	return nil
}

func (r *raft) handleTransferLeader(to string) error {
	if !slices.Contains(r.cfg.Voters, to) {
		return fmt.Errorf("%w: %s in %s", ErrTransferToNonVoter, to, r.cfg)
	}
	if to == r.id {
		return nil
	}
	if r.leadTransferee == to {
		return nil
	}
	r.leadTransferee = to
	// The transfer must finish within an election timeout (thesis §3.10).
	r.electionElapsed = 0
	if r.prs[to].match == r.log.lastIndex() {
		r.sendTimeoutNow(to)
	} else {
		r.maybeSendAppend(to, true)
	}
	return nil
}

func (r *raft) handleReadIndex(m Message) {
	if !r.committedEntryInCurrentTerm() {
		// Until its no-op commits, the leader does not know the commit
		// index of the cluster (thesis §6.4 step 1).
		r.pendingReads = append(r.pendingReads, m)
		return
	}
	req := readRequest{index: r.log.committed, ctx: m.Context, from: m.From}
	if r.cfg.Quorum().VoteResult(map[string]bool{r.id: true}) == quorum.VoteWon {
		// The only voter: nobody else can have led since.
		r.answerRead(req)
		return
	}
	// The next round is the first sent after the read arrived; send it now
	// rather than wait for the heartbeat tick (thesis §6.4 step 3).
	req.round = r.hbRound + 1
	r.readQueue = append(r.readQueue, req)
	r.bcastHeartbeat()
}

// roundAcks presents the heartbeat rounds members acknowledged to the
// quorum code, which finds the highest round a quorum reached the way it
// finds the commit index (for a joint configuration, in both halves).
type roundAcks progressMap

func (a roundAcks) AckedIndex(id string) (uint64, bool) {
	pr, ok := a[id]
	if !ok {
		return 0, false
	}
	return pr.round, true
}

// releaseAckedReads answers, in order, every queued read whose round a
// quorum of the voters has acknowledged.
func (r *raft) releaseAckedReads() {
	acked := r.cfg.Quorum().CommittedIndex(roundAcks(r.prs))
	n := 0
	for n < len(r.readQueue) && r.readQueue[n].round <= acked {
		r.answerRead(r.readQueue[n])
		n++
	}
	r.readQueue = slices.Delete(r.readQueue, 0, n)
}

func (r *raft) answerRead(req readRequest) {
	if req.from == r.id || req.from == None {
		r.readStates = append(r.readStates, ReadState{Index: req.index, RequestCtx: req.ctx})
		return
	}
	r.send(Message{To: req.from, Type: MsgReadIndexResp, Index: req.index, Context: req.ctx})
}

func stepCandidate(r *raft, m Message) error {
	myResp := MsgVoteResp
	if r.state == StatePreCandidate {
		myResp = MsgPreVoteResp
	}
	switch m.Type {
	case MsgProp:
		r.counters.RejectedProposals++
		return fmt.Errorf("%w: no leader", ErrProposalDropped)
	case MsgApp:
		r.becomeFollower(m.Term, m.From)
		r.handleAppendEntries(m)
	case MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case myResp:
		switch r.poll(m.From, !m.Reject) {
		case quorum.VoteWon:
			r.won(r.state == StatePreCandidate)
		case quorum.VoteLost:
			r.becomeFollower(r.Term, None)
		}
	}
	return nil
}

func stepFollower(r *raft, m Message) error {
	switch m.Type {
	case MsgProp:
		if r.lead == None {
			r.counters.RejectedProposals++
			return fmt.Errorf("%w: no leader", ErrProposalDropped)
		}
		m.To = r.lead
		r.send(m)
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleAppendEntries(m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTransferLeader:
		if r.lead == None {
			return fmt.Errorf("%w: no leader to transfer from", ErrProposalDropped)
		}
		m.To = r.lead
		r.send(m)
	case MsgTimeoutNow:
		// The leader asked us to campaign now: skip PreVote and the lease.
		r.hup(true)
	case MsgReadIndex:
		if r.lead == None {
			return fmt.Errorf("%w: no leader for a read", ErrProposalDropped)
		}
		m.To = r.lead
		r.send(m)
	case MsgReadIndexResp:
		r.readStates = append(r.readStates, ReadState{Index: m.Index, RequestCtx: m.Context})
	}
	return nil
}

func (r *raft) handleAppendEntries(m Message) {
	if m.Index < r.log.committed {
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.committed})
		return
	}
	if last, ok := r.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries); ok {
		r.syncConfigFromLog()
		r.send(Message{To: m.From, Type: MsgAppResp, Index: last})
		return
	}
	hintIndex := min(m.Index, r.log.lastIndex())
	hintIndex, hintTerm := r.log.findConflictByTerm(hintIndex, m.LogTerm)
	r.send(Message{To: m.From, Type: MsgAppResp, Index: m.Index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm})
}

func (r *raft) handleHeartbeat(m Message) {
	r.log.commitTo(m.Commit)
	r.send(Message{To: m.From, Type: MsgHeartbeatResp, Round: m.Round})
}

func (r *raft) handleSnapshot(m Message) {
	s := *m.Snapshot
	if r.restore(s) {
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.lastIndex()})
	} else {
		r.send(Message{To: m.From, Type: MsgAppResp, Index: r.log.committed})
	}
}

// restore installs a snapshot from the leader; false when it brings nothing
// new (it is older than our commit, or our log already holds its last entry).
func (r *raft) restore(s Snapshot) bool {
	if s.Meta.Index <= r.log.committed {
		return false
	}
	if r.log.matchTerm(s.Meta.Index, s.Meta.Term) {
		r.log.commitTo(s.Meta.Index)
		return false
	}
	r.log.restore(s)
	r.syncConfigFromLog()
	return true
}

// jointState derives where the configuration stands in a joint change.
func (r *raft) jointState() JointState {
	if r.cfg.IsJoint() {
		if r.cfgIndex <= r.log.committed {
			return JointCommitted
		}
		return JointEntering
	}
	if prev, ok := r.log.prevConf(); ok && prev.cfg.IsJoint() && r.cfgIndex > r.log.committed {
		return JointLeaving
	}
	return JointNone
}
