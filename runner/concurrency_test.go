package runner

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// fakeCluster checks, at the moment of each call into the backend, what
// the engine holds: SetNetwork under netMu (so concurrent changes reach
// the backend in the order they were composed) and never under mu; Kill
// of a node the generator has already reserved.
type fakeCluster struct {
	backend.Cluster
	r      *run
	t      *testing.T
	view   backend.View
	nets   int
	killed []string
}

func (c *fakeCluster) Now() time.Duration                   { return time.Second }
func (c *fakeCluster) Observe(context.Context) backend.View { return c.view }
func (c *fakeCluster) SetNetwork(backend.Network) error {
	c.nets++
	if c.r.netMu.TryLock() {
		c.r.netMu.Unlock()
		c.t.Error("SetNetwork called without netMu held")
	}
	if !c.r.mu.TryLock() {
		c.t.Error("SetNetwork called under mu")
	} else {
		c.r.mu.Unlock()
	}
	return nil
}
func (c *fakeCluster) Kill(id string) error {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if !c.r.gen.busy[id] {
		c.t.Errorf("Kill(%s) before the node was reserved", id)
	}
	c.killed = append(c.killed, id)
	return nil
}

func fakeRun(t *testing.T) (*run, *fakeCluster) {
	exp := &experiment.Experiment{}
	exp.Cluster.HeartbeatMs, exp.Cluster.ElectionTimeoutMs = 50, 300
	ids := []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"}
	r := &run{exp: exp, flog: newFaultLog(), net: newNetFaults(), rng: rand.New(rand.NewPCG(1, 2)), ctx: context.Background(),
		started: map[string]bool{}, paused: map[string]bool{}, replicaSet: ids, universe: ids}
	c := &fakeCluster{r: r, t: t}
	for _, id := range ids {
		r.started[id] = true
		c.view.Nodes = append(c.view.Nodes, backend.NodeView{ID: id, Up: true, Leader: id == "kv-0", Voters: ids})
	}
	c.view.Leader = "kv-0"
	r.c = c
	r.gen = &generator{spec: experiment.Random{Hold: experiment.Duration(time.Second)}, active: map[int]string{}, busy: map[string]bool{}, dead: map[string]bool{}}
	return r, c
}

func TestSetNetworkUnderNetMuNotMu(t *testing.T) {
	r, c := fakeRun(t)
	if err := r.addRandomNetwork(1, backend.Network{{From: "kv-0", To: "kv-1"}: {Drop: true}}); err != nil {
		t.Fatal(err)
	}
	if err := r.removeRandomNetwork(1); err != nil {
		t.Fatal(err)
	}
	if c.nets != 2 {
		t.Fatalf("%d SetNetwork calls, want 2", c.nets)
	}
}

// The generator reserves a node before it kills it, and killForever takes
// its single slot before the Kill: a second draw finds the slot taken.
func TestGeneratorReservesBeforeKill(t *testing.T) {
	r, c := fakeRun(t)
	for _, kind := range []string{"kill", "killForever", "killForever"} {
		r.randomFault(1, kind)
	}
	if len(c.killed) != 2 {
		t.Fatalf("killed %v, want 2 nodes (kill, one killForever)", c.killed)
	}
	if !r.gen.deadSlot || len(r.gen.dead) != 1 {
		t.Fatalf("dead %v, slot %v: want one node dead for good", r.gen.dead, r.gen.deadSlot)
	}
	for _, id := range c.killed {
		if !r.gen.busy[id] {
			t.Errorf("%s killed but not held", id)
		}
	}
}

// quorumLeft counts each half of a joint configuration: with kv-4 of the
// outgoing voters kv-2 kv-3 kv-4 down, killing kv-3 would leave the
// outgoing half without a majority, although the incoming half (five
// voters) keeps one; killing kv-1 leaves both a majority.
func TestQuorumLeftJoint(t *testing.T) {
	r, c := fakeRun(t)
	for i := range c.view.Nodes {
		n := &c.view.Nodes[i]
		n.OutgoingVoters = []string{"kv-2", "kv-3", "kv-4"}
		if n.ID == "kv-4" {
			n.Up = false
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.quorumLeftLocked(c.view, "kv-3") {
		t.Error("quorumLeft ignores the outgoing voters of a joint configuration")
	}
	if !r.quorumLeftLocked(c.view, "kv-1") {
		t.Error("kv-1 down leaves a majority of each half, quorumLeft says not")
	}
}
