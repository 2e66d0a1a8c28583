package raftcore

import (
	"math/rand/v2"
	"slices"
	"sort"
)

// LinkFaults are the faults applied to messages on one link (or all links).
type LinkFaults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// Duplicate is the probability that a message is delivered twice.
	Duplicate float64
	// Delay and Jitter, in ticks of the network's clock: a message is
	// delivered Delay + uniform[0, Jitter] ticks after it was sent, so any
	// Jitter reorders messages.
	Delay, Jitter int
}

type queued struct {
	at   uint64
	seq  uint64
	from string // the node that put it on the wire (not always m.From)
	m    Message
}

// MemNetwork is an in-memory network with a virtual clock, partitions and
// per-link faults, driven by one seeded random source: the same seed and the
// same calls give the same deliveries. Not safe for concurrent use.
type MemNetwork struct {
	rng     *rand.Rand
	now     uint64
	seq     uint64
	queue   []queued
	group   map[string]int // partition group; nodes not listed are in group 0
	cut     map[[2]string]bool
	faults  LinkFaults
	perLink map[[2]string]LinkFaults
	// LoseOnCut: a message put on a link that is cut or partitioned at
	// that moment is lost then, even if the link heals before it would
	// have arrived (a real network does not keep it for later). Without
	// it, only the state of the link at delivery counts, which is all a
	// network without delay needs. Either way a message in flight when
	// its link is cut is lost at delivery.
	LoseOnCut  bool
	Sent       uint64
	Dropped    uint64
	Duplicated uint64
}

// NewMemNetwork returns a network without faults.
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{
		rng:     rand.New(rand.NewPCG(seed, 0x6e6574)),
		group:   map[string]int{},
		cut:     map[[2]string]bool{},
		perLink: map[[2]string]LinkFaults{},
	}
}

// Now is the network's clock.
func (n *MemNetwork) Now() uint64 { return n.now }

// AdvanceTime moves the clock forward.
func (n *MemNetwork) AdvanceTime(ticks uint64) { n.now += ticks }

// SetFaults sets the faults of every link without its own.
func (n *MemNetwork) SetFaults(f LinkFaults) { n.faults = f }

// SetLinkFaults sets the faults of messages from one node to another.
func (n *MemNetwork) SetLinkFaults(from, to string, f LinkFaults) { n.perLink[[2]string{from, to}] = f }

// SetLinks replaces every one-way cut and every per-link fault with cuts
// and faults, in one step (partitions made with Partition or Isolate and
// the default faults stay). The maps are copied.
func (n *MemNetwork) SetLinks(cuts map[[2]string]bool, faults map[[2]string]LinkFaults) {
	n.cut = make(map[[2]string]bool, len(cuts))
	for l, c := range cuts {
		if c {
			n.cut[l] = true
		}
	}
	n.perLink = make(map[[2]string]LinkFaults, len(faults))
	for l, f := range faults {
		n.perLink[l] = f
	}
}

// LinkFaultsOf returns the faults of messages from one node to another
// (its own, or the default).
func (n *MemNetwork) LinkFaultsOf(from, to string) LinkFaults {
	if f, ok := n.perLink[[2]string{from, to}]; ok {
		return f
	}
	return n.faults
}

// Partition splits the nodes into groups that cannot reach each other. Nodes
// not named form one more group together.
func (n *MemNetwork) Partition(groups ...[]string) {
	n.group = map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			n.group[id] = i + 1
		}
	}
}

// Isolate cuts one node from every other.
func (n *MemNetwork) Isolate(id string) {
	n.group[id] = -1 - len(n.group)
}

// Cut drops every message from one node to another (one direction).
func (n *MemNetwork) Cut(from, to string) { n.cut[[2]string{from, to}] = true }

// Heal removes partitions, cuts and all faults.
func (n *MemNetwork) Heal() {
	n.group = map[string]int{}
	n.cut = map[[2]string]bool{}
	n.faults = LinkFaults{}
	n.perLink = map[[2]string]LinkFaults{}
}

// Connected reports whether a message from one node would reach another
// (ignoring random loss).
func (n *MemNetwork) Connected(from, to string) bool {
	return n.group[from] == n.group[to] && !n.cut[[2]string{from, to}]
}

// SendFrom queues messages that node from puts on the wire. Partitions, cuts
// and link faults are those of the link from -> m.To, whatever m.From says.
func (n *MemNetwork) SendFrom(from string, msgs []Message) {
	for _, m := range msgs {
		n.Sent++
		f := n.LinkFaultsOf(from, m.To)
		if n.LoseOnCut && !n.Connected(from, m.To) {
			n.Dropped++
			continue
		}
		if f.Drop > 0 && n.rng.Float64() < f.Drop {
			n.Dropped++
			continue
		}
		copies := 1
		if f.Duplicate > 0 && n.rng.Float64() < f.Duplicate {
			copies = 2
			n.Duplicated++
		}
		for c := 0; c < copies; c++ {
			delay := f.Delay
			if f.Jitter > 0 {
				delay += n.rng.IntN(f.Jitter + 1)
			}
			n.seq++
			n.queue = append(n.queue, queued{at: n.now + uint64(delay), seq: n.seq, from: from, m: m})
		}
	}
}

// Pending is the number of messages in flight.
func (n *MemNetwork) Pending() int { return len(n.queue) }

// Deliverable removes and returns the messages due by now, in delivery order;
// those whose link is cut or partitioned are dropped.
func (n *MemNetwork) Deliverable() []Message {
	if len(n.queue) == 0 {
		return nil
	}
	sort.SliceStable(n.queue, func(i, j int) bool {
		if n.queue[i].at != n.queue[j].at {
			return n.queue[i].at < n.queue[j].at
		}
		return n.queue[i].seq < n.queue[j].seq
	})
	k := 0
	for k < len(n.queue) && n.queue[k].at <= n.now {
		k++
	}
	out := make([]Message, 0, k)
	for _, q := range n.queue[:k] {
		if !n.Connected(q.from, q.m.To) {
			n.Dropped++
			continue
		}
		out = append(out, q.m)
	}
	n.queue = slices.Delete(n.queue, 0, k)
	return out
}

// DropPendingTo discards messages in flight to a node (a crash loses them).
func (n *MemNetwork) DropPendingTo(id string) {
	n.queue = slices.DeleteFunc(n.queue, func(q queued) bool { return q.m.To == id })
}
