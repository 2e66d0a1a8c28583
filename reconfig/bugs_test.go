package reconfig

import (
	"context"
	"fmt"
	"testing"

	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// driverChange makes the reconfig driver of mode propose a scenario's
// membership change: one observe-decide-act round at the scenario's moment.
func driverChange(mode Mode, steps *[]string) memcluster.ChangeMembership {
	return func(c *memcluster.Cluster, target []string) error {
		clock := &tickClock{}
		d := &Driver{Admin: &ClusterAdmin{C: c, Now: clock.Now}, Mode: mode, Policy: driverPolicy, Desired: target, Clock: clock}
		dec := d.Step(context.Background())
		*steps = append(*steps, dec.String())
		if dec.Kind != Act {
			return fmt.Errorf("the %s driver did not act: %v", mode, dec)
		}
		return nil
	}
}

// The docs/BUGS.md scenarios with their membership change made by the reconfig
// driver: in the unsafe modes the violation happens on every seed, in safe
// mode on none.
func TestBugScenariosThroughTheDriver(t *testing.T) {
	seeds := uint64(200)
	if testing.Short() {
		seeds = 50
	}
	for _, sc := range []struct {
		name   string
		unsafe Mode
		run    func(bool, uint64, memcluster.ChangeMembership) (memcluster.BugOutcome, error)
	}{
		{"bug1-early-vote", UnsafeEarlyVote, memcluster.RunBug1With},
		{"bug2-no-joint", UnsafeNoJoint, memcluster.RunBug2With},
	} {
		for _, mode := range []Mode{sc.unsafe, Safe} {
			t.Run(fmt.Sprintf("%s/%s", sc.name, mode), func(t *testing.T) {
				violated := uint64(0)
				var steps []string
				for seed := uint64(0); seed < seeds; seed++ {
					out, err := sc.run(mode != Safe, seed, driverChange(mode, &steps))
					if err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
					if out.Violated() {
						violated++
					}
				}
				want := uint64(0)
				if mode != Safe {
					want = seeds
				}
				if violated != want {
					t.Fatalf("%s in %s mode violated safety on %d of %d seeds, want %d", sc.name, mode, violated, seeds, want)
				}
				t.Logf("%s %s: violated on %d of %d seeds; the driver's step: %s", sc.name, mode, violated, seeds, steps[0])
			})
		}
	}
}
