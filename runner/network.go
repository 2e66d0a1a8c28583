package runner

import (
	"maps"
	"slices"

	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// netFaults are the network faults in force, by contribution, so that
// undoing one fault removes only its own links and faults compose: a
// partition no longer erases a delay, and a random partition that heals
// leaves a step's delay (or another random fault) in place. The engine
// hands the backend their composition (backend.Cluster.SetNetwork).
type netFaults struct {
	// cuts are the partition and isolate steps' links: a partition step
	// replaces them (it is the partition now), an isolate step adds to
	// them.
	cuts backend.Network
	// delay and loss are the delay and loss steps' faults: a later step
	// replaces what an earlier one set on the same link.
	delay, loss backend.Network
	// random are the random faults' contributions, by fault id.
	random map[int]backend.Network
}

func newNetFaults() netFaults {
	return netFaults{cuts: backend.Network{}, delay: backend.Network{}, loss: backend.Network{}, random: map[int]backend.Network{}}
}

// clone is a copy of nf that shares no map with it.
func (nf netFaults) clone() netFaults {
	c := netFaults{cuts: maps.Clone(nf.cuts), delay: maps.Clone(nf.delay), loss: maps.Clone(nf.loss), random: map[int]backend.Network{}}
	for id, n := range nf.random {
		c.random[id] = maps.Clone(n)
	}
	return c
}

// compose is every contribution in force together (LinkFault.Compose),
// the random ones in the order they were applied, so the result does not
// depend on map order.
func (nf netFaults) compose() backend.Network {
	out := backend.Network{}
	add := func(n backend.Network) {
		for l, f := range n {
			if g := out[l].Compose(f); !g.IsZero() {
				out[l] = g
			}
		}
	}
	add(nf.cuts)
	add(nf.delay)
	add(nf.loss)
	for _, id := range slices.Sorted(maps.Keys(nf.random)) {
		add(nf.random[id])
	}
	return out
}

// changeNetwork edits the faults in force and hands the backend their
// composition. netMu is held across both, so that changes from
// concurrent goroutines reach the backend in the order they were
// composed; mu only around the edit (the backend never calls back into
// the engine from SetNetwork, and mu is never held across a call into it).
//
// A change the backend refuses is rolled back whole: the faults in force
// stay what the backend has, and the fault log (coverage) records only
// what took effect, stamped when it did.
func (r *run) changeNetwork(edit func(nf *netFaults)) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	r.mu.Lock()
	before := r.net.clone()
	edit(&r.net)
	n := r.net.compose()
	r.mu.Unlock()
	if err := r.c.SetNetwork(n); err != nil {
		r.mu.Lock()
		r.net = before
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	r.flog.network(n, r.c.Now())
	r.mu.Unlock()
	return nil
}

// addRandomNetwork adds a random fault's links; removeRandomNetwork takes
// exactly those away again.
func (r *run) addRandomNetwork(id int, n backend.Network) error {
	return r.changeNetwork(func(nf *netFaults) { nf.random[id] = n })
}

func (r *run) removeRandomNetwork(id int) error {
	return r.changeNetwork(func(nf *netFaults) { delete(nf.random, id) })
}

// healNetwork removes every network fault, the steps' and the random
// ones' (heal: {} in the file).
func (r *run) healNetwork() error {
	return r.changeNetwork(func(nf *netFaults) { *nf = newNetFaults() })
}

// universe lists every node name the experiment can have, started or not:
// the founders, the nodes its steps start or reconfigure to, and the
// random step's pool. Faults that name "every node" expand over it, so a
// node that starts later is already covered.
func universe(exp *experiment.Experiment) []string {
	n := exp.Cluster.Replicas
	names := map[string]bool{}
	for i := 0; i < n; i++ {
		names[nodeName(i)] = true
	}
	for _, s := range exp.Steps {
		switch {
		case s.Start != nil:
			for _, id := range *s.Start {
				names[id] = true
			}
		case s.Scale != nil:
			for i := 0; i < *s.Scale; i++ {
				names[nodeName(i)] = true
			}
		case s.Reconfigure != nil:
			for _, id := range s.Reconfigure.Voters {
				names[id] = true
			}
		case s.Partition != nil:
			for _, g := range s.Partition.Groups {
				for _, id := range g {
					names[id] = true
				}
			}
		case s.Random != nil:
			for i := 0; i < randomMax(exp, *s.Random); i++ {
				names[nodeName(i)] = true
			}
		}
	}
	var out []string
	for i := 0; i < experiment.MaxNodes; i++ {
		if names[nodeName(i)] {
			out = append(out, nodeName(i))
		}
	}
	return out
}

// randomMax is the random step's pool size: kv-0 .. kv-(randomMax-1).
func randomMax(exp *experiment.Experiment, spec experiment.Random) int {
	if spec.MaxReplicas != 0 {
		return spec.MaxReplicas
	}
	return min(exp.Cluster.Replicas+2, experiment.MaxNodes)
}

// Link sets, as Networks of one fault.

// cutBoth cuts both directions of every link between a and b nodes.
func cutBoth(n backend.Network, a, b []string) {
	for _, x := range a {
		for _, y := range b {
			if x != y {
				n[backend.Link{From: x, To: y}] = backend.LinkFault{Drop: true}
				n[backend.Link{From: y, To: x}] = backend.LinkFault{Drop: true}
			}
		}
	}
}

// groupsNetwork cuts every link between nodes of different groups.
func groupsNetwork(groups [][]string) backend.Network {
	n := backend.Network{}
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			cutBoth(n, g, h)
		}
	}
	return n
}

// pairsNetwork cuts both directions of each pair.
func pairsNetwork(pairs [][2]string) backend.Network {
	n := backend.Network{}
	for _, p := range pairs {
		cutBoth(n, []string{p[0]}, []string{p[1]})
	}
	return n
}

// linksOf lists the directed links among names that leave or enter one of
// nodes (nodes nil: every link).
func linksOf(names, nodes []string) []backend.Link {
	var out []backend.Link
	for _, a := range names {
		for _, b := range names {
			if a != b && (nodes == nil || slices.Contains(nodes, a) || slices.Contains(nodes, b)) {
				out = append(out, backend.Link{From: a, To: b})
			}
		}
	}
	return out
}
