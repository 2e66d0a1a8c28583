package raftcore_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/raftlab/raftlab/internal/testseed"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// seedsFromEnv: RAFT_SEED=N replays one seed; RAFT_SEEDS=N runs N seeds
// (default 200, and 20 under -short; `make test` runs 2000) starting after
// RAFT_SEED_BASE (default 0).
func seedsFromEnv(t *testing.T) []uint64 { return testseed.FromEnv(t, "RAFT", 200, 20) }

// maxFailures is how many failing seeds a randomized test reports before it
// stops: RAFT_MAX_FAILURES (default 5). The mutation gate sets 1: it needs
// the first failing seed only.
func maxFailures(t *testing.T) int {
	s := os.Getenv("RAFT_MAX_FAILURES")
	if s == "" {
		return 5
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("RAFT_MAX_FAILURES=%q: want a positive integer", s)
	}
	return n
}

// TestRandomized drives in-memory clusters of 3 to 7 nodes through random
// partitions, crashes and restarts, pauses longer than an election timeout
// (a stopped process whose messages queue up), message loss, delay,
// duplication and reordering, compactions, leader transfers, membership
// changes and ReadIndex reads through every node, and checks the safety
// properties after every step (memcluster.Checker), reads included. A
// crash loses what the node wrote without an fsync (MustSync false), and in
// a third of the seeds a node may crash right after granting a vote. After
// the faults stop it checks that the cluster still makes progress.
func TestRandomized(t *testing.T) {
	seeds, limit := seedsFromEnv(t), maxFailures(t)
	failed := 0
	for _, seed := range seeds {
		if err := runRandomized(seed); err != nil {
			failed++
			t.Errorf("seed %d: %v\nreplay: RAFT_SEED=%d go test ./raftcore -run 'TestRandomized$' -v", seed, err, seed)
			if failed >= limit {
				t.Fatalf("stopping after %d failing seeds", failed)
			}
		}
	}
	t.Logf("%d seeds, %d with violations", len(seeds), failed)
}

func runRandomized(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 42))
	poolSize := 3 + rng.IntN(5) // 3..7
	var pool []string
	for i := 0; i < poolSize; i++ {
		pool = append(pool, fmt.Sprintf("n%d", i))
	}
	founders := pool[:3+rng.IntN(poolSize-2)]
	opts := memcluster.Options{
		ElectionTick: 10, HeartbeatTick: 1, Seed: seed,
		PreVote: rng.IntN(2) == 0, CheckQuorum: rng.IntN(2) == 0,
		MaxSizePerMsg: uint64(64 + rng.IntN(512)), MaxInflightMsgs: 1 + rng.IntN(8),
		// Crashes lose what was not fsynced, as on a real disk.
		LoseUnsynced: true,
	}
	c, err := memcluster.New(opts, founders...)
	if err != nil {
		return err
	}
	for _, id := range pool[len(founders):] {
		if err := c.AddNode(id, nil); err != nil {
			return err
		}
	}
	k := memcluster.NewChecker(c)
	pick := func(ids []string) string { return ids[rng.IntN(len(ids))] }
	// In a third of the seeds a node that has just granted its vote may
	// crash at once, before anything else it writes is synced: the worst
	// time to lose a vote that was not made durable.
	faults := true // off once the faults stop, for the liveness checks
	if rng.IntN(3) == 0 {
		crashRng := rand.New(rand.NewPCG(seed, 43))
		prev := c.OnReady
		c.OnReady = func(node string, rd raftcore.Ready) {
			prev(node, rd)
			for _, m := range rd.Messages {
				if faults && m.Type == raftcore.MsgVoteResp && !m.Reject && crashRng.IntN(2) == 0 {
					_ = c.Crash(node)
					return
				}
			}
		}
	}
	up := func() []string {
		var ids []string
		for _, id := range pool {
			if c.Node(id).Up() {
				ids = append(ids, id)
			}
		}
		return ids
	}
	// active: running and not paused, so able to take a call.
	active := func() []string {
		var ids []string
		for _, id := range up() {
			if !c.Node(id).Paused() {
				ids = append(ids, id)
			}
		}
		return ids
	}
	activeLeader := func() string {
		if lead := c.Leader(); lead != "" && !c.Node(lead).Paused() {
			return lead
		}
		return ""
	}
	// Read contexts are unique per node, as the checker needs. In half the
	// seeds they collide across nodes (every node counts from 1, as raft-kv
	// once did): the core must not rely on contexts to tell its heartbeat
	// rounds apart. In the other half they name their node, so that an
	// answer sent to the wrong node cannot go unseen.
	collide := rng.IntN(2) == 0
	readSeq := map[string]int{}
	read := func(id string) {
		readSeq[id]++
		ctx := []byte(strconv.Itoa(readSeq[id]))
		if !collide {
			ctx = []byte(id + "/" + string(ctx))
		}
		if err := k.ReadRequested(id, ctx); err != nil {
			panic(err)
		}
		_ = mustRN(c, id).ReadIndex(ctx)
	}
	// A paused node (SIGSTOP, a GC pause) resumes at resumeAt; the pause
	// is longer than an election timeout, so the others can move on.
	paused, resumeAt := "", 0
	wakeCtx := 0 // the counter of the read a paused leader was serving
	proposals := 0
	heavy := rng.IntN(3) == 0
	steps := 250 + rng.IntN(250)
	for step := 0; step < steps; step++ {
		r := rng.IntN(100)
		if heavy && r >= 66 {
			// Seeds heavy on reads and pauses: half the idle steps read,
			// a few more pause.
			switch {
			case r < 83:
				r = 50
			case r < 86:
				r = 65
			}
		}
		switch {
		case r < 25:
			if ids := active(); len(ids) > 0 {
				id := pick(ids)
				proposals++
				_ = mustRN(c, id).Propose([]byte(fmt.Sprintf("k%d=%d", rng.IntN(5), proposals)))
				k.AfterOp(id)
			}
		case r < 29:
			// Random partition into two or three groups.
			shuffled := slices.Clone(pool)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			cut1 := rng.IntN(len(shuffled))
			cut2 := cut1 + rng.IntN(len(shuffled)-cut1+1)
			c.Net.Partition(shuffled[:cut1], shuffled[cut1:cut2])
		case r < 32:
			c.Net.Heal()
		case r < 35:
			c.Net.SetFaults(raftcore.LinkFaults{
				Drop: rng.Float64() * 0.2, Duplicate: rng.Float64() * 0.1,
				Delay: rng.IntN(2), Jitter: rng.IntN(4),
			})
		case r < 38:
			if ids := up(); len(ids) > 1 {
				_ = c.Crash(pick(ids))
			}
		case r < 43:
			for _, id := range pool {
				if !c.Node(id).Up() {
					if err := c.Restart(id); err != nil {
						return err
					}
					break
				}
			}
		case r < 45:
			if ids := active(); len(ids) > 0 {
				_ = c.Compact(pick(ids))
			}
		case r < 47:
			if lead := activeLeader(); lead != "" {
				_ = mustRN(c, lead).TransferLeader(pick(pool))
				k.AfterOp(lead)
			}
		case r < 58:
			// Reads through any node: followers forward to the leader.
			if ids := active(); len(ids) > 0 {
				read(pick(ids))
			}
		case r < 64:
			if lead := activeLeader(); lead != "" {
				randomConfChange(rng, mustRN(c, lead), pool)
				k.AfterOp(lead)
			}
		case r < 66:
			// Pause the leader (or, less often, anyone) for one to three
			// election timeouts. A leader is mostly paused in the middle
			// of a read: a follower's read has reached it, its heartbeat
			// round went out and the answers are on their way back, to
			// wait for it while the others elect a new leader and commit.
			if paused == "" {
				id := activeLeader()
				if id == "" || rng.IntN(4) == 0 {
					if ids := active(); len(ids) > 0 {
						id = pick(ids)
					}
				}
				midRead := 0
				if id != "" && id == activeLeader() && rng.IntN(4) > 0 {
					var followers []string
					for _, f := range active() {
						if f != id {
							followers = append(followers, f)
						}
					}
					if len(followers) > 0 {
						f := pick(followers)
						read(f)
						midRead = readSeq[f]
						c.ProcessNode(f)
						c.Deliver()
						c.ProcessNode(id)
						c.Deliver()
						for _, f := range followers {
							c.ProcessNode(f)
						}
					}
				}
				if id != "" && c.Pause(id) == nil {
					paused, resumeAt = id, step+opts.ElectionTick*(1+rng.IntN(3))+rng.IntN(opts.ElectionTick)
					wakeCtx = midRead
				}
			}
		}
		if paused != "" && (step >= resumeAt || !c.Node(paused).Up()) {
			if c.Node(paused).Paused() {
				if err := c.Resume(paused); err != nil {
					return err
				}
				// Reads that reach the node as it wakes, before it has
				// handled what was queued for it: a stale leader must not
				// answer them from its old commit index. Where contexts
				// collide, the first takes the number of the read the
				// leader was serving when it paused, as per-node counters
				// do by chance.
				n := rng.IntN(4)
				if collide && wakeCtx > readSeq[paused] {
					readSeq[paused] = wakeCtx - 1
					n = max(n, 1)
				}
				for i := 0; i < n; i++ {
					read(paused)
				}
			}
			paused = ""
		}
		c.Tick()
		c.Flush(100)
		if len(k.Violations) > 0 {
			return fmt.Errorf("step %d: %v", step, k.Violations)
		}
		if step%50 == 49 {
			k.CheckLogMatching()
		}
	}
	k.CheckLogMatching()
	if len(k.Violations) > 0 {
		return fmt.Errorf("end: %v", k.Violations)
	}

	// Liveness once the faults stop: every node back, the network whole.
	faults = false
	if paused != "" && c.Node(paused).Paused() {
		if err := c.Resume(paused); err != nil {
			return err
		}
	}
	c.Net.Heal()
	if err := restartAll(c, pool); err != nil {
		return err
	}
	if err := commitOneMore(c); err != nil {
		var states []string
		for _, id := range pool {
			states = append(states, mustRN(c, id).BasicStatus().String())
		}
		return fmt.Errorf("no progress after healing: %v\n  %s", err, states)
	}
	// Reads too are live once the faults stop: a round of reads through
	// every member, each answered within a few heartbeat rounds. A leader
	// change drops the reads it held (the client retries), so a round may
	// be repeated while stale members still disrupt, within a bound.
	if err := finalReads(c, k, opts, readSeq); err != nil {
		return err
	}
	k.CheckLogMatching()
	if len(k.Violations) > 0 {
		return fmt.Errorf("after healing: %v", k.Violations)
	}
	return nil
}

// finalReads reads through every member of the leader's configuration (a
// removed node may never learn it was removed) until one round of reads is
// answered in full, for at most 40 rounds.
func finalReads(c *memcluster.Cluster, k *memcluster.Checker, opts memcluster.Options, readSeq map[string]int) error {
	type awaited struct{ node, ctx string }
	var missing []awaited
	for attempt := 0; attempt < 40; attempt++ {
		if err := c.TickUntil(10*opts.ElectionTick, func() bool { return c.Leader() != "" }); err != nil {
			return fmt.Errorf("no leader for the final reads: %v", err)
		}
		var round []awaited
		for _, id := range mustRN(c, c.Leader()).BasicStatus().Config.Members() {
			readSeq[id]++
			ctx := fmt.Sprintf("final/%s/%d", id, readSeq[id])
			if err := k.ReadRequested(id, []byte(ctx)); err != nil {
				return err
			}
			if mustRN(c, id).ReadIndex([]byte(ctx)) == nil {
				round = append(round, awaited{id, ctx})
			}
		}
		unanswered := func() []awaited {
			var out []awaited
			for _, a := range round {
				if !k.Answered(a.node, a.ctx) {
					out = append(out, a)
				}
			}
			return out
		}
		if c.TickUntil(5*opts.HeartbeatTick+5, func() bool { return len(unanswered()) == 0 }) == nil && len(round) > 0 {
			return nil
		}
		missing = unanswered()
	}
	var states []string
	for _, id := range c.IDs() {
		states = append(states, mustRN(c, id).BasicStatus().String())
	}
	return fmt.Errorf("reads not answered after healing, 40 rounds: last unanswered %v\n  %s", missing, states)
}

func mustRN(c *memcluster.Cluster, id string) *raftcore.RawNode {
	rn, err := c.RN(id)
	if err != nil {
		panic(err)
	}
	return rn
}

// randomConfChange asks the leader for one random membership step; the core
// refuses whatever is unsafe, which is part of what is exercised.
func randomConfChange(rng *rand.Rand, rn *raftcore.RawNode, pool []string) {
	s := rn.BasicStatus()
	var err error
	switch {
	case s.Config.IsJoint():
		err = rn.LeaveJoint()
	case rng.IntN(3) == 0:
		err = rn.AddLearner(pool[rng.IntN(len(pool))])
	case rng.IntN(4) == 0:
		err = rn.RemoveMember(pool[rng.IntN(len(pool))])
	case rng.IntN(3) == 0:
		// One-step change of one voter (or an attempt at more, refused).
		target := s.Config.Clone()
		id := pool[rng.IntN(len(pool))]
		if target.IsVoter(id) {
			target.Voters = slices.DeleteFunc(target.Voters, func(v string) bool { return v == id })
		} else {
			target.Voters = append(target.Voters, id)
			target.Learners = slices.DeleteFunc(target.Learners, func(v string) bool { return v == id })
		}
		err = rn.ChangeConfig(target)
	default:
		// Joint change to a random voter set drawn from the members.
		members := s.Config.Members()
		var voters []string
		for _, id := range members {
			if rng.IntN(3) > 0 {
				voters = append(voters, id)
			}
		}
		if len(voters) == 0 {
			voters = members[:1]
		}
		err = rn.EnterJoint(voters)
	}
	if err != nil && !isRefusal(err) {
		panic(fmt.Sprintf("unexpected error from a membership call: %v", err))
	}
}

func isRefusal(err error) bool {
	for _, e := range []error{raftcore.ErrNotLeader, raftcore.ErrChangeInFlight, raftcore.ErrNoCommitInTerm,
		raftcore.ErrMultiVoterOneStep, raftcore.ErrAlreadyJoint, raftcore.ErrNotJoint, raftcore.ErrInvalidConfig,
		raftcore.ErrProposalDropped} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// restartAll brings every crashed node of ids back.
func restartAll(c *memcluster.Cluster, ids []string) error {
	for _, id := range ids {
		if !c.Node(id).Up() {
			if err := c.Restart(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// commitOneMore is liveness after the faults: within 400 ticks a leader
// commits and applies a new entry of its own.
func commitOneMore(c *memcluster.Cluster) error {
	var target uint64
	return c.TickUntil(400, func() bool {
		lead := c.Leader()
		if lead == "" {
			return false
		}
		rn := mustRN(c, lead)
		if target == 0 || rn.BasicStatus().LastIndex < target {
			if rn.Propose([]byte("final=1")) == nil {
				target = rn.BasicStatus().LastIndex
			}
			return false
		}
		return rn.BasicStatus().Commit >= target && c.Node(lead).Applied >= target
	})
}
