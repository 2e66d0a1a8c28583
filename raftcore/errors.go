package raftcore

import "errors"

// Typed refusals. Callers match them with errors.Is; the wrapped message says
// what was asked and why it was refused.
var (
	// ErrNotLeader: the call needs the leader.
	ErrNotLeader = errors.New("raftcore: not the leader")
	// ErrProposalDropped: the proposal was not appended (leader transfer in
	// progress, or no leader known to forward to).
	ErrProposalDropped = errors.New("raftcore: proposal dropped")
	// ErrChangeInFlight: a configuration entry is still uncommitted; one
	// reconfiguration at a time (Raft thesis §4.1).
	ErrChangeInFlight = errors.New("raftcore: a membership change is in flight")
	// ErrNoCommitInTerm: the leader has not yet committed an entry of its own
	// term; a change before that is unsafe (Ongaro, raft-dev 2015: the
	// single-server change bug).
	ErrNoCommitInTerm = errors.New("raftcore: leader has not committed an entry of its term")
	// ErrMultiVoterOneStep: a one-step change may alter at most one voter;
	// more needs joint consensus (EnterJoint/LeaveJoint).
	ErrMultiVoterOneStep = errors.New("raftcore: one-step change alters more than one voter")
	// ErrTransferToNonVoter: leadership can only go to a voter.
	ErrTransferToNonVoter = errors.New("raftcore: leadership transfer target is not a voter")
	// ErrAlreadyJoint: the configuration is joint; leave it first.
	ErrAlreadyJoint = errors.New("raftcore: configuration is already joint")
	// ErrNotJoint: LeaveJoint outside a joint configuration.
	ErrNotJoint = errors.New("raftcore: configuration is not joint")
	// ErrConfigIndexMismatch: the caller expected another configuration index
	// (compare-and-set on membership calls).
	ErrConfigIndexMismatch = errors.New("raftcore: configuration index moved")
	// ErrInvalidConfig: the requested configuration is malformed.
	ErrInvalidConfig = errors.New("raftcore: invalid configuration")
	// ErrCompacted: the requested index is before the first index in storage.
	ErrCompacted = errors.New("raftcore: requested index is compacted")
	// ErrUnavailable: the requested entries are not in storage.
	ErrUnavailable = errors.New("raftcore: requested entry is unavailable")
	// ErrSnapOutOfDate: a snapshot older than the current one was offered.
	ErrSnapOutOfDate = errors.New("raftcore: snapshot is older than the existing one")
	// ErrStepLocal / ErrBadMessage: Step refused a message.
	ErrStepLocal  = errors.New("raftcore: cannot step a local message received from the network")
	ErrBadMessage = errors.New("raftcore: malformed message")
)
