package local

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/runner/backend"
)

// The local backend follows each running node's GET /admin/events (one
// long poll at a time per node) instead of sampling statuses, for two
// things a sample misses:
//
//   - the committed configurations: every configuration entry a node
//     applies is an event, with the index of the one it replaced, so the
//     records can be shown to form one unbroken chain (configsComplete);
//   - short states: a node reports every change of its role, term, leader,
//     configuration and joint state, and each report becomes a view of the
//     cluster (eventView) that WaitUntil evaluates its condition on, in
//     order, so a condition on a state that lasted a millisecond (a joint
//     configuration entering) is seen even when it is over by the time the
//     runner looks.

// nodeModel is a node's state as its last state event reported it.
type nodeModel struct {
	role, leader, joint string
	term                uint64
	voters, learners    []string
	outgoing            []string
}

// eventView is the cluster as the events had it just after one of them.
type eventView struct {
	seq  uint64
	at   time.Time // the event's time (the node's clock: this machine's)
	view backend.View
}

// maxViews bounds the views kept for WaitUntil.
const maxViews = 4096

// eventWaitMs is how long one long poll waits for an event.
const eventWaitMs = 1000

// subscribe follows node id's events from its first (a new process
// numbers them from 1). A subscription ends when the node's process ends,
// the node is subscribed again (a restart) or the cluster closes.
func (c *Cluster) subscribe(id string) {
	c.mu.Lock()
	c.subGen[id]++
	gen := c.subGen[id]
	// A new process: the last status of the old one says nothing of it.
	delete(c.polled, id)
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.subs.Add(1) // under c.mu, with closed false: Close waits for it
	c.mu.Unlock()
	go func() {
		defer c.subs.Done()
		var after uint64
		boot := ""
		for {
			c.mu.Lock()
			stale := c.closed || c.subGen[id] != gen
			c.mu.Unlock()
			if stale {
				return
			}
			// A paused node does not answer: the call waits out its
			// timeout, and the node's events come after it resumes (its
			// ring keeps them).
			ctx, cancel := context.WithTimeout(c.ctx, time.Duration(eventWaitMs)*time.Millisecond+2*time.Second)
			res, err := c.lc.Events(ctx, id, after, eventWaitMs)
			cancel()
			if err != nil {
				if !c.running(id) {
					return
				}
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			if boot != "" && res.Boot != boot {
				// Another process answers (not one this backend started
				// through Restart, which subscribes anew): read it from
				// its start.
				boot, after = res.Boot, 0
				continue
			}
			boot = res.Boot
			c.mu.Lock()
			if res.Lost > 0 {
				c.evLost = true
			}
			for _, e := range res.Events {
				c.onEventLocked(id, gen, e)
			}
			c.mu.Unlock()
			after = res.Next
		}
	}()
}

// onEventLocked takes one event of node id from subscription gen. c.mu held.
func (c *Cluster) onEventLocked(id string, gen int, e kvserver.EventJSON) {
	if c.subGen[id] != gen || c.closed {
		return // the process it came from is gone
	}
	at := time.UnixMicro(e.AtUnixMicro)
	switch e.Kind {
	case kvserver.EventConfigApplied:
		if e.Config == nil {
			return
		}
		if !e.PrevUnknown {
			if p, ok := c.prevOf[e.Index]; ok && p != e.PrevConfigIndex {
				c.stats.Violations = append(c.stats.Violations, fmt.Sprintf(
					"committed configurations diverge: the configuration at index %d follows the one at %d on one node and the one at %d on %s", e.Index, p, e.PrevConfigIndex, id))
			} else if !ok {
				c.prevOf[e.Index] = e.PrevConfigIndex
			}
		}
		if !c.configs[e.Index] {
			c.configs[e.Index] = true
			c.stats.Configs = append(c.stats.Configs, backend.ConfigRecord{Index: e.Index, Voters: e.Config.Voters,
				Outgoing: e.Config.OutgoingVoters, Learners: e.Config.Learners, AtMs: at.Sub(c.t0).Milliseconds()})
		}
	case kvserver.EventState:
		m := &nodeModel{role: e.Role, leader: e.Leader, joint: e.JointState, term: e.Term}
		if e.Config != nil {
			m.voters, m.learners, m.outgoing = e.Config.Voters, e.Config.Learners, e.Config.OutgoingVoters
		}
		c.models[id] = m
		c.pushViewLocked(at)
	}
}

// nodeGone forgets the state of a node whose process ended (its events'
// state and its last status); its subscription ends.
func (c *Cluster) nodeGone(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subGen[id]++
	delete(c.models, id)
	delete(c.polled, id)
	c.pushViewLocked(time.Now())
}

// pushViewLocked adds the cluster as the events have it now as a view and
// wakes the waiters. c.mu held.
func (c *Cluster) pushViewLocked(at time.Time) {
	c.viewSeq++
	c.views = append(c.views, eventView{seq: c.viewSeq, at: at, view: c.modelViewLocked()})
	if len(c.views) > maxViews {
		c.views = append(c.views[:0], c.views[len(c.views)-maxViews:]...)
	}
	close(c.wake)
	c.wake = make(chan struct{})
}

// modelViewLocked is the cluster as the last events of each node had it:
// role, term, leader, joint state and configuration from the events only;
// applied and commit only from the last live status of the node's current
// process (they change too often to be events; 0 before its first
// status). c.mu held.
func (c *Cluster) modelViewLocked() backend.View {
	var out backend.View
	var term uint64
	for _, id := range c.lc.IDs() {
		v := backend.NodeView{ID: id, Up: c.running(id), Paused: c.paused[id]}
		if m := c.models[id]; m != nil && v.Up && !v.Paused {
			v.Leader, v.Term, v.Joint = m.role == "leader", m.term, m.joint
			if v.Joint == "committed" {
				v.Joint = "joint"
			}
			p := c.polled[id]
			v.Applied, v.Commit = p[0], p[1]
			v.Voters, v.Learners, v.OutgoingVoters = m.voters, m.learners, m.outgoing
			if v.Leader && v.Term >= term {
				out.Leader, term = id, v.Term
			}
		}
		out.Nodes = append(out.Nodes, v)
	}
	return out
}

// WaitUntil implements backend.Cluster. cond is evaluated on the view of
// every event that arrives while it waits, in the order of arrival, with
// Observe (on this goroutine) answering that view; then on the cluster as
// it is now (Observe as usual), at least every 10 ms, for what events do
// not carry (applied indexes, time). So a state that lasted less than a
// status round trip, reported by an event, is still seen, in its order.
// The first evaluation is on the cluster as it is at the call (not on a
// view built from events older than the call); views of events that
// happened before the call but arrived after it are skipped (they were
// over before the wait began).
//
// Each view combines every node's latest event as they arrived: the
// nodes' events are in order per node, not across nodes (two nodes' events
// a few microseconds apart may arrive in either order), like a status
// sample taken of every node at once. Ordering them across nodes by time
// would need every node's word that nothing earlier is on its way, which a
// quiet node gives only once per long poll: a when: step would then act up
// to a poll later, after the state it waited for is over.
func (c *Cluster) WaitUntil(ctx context.Context, cond backend.Condition, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if cond == nil {
		select {
		case <-ctx.Done():
		case <-deadline.C:
		}
		return false
	}
	// The two ways cond is evaluated, each one call: on an event's view,
	// and on the cluster as it is (Observe as usual).
	onView := func(v backend.View) bool { return cond(func() backend.View { return cloneView(v) }) }
	live := func() bool { return cond(func() backend.View { return c.Observe(ctx) }) }
	callAt := time.Now()
	c.mu.Lock()
	cursor := c.viewSeq
	c.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last := false
	for {
		c.mu.Lock()
		var pending []eventView
		for _, v := range c.views {
			if v.seq > cursor {
				pending = append(pending, v)
			}
		}
		// A wait more than maxViews views behind skips the oldest: it
		// would take thousands of membership events within one turn.
		wake := c.wake
		c.mu.Unlock()
		for _, v := range pending {
			cursor = v.seq
			if v.at.Before(callAt) {
				continue
			}
			if onView(v.view) {
				return true
			}
		}
		if live() {
			return true
		}
		if last {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			last = true // one more look at what came until now
		case <-wake:
		case <-tick.C:
		}
	}
}

// cloneView is a copy of v that shares nothing with it.
func cloneView(v backend.View) backend.View {
	v.Nodes = append([]backend.NodeView(nil), v.Nodes...)
	for i := range v.Nodes {
		n := &v.Nodes[i]
		n.Voters, n.Learners, n.OutgoingVoters = slices.Clone(n.Voters), slices.Clone(n.Learners), slices.Clone(n.OutgoingVoters)
	}
	return v
}

// configsCompleteLocked reports whether recs (sorted by index) are every
// configuration committed: no node's event ring overflowed before it was
// read, the first record is the bootstrap configuration (it replaced
// none) and every other one, as some node applied it, replaced the record
// before it. Then no configuration can be missing between two records.
// c.mu held.
func (c *Cluster) configsCompleteLocked(recs []backend.ConfigRecord) bool {
	if c.evLost || len(recs) == 0 {
		return false
	}
	for k, r := range recs {
		p, ok := c.prevOf[r.Index]
		if !ok {
			return false
		}
		want := uint64(0)
		if k > 0 {
			want = recs[k-1].Index
		}
		if p != want {
			return false
		}
	}
	return true
}
