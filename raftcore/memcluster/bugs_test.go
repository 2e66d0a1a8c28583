package memcluster

import "testing"

// TestBugsReproduce: docs/BUGS.md's scenarios break safety on every seed with the
// unsafe option and never without it.
func TestBugsReproduce(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 20
	}
	for _, run := range []struct {
		name string
		f    func(bool, uint64) (BugOutcome, error)
	}{{"bug1", RunBug1}, {"bug2", RunBug2}} {
		for seed := uint64(1); seed <= uint64(seeds); seed++ {
			for _, unsafe := range []bool{true, false} {
				o, err := run.f(unsafe, seed)
				if err != nil {
					t.Fatalf("%s unsafe=%v seed %d: %v", run.name, unsafe, seed, err)
				}
				if o.Violated() != unsafe {
					t.Fatalf("%s: want violation=%v, got %s", run.name, unsafe, o)
				}
			}
		}
	}
}
