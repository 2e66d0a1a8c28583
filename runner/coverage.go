package runner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/backend"
)

// Coverage, strictly (docs/EXPERIMENTS.md, "Coverage"). Each membership
// change has an interval, from its first driver step's start to its last
// step's done or failed (the run's end if it never ended), and a member
// set: the voters of the committed configuration at its start (both
// halves when joint), the voters it asked for and the learners it added,
// less the nodes dead for good (killForever). A fault counts for the
// change if its interval overlaps the change's by at least one heartbeat
// and it touches the member set: a node fault (a node killed or paused, by
// a step or a random fault) on a member; a network fault with a faulted
// link whose two ends are members. A driver step is one step with its
// retries, and CommitNew (the wait for the joint entry's commit) belongs
// to the step it waits for; its interval runs to the next step's start.
// A window shorter than a heartbeat (a one-step change, whose step is
// done at once) counts a fault only if the fault spans all of it and
// outlasts it.

// interval is a span of backend time; to < 0: still open.
type interval struct{ from, to time.Duration }

// faultLog records when each node was down or paused and when each link
// was faulted (under mu).
type faultLog struct {
	killed, paused map[string]bool
	nodes          map[string][]interval
	links          map[backend.Link][]interval
	net            backend.Network // the composition last handed to the backend
}

func newFaultLog() faultLog {
	return faultLog{killed: map[string]bool{}, paused: map[string]bool{}, nodes: map[string][]interval{},
		links: map[backend.Link][]interval{}, net: backend.Network{}}
}

func openIv(ivs []interval, at time.Duration) []interval {
	if n := len(ivs); n > 0 && ivs[n-1].to < 0 {
		return ivs
	}
	return append(ivs, interval{from: at, to: -1})
}

func closeIv(ivs []interval, at time.Duration) []interval {
	if n := len(ivs); n > 0 && ivs[n-1].to < 0 {
		ivs[n-1].to = at
	}
	return ivs
}

// nodeEvent records a node killed, paused, resumed or restarted (under mu).
func (fl *faultLog) nodeEvent(id string, at time.Duration, kill, pause, resume, restart bool) {
	switch {
	case kill:
		fl.killed[id] = true
	case pause:
		fl.paused[id] = true
	case resume:
		delete(fl.paused, id)
	case restart:
		delete(fl.killed, id)
		delete(fl.paused, id)
	}
	if fl.killed[id] || fl.paused[id] {
		fl.nodes[id] = openIv(fl.nodes[id], at)
	} else {
		fl.nodes[id] = closeIv(fl.nodes[id], at)
	}
}

// network records the composition handed to the backend (under mu).
func (fl *faultLog) network(n backend.Network, at time.Duration) {
	for l := range fl.net {
		if _, ok := n[l]; !ok {
			fl.links[l] = closeIv(fl.links[l], at)
		}
	}
	for l := range n {
		fl.links[l] = openIv(fl.links[l], at)
	}
	fl.net = n
}

func (r *run) nodeEvent(id string, kill, pause, resume, restart bool) {
	r.mu.Lock()
	r.flog.nodeEvent(id, r.c.Now(), kill, pause, resume, restart)
	r.mu.Unlock()
}

// driverStep is one driver step with its retries and polls.
type driverStep struct {
	key        string
	op         reconfig.Op
	start, end time.Duration // end < 0: running
}

func stepKey(s reconfig.Step) string {
	return fmt.Sprintf("%s|%s|%s|%d", s.Op, s.Target, strings.Join(slices.Sorted(slices.Values(s.Voters)), ","), s.ConfigIndex)
}

// stepEvent records a driver event of a change (under mu): a step started
// again with the same op, target, voters and configuration index is a
// retry or a poll, and CommitNew belongs to the step before it.
func (rr *reconfigRun) stepEvent(e reconfig.Event, now time.Duration) {
	n := len(rr.dsteps)
	switch e.Kind {
	case reconfig.EventStepStarted:
		op := e.Decision.Step.Op
		if op == reconfig.OpAddLearner && !slices.Contains(rr.learners, e.Decision.Step.Target) {
			rr.learners = append(rr.learners, e.Decision.Step.Target)
		}
		if n > 0 && (rr.dsteps[n-1].key == stepKey(e.Decision.Step) || op == reconfig.OpCommitNew) {
			rr.dsteps[n-1].end = -1
			return
		}
		rr.dsteps = append(rr.dsteps, driverStep{key: stepKey(e.Decision.Step), op: op, start: now, end: -1})
	case reconfig.EventStepDone, reconfig.EventStepFailed:
		if n > 0 {
			rr.dsteps[n-1].end = now
		}
	}
}

// stopped ends the step under way of a change whose driver was replaced
// (under mu).
func (rr *reconfigRun) stopped(now time.Duration) {
	if n := len(rr.dsteps); n > 0 && rr.dsteps[n-1].end < 0 {
		rr.dsteps[n-1].end = now
	}
}

func overlap(a, b interval, end time.Duration) time.Duration {
	if a.to < 0 {
		a.to = end
	}
	if b.to < 0 {
		b.to = end
	}
	return min(a.to, b.to) - max(a.from, b.from)
}

// underFault reports whether a node fault and a network fault on members
// overlapped w by at least one heartbeat (under mu; end closes what is
// still open).
func (r *run) underFault(w interval, members []string, end time.Duration) (network, node bool) {
	hb := time.Duration(r.exp.Cluster.HeartbeatMs) * time.Millisecond
	if w.to < 0 {
		w.to = end
	}
	// A window shorter than a heartbeat (a one-step change the driver
	// finishes at once) is judged over the heartbeat that follows its
	// start, by the same rule: the fault must be in force for a whole
	// heartbeat of it, so one that ends a millisecond in does not count.
	if w.to-w.from < hb {
		w.to = w.from + hb
	}
	counts := func(iv interval) bool { return overlap(iv, w, end) >= hb }
	for _, id := range members {
		for _, iv := range r.flog.nodes[id] {
			if counts(iv) {
				node = true
			}
		}
	}
	for l, ivs := range r.flog.links {
		if !slices.Contains(members, l.From) || !slices.Contains(members, l.To) {
			continue
		}
		for _, iv := range ivs {
			if counts(iv) {
				network = true
			}
		}
	}
	return network, node
}

// members is a change's member set (under mu).
func (r *run) members(rr *reconfigRun) []string {
	var out []string
	for _, set := range [][]string{rr.rec.From, rr.outgoing, rr.rec.To, rr.newbies, rr.learners} {
		for _, id := range set {
			if !slices.Contains(out, id) && (r.gen == nil || !r.gen.dead[id]) {
				out = append(out, id)
			}
		}
	}
	return out
}

// coverageOf fills one change's coverage (under mu).
func (r *run) coverageOf(c *Coverage, rr *reconfigRun, end time.Duration) {
	c.MembershipSteps += len(rr.dsteps)
	if len(rr.dsteps) == 0 {
		return
	}
	members := r.members(rr)
	last := rr.dsteps[len(rr.dsteps)-1]
	cw := interval{from: rr.dsteps[0].start, to: last.end}
	if last.end < 0 || last.end < last.start {
		cw.to = end
	}
	netF, nodeF := r.underFault(cw, members, end)
	if netF || nodeF {
		c.ChangesUnderFault++
	}
	if netF {
		c.ChangesUnderNetworkFault++
	}
	if nodeF {
		c.ChangesUnderNodeFault++
	}
	for i, s := range rr.dsteps {
		w := interval{from: s.start, to: cw.to}
		if i+1 < len(rr.dsteps) {
			w.to = rr.dsteps[i+1].start
		}
		if a, b := r.underFault(w, members, end); a || b {
			c.StepsUnderFault++
			if s.op == reconfig.OpEnterJoint || s.op == reconfig.OpChangeVoters {
				c.EnterJointUnderFault++
			}
		}
	}
}
