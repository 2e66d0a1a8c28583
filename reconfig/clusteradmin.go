package reconfig

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// InProcess is a cluster of RawNodes in this process: memcluster's and the
// runner's simulator.
type InProcess interface {
	// Leader is the running leader of the highest term, or "".
	Leader() string
	// RN is a running node's RawNode.
	RN(id string) (*raftcore.RawNode, error)
	// LogOf is the entries a node has persisted, and its snapshot index.
	LogOf(id string) ([]raftcore.Entry, uint64, error)
	// SnapshotOf is a node's latest snapshot.
	SnapshotOf(id string) (raftcore.Snapshot, error)
}

// ClusterAdmin is the Admin of an in-process raftcore cluster: the
// simulator's and the tests'. Calls go to the current leader's RawNode;
// the cluster's owner ticks and delivers.
type ClusterAdmin struct {
	C InProcess
	// Now is the cluster's (virtual) clock.
	Now func() time.Time
}

var _ Admin = (*ClusterAdmin)(nil)

func (a *ClusterAdmin) leader() (*raftcore.RawNode, error) {
	id := a.C.Leader()
	if id == "" {
		return nil, ErrNoLeader
	}
	return a.C.RN(id)
}

// Observe implements Admin.
func (a *ClusterAdmin) Observe(context.Context) (Observation, error) {
	obs := Observation{At: a.Now()}
	id := a.C.Leader()
	if id == "" {
		return obs, nil
	}
	rn, err := a.C.RN(id)
	if err != nil {
		return obs, err
	}
	st := rn.Status()
	obs.Leader, obs.Term, obs.LastIndex = id, st.Term, st.LastIndex
	obs.Config, obs.ConfigIndex, obs.Joint = st.Config, st.ConfigIndex, st.JointState
	obs.Committed = st.ConfigIndex <= st.Commit
	if obs.Committed {
		obs.CommittedConfig, obs.CommittedIndex = st.Config, st.ConfigIndex
	} else if err := a.committedConfig(id, st.Commit, &obs); err != nil {
		return obs, err
	}
	obs.Members = map[string]MemberObs{}
	for m, pr := range st.Progress {
		// What a node of this cluster has appended is in its storage,
		// which a crash keeps: durable.
		obs.Members[m] = MemberObs{Match: pr.Match, Durable: true, Reachable: pr.RecentActive || m == id}
	}
	return obs, nil
}

func (a *ClusterAdmin) change(cc raftcore.ConfChange) error {
	rn, err := a.leader()
	if err != nil {
		return err
	}
	return mapErr(rn.ProposeConfChange(cc))
}

func mapErr(err error) error {
	if errors.Is(err, raftcore.ErrConfigIndexMismatch) {
		return fmt.Errorf("%w: %v", ErrConfigMoved, err)
	}
	return err
}

// AddLearner implements Admin.
func (a *ClusterAdmin) AddLearner(_ context.Context, id string, idx uint64) error {
	return a.change(raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: id, ExpectConfigIndex: idx})
}

// EnterJoint implements Admin.
func (a *ClusterAdmin) EnterJoint(_ context.Context, voters []string, idx uint64) error {
	return a.change(raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: voters, ExpectConfigIndex: idx})
}

// CommitNew implements Admin.
func (a *ClusterAdmin) CommitNew(_ context.Context, idx uint64) error {
	rn, err := a.leader()
	if err != nil {
		return err
	}
	st := rn.BasicStatus()
	if st.ConfigIndex != idx {
		return fmt.Errorf("%w: joint entry expected at %d, configuration index is %d", ErrConfigMoved, idx, st.ConfigIndex)
	}
	if st.Commit < idx {
		return ErrPending
	}
	return nil
}

// LeaveJoint implements Admin.
func (a *ClusterAdmin) LeaveJoint(_ context.Context, idx uint64) error {
	return a.change(raftcore.ConfChange{Op: raftcore.OpLeaveJoint, ExpectConfigIndex: idx})
}

// TransferLeader implements Admin.
func (a *ClusterAdmin) TransferLeader(_ context.Context, to string) error {
	rn, err := a.leader()
	if err != nil {
		return err
	}
	return rn.TransferLeader(to)
}

// RemoveMember implements Admin.
func (a *ClusterAdmin) RemoveMember(_ context.Context, id string, idx uint64) error {
	return a.change(raftcore.ConfChange{Op: raftcore.OpRemove, ID: id, ExpectConfigIndex: idx})
}

// ChangeVoters implements Admin.
func (a *ClusterAdmin) ChangeVoters(_ context.Context, voters []string, idx uint64) error {
	rn, err := a.leader()
	if err != nil {
		return err
	}
	st := rn.BasicStatus()
	target := raftcore.NewConfig(voters, learnersNotIn(st.Config.Learners, voters)...)
	return mapErr(rn.ProposeConfChange(raftcore.ConfChange{Op: raftcore.OpOneStep, Target: target, ExpectConfigIndex: idx}))
}

func learnersNotIn(learners, voters []string) []string {
	var out []string
	for _, l := range learners {
		if !slices.Contains(voters, l) {
			out = append(out, l)
		}
	}
	return out
}

// committedConfig finds the newest configuration entry at or below commit
// in the leader's log (or the snapshot's configuration).
func (a *ClusterAdmin) committedConfig(id string, commit uint64, obs *Observation) error {
	ents, _, err := a.C.LogOf(id)
	if err != nil {
		return err
	}
	snap, err := a.C.SnapshotOf(id)
	if err != nil {
		return err
	}
	obs.CommittedConfig, obs.CommittedIndex = snap.Meta.Config, snap.Meta.Index
	for _, e := range ents {
		if e.Index > commit {
			break
		}
		if e.Type == raftcore.EntryConfig {
			if c, err := raftcore.DecodeConfig(e.Data); err == nil {
				obs.CommittedConfig, obs.CommittedIndex = c, e.Index
			}
		}
	}
	return nil
}
