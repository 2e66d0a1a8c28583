package memcluster

import (
	"fmt"
	"strings"

	"github.com/raftlab/raftlab/raftcore"
)

// BugOutcome is the result of one run of a docs/BUGS.md scenario on the core.
type BugOutcome struct {
	Scenario   string
	Unsafe     bool
	Seed       uint64
	Violations []string // empty: safe
}

// Violated reports whether a safety property broke.
func (o BugOutcome) Violated() bool { return len(o.Violations) > 0 }

func (o BugOutcome) String() string {
	mode := "safe"
	if o.Unsafe {
		mode = "unsafe"
	}
	if !o.Violated() {
		return fmt.Sprintf("%s %s seed=%d: no violation", o.Scenario, mode, o.Seed)
	}
	return fmt.Sprintf("%s %s seed=%d: %s", o.Scenario, mode, o.Seed, strings.Join(o.Violations, "; "))
}

var ids5 = []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"}

// stepper runs a script and keeps the first error.
type stepper struct {
	c   *Cluster
	err error
}

func (s *stepper) do(f func() error) {
	if s.err == nil {
		s.err = f()
	}
}

func (s *stepper) ticks(n int) { s.do(func() error { return s.c.RunTicks(n) }) }

// finish lets the split run on, heals it, lets it settle, and reports what
// the checker saw: the common end of every docs/BUGS.md scenario.
func (s *stepper) finish(k *Checker, out BugOutcome) (BugOutcome, error) {
	s.ticks(20)
	s.do(func() error { s.c.Net.Heal(); return nil })
	s.ticks(60)
	k.CheckLogMatching()
	out.Violations = k.Violations
	return out, s.err
}

func (s *stepper) propose(id, data string) {
	s.do(func() error {
		// One attempt through the node; a refusal (no leader on that side)
		// leaves the write unacknowledged, as an unknown outcome in docs/BUGS.md.
		if rn, err := s.c.RN(id); err == nil {
			_ = rn.Propose([]byte(data))
		}
		return s.c.Stabilize()
	})
}

// RunBug1 plays docs/BUGS.md's bug 1 (early vote) on the core: unsafe gives the
// new and restarted members the 5-member start-up membership
// (UnsafeStartupMembership); safe starts them empty, as learners-to-be.
func RunBug1(unsafe bool, seed uint64) (BugOutcome, error) { return RunBug1With(unsafe, seed, nil) }

// ChangeMembership proposes the scenario's membership change (target voters)
// on c at the scenario's moment: the reconfig driver of the mode under test,
// for example. It is called once; the scenario then goes on.
type ChangeMembership func(c *Cluster, target []string) error

// RunBug1With is RunBug1 with the membership change toward kv-0..kv-4
// proposed by change (nil: none; the new members' start-up membership alone
// breaks the unsafe run).
func RunBug1With(unsafe bool, seed uint64, change ChangeMembership) (BugOutcome, error) {
	out := BugOutcome{Scenario: "bug1-early-vote", Unsafe: unsafe, Seed: seed}
	c, err := New(Options{ElectionTick: 10, HeartbeatTick: 1, PreVote: true, CheckQuorum: true, Seed: seed}, ids5[:3]...)
	if err != nil {
		return out, err
	}
	k := NewChecker(c)
	s := &stepper{c: c}
	var startup *raftcore.Config
	if unsafe {
		cfg := raftcore.NewConfig(ids5)
		startup = &cfg
	}
	s.do(func() error { return c.ElectLeader("kv-0") })
	s.do(func() error { c.Net.Isolate("kv-2"); return nil })
	s.propose("kv-0", "k=1")
	s.do(func() error {
		c.Net.Partition([]string{"kv-0", "kv-1"}, []string{"kv-2", "kv-3", "kv-4"})
		for _, id := range ids5[3:] {
			if err := c.AddNode(id, startup); err != nil {
				return err
			}
		}
		if err := c.Crash("kv-2"); err != nil {
			return err
		}
		c.SetStartup("kv-2", startup)
		if err := c.Restart("kv-2"); err != nil {
			return err
		}
		if change != nil {
			return change(c, ids5)
		}
		return nil
	})
	// Let time pass: kv-2's side holds elections on its own.
	s.ticks(60)
	s.propose("kv-2", "k=2")
	return s.finish(k, out)
}

// RunBug2 plays docs/BUGS.md's bug 2 (no joint consensus) on the core: replacing
// kv-2 with kv-3 during a partition [kv-0 kv-3] | [kv-1 kv-2]. Unsafe makes
// it one configuration entry (UnsafeAllowMultiVoterOneStep); safe goes
// through EnterJoint, as the safe driver does.
func RunBug2(unsafe bool, seed uint64) (BugOutcome, error) { return RunBug2With(unsafe, seed, nil) }

// RunBug2With is RunBug2 with the change to kv-0, kv-1, kv-3 proposed by
// change (nil: directly on kv-0's RawNode, one step if unsafe, EnterJoint
// if safe).
func RunBug2With(unsafe bool, seed uint64, change ChangeMembership) (BugOutcome, error) {
	out := BugOutcome{Scenario: "bug2-no-joint", Unsafe: unsafe, Seed: seed}
	c, err := New(Options{ElectionTick: 10, HeartbeatTick: 1, PreVote: true, CheckQuorum: true, Seed: seed,
		UnsafeAllowMultiVoterOneStep: unsafe}, ids5[:3]...)
	if err != nil {
		return out, err
	}
	k := NewChecker(c)
	s := &stepper{c: c}
	s.do(func() error { return c.ElectLeader("kv-0") })
	s.propose("kv-0", "k=0")
	s.do(func() error { return c.AddNode("kv-3", nil) })
	s.do(func() error {
		c.Net.Partition([]string{"kv-0", "kv-3"}, []string{"kv-1", "kv-2"})
		rn, err := c.RN("kv-0")
		if err != nil {
			return err
		}
		target := []string{"kv-0", "kv-1", "kv-3"}
		if change != nil {
			return change(c, target)
		}
		if unsafe {
			return rn.ChangeConfig(raftcore.NewConfig(target))
		}
		return rn.EnterJoint(target)
	})
	s.do(c.Stabilize)
	s.propose("kv-0", "k=a")
	s.ticks(40)
	for _, id := range []string{"kv-1", "kv-2"} {
		s.propose(id, "k=b")
	}
	return s.finish(k, out)
}
