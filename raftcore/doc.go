// Package raftcore is a Raft consensus core with explicit joint consensus,
// learners and leadership transfer, written as a pure state machine: no
// goroutines, clocks, sockets or files. The caller owns all of those; the
// same core is driven by raftlab's server, its deterministic simulator and
// its tests (memcluster).
//
// # What it implements
//
//   - Leader election with the log up-to-date restriction and randomized
//     timeouts (Raft paper §5.2, §5.4.1), PreVote (thesis §9.6) and
//     CheckQuorum (thesis §6.2).
//   - Log replication with conflict repair (§5.3), pipelining and flow
//     control (a window of in-flight appends per follower), probing of a
//     lagging follower, and a no-op at the start of every term.
//   - Commit by counting replicas only for entries of the current term
//     (§5.4.2, Figure 8).
//   - Snapshots: the application snapshots and compacts its storage; a
//     follower too far behind receives InstallSnapshot.
//   - Linearizable reads through ReadIndex (thesis §6.4). The leader numbers
//     its heartbeat rounds within its term and records the highest round
//     each member acknowledged; a read, stamped with the commit index and
//     the first round sent after it arrived, is released once a quorum of
//     the voters (each half of a joint configuration) acknowledged that
//     round or a later one. A delayed answer to an earlier round never
//     releases a later read, whatever the read contexts are, and periodic
//     heartbeats are rounds too, so a read whose own round was lost is
//     released by the next one. The request context only comes back in the
//     ReadState, for the caller to match: make it unique across nodes and
//     restarts (raft-kv uses node id, boot nonce and a counter). Followers
//     forward reads, proposals and transfer requests to the leader with
//     their originator as From: the answer goes to the node that asked.
//   - Leadership transfer with TimeoutNow to a caught-up voter (thesis §3.10).
//   - Membership carried only in log entries, in effect on append (§6):
//     Config{Voters, OutgoingVoters, Learners}; AddLearner, EnterJoint
//     (C_old,new), LeaveJoint (C_new), one-step changes of at most one voter
//     (thesis §4.1). The joint state (none, entering, committed, leaving) and
//     the configuration index are in Status. Unsafe calls are refused with
//     typed errors: ErrChangeInFlight, ErrNoCommitInTerm,
//     ErrMultiVoterOneStep, ErrTransferToNonVoter, ErrAlreadyJoint,
//     ErrNotJoint, ErrConfigIndexMismatch (compare-and-set on ConfChange).
//   - Learners replicate, never campaign and are never counted in a quorum.
//     Every node answers vote requests; only the candidate's configuration
//     decides whose votes count.
//   - A leader outside C_new leads until C_new commits, then steps down
//     (thesis §4.2.2); removed members receive C_new before they are dropped.
//   - The unsafe options of docs/BUGS.md, off by default:
//     Options.UnsafeStartupMembership (early vote) and
//     Options.UnsafeAllowMultiVoterOneStep (no joint consensus).
//
// # The caller's duties
//
// A RawNode is not safe for concurrent use: serialize every call. Call Tick
// at a fixed interval (the election timeout is ElectionTick ticks). Feed
// every message from a peer to Step. Then, whenever HasReady:
//
//  1. persist rd.HardState, rd.Entries (replacing any conflicting suffix) and
//     rd.Snapshot, with one fsync if rd.MustSync;
//  2. only then send rd.Messages (they may promise what was just persisted);
//  3. apply rd.Snapshot, then rd.CommittedEntries, to the state machine;
//     config entries (EntryConfig, DecodeConfig) are applied like any other,
//     the core has already acted on them; answer a ReadState once the
//     applied index reaches its Index;
//  4. call Advance(rd).
//
// Nothing that Ready asks to persist may be acknowledged to a client or
// another node before it is durable. Periodically snapshot the state machine
// and compact storage (MemoryStorage.CreateSnapshot and Compact).
//
// # A sample loop
//
//	for {
//		select {
//		case <-ticker.C:
//			rn.Tick()
//		case m := <-fromPeers:
//			_ = rn.Step(m) // malformed messages are refused and counted
//		case p := <-proposals:
//			_ = rn.Propose(p)
//		}
//		for rn.HasReady() {
//			rd := rn.Ready()
//			if !rd.Snapshot.IsEmpty() {
//				storage.ApplySnapshot(rd.Snapshot)
//			}
//			storage.Append(rd.Entries)
//			if !rd.HardState.IsEmpty() {
//				storage.SetHardState(rd.HardState)
//			}
//			sync(rd.MustSync)
//			transport.Send(rd.Messages)
//			apply(rd.Snapshot, rd.CommittedEntries, rd.ReadStates)
//			rn.Advance(rd)
//		}
//	}
//
// Package memcluster runs this loop for a whole cluster in one goroutine
// with a virtual clock; see the package example.
//
// # Text forms
//
// A configuration prints as voters=(kv-0 kv-1 kv-2)&&(kv-0 kv-1)
// learners=(kv-3), an entry as 2/5 "k=v", a status as
// kv-0 leader term=2 lead=kv-0 commit=5 ... joint=none@1; logs, golden test
// files and results all use these.
package raftcore
