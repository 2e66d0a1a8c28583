package reconfig

import (
	"context"
	"errors"
)

// Admin carries steps out on a cluster. Every membership call takes the
// configuration index it expects and fails with ErrConfigMoved if the
// cluster's has moved, so that a retried or stale call never applies twice.
type Admin interface {
	// Observe reports the cluster as its leader sees it.
	Observe(ctx context.Context) (Observation, error)
	AddLearner(ctx context.Context, id string, configIndex uint64) error
	EnterJoint(ctx context.Context, voters []string, configIndex uint64) error
	// CommitNew returns nil once the joint entry at configIndex is
	// committed, ErrPending while it is not.
	CommitNew(ctx context.Context, configIndex uint64) error
	LeaveJoint(ctx context.Context, configIndex uint64) error
	TransferLeader(ctx context.Context, to string) error
	RemoveMember(ctx context.Context, id string, configIndex uint64) error
	// ChangeVoters is the one-step change of UnsafeNoJoint; a safe cluster
	// refuses it when more than one voter changes.
	ChangeVoters(ctx context.Context, voters []string, configIndex uint64) error
}

var (
	// ErrConfigMoved: the configuration index is not the one the call
	// expected; observe again.
	ErrConfigMoved = errors.New("reconfig: configuration index moved")
	// ErrPending: the awaited event (a commit) has not happened yet.
	ErrPending = errors.New("reconfig: not yet")
	// ErrUnknownOutcome: the call may or may not have taken effect (a
	// timeout, a lost connection); observe before anything else.
	ErrUnknownOutcome = errors.New("reconfig: outcome unknown")
	// ErrNoLeader: no leader to carry the call out.
	ErrNoLeader = errors.New("reconfig: no leader")
)

// Do carries step s out through a.
func Do(ctx context.Context, a Admin, s Step) error {
	switch s.Op {
	case OpAddLearner:
		return a.AddLearner(ctx, s.Target, s.ConfigIndex)
	case OpEnterJoint:
		return a.EnterJoint(ctx, s.Voters, s.ConfigIndex)
	case OpCommitNew:
		return a.CommitNew(ctx, s.ConfigIndex)
	case OpLeaveJoint:
		return a.LeaveJoint(ctx, s.ConfigIndex)
	case OpTransferLeader:
		return a.TransferLeader(ctx, s.Target)
	case OpRemoveMember:
		return a.RemoveMember(ctx, s.Target, s.ConfigIndex)
	case OpChangeVoters:
		return a.ChangeVoters(ctx, s.Voters, s.ConfigIndex)
	}
	return errors.New("reconfig: unknown step " + string(s.Op))
}
