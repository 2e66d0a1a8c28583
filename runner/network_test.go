package runner

import (
	"time"

	"testing"

	"github.com/raftlab/raftlab/runner/backend"
)

// Faults compose by contribution: a partition and a delay on the same link
// are both in force, and undoing the partition leaves the delay.
func TestNetworkFaultsComposeAndUndoTheirOwn(t *testing.T) {
	nf := newNetFaults()
	names := []string{"kv-0", "kv-1", "kv-2"}
	for _, l := range linksOf(names, nil) {
		nf.delay[l] = backend.LinkFault{DelayMs: 50, JitterMs: 10}
	}
	nf.random[1] = groupsNetwork([][]string{{"kv-0"}, {"kv-1", "kv-2"}})
	nf.random[2] = backend.Network{{From: "kv-1", To: "kv-2"}: {DelayMs: 20}}
	l01, l12 := backend.Link{From: "kv-0", To: "kv-1"}, backend.Link{From: "kv-1", To: "kv-2"}
	n := nf.compose()
	if f := n[l01]; !f.Drop || f.DelayMs != 50 {
		t.Fatalf("partition then delay: kv-0 -> kv-1 is %+v, want cut and the delay kept", f)
	}
	if f := n[l12]; f.Drop || f.DelayMs != 70 || f.JitterMs != 10 {
		t.Fatalf("two delays on kv-1 -> kv-2: %+v, want 50+20 ms, jitter 10", f)
	}
	delete(nf.random, 1) // the random partition ends
	n = nf.compose()
	if f := n[l01]; f.Drop || f.DelayMs != 50 {
		t.Fatalf("partition undone: kv-0 -> kv-1 is %+v, want the delay still in force and no cut", f)
	}
	if f := n[l12]; f.DelayMs != 70 {
		t.Fatalf("partition undone: kv-1 -> kv-2 is %+v, want the other random delay kept", f)
	}
	if len(n) != 6 {
		t.Fatalf("%d links faulted, want the 6 links of the delay", len(n))
	}
}

// The tie-break: events of one virtual instant get increasing stamps in
// the order the engine records them.
func TestStampsIncreaseWithinAnInstant(t *testing.T) {
	r := &run{c: fixedClock{}}
	a, b, c := r.stampLocked(), r.stampLocked(), r.stampLocked()
	if !(a < b && b < c) || c-a != 2 {
		t.Fatalf("stamps %d %d %d in one instant, want strictly increasing by 1", a, b, c)
	}
}

type fixedClock struct{ backend.Cluster }

func (fixedClock) Now() time.Duration { return 7 * time.Millisecond }
