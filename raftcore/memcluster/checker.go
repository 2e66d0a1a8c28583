package memcluster

import (
	"fmt"
	"maps"
	"slices"

	"github.com/raftlab/raftlab/raftcore"
)

// Checker watches a Cluster and records every violation of the Raft safety
// properties (Raft paper, Figure 3) it sees:
//   - election safety: at most one leader per term;
//   - log matching: two logs with an entry of the same index and term hold
//     the same entry, and are identical up to it;
//   - leader completeness: a new leader holds every entry applied anywhere;
//   - state machine safety: no two nodes apply different entries at one index;
//   - a leader commits by counting replicas only an entry of its own term
//     (Raft paper §5.4.2, Figure 8);
//   - and for membership: no election or commit counted a learner, checked by
//     recounting with a naive majority over the configuration's voters only;
//   - one vote per term: no node grants its vote (MsgVoteResp) to two
//     candidates in one term, across crashes and restarts (Figure 2: votedFor
//     is persistent state);
//   - term and vote are synced before the node sends anything that
//     depends on them (a Ready that changes them says MustSync);
//   - a node's configuration is the last in its log (or its snapshot's),
//     from the moment it is appended (thesis §4.1);
//   - a removed leader steps down: a leader outside the voters of its
//     committed, non-joint configuration does not stay leader (thesis
//     §4.2.2);
//   - linearizable reads: every ReadState is at or above the index of every
//     entry committed, by any leader, before the read was requested (thesis
//     §6.4), and reaches only the node that asked for it.
//
// Install it before the cluster runs; call AfterOp after any call that may
// change a leader's commit index outside of message delivery (proposals,
// membership changes), ReadRequested before each ReadIndex call, and
// CheckLogMatching whenever a full check is wanted.
type Checker struct {
	c          *Cluster
	Violations []string
	leaders    map[uint64]string     // term -> leader
	entries    map[[2]uint64]string  // (index, term) -> entry text
	applied    map[uint64]appliedRec // index -> what was applied there
	commitSeen map[string][2]uint64  // node -> (term, commit) last checked
	// maxCommit is the highest commit index any node has reached: every
	// entry up to it is committed.
	maxCommit uint64
	// reads: node -> request context -> the least index its ReadState may
	// carry. Kept after the answer, so that a duplicated answer is checked
	// too; contexts must therefore be unique per node (not across nodes).
	reads map[string]map[string]*readRec
	// votes: (node, term) -> the candidate it granted its vote to.
	votes map[voteKey]string
	// written and synced: per node, the last HardState its Readys handed
	// to storage, and the last one a Ready with MustSync covered.
	written, synced map[string]raftcore.HardState
}

type voteKey struct {
	node string
	term uint64
}

// readRec is one read request: the least index its answer may carry, and
// whether it was answered.
type readRec struct {
	least    uint64
	answered bool
}

type appliedRec struct {
	term uint64
	data string
	by   string
}

// NewChecker installs a checker's hooks on c (chaining existing hooks).
func NewChecker(c *Cluster) *Checker {
	k := &Checker{c: c, leaders: map[uint64]string{}, entries: map[[2]uint64]string{},
		applied: map[uint64]appliedRec{}, commitSeen: map[string][2]uint64{},
		reads: map[string]map[string]*readRec{}, votes: map[voteKey]string{},
		written: map[string]raftcore.HardState{}, synced: map[string]raftcore.HardState{}}
	prevApply, prevReady, prevStep := c.OnApply, c.OnReady, c.OnStep
	c.OnApply = func(node string, e raftcore.Entry) {
		k.onApply(node, e)
		if prevApply != nil {
			prevApply(node, e)
		}
	}
	c.OnReady = func(node string, rd raftcore.Ready) {
		k.onReady(node, rd)
		if prevReady != nil {
			prevReady(node, rd)
		}
	}
	c.OnStep = func(node string) {
		k.AfterOp(node)
		if prevStep != nil {
			prevStep(node)
		}
	}
	return k
}

func (k *Checker) violate(format string, args ...any) {
	if len(k.Violations) < 20 {
		k.Violations = append(k.Violations, fmt.Sprintf(format, args...))
	}
}

// entryText identifies an entry's content (not its position) in one text form.
func entryText(e raftcore.Entry) string {
	if e.Type == raftcore.EntryConfig {
		if c, err := raftcore.DecodeConfig(e.Data); err == nil {
			return "config " + c.String()
		}
	}
	return e.Type.String() + ":" + string(e.Data)
}

func (k *Checker) onApply(node string, e raftcore.Entry) {
	k.maxCommit = max(k.maxCommit, e.Index)
	if prev, ok := k.applied[e.Index]; ok {
		if prev.term != e.Term || prev.data != entryText(e) {
			k.violate("state machine safety: %s applied %s at index %d, %s applied term %d %q",
				node, e, e.Index, prev.by, prev.term, prev.data)
		}
		return
	}
	k.applied[e.Index] = appliedRec{term: e.Term, data: entryText(e), by: node}
}

// ReadRequested records that node is about to call ReadIndex(ctx): the
// answer must be at or above every index committed so far. ctx must be new
// for this node: the checker matches answers by (node, ctx).
func (k *Checker) ReadRequested(node string, ctx []byte) error {
	k.refreshCommit()
	if k.reads[node] == nil {
		k.reads[node] = map[string]*readRec{}
	}
	if _, dup := k.reads[node][string(ctx)]; dup {
		return fmt.Errorf("memcluster: %s reused read context %q: the checker needs contexts unique per node", node, ctx)
	}
	k.reads[node][string(ctx)] = &readRec{least: k.maxCommit}
	return nil
}

// refreshCommit raises maxCommit to every running node's commit index.
func (k *Checker) refreshCommit() {
	for _, id := range k.c.IDs() {
		if n := k.c.nodes[id]; n.RN != nil {
			k.maxCommit = max(k.maxCommit, n.RN.BasicStatus().Commit)
		}
	}
}

func (k *Checker) checkReads(node string, rss []raftcore.ReadState) {
	for _, rs := range rss {
		rec, ok := k.reads[node][string(rs.RequestCtx)]
		switch {
		case !ok:
			k.violate("read answered to the wrong node: %s got a ReadState for %q at index %d, which it never requested", node, rs.RequestCtx, rs.Index)
		case rs.Index < rec.least:
			k.violate("stale read: %s's read %q was released at index %d, but index %d was committed before it was requested", node, rs.RequestCtx, rs.Index, rec.least)
		}
		if ok {
			rec.answered = true
		}
	}
}

func (k *Checker) onReady(node string, rd raftcore.Ready) {
	// A commit index a node learns is committed, even if the node crashes
	// before anyone else learns it.
	k.maxCommit = max(k.maxCommit, rd.HardState.Commit)
	k.checkReads(node, rd.ReadStates)
	k.checkVotes(node, rd.Messages)
	k.checkSynced(node, rd)
	if len(rd.Entries) > 0 || !rd.Snapshot.IsEmpty() {
		k.checkConfigFromLog(node)
	}
	for _, e := range rd.Entries {
		key := [2]uint64{e.Index, e.Term}
		if prev, ok := k.entries[key]; ok && prev != entryText(e) {
			k.violate("log matching: %s holds %s, another node holds %q at the same index and term", node, e, prev)
		} else if !ok {
			k.entries[key] = entryText(e)
		}
	}
	if rd.SoftState != nil && rd.SoftState.State == raftcore.StateLeader {
		k.onElected(node)
	}
	k.AfterOp(node)
}

// checkVotes records the votes granted in a Ready's messages: a second
// grant to another candidate in the same term is a violation, whatever
// happened to the node in between (a restart must not forget its vote).
func (k *Checker) checkVotes(node string, msgs []raftcore.Message) {
	for _, m := range msgs {
		if m.Type != raftcore.MsgVoteResp || m.Reject {
			continue
		}
		key := voteKey{node, m.Term}
		if prev, ok := k.votes[key]; ok && prev != m.To {
			k.violate("double vote: %s granted its term-%d vote to %s and to %s", node, m.Term, prev, m.To)
			continue
		}
		k.votes[key] = m.To
	}
}

// checkSynced: term and vote are persistent state, on stable storage
// before the node answers anyone (Raft paper, Figure 2). A Ready that
// changes them must say MustSync, or a server that skips the fsync of an
// unsynced Ready (as it may) sends a vote it can lose in a crash.
func (k *Checker) checkSynced(node string, rd raftcore.Ready) {
	if !rd.HardState.IsEmpty() {
		k.written[node] = rd.HardState
	}
	if rd.MustSync || !rd.Snapshot.IsEmpty() {
		k.synced[node] = k.written[node]
	}
	w, s := k.written[node], k.synced[node]
	if len(rd.Messages) > 0 && (w.Term != s.Term || w.Vote != s.Vote) {
		k.violate("unsynced hard state: %s sends messages at term %d, vote %q, but only term %d, vote %q were synced (MustSync false)",
			node, w.Term, w.Vote, s.Term, s.Vote)
	}
}

// checkConfigFromLog: a node's configuration is the last one in its log,
// from the moment it is appended (thesis §4.1), and that of its snapshot
// when no configuration entry follows it; a truncation that removes the
// entry reverts it. Checked once everything the node holds is persisted
// (a leader's proposals wait for the next Ready), and not for nodes started
// with an unsafe start-up membership, which ignore their log on purpose.
func (k *Checker) checkConfigFromLog(node string) {
	n := k.c.nodes[node]
	if n == nil || n.RN == nil || n.Startup != nil {
		return
	}
	s := n.RN.BasicStatus()
	if last, err := n.Storage.LastIndex(); err != nil || last != s.LastIndex {
		return
	}
	ents, _, err := k.c.LogOf(node)
	if err != nil {
		return
	}
	var want raftcore.Config
	found := false
	for i := len(ents) - 1; i >= 0 && !found; i-- {
		if ents[i].Type == raftcore.EntryConfig {
			if cfg, err := raftcore.DecodeConfig(ents[i].Data); err == nil {
				want, found = cfg, true
			}
		}
	}
	if !found {
		snap, err := n.Storage.Snapshot()
		if err != nil || snap.IsEmpty() {
			return
		}
		want = snap.Meta.Config
	}
	if !s.Config.Equal(want) {
		k.violate("configuration: %s runs with %s, but the last configuration in its log and snapshot is %s", node, s.Config, want)
	}
}

func (k *Checker) onElected(node string) {
	rn := k.c.nodes[node].RN
	s := rn.BasicStatus()
	if other, ok := k.leaders[s.Term]; ok && other != node {
		k.violate("election safety: %s and %s both lead term %d", other, node, s.Term)
	}
	k.leaders[s.Term] = node
	rec := rn.LastElection()
	if rec.Term == s.Term {
		for _, id := range rec.Granted {
			if !rec.Config.IsVoter(id) {
				k.violate("learner counted: %s won term %d counting %s, not a voter of %s", node, s.Term, id, rec.Config)
			}
		}
		if !naiveMajority(rec.Config.Voters, rec.Granted) || !naiveMajority(rec.Config.OutgoingVoters, rec.Granted) {
			k.violate("election without quorum: %s won term %d with %v in %s", node, s.Term, rec.Granted, rec.Config)
		}
	}
	// Leader completeness: every entry applied anywhere is in the new log.
	ents, snapIndex, err := k.c.LogOf(node)
	if err != nil {
		k.violate("reading %s's log: %v", node, err)
		return
	}
	// In index order, so that the report is the same on every run.
	for _, idx := range slices.Sorted(maps.Keys(k.applied)) {
		rec := k.applied[idx]
		if idx <= snapIndex {
			continue
		}
		off := idx - snapIndex - 1
		if off >= uint64(len(ents)) || ents[off].Term != rec.term || entryText(ents[off]) != rec.data {
			k.violate("leader completeness: %s leads term %d without the entry applied at %d (term %d %q)",
				node, s.Term, idx, rec.term, rec.data)
		}
	}
}

// naiveMajority reports whether more than half of voters are in granted; an
// empty voter set has no say. Deliberately simple: it re-derives what the
// quorum package computes.
func naiveMajority(voters, granted []string) bool {
	if len(voters) == 0 {
		return true
	}
	n := 0
	for _, v := range voters {
		if slices.Contains(granted, v) {
			n++
		}
	}
	return 2*n > len(voters)
}

// AfterOp checks a leader whose commit index moved: a majority of the voters
// of its configuration (each half, learners excluded) must hold the entry.
func (k *Checker) AfterOp(node string) {
	n := k.c.nodes[node]
	if n == nil || n.RN == nil {
		return
	}
	s := n.RN.BasicStatus()
	k.maxCommit = max(k.maxCommit, s.Commit)
	if s.State == raftcore.StateLeader && !s.Config.IsJoint() && !s.Config.IsVoter(node) && s.ConfigIndex <= s.Commit {
		k.violate("removed leader: %s still leads term %d after committing %s at %d, which removed it", node, s.Term, s.Config, s.ConfigIndex)
	}
	seen := k.commitSeen[node]
	k.commitSeen[node] = [2]uint64{s.Term, s.Commit}
	if s.State != raftcore.StateLeader || (seen[0] == s.Term && seen[1] >= s.Commit) {
		return
	}
	if seen[0] != s.Term {
		// Newly elected: the commit index it brings is not its own decision.
		return
	}
	full := n.RN.Status()
	var holders []string
	for id, pr := range full.Progress {
		if pr.Match >= s.Commit && !pr.IsLearner {
			holders = append(holders, id)
		}
	}
	slices.Sort(holders)
	if !naiveMajority(s.Config.Voters, holders) || !naiveMajority(s.Config.OutgoingVoters, holders) {
		k.violate("commit without quorum: %s committed %d in term %d held by %v in %s", node, s.Commit, s.Term, holders, s.Config)
	}
	// A leader commits by counting replicas only an entry of its own term;
	// earlier entries are committed with it (Raft paper §5.4.2, Figure 8).
	// Entries not yet in storage (a lone voter commits what it appends)
	// cannot be looked up, and are of its term anyway.
	if t, err := n.Storage.Term(s.Commit); err == nil && t != s.Term {
		k.violate("commit of an earlier term: %s, leader of term %d, counted replicas to commit %d of term %d", node, s.Term, s.Commit, t)
	}
}

// CheckLogMatching compares every pair of persisted logs: where two logs
// hold an entry with the same index and term, all entries up to it are equal.
func (k *Checker) CheckLogMatching() {
	ids := k.c.IDs()
	logs := map[string][]raftcore.Entry{}
	snaps := map[string]uint64{}
	for _, id := range ids {
		ents, si, err := k.c.LogOf(id)
		if err != nil {
			k.violate("reading %s's log: %v", id, err)
			return
		}
		logs[id], snaps[id] = ents, si
	}
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			la, lb := logs[a], logs[b]
			lo := max(snaps[a], snaps[b]) + 1
			// Find the highest common (index, term), then compare below it.
			hi := uint64(0)
			for idx := min(snaps[a]+uint64(len(la)), snaps[b]+uint64(len(lb))); idx >= lo && idx > 0; idx-- {
				if la[idx-snaps[a]-1].Term == lb[idx-snaps[b]-1].Term {
					hi = idx
					break
				}
			}
			for idx := lo; idx <= hi; idx++ {
				ea, eb := la[idx-snaps[a]-1], lb[idx-snaps[b]-1]
				if ea.Term != eb.Term || entryText(ea) != entryText(eb) {
					k.violate("log matching: %s and %s agree at %d/%d but differ at %d (%s vs %s)",
						a, b, hi, la[hi-snaps[a]-1].Term, idx, ea, eb)
					break
				}
			}
		}
	}
}

// Answered reports whether node's read ctx has had its ReadState.
func (k *Checker) Answered(node, ctx string) bool {
	rec, ok := k.reads[node][ctx]
	return ok && rec.answered
}

// Leaders returns term -> leader for every election seen.
func (k *Checker) Leaders() map[uint64]string { return k.leaders }
