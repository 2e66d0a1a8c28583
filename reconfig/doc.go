// Package reconfig decides membership changes of a Raft cluster, one step at
// a time, under named safety invariants. It is shared by the runner's
// simulator, the local-process backend and the Kubernetes operator.
//
// Decide is a pure function: given an Observation of the cluster (leader,
// members with their durable match index and reachability, the latest and
// the committed configuration with their indexes, the joint state), the
// desired voters, the safety mode, the policy, the recent leader changes,
// the end of the last change and the time, it returns the next single Step
// with its reason, or Wait (why and until when), or Blocked with the
// Invariant that forbids going on, or Done.
//
// In Safe mode every change goes through learners and one joint change
// (Raft thesis §4.3): AddLearner for each new member, a wait until each is
// caught up (durable match within Policy.MaxLag of the leader's last index,
// continuously for Policy.Stabilization, as Consul autopilot does),
// EnterJoint, CommitNew (the joint entry's commit), TransferLeader if the
// leader is leaving, LeaveJoint, then RemoveMember for learners that are not
// wanted. Scale-out, scale-in, replacement and several members at once are
// all one joint change. The unsafe modes of docs/BUGS.md
// (UnsafeEarlyVote, UnsafeNoJoint) plan the shortcut and list the
// invariants they waive.
//
// The invariants (AllInvariants) are checked on every step by Check; a
// step that breaks one is not returned. Every step carries the
// configuration index it expects, so an Admin call that is retried, or made
// on a stale observation, fails with ErrConfigMoved instead of applying
// twice.
//
// Driver loops observe, decide, act against an Admin with an injected
// Clock, retries failed steps with exponential backoff, re-observes after an
// unknown outcome instead of repeating, and emits Events. ClusterAdmin is
// the Admin of an in-process raftcore cluster; the raft-kv admin HTTP API
// gets its own Admin with the kvserver.
package reconfig
