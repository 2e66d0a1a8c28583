package reconfig_test

import (
	"context"
	"fmt"
	"time"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
	"github.com/raftlab/raftlab/reconfig"
)

// ExampleDecide asks the pure decision function for the next step of a
// 3 -> 5 scale-out, on observations written by hand (no cluster).
func ExampleDecide() {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	founders := []string{"kv-0", "kv-1", "kv-2"}
	desired := []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"}
	caughtUp := reconfig.MemberObs{Match: 100, Durable: true, Reachable: true}
	members := map[string]reconfig.MemberObs{"kv-0": caughtUp, "kv-1": caughtUp, "kv-2": caughtUp}
	obs := reconfig.Observation{At: t0, Leader: "kv-0", Term: 2, LastIndex: 100,
		Config: raftcore.NewConfig(founders), ConfigIndex: 1, Committed: true, Members: members}
	in := reconfig.Input{Obs: obs, Desired: desired, Mode: reconfig.Safe, Policy: reconfig.DefaultPolicy(), Now: t0}

	// 1. Three voters, five wanted: a new member joins as a learner first.
	fmt.Println(reconfig.Decide(in))

	// 2. Both are learners now, but kv-4 is far behind: no promotion yet.
	in.Obs.Config = raftcore.NewConfig(founders, "kv-3", "kv-4")
	in.Obs.ConfigIndex, in.Obs.LastIndex = 3, 103
	members["kv-3"] = reconfig.MemberObs{Match: 103, Durable: true, Reachable: true}
	members["kv-4"] = reconfig.MemberObs{Match: 10, Durable: true, Reachable: true}
	in.CaughtUpSince = map[string]time.Time{"kv-3": t0}
	fmt.Println(reconfig.Decide(in).Kind)

	// 3. Both caught up for longer than Policy.Stabilization: enter the
	// joint configuration C_old,new in one step.
	members["kv-4"] = reconfig.MemberObs{Match: 103, Durable: true, Reachable: true}
	in.Now = t0.Add(5 * time.Second)
	in.Obs.At = in.Now
	in.CaughtUpSince = map[string]time.Time{"kv-3": t0, "kv-4": t0}
	fmt.Println(reconfig.Decide(in).Step)
	// Output:
	// act AddLearner kv-3 @1: kv-3 joins as a learner first: it replicates but does not vote
	// wait
	// EnterJoint voters=(kv-0 kv-1 kv-2 kv-3 kv-4) @3
}

// virtualClock is the cluster's time: 100 ms per tick.
type virtualClock struct{ ticks int }

func (c *virtualClock) Now() time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.ticks) * 100 * time.Millisecond)
}

// ExampleDriver moves an in-memory raftcore cluster from 3 to 5 voters:
// the driver observes and acts through ClusterAdmin, and the caller ticks
// the cluster between rounds.
func ExampleDriver() {
	c, err := memcluster.New(memcluster.Options{ElectionTick: 10, HeartbeatTick: 1, PreVote: true, CheckQuorum: true, Seed: 1},
		"kv-0", "kv-1", "kv-2")
	if err != nil {
		panic(err)
	}
	for _, id := range []string{"kv-3", "kv-4"} {
		if err := c.AddNode(id, nil); err != nil { // started empty, not yet members
			panic(err)
		}
	}
	if err := c.ElectLeader("kv-0"); err != nil {
		panic(err)
	}
	clock := &virtualClock{}
	policy := reconfig.DefaultPolicy()
	policy.Stabilization, policy.RateLimit = time.Second, 2*time.Second
	d := &reconfig.Driver{Admin: &reconfig.ClusterAdmin{C: c, Now: clock.Now}, Mode: reconfig.Safe,
		Policy: policy, Desired: []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"}, Clock: clock,
		OnEvent: func(e reconfig.Event) {
			if e.Kind == reconfig.EventStepDone {
				fmt.Println(e.Decision.Step)
			}
		}}
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if d.Step(ctx).Kind == reconfig.Done {
			break
		}
		if err := c.RunTicks(1); err != nil {
			panic(err)
		}
		clock.ticks++
	}
	rn, _ := c.RN(c.Leader())
	fmt.Println(rn.BasicStatus().Config)
	// Output:
	// AddLearner kv-3 @1
	// AddLearner kv-4 @3
	// EnterJoint voters=(kv-0 kv-1 kv-2 kv-3 kv-4) @4
	// LeaveJoint @5
	// voters=(kv-0 kv-1 kv-2 kv-3 kv-4)
}
