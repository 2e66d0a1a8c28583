package runner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// The random step (docs/EXPERIMENTS.md, "random"). Bugs of membership
// changes live where a change and a fault overlap: a partition while the
// joint entry is uncommitted, a leader paused while a learner catches up,
// a node that crashes again while it recovers. So faults are not one at a
// time: each starts on its own schedule and lasts its own hold, several
// are in force at once (their network faults compose, network.go),
// membership changes run on a schedule of their own, and membership
// states trigger faults the moment the leader enters them. Every choice
// comes from the run's seeded source, so a seed replays on the simulator.

// generator is the random step's state (under run.mu).
type generator struct {
	spec      experiment.Random
	kinds     []string
	maxN      int
	maxActive int
	nextID    int
	// active are the random faults in force, by id (killForever is not
	// one: it never ends, and does not hold a slot of maxActive).
	active map[int]string
	// busy are nodes a random node fault holds (killed, paused, or
	// between the crashes of crashRecovery): no second fault takes them.
	busy map[string]bool
	// dead are nodes killed for the rest of the run (killForever): never
	// restarted, never added back by a membership change.
	dead map[string]bool
	// deadSlot: the single killForever of a run is taken (reserved
	// before its Kill, so two concurrent draws cannot both take it).
	deadSlot bool
	// readers numbers the sessions of the reads through a resumed leader.
	readers int
	// joint is the leader's joint state at the last trigger tick.
	joint string
}

// PauseLeaderLabel begins the label of a random pauseLeader fault in the
// steps of result.json: "pause leader kv-1 (term 3) for 712ms, election
// timeout 300ms"; the step's note says who led when it resumed.
const PauseLeaderLabel = "pause leader "

// ChangeLabel begins the label of a random membership change.
const ChangeLabel = "change "

// readClientPrefix starts the sessions of the reads through a leader just
// resumed (pauseLeader): each read is a session of its own.
const readClientPrefix = "read-"

// random starts the random step: the fault schedule, the membership
// schedule and the membership triggers, all in the background until the
// workload ends.
func (r *run) random(spec experiment.Random) {
	g := &generator{spec: spec, kinds: spec.Kinds, maxN: randomMax(r.exp, spec), maxActive: spec.MaxActive,
		active: map[int]string{}, busy: map[string]bool{}, dead: map[string]bool{}, joint: "none"}
	if len(g.kinds) == 0 {
		g.kinds = experiment.RandomKinds
	}
	if g.maxActive == 0 {
		g.maxActive = 3
	}
	r.mu.Lock()
	r.gen = g
	r.mu.Unlock()
	ended := func() bool { return r.c.Now() >= r.workloadEnd || r.ctx.Err() != nil }
	var faults func()
	faults = func() {
		if ended() {
			return
		}
		r.mu.Lock()
		room := len(g.active) < g.maxActive
		kind := g.kinds[r.rng.IntN(len(g.kinds))]
		r.mu.Unlock()
		if room {
			r.startFault(kind, "")
		}
		r.c.After(r.c.Now()+r.around(spec.Every.D()), faults)
	}
	r.c.After(r.c.Now()+r.around(spec.Every.D())/2, faults)
	if spec.ChangeEvery > 0 {
		var changes func()
		changes = func() {
			if ended() {
				return
			}
			r.changeTurn()
			r.c.After(r.c.Now()+r.around(spec.ChangeEvery.D()), changes)
		}
		r.c.After(r.c.Now()+r.around(spec.ChangeEvery.D()), changes)
	}
	if len(spec.On) > 0 {
		r.watchTriggers()
	}
}

// around is d times a uniform factor in [0.5, 1.5].
func (r *run) around(d time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return d/2 + time.Duration(r.rng.Int64N(int64(d)+1))
}

func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// fault is one random fault applied: its step label, how to undo it (the
// undo may return a note for the step record) and, when it is not drawn
// around the random step's hold, how long it lasts. forever: it is never
// undone.
type fault struct {
	label   string
	kind    string
	undo    func() (string, error)
	hold    time.Duration
	forever bool
	instant bool     // an action, not a state: no hold (a transfer, a change)
	nodes   []string // the nodes it holds (busy until undone)
}

// startFault applies one fault of kind now and schedules its undo;
// trigger, if set, is the membership state that asked for it.
func (r *run) startFault(kind, trigger string) {
	g := r.gen
	r.mu.Lock()
	g.nextID++
	id := g.nextID
	r.mu.Unlock()
	f := r.randomFault(id, kind)
	if f.label == "" {
		return
	}
	f.kind = kind
	now := r.c.Now()
	held := f.hold
	if held == 0 {
		held = r.around(g.spec.Hold.D())
	}
	label := f.label
	if trigger != "" {
		label = "on " + trigger + ": " + label
	}
	r.mu.Lock()
	rec := len(r.steps)
	end := now + held
	switch {
	case f.instant:
		end = now
	case f.forever:
		end = r.workloadEnd
	}
	r.steps = append(r.steps, StepRecord{Index: 0, Action: "random", Kind: kind, Trigger: trigger, Label: label, StartMs: now.Milliseconds(), EndMs: end.Milliseconds(), OK: true})
	r.phase = "random faults"
	if !f.instant {
		// Faults only: a leadership transfer and a membership change
		// drawn as a fault (reconfigure) are actions.
		r.cov.Faults++
		if trigger != "" {
			r.cov.TriggeredFaults++
		}
	}
	if !f.forever && !f.instant {
		g.active[id] = kind
		r.cov.MaxConcurrentFaults = max(r.cov.MaxConcurrentFaults, len(g.active))
	}
	r.mu.Unlock()
	r.logf("random: %s", label)
	if f.forever || f.instant || f.undo == nil {
		return
	}
	r.c.After(now+held, func() {
		note, err := f.undo()
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(g.active, id)
		for _, n := range f.nodes {
			delete(g.busy, n)
		}
		if err != nil {
			r.steps[rec].OK = false
			note = fmt.Sprintf("undo: %v", err)
		}
		r.steps[rec].Note = note
	})
}

func (r *run) pickOne(ids []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ids[r.rng.IntN(len(ids))]
}

// voters are the voters of the leader's configuration, or the replica set
// when there is no leader.
func (r *run) voters(v backend.View) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs, _ := r.votersLocked(v)
	return vs
}

// votersLocked are the voters of the leader's configuration and, when it
// is joint, its outgoing voters; the replica set when there is no leader
// (under mu).
func (r *run) votersLocked(v backend.View) (voters, outgoing []string) {
	if v.Leader != "" {
		if n := v.Node(v.Leader); len(n.Voters) > 0 {
			return slices.Sorted(slices.Values(n.Voters)), slices.Sorted(slices.Values(n.OutgoingVoters))
		}
	}
	return slices.Clone(r.replicaSet), nil
}

// quorumLeftLocked reports whether a majority of the voters still runs
// once victim is down too, in each half of a joint configuration: a long
// or permanent kill must leave the cluster able to make progress again
// once the shorter faults end (under mu).
func (r *run) quorumLeftLocked(v backend.View, victim string) bool {
	voters, outgoing := r.votersLocked(v)
	for _, set := range [][]string{voters, outgoing} {
		if len(set) == 0 {
			continue
		}
		live := 0
		for _, id := range set {
			n := v.Node(id)
			if id != victim && n.Up && !r.gen.busy[id] && !r.gen.dead[id] {
				live++
			}
		}
		if live < len(set)/2+1 {
			return false
		}
	}
	return true
}

// cutOffLocked reports whether a cut in force separates id from any of
// others (under mu).
func (r *run) cutOffLocked(id string, others []string) bool {
	for _, o := range others {
		if o == id {
			continue
		}
		if r.flog.net[backend.Link{From: id, To: o}].Drop || r.flog.net[backend.Link{From: o, To: id}].Drop {
			return true
		}
	}
	return false
}

// othersCanElectLocked reports whether, with lead paused, a majority of
// each half of the configuration is up, not held by a fault and not cut
// off from the other voters: a pauseLeader is then overtaken by a new
// leader, which is what it is for (under mu).
func (r *run) othersCanElectLocked(v backend.View, lead string) bool {
	voters, outgoing := r.votersLocked(v)
	all := append(slices.Clone(voters), outgoing...)
	for _, set := range [][]string{voters, outgoing} {
		if len(set) == 0 {
			continue
		}
		ok := 0
		for _, id := range set {
			n := v.Node(id)
			if id != lead && n.Up && !n.Paused && !r.gen.busy[id] && !r.gen.dead[id] && !r.cutOffLocked(id, all) {
				ok++
			}
		}
		if ok < len(set)/2+1 {
			return false
		}
	}
	return true
}

// reserve picks one of ids that no fault holds and marks it busy, under
// mu with the check ok (nil: none), so that no concurrent draw takes the
// same node between the check and the fault. "" if none is left.
func (r *run) reserve(ids []string, ok func(id string) bool) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var free []string
	for _, id := range ids {
		if !r.gen.busy[id] && !r.gen.dead[id] {
			free = append(free, id)
		}
	}
	if len(free) == 0 {
		return ""
	}
	x := free[r.rng.IntN(len(free))]
	if ok != nil && !ok(x) {
		return ""
	}
	r.gen.busy[x] = true
	return x
}

// release undoes reserve when the fault did not happen.
func (r *run) release(id string) {
	r.mu.Lock()
	delete(r.gen.busy, id)
	r.mu.Unlock()
}

// randomFault applies one fault and returns how to undo it (a zero fault:
// nothing applied).
func (r *run) randomFault(id int, kind string) fault {
	g := r.gen
	v := r.c.Observe(r.ctx)
	var up, started []string
	r.mu.Lock()
	for _, n := range v.Nodes {
		if r.started[n.ID] {
			started = append(started, n.ID)
		}
		if n.Up && !n.Paused && r.started[n.ID] && !g.busy[n.ID] && !g.dead[n.ID] {
			up = append(up, n.ID)
		}
	}
	r.mu.Unlock()
	if len(up) == 0 {
		return fault{}
	}
	et := r.exp.Cluster.ElectionTimeoutMs
	netFault := func(label string, n backend.Network) fault {
		if len(n) == 0 {
			return fault{}
		}
		if err := r.addRandomNetwork(id, n); err != nil {
			r.note("random %s: %v", kind, err)
			return fault{}
		}
		return fault{label: label, undo: func() (string, error) { return "", r.removeRandomNetwork(id) }}
	}
	switch kind {
	case "partition":
		groups, err := r.partitionGroups(experiment.Partition{Shape: "majority-minority"})
		if err != nil {
			return fault{}
		}
		return netFault("partition "+groupsText(groups), groupsNetwork(groups))
	case "partitionVoters":
		groups, err := r.partitionGroups(experiment.Partition{Shape: "majority-minority-voters"})
		if err != nil {
			return fault{}
		}
		return netFault("partition voters "+groupsText(groups), groupsNetwork(groups))
	case "isolateLeader":
		if v.Leader == "" {
			return fault{}
		}
		n := backend.Network{}
		cutBoth(n, []string{v.Leader}, r.universe)
		return netFault("isolate leader "+v.Leader, n)
	case "bridge", "ring":
		pairs := r.shapeLinks(kind, started)
		return netFault(fmt.Sprintf("%s over %s (%d links cut)", kind, strings.Join(started, " "), len(pairs)), pairsNetwork(pairs))
	case "oneWay":
		// Asymmetric cuts: a node that hears but is not heard (a leader
		// whose acks never come back, a follower whose votes are lost),
		// one that is heard but hears nothing (it times out and campaigns
		// at peers that hear it), or one direction of the leader's link
		// to one follower.
		x := r.pickOne(started)
		n := backend.Network{}
		r.mu.Lock()
		variant := r.rng.IntN(3)
		r.mu.Unlock()
		label := ""
		switch {
		case variant == 0:
			for _, o := range r.universe {
				if o != x {
					n[backend.Link{From: x, To: o}] = backend.LinkFault{Drop: true}
				}
			}
			label = "one-way: nothing from " + x + " arrives"
		case variant == 1:
			for _, o := range r.universe {
				if o != x {
					n[backend.Link{From: o, To: x}] = backend.LinkFault{Drop: true}
				}
			}
			label = "one-way: nothing arrives at " + x
		default:
			lead := v.Leader
			if lead == "" || lead == x {
				return fault{}
			}
			from, to := lead, x
			r.mu.Lock()
			if r.rng.IntN(2) == 0 {
				from, to = x, lead
			}
			r.mu.Unlock()
			n[backend.Link{From: from, To: to}] = backend.LinkFault{Drop: true}
			label = fmt.Sprintf("one-way: cut %s -> %s", from, to)
		}
		return netFault(label, n)
	case "delay":
		n := backend.Network{}
		for _, l := range linksOf(r.universe, nil) {
			n[l] = backend.LinkFault{DelayMs: et / 3, JitterMs: et / 3}
		}
		return netFault(fmt.Sprintf("delay all links %dms + up to %dms", et/3, et/3), n)
	case "slow":
		x := r.pickOne(started)
		n := backend.Network{}
		for _, l := range linksOf(r.universe, []string{x}) {
			n[l] = backend.LinkFault{DelayMs: et / 2, JitterMs: et / 2}
		}
		return netFault(fmt.Sprintf("slow links of %s %dms + up to %dms", x, et/2, et/2), n)
	case "loss":
		x := r.pickOne(started)
		n := backend.Network{}
		for _, l := range linksOf(r.universe, []string{x}) {
			n[l] = backend.LinkFault{LossPercent: 20}
		}
		return netFault("loss 20% at "+x, n)
	case "kill", "killLong":
		x := r.reserve(up, func(x string) bool { return kind == "kill" || r.quorumLeftLocked(v, x) })
		if x == "" {
			return fault{}
		}
		f := fault{label: "kill " + x, nodes: []string{x}}
		if kind == "killLong" {
			// Down for several holds: long enough for the others to
			// change membership around it.
			r.mu.Lock()
			f.hold = time.Duration(3+r.rng.IntN(4)) * g.spec.Hold.D()
			r.mu.Unlock()
			f.label = fmt.Sprintf("kill %s for %dms", x, f.hold.Milliseconds())
		}
		if err := r.c.Kill(x); err != nil {
			r.release(x)
			return fault{}
		}
		r.nodeEvent(x, true, false, false, false)
		f.undo = func() (string, error) { return "", r.restart(x) }
		return f
	case "killForever":
		// The single slot and the node are reserved together, under mu,
		// before the Kill.
		x := r.reserve(up, func(x string) bool {
			if g.deadSlot || !r.quorumLeftLocked(v, x) {
				return false
			}
			g.deadSlot = true
			return true
		})
		if x == "" {
			return fault{}
		}
		if err := r.c.Kill(x); err != nil {
			r.mu.Lock()
			g.deadSlot = false
			r.mu.Unlock()
			r.release(x)
			return fault{}
		}
		r.mu.Lock()
		g.dead[x] = true
		r.flog.nodeEvent(x, r.c.Now(), true, false, false, false)
		r.mu.Unlock()
		return fault{label: "kill " + x + " for the rest of the run", forever: true}
	case "crashRecovery":
		// Kill, restart, and kill again while it recovers (replaying
		// its log, catching up), then restart for good.
		x := r.reserve(up, nil)
		if x == "" {
			return fault{}
		}
		if err := r.c.Kill(x); err != nil {
			r.release(x)
			return fault{}
		}
		r.nodeEvent(x, true, false, false, false)
		r.mu.Lock()
		down := time.Duration(et/2+r.rng.IntN(et+1)) * time.Millisecond
		again := time.Duration(1+r.rng.IntN(2*r.exp.Cluster.HeartbeatMs)) * time.Millisecond
		r.mu.Unlock()
		now := r.c.Now()
		r.c.After(now+down, func() {
			if err := r.restart(x); err != nil {
				r.note("random crashRecovery: restart %s: %v", x, err)
			}
		})
		r.c.After(now+down+again, func() {
			if err := r.c.Kill(x); err != nil {
				r.note("random crashRecovery: kill %s again: %v", x, err)
				return
			}
			r.nodeEvent(x, true, false, false, false)
		})
		hold := down + again + down
		return fault{label: fmt.Sprintf("crash %s, restart after %dms, crash again %dms into recovery", x, down.Milliseconds(), again.Milliseconds()),
			hold: hold, nodes: []string{x}, undo: func() (string, error) { return "", r.restart(x) }}
	case "pause":
		x := r.reserve(up, nil)
		if x == "" {
			return fault{}
		}
		if err := r.c.Pause(x); err != nil {
			r.release(x)
			return fault{}
		}
		r.mu.Lock()
		r.paused[x] = true
		r.flog.nodeEvent(x, r.c.Now(), false, true, false, false)
		r.mu.Unlock()
		return fault{label: "pause " + x, nodes: []string{x}, undo: func() (string, error) { return "", r.resumeNode(x) }}
	case "pauseLeader":
		// Three to four election timeouts, longer than any randomized
		// one (et..2et): the others elect a leader and commit for at
		// least another election timeout while this one sleeps, and it
		// wakes to the heartbeat answers and requests that waited for
		// it; reads go through it right as it wakes. Drawn only when a
		// majority of the other voters can elect (up, not held by a
		// fault, not cut off): otherwise no one overtakes it.
		lead := v.Leader
		if lead == "" {
			return fault{}
		}
		if r.reserve([]string{lead}, func(string) bool { return r.othersCanElectLocked(v, lead) }) == "" {
			return fault{}
		}
		term := v.Node(lead).Term
		r.mu.Lock()
		d := time.Duration(3*et+r.rng.IntN(et+1)) * time.Millisecond
		r.mu.Unlock()
		if err := r.c.Pause(lead); err != nil {
			r.release(lead)
			return fault{}
		}
		r.mu.Lock()
		r.paused[lead] = true
		r.flog.nodeEvent(lead, r.c.Now(), false, true, false, false)
		r.mu.Unlock()
		return fault{label: fmt.Sprintf("%s%s (term %d) for %dms, election timeout %dms", PauseLeaderLabel, lead, term, d.Milliseconds(), et),
			hold: d, nodes: []string{lead}, undo: func() (string, error) {
				v := r.c.Observe(r.ctx)
				note := "no other leader at resume"
				if l := v.Leader; l != "" && l != lead {
					note = fmt.Sprintf("%s led term %d at resume", l, v.Node(l).Term)
				}
				err := r.resumeNode(lead)
				if err == nil {
					for i := 0; i < 2; i++ {
						r.readThrough(lead)
					}
					note += "; 2 reads through it"
				}
				return note, err
			}}
	case "reconfigure":
		// The old way: a membership change drawn as a fault; it is
		// never a no-op either.
		label, ok := r.randomChange()
		if !ok {
			return fault{}
		}
		return fault{label: label, instant: true}
	case "transferLeader":
		x := r.pickOne(up)
		r.mu.Lock()
		r.transferAt = r.c.Now()
		r.mu.Unlock()
		_ = r.c.TransferLeader(x)
		return fault{label: "transfer leadership to " + x, instant: true}
	}
	return fault{}
}

// readThrough reads a random key through node, as a session of its own,
// into the history: a leader just resumed may still believe it leads.
func (r *run) readThrough(node string) {
	if r.c.Now() >= r.workloadEnd {
		return
	}
	r.mu.Lock()
	r.gen.readers++
	name := fmt.Sprintf("%s%d", readClientPrefix, r.gen.readers)
	op := backend.Op{Kind: backend.Get, Key: fmt.Sprintf("k%d", r.rng.IntN(r.exp.Workload.Keys)), ClientID: name, Seq: 1}
	r.outstanding++
	phase := r.phase
	call := r.stampLocked()
	r.mu.Unlock()
	intended := r.c.Now()
	r.c.Do(node, op, time.Duration(r.exp.Workload.OpTimeoutMs)*time.Millisecond, func(res backend.Result) {
		r.record(name, node, op, res, call, intended, phase)
	})
}

// changeTurn starts a membership change unless the last one is still
// under way (and young: a change stuck behind a fault for two turns is
// replaced, which is a window of its own).
func (r *run) changeTurn() {
	now := r.c.Now()
	r.mu.Lock()
	busy := false
	if n := len(r.reconfigs); n > 0 {
		last := r.reconfigs[n-1]
		busy = !last.rec.Done && now-last.startedAt < 2*r.gen.spec.ChangeEvery.D()
	}
	r.mu.Unlock()
	if busy {
		return
	}
	label, ok := r.randomChange()
	if !ok {
		return
	}
	r.mu.Lock()
	r.steps = append(r.steps, StepRecord{Index: 0, Action: "random", Kind: "change", Label: label, StartMs: now.Milliseconds(), EndMs: now.Milliseconds(), OK: true})
	r.mu.Unlock()
	r.logf("random: %s", label)
}

// randomChange starts a membership change that always changes the voters:
// replace one (a permanently dead one first), grow by one or shrink by
// one (not below three), in the run's safety mode (safe: a new member
// joins as a learner and is promoted through joint consensus).
func (r *run) randomChange() (string, bool) {
	g := r.gen
	v := r.c.Observe(r.ctx)
	base := r.voters(v)
	committed, _ := r.committedVoters(r.c.Stats())
	r.mu.Lock()
	target := slices.Clone(r.replicaSet)
	var pool, dead []string
	for i := 0; i < g.maxN; i++ {
		id := nodeName(i)
		if g.dead[id] {
			if slices.Contains(base, id) {
				dead = append(dead, id)
			}
			continue
		}
		if !slices.Contains(base, id) {
			pool = append(pool, id)
		}
	}
	var ops []string
	if len(pool) > 0 && len(base) > 0 {
		ops = append(ops, "replace")
	}
	if len(pool) > 0 && len(base) < g.maxN && len(dead) == 0 {
		// A voter dead for good is replaced or removed first: growing
		// around it leaves a configuration with one voter less of margin.
		ops = append(ops, "grow")
	}
	if len(base) > 3 {
		ops = append(ops, "shrink")
	}
	if len(ops) == 0 {
		r.mu.Unlock()
		return "", false
	}
	var desired []string
	var label string
	for try := 0; try < 4; try++ {
		op := ops[r.rng.IntN(len(ops))]
		out := base[r.rng.IntN(len(base))]
		if len(dead) > 0 {
			out = dead[0]
		}
		in := ""
		if len(pool) > 0 {
			in = pool[r.rng.IntN(len(pool))]
		}
		d := slices.Clone(base)
		switch op {
		case "replace":
			d = append(slices.DeleteFunc(d, func(s string) bool { return s == out }), in)
			label = fmt.Sprintf("%sreplace %s by %s", ChangeLabel, out, in)
		case "grow":
			d = append(d, in)
			label = fmt.Sprintf("%sgrow by %s", ChangeLabel, in)
		case "shrink":
			d = slices.DeleteFunc(d, func(s string) bool { return s == out })
			label = fmt.Sprintf("%sshrink without %s", ChangeLabel, out)
		}
		slices.Sort(d)
		// Never a no-op: not the voters the leader has, nor those of the
		// last change asked for, nor the committed configuration (what
		// the change's coverage compares against, leader or not).
		if !sameVoters(d, base) && !sameVoters(d, target) && !sameVoters(d, committed) {
			desired = d
			break
		}
	}
	r.mu.Unlock()
	if desired == nil {
		return "", false
	}
	label += fmt.Sprintf(": voters %s -> %s", strings.Join(base, " "), strings.Join(desired, " "))
	if err := r.reconfigure(desired); err != nil {
		r.note("random change: %v", err)
		return "", false
	}
	return label, true
}

func sameVoters(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// watchTriggers fires a fault when the leader enters a membership state
// of the random step's on: list. entering, leaving and learner come from
// the driver's own steps (driverTrigger: the entry has just been
// appended, not committed; a learner just added has everything to catch
// up), joint from watching the leader (every 5 ms on sim, 50 ms on local).
func (r *run) watchTriggers() {
	every := 5 * time.Millisecond
	if r.opts.Backend.Name() != "sim" {
		every = 50 * time.Millisecond
	}
	on := r.gen.spec.On
	var tick func()
	tick = func() {
		now := r.c.Now()
		if now >= r.workloadEnd || r.ctx.Err() != nil {
			return
		}
		v := r.c.Observe(r.ctx)
		if lead := v.Leader; lead != "" {
			ln := v.Node(lead)
			state := ln.Joint
			if state == "" {
				state = "none"
			}
			r.mu.Lock()
			prev := r.gen.joint
			r.gen.joint = state
			fire := state != prev && state == "joint" && slices.Contains(on, "joint")
			if fire && len(r.reconfigs) > 0 {
				// Once per change: a joint state entered again (a
				// retried change) does not fire again.
				rr := r.reconfigs[len(r.reconfigs)-1]
				fire = !rr.fired["joint"]
				rr.fired["joint"] = true
			}
			r.mu.Unlock()
			if fire {
				r.trigger("joint")
			}
		}
		r.c.After(now+every, tick)
	}
	r.c.After(r.c.Now(), tick)
}

// driverTrigger is called as the driver starts a step: EnterJoint (or
// the unsafe one-step change), LeaveJoint and AddLearner trigger the
// entering, leaving and learner faults in the same instant (on sim,
// before any peer can have acknowledged the entry; on local, After runs
// the fault on a goroutine of its own, and a peer may have), once per
// change and state.
func (r *run) driverTrigger(rr *reconfigRun, op reconfig.Op) {
	r.mu.Lock()
	g := r.gen
	r.mu.Unlock()
	if g == nil || len(g.spec.On) == 0 {
		return
	}
	state := ""
	switch op {
	case reconfig.OpEnterJoint, reconfig.OpChangeVoters:
		state = "entering"
	case reconfig.OpLeaveJoint:
		state = "leaving"
	case reconfig.OpAddLearner:
		state = "learner" // added now: it has the whole log to catch up
	}
	if state == "" || !slices.Contains(g.spec.On, state) {
		return
	}
	// Once per change and state: the driver starts a step again on every
	// retry, and a retried LeaveJoint is not a second leaving.
	r.mu.Lock()
	again := rr.fired[state]
	rr.fired[state] = true
	r.mu.Unlock()
	if again {
		return
	}
	r.c.After(r.c.Now(), func() {
		if r.c.Now() < r.workloadEnd {
			r.trigger(state)
		}
	})
}

// trigger starts one fault drawn from the kinds for a membership state;
// triggers may exceed maxActive by two, since they are the point.
func (r *run) trigger(state string) {
	r.mu.Lock()
	g := r.gen
	room := len(g.active) < g.maxActive+2
	kind := g.kinds[r.rng.IntN(len(g.kinds))]
	r.mu.Unlock()
	if room {
		r.startFault(kind, state)
	}
}

func (r *run) resumeNode(id string) error {
	r.mu.Lock()
	delete(r.paused, id)
	r.mu.Unlock()
	if err := r.c.Resume(id); err != nil {
		return err
	}
	r.nodeEvent(id, false, false, true, false)
	return nil
}
