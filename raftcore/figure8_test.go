package raftcore_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// TestRandomizedFigure8 drives five nodes through the schedules of the Raft
// paper's Figure 8: leaders that crash in the middle of replicating (the
// network delivers a round or two between steps, never to quiescence as
// TestRandomized does), on a lossy, reordering network with one entry per
// append, so that entries of old terms sit on a majority while the newer
// leader's own entries do not, and a node with a later, conflicting entry
// may be elected next. These are the states in which a leader that commits
// an entry of an earlier term by counting replicas (§5.4.2) does so: the
// checker's Figure 2 rule (a leader's commit index moves only to an entry of
// its term) sees it at once, and its end-to-end properties (state machine
// safety, leader completeness) see any overwrite that follows. Crashes lose
// what was not fsynced. RAFT_SEEDS and RAFT_SEED select the seeds, as for
// TestRandomized.
func TestRandomizedFigure8(t *testing.T) {
	seeds, limit := seedsFromEnv(t), maxFailures(t)
	failed := 0
	for _, seed := range seeds {
		if err := runFigure8(seed); err != nil {
			failed++
			t.Errorf("seed %d: %v\nreplay: RAFT_SEED=%d go test ./raftcore -run 'TestRandomizedFigure8$' -v", seed, err, seed)
			if failed >= limit {
				t.Fatalf("stopping after %d failing seeds", failed)
			}
		}
	}
	t.Logf("%d seeds, %d with violations", len(seeds), failed)
}

func runFigure8(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 8))
	ids := []string{"n0", "n1", "n2", "n3", "n4"}
	opts := memcluster.Options{
		ElectionTick: 10, HeartbeatTick: 1, Seed: seed, PreVote: rng.IntN(2) == 0,
		MaxSizePerMsg: 1, MaxInflightMsgs: 1 + rng.IntN(4), LoseUnsynced: true,
	}
	c, err := memcluster.New(opts, ids...)
	if err != nil {
		return err
	}
	k := memcluster.NewChecker(c)
	c.Net.SetFaults(raftcore.LinkFaults{Drop: 0.05 + rng.Float64()*0.2, Duplicate: rng.Float64() * 0.2, Delay: rng.IntN(2), Jitter: 1 + rng.IntN(8)})
	var up, down []string
	refresh := func() {
		up, down = up[:0], down[:0]
		for _, id := range ids {
			if c.Node(id).Up() {
				up = append(up, id)
			} else {
				down = append(down, id)
			}
		}
	}
	proposals := 0
	for step := 0; step < 600; step++ {
		refresh()
		lead := c.Leader()
		switch r := rng.IntN(100); {
		case r < 30:
			if lead != "" {
				for i := 0; i <= rng.IntN(3); i++ {
					proposals++
					_ = mustRN(c, lead).Propose([]byte(fmt.Sprintf("k%d=%d", rng.IntN(3), proposals)))
				}
				k.AfterOp(lead)
			}
		case r < 36:
			// The leader dies while its entries are on their way.
			if lead != "" && len(up) > 1 {
				_ = c.Crash(lead)
			}
		case r < 40:
			if len(up) > 3 {
				_ = c.Crash(up[rng.IntN(len(up))])
			}
		case r < 52:
			if len(down) > 0 {
				if err := c.Restart(down[rng.IntN(len(down))]); err != nil {
					return err
				}
			}
		case r < 56:
			shuffled := slices.Clone(ids)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			cut := 1 + rng.IntN(len(shuffled)-1)
			c.Net.Partition(shuffled[:cut], shuffled[cut:])
		case r < 62:
			c.Net.Heal()
		}
		c.Tick()
		// A round or two of work, not quiescence: a crash can fall
		// anywhere in a leader's replication.
		for i := 0; i <= rng.IntN(2); i++ {
			c.Process()
			c.Deliver()
		}
		if len(k.Violations) > 0 {
			return fmt.Errorf("step %d: %v", step, k.Violations)
		}
	}
	k.CheckLogMatching()
	if len(k.Violations) > 0 {
		return fmt.Errorf("end: %v", k.Violations)
	}
	// Liveness once the faults stop.
	c.Net.Heal()
	c.Net.SetFaults(raftcore.LinkFaults{})
	if err := restartAll(c, ids); err != nil {
		return err
	}
	if err := commitOneMore(c); err != nil {
		return fmt.Errorf("no progress after healing: %v", err)
	}
	k.CheckLogMatching()
	if len(k.Violations) > 0 {
		return fmt.Errorf("after healing: %v", k.Violations)
	}
	return nil
}
