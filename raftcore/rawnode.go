package raftcore

import (
	"fmt"
	"slices"
	"strings"
)

// RawNode is a Raft node as a synchronous state machine: the caller feeds it
// ticks, messages and proposals, then collects a Ready (what to persist,
// send and apply) and calls Advance. It starts no goroutine and does no I/O.
// Not safe for concurrent use: the caller serializes every call.
type RawNode struct {
	r        *raft
	prevHard HardState
	prevSoft SoftState
}

// SoftState is volatile state worth reporting when it changes.
type SoftState struct {
	Lead  string
	State StateType
}

// Ready is a batch of work for the caller, to be done in this order:
//  1. persist HardState, Entries and Snapshot (if any) to Storage, with one
//     sync when MustSync;
//  2. send Messages (only now: they may depend on what was just persisted);
//  3. apply Snapshot, then CommittedEntries, to the state machine; serve
//     ReadStates once the applied index reaches theirs;
//  4. call Advance(rd).
type Ready struct {
	// SoftState is non-nil when the leader or the role changed.
	SoftState *SoftState
	// HardState is non-empty when it changed.
	HardState HardState
	// ReadStates answer ReadIndex requests.
	ReadStates []ReadState
	// Entries are to be appended to storage (replacing any conflicting
	// suffix) before Messages are sent.
	Entries []Entry
	// Snapshot, if not empty, is to be installed in storage and applied.
	Snapshot Snapshot
	// CommittedEntries are to be applied, in order.
	CommittedEntries []Entry
	// Messages are to be sent after the persistence above.
	Messages []Message
	// MustSync says whether HardState and Entries need an fsync: a changed
	// term or vote, or new entries, must be durable before any message.
	MustSync bool
}

// ContainsUpdates reports whether the Ready holds anything.
func (rd Ready) ContainsUpdates() bool {
	return rd.SoftState != nil || !rd.HardState.IsEmpty() || !rd.Snapshot.IsEmpty() ||
		len(rd.Entries) > 0 || len(rd.CommittedEntries) > 0 || len(rd.Messages) > 0 || len(rd.ReadStates) > 0
}

// NewRawNode starts a node from its storage.
func NewRawNode(opts Options) (*RawNode, error) {
	r, err := newRaft(opts)
	if err != nil {
		return nil, err
	}
	rn := &RawNode{r: r}
	rn.prevHard = r.hardState()
	rn.prevSoft = rn.softState()
	return rn, nil
}

func (rn *RawNode) softState() SoftState { return SoftState{Lead: rn.r.lead, State: rn.r.state} }

// Tick advances the node's clock by one tick.
func (rn *RawNode) Tick() {
	rn.r.tick()
	rn.r.maybeStepDownRemoved()
}

// Campaign makes the node start an election now (with PreVote if enabled).
// A learner or a node outside its configuration does nothing.
func (rn *RawNode) Campaign() error {
	return rn.r.stepInternal(Message{From: rn.r.id, Type: MsgHup})
}

// Propose proposes application data. On a follower it is forwarded to the
// leader; the entry may still be lost, so callers wait for it to be applied.
func (rn *RawNode) Propose(data []byte) error {
	return rn.r.stepInternal(Message{From: rn.r.id, Type: MsgProp, Entries: []Entry{{Data: data}}})
}

// ProposeBatch proposes several entries in one step (one append, one
// broadcast), which is how a server batches client writes.
func (rn *RawNode) ProposeBatch(data [][]byte) error {
	ents := make([]Entry, len(data))
	for i := range data {
		ents[i].Data = data[i]
	}
	return rn.r.stepInternal(Message{From: rn.r.id, Type: MsgProp, Entries: ents})
}

// ConfChangeOp is the kind of a membership change.
type ConfChangeOp int

const (
	// OpAddLearner adds ID as a learner (one step; changes no voter).
	OpAddLearner ConfChangeOp = iota + 1
	// OpRemove removes ID, a learner or (one step, one voter) a voter.
	OpRemove
	// OpEnterJoint appends C_old,new with Voters as the new voter set.
	OpEnterJoint
	// OpLeaveJoint appends C_new once C_old,new is committed.
	OpLeaveJoint
	// OpOneStep replaces the configuration with Target in one step; at most
	// one voter may change (Raft thesis §4.1) unless the node has
	// UnsafeAllowMultiVoterOneStep.
	OpOneStep
)

var opNames = map[ConfChangeOp]string{
	OpAddLearner: "add-learner", OpRemove: "remove", OpEnterJoint: "enter-joint",
	OpLeaveJoint: "leave-joint", OpOneStep: "one-step",
}

func (o ConfChangeOp) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// ConfChange is a membership change request.
type ConfChange struct {
	Op ConfChangeOp
	// ID is the node for OpAddLearner and OpRemove.
	ID string
	// Voters is the new voter set for OpEnterJoint.
	Voters []string
	// Learners, for OpEnterJoint, are extra learners of C_new (for example
	// voters being demoted); current learners not promoted stay learners.
	Learners []string
	// Target is the whole new configuration for OpOneStep.
	Target Config
	// ExpectConfigIndex, when non-zero, must equal the current configuration
	// index (compare-and-set), so a retried or stale call cannot apply twice.
	ExpectConfigIndex uint64
}

// ProposeConfChange appends a configuration entry, after checking every rule
// of a safe change. It returns a typed error (see errors.go) when refused.
// The new configuration takes effect on this leader at once, on append.
func (rn *RawNode) ProposeConfChange(cc ConfChange) error {
	next, err := rn.CheckConfChange(cc)
	if err != nil {
		return err
	}
	r := rn.r
	r.appendEntry(Entry{Type: EntryConfig, Data: EncodeConfig(next)})
	r.bcastAppend()
	r.maybeStepDownRemoved()
	return nil
}

// CheckConfChange applies every check of ProposeConfChange without
// appending anything, and returns the configuration the change would make.
// A caller with side effects of its own (addresses to record, say) checks
// first, so that a refused change leaves nothing behind. Between the check
// and the proposal, in the same serialized call, nothing can change.
func (rn *RawNode) CheckConfChange(cc ConfChange) (Config, error) {
	r := rn.r
	if r.state != StateLeader {
		return Config{}, fmt.Errorf("%w: %s is %s (leader: %q)", ErrNotLeader, r.id, r.state, r.lead)
	}
	if r.leadTransferee != None {
		return Config{}, fmt.Errorf("%w: leadership is being transferred to %s", ErrProposalDropped, r.leadTransferee)
	}
	if cc.ExpectConfigIndex != 0 && cc.ExpectConfigIndex != r.cfgIndex {
		return Config{}, fmt.Errorf("%w: expected %d, is %d", ErrConfigIndexMismatch, cc.ExpectConfigIndex, r.cfgIndex)
	}
	if r.cfgIndex > r.log.committed {
		return Config{}, fmt.Errorf("%w: configuration at index %d is not committed (commit %d)", ErrChangeInFlight, r.cfgIndex, r.log.committed)
	}
	if !r.committedEntryInCurrentTerm() {
		return Config{}, fmt.Errorf("%w: term %d, commit %d", ErrNoCommitInTerm, r.Term, r.log.committed)
	}
	cur := r.cfg
	var next Config
	switch cc.Op {
	case OpAddLearner, OpRemove, OpEnterJoint, OpOneStep:
		if cur.IsJoint() {
			return Config{}, fmt.Errorf("%w: %s; leave it before %s", ErrAlreadyJoint, cur, cc.Op)
		}
	}
	switch cc.Op {
	case OpAddLearner:
		if cc.ID == None || cur.IsMember(cc.ID) {
			return Config{}, fmt.Errorf("%w: cannot add %q as a learner to %s", ErrInvalidConfig, cc.ID, cur)
		}
		next = Config{Voters: cur.Voters, Learners: append(slices.Clone(cur.Learners), cc.ID)}
	case OpRemove:
		if !cur.IsMember(cc.ID) {
			return Config{}, fmt.Errorf("%w: %q is not a member of %s", ErrInvalidConfig, cc.ID, cur)
		}
		next = Config{Voters: without(cur.Voters, cc.ID), Learners: without(cur.Learners, cc.ID)}
	case OpEnterJoint:
		voters := sortedSet(cc.Voters)
		if slices.Equal(voters, cur.Voters) {
			return Config{}, fmt.Errorf("%w: new voters %v equal the current ones", ErrInvalidConfig, voters)
		}
		learners := slices.Concat(cur.Learners, cc.Learners)
		learners = slices.DeleteFunc(learners, func(id string) bool { return slices.Contains(voters, id) })
		next = Config{Voters: voters, OutgoingVoters: cur.Voters, Learners: learners}
	case OpLeaveJoint:
		if !cur.IsJoint() {
			return Config{}, fmt.Errorf("%w: %s", ErrNotJoint, cur)
		}
		next = Config{Voters: cur.Voters, Learners: cur.Learners}
	case OpOneStep:
		next = cc.Target
		if next.IsJoint() {
			return Config{}, fmt.Errorf("%w: a one-step target cannot be joint: %s", ErrInvalidConfig, next)
		}
		if n := voterChanges(cur.Voters, sortedSet(next.Voters)); n > 1 && !r.opts.UnsafeAllowMultiVoterOneStep {
			return Config{}, fmt.Errorf("%w: %s -> %s adds or removes %d voters; use EnterJoint", ErrMultiVoterOneStep, cur, next.normalized(), n)
		}
	default:
		return Config{}, fmt.Errorf("%w: unknown change %v", ErrInvalidConfig, cc.Op)
	}
	next = next.normalized()
	if err := next.Validate(); err != nil {
		return Config{}, err
	}
	return next, nil
}

func without(ids []string, id string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == id })
}

// AddLearner adds id as a learner: it replicates but does not vote.
func (rn *RawNode) AddLearner(id string) error {
	return rn.ProposeConfChange(ConfChange{Op: OpAddLearner, ID: id})
}

// RemoveMember removes a learner, or one voter in one step.
func (rn *RawNode) RemoveMember(id string) error {
	return rn.ProposeConfChange(ConfChange{Op: OpRemove, ID: id})
}

// EnterJoint appends C_old,new with voters as C_new's voter set.
func (rn *RawNode) EnterJoint(voters []string) error {
	return rn.ProposeConfChange(ConfChange{Op: OpEnterJoint, Voters: voters})
}

// LeaveJoint appends C_new once C_old,new is committed.
func (rn *RawNode) LeaveJoint() error {
	return rn.ProposeConfChange(ConfChange{Op: OpLeaveJoint})
}

// ChangeConfig replaces the configuration in one step (at most one voter).
func (rn *RawNode) ChangeConfig(target Config) error {
	return rn.ProposeConfChange(ConfChange{Op: OpOneStep, Target: target})
}

// TransferLeader asks the leader to hand leadership to a voter of the
// (incoming) configuration. The leader stops accepting proposals, brings the
// target up to date and sends it TimeoutNow (Raft thesis §3.10). On a
// follower the request is forwarded to the leader.
func (rn *RawNode) TransferLeader(to string) error {
	r := rn.r
	if r.state == StateLeader {
		return r.handleTransferLeader(to)
	}
	if !slices.Contains(r.cfg.Voters, to) {
		return fmt.Errorf("%w: %s in %s", ErrTransferToNonVoter, to, r.cfg)
	}
	return r.stepInternal(Message{From: to, Type: MsgTransferLeader})
}

// ReadIndex requests a linearizable read point; ctx identifies the request
// and comes back in a ReadState once a quorum confirmed the leadership.
func (rn *RawNode) ReadIndex(ctx []byte) error {
	return rn.r.stepInternal(Message{From: rn.r.id, Type: MsgReadIndex, Context: ctx})
}

// ReportSnapshot tells the leader whether sending a snapshot to id worked.
func (rn *RawNode) ReportSnapshot(id string, ok bool) {
	_ = rn.r.stepInternal(Message{From: id, Type: MsgSnapStatus, Reject: !ok})
}

// ReportUnreachable tells the leader that id could not be reached.
func (rn *RawNode) ReportUnreachable(id string) {
	_ = rn.r.stepInternal(Message{From: id, Type: MsgUnreachable})
}

// Step feeds a message received from the network. Malformed messages, local
// message types and messages for another node are refused with an error and
// counted; nothing a peer sends can make the node panic.
func (rn *RawNode) Step(m Message) error {
	if err := rn.validate(m); err != nil {
		rn.r.counters.DroppedMessages++
		return err
	}
	return rn.r.stepInternal(m)
}

func (rn *RawNode) validate(m Message) error {
	r := rn.r
	switch {
	case m.Type >= msgTypeCount:
		return fmt.Errorf("%w: unknown type %d", ErrBadMessage, m.Type)
	case m.Type.isLocal():
		return fmt.Errorf("%w: %s", ErrStepLocal, m.Type)
	case m.From == None:
		return fmt.Errorf("%w: %s from %q", ErrBadMessage, m.Type, m.From)
	case m.From == r.id && !(m.Term == 0 && m.Type.IsForwarded()):
		// Only a forwarded request can name this node: a read it asked
		// for that came back after it became leader, or a transfer to it.
		return fmt.Errorf("%w: %s from %q", ErrBadMessage, m.Type, m.From)
	case m.To != r.id:
		return fmt.Errorf("%w: %s addressed to %q, this is %q", ErrBadMessage, m.Type, m.To, r.id)
	}
	switch m.Type {
	case MsgApp:
		if m.Term == 0 {
			return fmt.Errorf("%w: MsgApp without a term", ErrBadMessage)
		}
		prevTerm := m.LogTerm
		for i, e := range m.Entries {
			if e.Index != m.Index+1+uint64(i) || e.Term < prevTerm || e.Term > m.Term || e.Term == 0 {
				return fmt.Errorf("%w: MsgApp entry %d is %d/%d after %d/%d (message term %d)",
					ErrBadMessage, i, e.Term, e.Index, m.LogTerm, m.Index, m.Term)
			}
			if e.Type == EntryConfig {
				if _, err := DecodeConfig(e.Data); err != nil {
					return fmt.Errorf("%w: MsgApp entry %d: %v", ErrBadMessage, e.Index, err)
				}
			} else if e.Type != EntryNormal {
				return fmt.Errorf("%w: MsgApp entry %d has type %d", ErrBadMessage, e.Index, e.Type)
			}
			prevTerm = e.Term
		}
	case MsgSnap:
		if m.Snapshot == nil || m.Snapshot.Meta.Index == 0 || m.Snapshot.Meta.Term == 0 || m.Snapshot.Meta.Term > m.Term {
			return fmt.Errorf("%w: MsgSnap without a valid snapshot", ErrBadMessage)
		}
	case MsgProp:
		if len(m.Entries) == 0 {
			return fmt.Errorf("%w: empty MsgProp", ErrBadMessage)
		}
	case MsgVote, MsgPreVote, MsgHeartbeat, MsgVoteResp, MsgPreVoteResp, MsgAppResp, MsgHeartbeatResp, MsgTimeoutNow,
		MsgReadIndexResp:
		// A response without a term cannot be checked against ours: a
		// MsgReadIndexResp of term 0 would bypass the stale-term filter
		// and become a ReadState.
		if m.Term == 0 {
			return fmt.Errorf("%w: %s without a term", ErrBadMessage, m.Type)
		}
	}
	return nil
}

// HasReady reports whether Ready would return anything.
func (rn *RawNode) HasReady() bool {
	r := rn.r
	if rn.softState() != rn.prevSoft {
		return true
	}
	if hs := r.hardState(); !hs.IsEmpty() && hs != rn.prevHard {
		return true
	}
	return r.log.unstable.snapshot != nil || len(r.log.unstable.entries) > 0 ||
		len(r.msgs) > 0 || len(r.readStates) > 0 || r.log.hasNextCommittedEnts()
}

// Ready returns the pending work. Call Advance with it before the next Ready.
func (rn *RawNode) Ready() Ready {
	r := rn.r
	rd := Ready{
		Entries:          r.log.unstableEntries(),
		CommittedEntries: r.log.nextCommittedEnts(),
		Messages:         r.msgs,
		ReadStates:       r.readStates,
	}
	if ss := rn.softState(); ss != rn.prevSoft {
		rd.SoftState = &ss
		rn.prevSoft = ss
	}
	if hs := r.hardState(); hs != rn.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != rn.prevHard.Term || hs.Vote != rn.prevHard.Vote
		rn.prevHard = hs
	}
	if r.log.unstable.snapshot != nil {
		rd.Snapshot = *r.log.unstable.snapshot
	}
	if len(rd.Entries) > 0 {
		rd.MustSync = true
	}
	r.msgs = nil
	r.readStates = nil
	return rd
}

// Advance tells the node that a Ready was handled: its entries and snapshot
// are persisted and its committed entries applied.
func (rn *RawNode) Advance(rd Ready) {
	r := rn.r
	if !rd.Snapshot.IsEmpty() {
		r.log.stableSnapTo(rd.Snapshot.Meta.Index)
		r.log.appliedTo(rd.Snapshot.Meta.Index)
	}
	if n := len(rd.Entries); n > 0 {
		e := rd.Entries[n-1]
		r.log.stableTo(e.Index, e.Term)
	}
	if n := len(rd.CommittedEntries); n > 0 {
		r.log.appliedTo(rd.CommittedEntries[n-1].Index)
	}
}

// ProgressStatus is the leader's view of one member.
type ProgressStatus struct {
	Match, Next  uint64
	State        ProgressState
	IsLearner    bool
	RecentActive bool
}

// Status is a snapshot of the node's state for observers (admin planes,
// reconfig, checkers).
type Status struct {
	ID          string
	Term        uint64
	Vote        string
	Lead        string
	State       StateType
	Commit      uint64
	Applied     uint64
	FirstIndex  uint64
	LastIndex   uint64
	Config      Config
	ConfigIndex uint64
	JointState  JointState
	// Progress is filled on the leader only.
	Progress       map[string]ProgressStatus
	LeadTransferee string
	Counters       Counters
}

// BasicStatus is Status without the progress map: cheap enough to call after
// every step.
func (rn *RawNode) BasicStatus() Status {
	r := rn.r
	return Status{
		ID: r.id, Term: r.Term, Vote: r.Vote, Lead: r.lead, State: r.state,
		Commit: r.log.committed, Applied: r.log.applied,
		FirstIndex: r.log.firstIndex(), LastIndex: r.log.lastIndex(),
		Config: r.cfg.Clone(), ConfigIndex: r.cfgIndex, JointState: r.jointState(),
		LeadTransferee: r.leadTransferee, Counters: r.counters,
	}
}

// Status returns the full status.
func (rn *RawNode) Status() Status {
	s := rn.BasicStatus()
	if rn.r.state == StateLeader {
		s.Progress = map[string]ProgressStatus{}
		for id, pr := range rn.r.prs {
			s.Progress[id] = ProgressStatus{Match: pr.match, Next: pr.next, State: pr.state, IsLearner: pr.isLearner, RecentActive: pr.recentActive}
		}
	}
	return s
}

// LastElection tells how this node won its last election.
func (rn *RawNode) LastElection() ElectionRecord { return rn.r.lastElection }

// String is the one text form of a node's state, used by logs and tests:
// kv-0 leader term=2 lead=kv-0 commit=5 applied=5 last=5 voters=(...) joint=none@4
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s term=%d lead=%s commit=%d applied=%d last=%d %s joint=%s@%d",
		s.ID, s.State, s.Term, orDash(s.Lead), s.Commit, s.Applied, s.LastIndex, s.Config, s.JointState, s.ConfigIndex)
	return b.String()
}

func orDash(s string) string {
	if s == None {
		return "-"
	}
	return s
}
