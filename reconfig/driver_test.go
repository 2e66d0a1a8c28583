package reconfig

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/raftlab/raftlab/internal/testseed"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// tickClock is virtual time: 100 ms per cluster tick.
type tickClock struct{ ticks int }

func (c *tickClock) Now() time.Time { return t0.Add(time.Duration(c.ticks) * 100 * time.Millisecond) }

var pool = []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4", "kv-5", "kv-6"}

// driverPolicy fits a cluster with an election timeout of 1-2 s (10 ticks).
var driverPolicy = Policy{MaxLag: 5, Stabilization: time.Second, RateLimit: 2 * time.Second,
	FlapThreshold: 6, FlapWindow: 10 * time.Second, Retry: 300 * time.Millisecond, MaxRetry: 2 * time.Second}

// configStep checks one configuration change as it appears in a log: the
// invariants a history of configurations must keep, whoever made it.
func configStep(prev, next raftcore.Config) error {
	wasLearner := func(v string) bool { return slices.Contains(prev.Voters, v) || slices.Contains(prev.Learners, v) }
	switch {
	case next.IsJoint():
		if prev.IsJoint() {
			return fmt.Errorf("joint-consensus: %s follows the joint %s", next, prev)
		}
		if !slices.Equal(sorted(next.OutgoingVoters), sorted(prev.Voters)) {
			return fmt.Errorf("joint-consensus: %s does not keep C_old %s", next, prev)
		}
	case prev.IsJoint():
		if !slices.Equal(sorted(next.Voters), sorted(prev.Voters)) {
			return fmt.Errorf("joint-consensus: leaving %s for %s", prev, next)
		}
	default:
		if n := symmetricDiff(sorted(prev.Voters), sorted(next.Voters)); n > 1 {
			return fmt.Errorf("joint-consensus: %s -> %s changes %d voters in one step", prev, next, n)
		}
	}
	for _, v := range next.Voters {
		if !wasLearner(v) && !slices.Contains(prev.OutgoingVoters, v) {
			return fmt.Errorf("learners-never-vote: %s votes in %s without having been a learner in %s", v, next, prev)
		}
	}
	return nil
}

// checkHistory walks the configuration entries of id's log.
func checkHistory(c *memcluster.Cluster, id string, founding raftcore.Config) error {
	ents, _, err := c.LogOf(id)
	if err != nil {
		return err
	}
	prev := founding
	first := true
	for _, e := range ents {
		if e.Type != raftcore.EntryConfig {
			continue
		}
		cfg, err := raftcore.DecodeConfig(e.Data)
		if err != nil {
			return err
		}
		if first {
			first = false
			if e.Index == 1 {
				prev = cfg
				continue
			}
		}
		if err := configStep(prev, cfg); err != nil {
			return fmt.Errorf("%s entry %d: %w", id, e.Index, err)
		}
		prev = cfg
	}
	return nil
}

type driverRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	c       *memcluster.Cluster
	k       *memcluster.Checker
	clock   *tickClock
	admin   *ClusterAdmin
	d       *Driver
	target  []string
	crashed map[string]bool
	steps   int
	maxIdx  uint64
}

func (r *driverRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d: %s\nreplay: RECONFIG_SEED=%d go test ./reconfig -run 'TestDriverRandomized$' -v", r.seed, fmt.Sprintf(format, args...), r.seed)
}

func (r *driverRun) newDriver() {
	r.d = &Driver{Admin: r.admin, Mode: Safe, Policy: driverPolicy, Desired: r.target, Clock: r.clock,
		OnEvent: func(e Event) {
			if e.Kind != EventStepStarted {
				return
			}
			s := e.Decision.Step
			// config-index-increases, across driver restarts: no step
			// expects a configuration older than one seen committed.
			if s.ConfigIndex < r.maxIdx {
				r.fatalf("step %s expects configuration index %d after %d was seen committed", s, s.ConfigIndex, r.maxIdx)
			}
			r.maxIdx = max(r.maxIdx, e.Obs.CommittedConfigIndex())
			r.steps++
			// promote-only-caught-up-and-durable, checked on the observation
			// the step was decided on.
			if s.Op == OpEnterJoint {
				for _, v := range s.Voters {
					if slices.Contains(e.Obs.Config.Voters, v) {
						continue
					}
					m := e.Obs.Members[v]
					if !m.Durable || !m.Reachable || e.Obs.LastIndex > m.Match+driverPolicy.MaxLag {
						r.fatalf("%s promotes %s with match %d of %d (reachable %v)", s, v, m.Match, e.Obs.LastIndex, m.Reachable)
					}
				}
			}
			if s.Op == OpLeaveJoint && !slices.Contains(e.Obs.Config.Voters, e.Obs.Leader) {
				r.fatalf("%s while the leader %s leaves", s, e.Obs.Leader)
			}
		}}
}

func (r *driverRun) randomTarget() []string {
	n := 1 + r.rng.IntN(5)
	perm := r.rng.Perm(len(pool))
	var out []string
	for _, i := range perm[:n] {
		out = append(out, pool[i])
	}
	return sorted(out)
}

func (r *driverRun) tick() {
	if err := r.c.RunTicks(1); err != nil {
		r.fatalf("%v", err)
	}
	r.clock.ticks++
}

// TestDriverRandomized runs the safe driver against in-memory clusters with
// random partitions, crashes, restarts, target changes and driver restarts
// (an operator restart): the checker's safety properties and the
// configuration-history invariants hold at every step, and once the faults
// stop every run reaches its last target. RECONFIG_SEEDS sets the number of
// seeds, RECONFIG_SEED replays one.
func TestDriverRandomized(t *testing.T) {
	seeds := testseed.FromEnv(t, "RECONFIG", 60, 15)
	totalSteps, restarts := 0, 0
	for _, seed := range seeds {
		r := &driverRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 7)), clock: &tickClock{}, crashed: map[string]bool{}}
		c, err := memcluster.New(memcluster.Options{ElectionTick: 10, HeartbeatTick: 1, PreVote: true, CheckQuorum: true, Seed: seed}, pool[:3]...)
		if err != nil {
			t.Fatal(err)
		}
		r.c, r.k = c, memcluster.NewChecker(c)
		founding := raftcore.NewConfig(pool[:3])
		for _, id := range pool[3:] {
			if err := c.AddNode(id, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.ElectLeader("kv-0"); err != nil {
			t.Fatal(err)
		}
		r.admin = &ClusterAdmin{C: c, Now: r.clock.Now}
		r.target = r.randomTarget()
		r.newDriver()
		ctx := context.Background()
		// Faults.
		for i := 0; i < 400; i++ {
			switch x := r.rng.IntN(100); {
			case x < 3:
				ids := slices.Clone(pool)
				r.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
				cut := 1 + r.rng.IntN(len(ids)-1)
				c.Net.Partition(ids[:cut], ids[cut:])
			case x < 6:
				c.Net.Heal()
			case x < 8:
				id := pool[r.rng.IntN(len(pool))]
				if !r.crashed[id] {
					c.Crash(id)
					r.crashed[id] = true
				}
			case x < 11:
				for id := range r.crashed {
					c.Restart(id)
					delete(r.crashed, id)
					break
				}
			case x < 13:
				r.target = r.randomTarget()
				r.d.Desired = r.target
			case x < 15:
				r.newDriver() // an operator restart: all driver memory lost
				restarts++
			case x < 40:
				if lead := c.Leader(); lead != "" {
					if rn, err := c.RN(lead); err == nil {
						rn.Propose(fmt.Appendf(nil, "k%d=%d", r.rng.IntN(5), i))
					}
				}
			}
			r.tick()
			if i%3 == 0 {
				r.d.Step(ctx)
			}
			if len(r.k.Violations) > 0 {
				r.fatalf("safety: %v", r.k.Violations)
			}
		}
		// Faults stop: heal, restart, and the driver must converge.
		c.Net.Heal()
		for id := range r.crashed {
			c.Restart(id)
		}
		done := false
		var last Decision
		for i := 0; i < 4000 && !done; i++ {
			r.tick()
			if i%3 == 0 {
				last = r.d.Step(ctx)
				done = last.Kind == Done
			}
		}
		if !done {
			obs, _ := r.admin.Observe(ctx)
			r.fatalf("did not converge to %v: leader %q config %s (index %d, committed %v); last decision: %v; members %+v", r.target, obs.Leader, obs.Config, obs.ConfigIndex, obs.Committed, last, obs.Members)
		}
		for _, id := range pool {
			if err := checkHistory(c, id, founding); err != nil {
				r.fatalf("%v", err)
			}
		}
		r.k.CheckLogMatching()
		if len(r.k.Violations) > 0 {
			r.fatalf("safety: %v", r.k.Violations)
		}
		totalSteps += r.steps
	}
	t.Logf("%d seeds, %d steps carried out, %d driver restarts, 0 violations", len(seeds), totalSteps, restarts)
}
