package runner

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// Options configure one run.
type Options struct {
	Backend backend.Backend
	// Seed overrides the file's seed when non-zero.
	Seed uint64
	// Sets are the --set overrides already applied to the experiment,
	// recorded in the results and the replay command.
	Sets []string
	// CheckTimeout bounds porcupine (default 60 s); a timeout is the
	// verdict unknown.
	CheckTimeout time.Duration
	// Log receives one line per step as it runs (nil: quiet).
	Log io.Writer
}

// run is the engine's state for one run. Callbacks from the backend may
// come from other goroutines (local backend): mu guards the fields below
// it, and is never held across a call into the backend (the simulator
// runs callbacks inside those calls).
type run struct {
	exp  *experiment.Experiment
	c    backend.Cluster
	opts Options
	ctx  context.Context
	seed uint64
	mode reconfig.Mode

	// netMu orders network changes: it is held across composing the
	// faults in force and handing them to the backend (SetNetwork), so
	// two changes on concurrent goroutines (local) reach the backend in
	// the order they were composed. Taken before mu, never under it.
	netMu sync.Mutex

	mu          sync.Mutex
	flog        faultLog // when nodes and links were faulted (coverage.go)
	rng         *rand.Rand
	hist        []HistoryEntry
	outstanding int
	phase       string
	workloadEnd time.Duration
	replicaSet  []string
	started     map[string]bool
	paused      map[string]bool
	net         netFaults // the network faults in force (network.go)
	universe    []string  // every node name the experiment can have
	lastStamp   int64     // the history's last timestamp (stamp)
	gen         *generator
	cov         Coverage
	steps       []StepRecord
	reconfigs   []*reconfigRun
	driverGen   int
	leaderSeen  string
	changes     []leaderChange
	transferAt  time.Duration
	whenMissed  []Expectation // when: steps whose condition never held: each fails the run
	notes       []string      // errors of random faults, in result.json's notes
	start       time.Duration // when the cluster had its first leader: time zero of the results
}

type leaderChange struct {
	from, to string
	at       time.Duration
	transfer bool
}

type reconfigRun struct {
	rec       Reconfiguration
	events    []reconfig.Event
	bytesFrom map[string]uint64
	newbies   []string
	startedAt time.Duration
	// What the coverage counts (Coverage, coverage.go): the change asked
	// for the voters it had; its driver steps; the learners it added; the
	// outgoing voters of the configuration at its start (joint).
	noOp     bool
	dsteps   []driverStep
	learners []string
	outgoing []string
	// fired are the membership states that triggered a fault for this
	// change (a state fires once per change, not on every retry).
	fired map[string]bool
}

func (r *run) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, "%8.3fs  %s\n", r.c.Now().Seconds(), fmt.Sprintf(format, args...))
	}
}

func nodeName(i int) string { return fmt.Sprintf("kv-%d", i) }

// Execute runs an experiment on a backend and returns its result (not yet
// written anywhere) and the history.
func Execute(ctx context.Context, exp *experiment.Experiment, opts Options) (*Run, error) {
	seed := exp.Seed
	if opts.Seed != 0 {
		seed = opts.Seed
	}
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = 60 * time.Second
	}
	mode, err := reconfig.ParseMode(exp.Cluster.SafetyMode)
	if err != nil {
		return nil, err
	}
	wall := time.Now()
	c, err := opts.Backend.Start(ctx, exp, seed)
	if err != nil {
		return nil, fmt.Errorf("%s backend: start: %w", opts.Backend.Name(), err)
	}
	defer c.Close()
	r := &run{exp: exp, c: c, opts: opts, ctx: ctx, seed: seed, mode: mode,
		rng:     rand.New(rand.NewPCG(seed, 0x72756e)),
		phase:   "before",
		started: map[string]bool{}, paused: map[string]bool{}, net: newNetFaults(), universe: universe(exp), flog: newFaultLog()}
	for i := 0; i < exp.Cluster.Replicas; i++ {
		r.replicaSet = append(r.replicaSet, nodeName(i))
		r.started[nodeName(i)] = true
	}
	et := time.Duration(exp.Cluster.ElectionTimeoutMs) * time.Millisecond
	if !c.WaitUntil(ctx, func(view func() backend.View) bool { return view().Leader != "" }, 30*et) {
		return nil, fmt.Errorf("%s backend: no leader elected within %v of the start", opts.Backend.Name(), 30*et)
	}
	r.leaderSeen = c.Observe(ctx).Leader
	r.logf("cluster up: %d nodes, leader %s, mode %s", exp.Cluster.Replicas, r.leaderSeen, mode)
	start := c.Now()
	r.start = start
	r.workloadEnd = start + exp.Workload.Duration.D()
	r.startMonitor()
	r.startWorkload()
	for i, s := range exp.Steps {
		if s.At != nil {
			idx, st := i, s
			c.After(start+s.At.D(), func() { r.runStep(idx, st) })
		}
	}
	for i, s := range exp.Steps {
		if ctx.Err() != nil {
			break
		}
		if s.At == nil {
			r.runStep(i, s)
		}
	}
	// The run ends when the workload is over and every call has returned.
	opTimeout := time.Duration(exp.Workload.OpTimeoutMs) * time.Millisecond
	c.WaitUntil(ctx, func(func() backend.View) bool { return c.Now() >= r.workloadEnd }, r.workloadEnd-c.Now()+time.Millisecond)
	c.WaitUntil(ctx, func(func() backend.View) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.outstanding == 0
	}, 2*opTimeout+time.Second)
	r.mu.Lock()
	r.driverGen++ // stops a driver still running
	r.mu.Unlock()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return r.result(c.Stats(), start, wall), nil
}

// startMonitor watches the leader to time failovers.
func (r *run) startMonitor() {
	every := 10 * time.Millisecond
	if r.opts.Backend.Name() != "sim" {
		every = 100 * time.Millisecond
	}
	var tick func()
	tick = func() {
		lead := r.c.Observe(r.ctx).Leader
		now := r.c.Now()
		r.mu.Lock()
		if lead != r.leaderSeen {
			tr := r.transferAt > 0 && now-r.transferAt < 4*time.Duration(r.exp.Cluster.ElectionTimeoutMs)*time.Millisecond
			if r.leaderSeen != "" {
				r.changes = append(r.changes, leaderChange{from: r.leaderSeen, to: lead, at: now, transfer: tr})
			} else if n := len(r.changes); n > 0 && r.changes[n-1].to == "" {
				r.changes[n-1].to = lead
			}
			r.leaderSeen = lead
		}
		done := now > r.workloadEnd
		r.mu.Unlock()
		if !done {
			r.c.After(now+every, tick)
		}
	}
	r.c.After(r.c.Now(), tick)
}

// ---- workload ----

type client struct {
	idx  int
	name string
	seq  uint64
	next time.Duration // open loop: the next scheduled call
}

// sessions is the number of client sessions: each client's outstanding
// slots (workload.outstanding) are sessions of their own, since kvserver
// allows one outstanding request per session and its sequence numbers
// must increase in the order the requests are sent.
func (r *run) sessions() int {
	return r.exp.Workload.Clients * max(r.exp.Workload.Outstanding, 1)
}

// interval is the open-loop time between two calls of one session.
func (r *run) interval() time.Duration {
	return time.Duration(float64(r.sessions()) / r.exp.Workload.Rate * float64(time.Second))
}

func (r *run) startWorkload() {
	w := r.exp.Workload
	slots := max(w.Outstanding, 1)
	n := r.sessions()
	for i := 0; i < n; i++ {
		c, slot := i/slots, i%slots
		name := fmt.Sprintf("c%d", c)
		if slot > 0 {
			name = fmt.Sprintf("c%d.%d", c, slot)
		}
		cl := &client{idx: i, name: name}
		first := r.c.Now()
		if w.Rate > 0 {
			first += r.interval() * time.Duration(i) / time.Duration(n)
			cl.next = first
		}
		r.c.After(first, func() { r.issue(cl) })
	}
}

// pick chooses the next operation of a client (under mu).
func (r *run) pick(cl *client) (string, backend.Op) {
	w := r.exp.Workload
	var key int
	if w.KeyDistribution == "zipf" && w.Keys > 1 {
		z := rand.NewZipf(r.rng, w.ZipfS, 1, uint64(w.Keys-1))
		key = int(z.Uint64())
	} else {
		key = r.rng.IntN(w.Keys)
	}
	nodes := r.targetsLocked()
	node := nodes[r.rng.IntN(len(nodes))]
	cl.seq++
	op := backend.Op{Kind: backend.Put, Key: fmt.Sprintf("k%d", key), ClientID: cl.name, Seq: cl.seq}
	if r.rng.Float64() < w.ReadRatio {
		op.Kind = backend.Get
	} else {
		v := fmt.Sprintf("%s-%d", cl.name, cl.seq)
		if pad := w.ValueBytes - len(v); pad > 0 {
			v += strings.Repeat(".", pad)
		}
		op.Value = v
	}
	return node, op
}

// nodesLocked lists every node started, sorted.
func (r *run) nodesLocked() []string {
	var ids []string
	for id := range r.started {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// targetsLocked lists the nodes clients call: the replica set (the
// founders, then each reconfiguration's voters), the way a deployment's
// clients follow its membership. A killed node is still called and
// refuses the connection, as a real one does.
func (r *run) targetsLocked() []string {
	var ids []string
	for _, id := range r.replicaSet {
		if r.started[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return r.nodesLocked()
	}
	return ids
}

// stampLocked is the history timestamp of an event happening now (under
// mu): the backend's time in nanoseconds, made strictly increasing. The
// simulator's clock moves in whole milliseconds and runs a client's next
// call in the same instant as the previous return; equal times would make
// porcupine take the two for concurrent (and accept a read that misses
// the client's own acknowledged write). Events get the order in which the
// engine saw them: a return recorded before the next call stamps before
// it. A millisecond holds a million stamps, far more events than any run
// has in one, so stamps never run into the next millisecond's.
func (r *run) stampLocked() int64 {
	t := int64(r.c.Now())
	if t <= r.lastStamp {
		t = r.lastStamp + 1
	}
	r.lastStamp = t
	return t
}

func (r *run) issue(cl *client) {
	w := r.exp.Workload
	now := r.c.Now()
	if now >= r.workloadEnd || r.ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	call := r.stampLocked()
	node, op := r.pick(cl)
	intended := now
	if w.Rate > 0 && cl.next < now {
		intended = cl.next
	}
	r.outstanding++
	phase := r.phase
	r.mu.Unlock()
	timeout := time.Duration(w.OpTimeoutMs) * time.Millisecond
	r.c.Do(node, op, timeout, func(res backend.Result) {
		ret := r.c.Now()
		r.record(cl.name, node, op, res, call, intended, phase)
		var next time.Duration
		if w.Rate > 0 {
			r.mu.Lock()
			cl.next += r.interval()
			next = max(cl.next, ret)
			r.mu.Unlock()
		} else {
			next = ret
			if res.Outcome == backend.Failed {
				// A refused call returns at once: back off instead of
				// spinning on a node that is down.
				next = ret + 10*time.Millisecond
			}
		}
		r.c.After(next, func() { r.issue(cl) })
	})
}

// record adds a returned operation to the history: call is its call
// stamp, and it is stamped returned now.
func (r *run) record(clientName, node string, op backend.Op, res backend.Result, call int64, intended time.Duration, phase string) {
	h := HistoryEntry{Client: clientName, Node: node, Op: string(op.Kind), Key: op.Key, Outcome: string(res.Outcome),
		CallNs: call, Err: res.Err, Phase: phase, IntendedNs: int64(intended)}
	if op.Kind == backend.Put {
		h.Value = op.Value
	} else if res.Outcome == backend.OK {
		found := res.Found
		h.Found = &found
		h.Value = res.Value
	}
	r.mu.Lock()
	h.ReturnNs = r.stampLocked()
	r.hist = append(r.hist, h)
	r.outstanding--
	r.mu.Unlock()
}

// ---- steps ----

func (r *run) runStep(i int, s experiment.Step) {
	c := r.c
	if s.When != nil {
		cond := r.condition(*s.When)
		if !c.WaitUntil(r.ctx, cond, r.workloadEnd-c.Now()+time.Second) {
			// The step did not happen: it is not ok, and the run fails
			// (an experiment that never reached the state it meant to
			// test did not test it).
			name := fmt.Sprintf("step %d (line %d, %s) when: %s", i+1, s.Pos.Line, s.Action(), conditionText(*s.When))
			now := c.Now().Milliseconds()
			rec := StepRecord{Index: i + 1, Action: s.Action(), Label: s.Label(), StartMs: now, EndMs: now,
				Note: "when: " + conditionText(*s.When) + " never matched by the end of the workload; the step did not run"}
			r.logf("step %d: %s", i+1, rec.Note)
			r.mu.Lock()
			r.steps = append(r.steps, rec)
			r.whenMissed = append(r.whenMissed, Expectation{Name: name, Expected: "matched", Observed: "never matched"})
			r.mu.Unlock()
			return
		}
	}
	rec := StepRecord{Index: i + 1, Action: s.Action(), Label: s.Label(), StartMs: c.Now().Milliseconds(), OK: true}
	r.logf("step %d: %s", i+1, rec.Label)
	err := r.act(s, &rec)
	if err != nil {
		rec.OK = false
		rec.Note = err.Error()
		r.logf("step %d: %v", i+1, err)
	}
	rec.EndMs = c.Now().Milliseconds()
	r.mu.Lock()
	r.steps = append(r.steps, rec)
	r.mu.Unlock()
}

func (r *run) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

func (r *run) startupFor(extra ...string) []string {
	if r.mode != reconfig.UnsafeEarlyVote {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	set := slices.Clone(r.replicaSet)
	for _, id := range extra {
		if !slices.Contains(set, id) {
			set = append(set, id)
		}
	}
	slices.Sort(set)
	return set
}

func (r *run) act(s experiment.Step, rec *StepRecord) error {
	c := r.c
	et := time.Duration(r.exp.Cluster.ElectionTimeoutMs) * time.Millisecond
	switch {
	case s.Sleep != nil:
		c.WaitUntil(r.ctx, nil, s.Sleep.D())
	case s.Await != nil:
		if !c.WaitUntil(r.ctx, r.condition(*s.Await), s.Await.Timeout.D()) {
			return fmt.Errorf("timed out after %v", s.Await.Timeout.D())
		}
	case s.Partition != nil:
		// A partition step is the partition now: it replaces the earlier
		// partition and isolate steps' cuts, and leaves delays, losses and
		// random faults in force.
		var n backend.Network
		if sh := s.Partition.Shape; sh == "bridge" || sh == "ring" {
			pairs := r.shapeLinks(sh, r.allNames())
			rec.Note = fmt.Sprintf("%d links cut", len(pairs))
			n = pairsNetwork(pairs)
		} else {
			groups, err := r.partitionGroups(*s.Partition)
			if err != nil {
				return err
			}
			rec.Note = groupsText(groups)
			n = groupsNetwork(groups)
		}
		r.setPhase(rec.Label)
		return r.changeNetwork(func(nf *netFaults) { nf.cuts = n })
	case s.Isolate != nil:
		ids, err := r.resolve(*s.Isolate)
		if err != nil {
			return err
		}
		r.setPhase(rec.Label)
		return r.changeNetwork(func(nf *netFaults) { cutBoth(nf.cuts, ids, r.universe) })
	case s.Heal != nil:
		r.setPhase("after")
		return r.healNetwork()
	case s.Delay != nil, s.Loss != nil:
		f := s.Delay
		fault := backend.LinkFault{}
		if f != nil {
			fault.DelayMs, fault.JitterMs = f.Ms, f.JitterMs
		} else {
			f = s.Loss
			fault.LossPercent = f.Percent
			if f.Percent >= 100 {
				// Every message lost: a cut (one-way, given from and to).
				fault = backend.LinkFault{Drop: true}
			}
		}
		r.setPhase(rec.Label)
		var links []backend.Link
		switch {
		case f.From != "":
			from, err := r.resolve(experiment.Nodes{f.From})
			if err != nil {
				return err
			}
			to, err := r.resolve(experiment.Nodes{f.To})
			if err != nil {
				return err
			}
			links = []backend.Link{{From: from[0], To: to[0]}}
		case len(f.Nodes) == 0:
			links = linksOf(r.universe, nil)
		default:
			ids, err := r.resolve(f.Nodes)
			if err != nil {
				return err
			}
			links = linksOf(r.universe, ids)
		}
		return r.changeNetwork(func(nf *netFaults) {
			m := nf.delay
			if s.Loss != nil {
				m = nf.loss
			}
			for _, l := range links {
				m[l] = fault
			}
		})
	case s.Kill != nil, s.Pause != nil:
		nodes := s.Kill
		if nodes == nil {
			nodes = s.Pause
		}
		ids, err := r.resolve(*nodes)
		if err != nil {
			return err
		}
		r.setPhase(rec.Label)
		for _, id := range ids {
			if s.Kill != nil {
				err = c.Kill(id)
				if err == nil {
					r.nodeEvent(id, true, false, false, false)
				}
			} else {
				err = c.Pause(id)
				r.mu.Lock()
				r.paused[id] = err == nil
				if err == nil {
					r.flog.nodeEvent(id, r.c.Now(), false, true, false, false)
				}
				r.mu.Unlock()
			}
			if err != nil {
				return err
			}
		}
	case s.Restart != nil:
		ids, err := r.resolve(*s.Restart)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := r.restart(id); err != nil {
				return err
			}
		}
	case s.Resume != nil:
		ids, err := r.resolve(*s.Resume)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := c.Resume(id); err != nil {
				return err
			}
			r.mu.Lock()
			r.flog.nodeEvent(id, r.c.Now(), false, false, true, false)
			delete(r.paused, id)
			r.mu.Unlock()
		}
	case s.Start != nil:
		for _, id := range *s.Start {
			if err := r.startNode(id); err != nil {
				return err
			}
		}
	case s.Scale != nil:
		var desired []string
		for i := 0; i < *s.Scale; i++ {
			desired = append(desired, nodeName(i))
		}
		r.setPhase(rec.Label)
		return r.reconfigure(desired)
	case s.Reconfigure != nil:
		r.setPhase(rec.Label)
		return r.reconfigure(slices.Sorted(slices.Values(s.Reconfigure.Voters)))
	case s.TransferLeader != nil:
		ids, err := r.resolve(experiment.Nodes{*s.TransferLeader})
		if err != nil {
			return err
		}
		to := ids[0]
		r.mu.Lock()
		r.transferAt = c.Now()
		r.mu.Unlock()
		ok := c.WaitUntil(r.ctx, func(view func() backend.View) bool {
			v := view()
			if v.Leader == to {
				return true
			}
			if v.Leader != "" && !v.Node(v.Leader).Paused {
				_ = c.TransferLeader(to)
			}
			return false
		}, 10*et)
		if !ok {
			return fmt.Errorf("leadership did not move to %s within %v", to, 10*et)
		}
	case s.Put != nil, s.Get != nil:
		return r.explicit(s, rec)
	case s.Random != nil:
		r.random(*s.Random)
	}
	return nil
}

// explicit runs a put or get step through its node and waits for it.
func (r *run) explicit(s experiment.Step, rec *StepRecord) error {
	o := s.Put
	op := backend.Op{Kind: backend.Put}
	if o == nil {
		o = s.Get
		op.Kind = backend.Get
	}
	ids, err := r.resolve(experiment.Nodes{o.Node})
	if err != nil {
		return err
	}
	// Each explicit operation is a session of its own: two steps at the
	// same instant are concurrent calls, not two calls of one session.
	clientName := stepClient(rec.Index)
	r.mu.Lock()
	op.ClientID, op.Seq, op.Key, op.Value = clientName, 1, o.Key, o.Value
	r.outstanding++
	phase := r.phase
	call := r.stampLocked()
	r.mu.Unlock()
	done := false
	var got backend.Result
	intended := r.c.Now()
	timeout := time.Duration(r.exp.Workload.OpTimeoutMs) * time.Millisecond
	r.c.Do(ids[0], op, timeout, func(res backend.Result) {
		r.record(clientName, ids[0], op, res, call, intended, phase)
		r.mu.Lock()
		done, got = true, res
		r.mu.Unlock()
	})
	r.c.WaitUntil(r.ctx, func(func() backend.View) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return done
	}, timeout+time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !done:
		rec.Note = "no answer"
	case op.Kind == backend.Get && got.Outcome == backend.OK && got.Found:
		rec.Note = fmt.Sprintf("ok: %s=%s", op.Key, got.Value)
	case op.Kind == backend.Get && got.Outcome == backend.OK:
		rec.Note = fmt.Sprintf("ok: %s not found", op.Key)
	default:
		rec.Note = string(got.Outcome)
		if got.Err != "" {
			rec.Note += ": " + got.Err
		}
	}
	return nil
}

func (r *run) startNode(id string) error {
	r.mu.Lock()
	exists := r.started[id]
	r.mu.Unlock()
	if exists {
		return nil
	}
	if err := r.c.Start(id, r.startupFor(id)); err != nil {
		return err
	}
	r.mu.Lock()
	r.started[id] = true
	if !slices.Contains(r.replicaSet, id) {
		r.replicaSet = append(r.replicaSet, id)
		slices.Sort(r.replicaSet)
	}
	r.mu.Unlock()
	// The backend applies the network in force to nodes that start later
	// (SetNetwork): nothing to reapply.
	return nil
}

func (r *run) restart(id string) error {
	r.mu.Lock()
	paused := r.paused[id]
	r.mu.Unlock()
	if paused {
		if err := r.c.Resume(id); err != nil {
			return err
		}
	}
	if !r.c.Observe(r.ctx).Node(id).Up {
		if err := r.c.Restart(id, r.startupFor()); err != nil {
			return err
		}
	} else {
		// A restart of a running node: kill it first (a crash, not a
		// graceful stop).
		if err := r.c.Kill(id); err != nil {
			return err
		}
		if err := r.c.Restart(id, r.startupFor()); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.flog.nodeEvent(id, r.c.Now(), false, false, false, true)
	delete(r.paused, id)
	r.mu.Unlock()
	return nil
}

// ---- membership ----

func (r *run) policy() reconfig.Policy {
	et := time.Duration(r.exp.Cluster.ElectionTimeoutMs) * time.Millisecond
	return reconfig.Policy{MaxLag: 64, Stabilization: et, RateLimit: et,
		FlapThreshold: 5, FlapWindow: 20 * et, MaxObservationAge: 5 * time.Second,
		Retry: 100 * time.Millisecond, MaxRetry: time.Second}
}

// reconfigure starts the missing nodes and a reconfiguration driver toward
// desired, in the background; a later reconfigure replaces it.
func (r *run) reconfigure(desired []string) error {
	stats := r.c.Stats()
	from, outgoing := r.committedVoters(stats)
	r.mu.Lock()
	// The deployment's replica set is the target: clients follow it, and
	// in unsafe-early-vote mode a member that starts or restarts now takes
	// it as its membership (its peer list).
	r.replicaSet = slices.Clone(desired)
	r.mu.Unlock()
	var newbies []string
	for _, id := range desired {
		r.mu.Lock()
		have := r.started[id]
		r.mu.Unlock()
		if !have {
			newbies = append(newbies, id)
			if err := r.startNode(id); err != nil {
				return err
			}
		}
	}
	rr := &reconfigRun{rec: Reconfiguration{To: desired, StartMs: r.c.Now().Milliseconds(), EndMs: -1, PhasesMs: map[string]int64{}},
		newbies: newbies, bytesFrom: maps.Clone(stats.BytesTo), startedAt: r.c.Now(), fired: map[string]bool{},
		outgoing: outgoing}
	// The change starts from the committed configuration, leader or not:
	// it is a no-op if it asks for those voters (and that configuration
	// is not joint).
	rr.rec.From = from
	rr.noOp = len(outgoing) == 0 && sameVoters(from, desired)
	d := &reconfig.Driver{Admin: r.c.Admin(), Mode: r.mode, Policy: r.policy(), Desired: desired, Clock: r.c.Clock()}
	d.OnEvent = func(e reconfig.Event) {
		if e.Kind == reconfig.EventStepStarted {
			r.driverTrigger(rr, e.Decision.Step.Op)
		}
		r.mu.Lock()
		rr.events = append(rr.events, e)
		rr.stepEvent(e, r.c.Now())
		if e.Kind == reconfig.EventStepStarted && e.Decision.Step.Op == reconfig.OpTransferLeader {
			r.transferAt = r.c.Now() // a leader change asked for, not a failover
		}
		if e.Kind == reconfig.EventStepStarted {
			rr.rec.Steps = append(rr.rec.Steps, fmt.Sprintf("%dms %s", (r.c.Now()-r.start).Milliseconds(), e.Decision.Step))
		}
		if e.Decision.Why != "" {
			rr.rec.LastReason = e.Decision.String()
		}
		r.mu.Unlock()
		switch e.Kind {
		case reconfig.EventStepStarted, reconfig.EventStepFailed, reconfig.EventBlocked:
			if e.Err != nil {
				r.logf("driver %s: %s: %v", e.Kind, e.Decision.Step, e.Err)
			} else {
				r.logf("driver %s: %s", e.Kind, e.Decision)
			}
		}
	}
	r.mu.Lock()
	r.driverGen++
	gen := r.driverGen
	if n := len(r.reconfigs); n > 0 {
		// The driver of the change before stops now: its step still
		// under way ends here (coverage.go).
		r.reconfigs[n-1].stopped(r.c.Now())
	}
	r.reconfigs = append(r.reconfigs, rr)
	r.mu.Unlock()
	r.logf("reconfiguration driver (%s) toward voters %s", r.mode, strings.Join(desired, " "))
	var loop func()
	loop = func() {
		r.mu.Lock()
		live := gen == r.driverGen
		r.mu.Unlock()
		if !live || r.ctx.Err() != nil {
			return
		}
		dec := d.Step(r.ctx)
		now := r.c.Now()
		if dec.Kind == reconfig.Done {
			bytes := r.c.Stats().BytesTo
			r.mu.Lock()
			rr.rec.Done, rr.rec.EndMs = true, now.Milliseconds()
			if bytes != nil {
				var b uint64
				for _, id := range rr.newbies {
					b += bytes[id] - rr.bytesFrom[id]
				}
				rr.rec.CatchUpB = &b
			}
			r.mu.Unlock()
			r.logf("reconfiguration done: voters %s", strings.Join(desired, " "))
			return
		}
		next := now + 20*time.Millisecond
		if dec.Kind == reconfig.Wait && !dec.Until.IsZero() {
			if w := dec.Until.Sub(r.c.Clock().Now()); w > 0 && w < time.Second {
				next = now + w
			}
		}
		r.c.After(next, loop)
	}
	r.c.After(r.c.Now(), loop)
	return nil
}

// committedVoters are the voters (and the outgoing voters, when joint) of
// the latest committed configuration the backend reported; without one
// (none committed yet, or none seen), the leader's configuration, or the
// replica set when there is no leader.
func (r *run) committedVoters(stats backend.Stats) (voters, outgoing []string) {
	var best *backend.ConfigRecord
	for i := range stats.Configs {
		if c := &stats.Configs[i]; best == nil || c.Index > best.Index {
			best = c
		}
	}
	if best != nil && len(best.Voters) > 0 {
		return slices.Sorted(slices.Values(best.Voters)), slices.Sorted(slices.Values(best.Outgoing))
	}
	v := r.c.Observe(r.ctx)
	if v.Leader != "" {
		if n := v.Node(v.Leader); len(n.Voters) > 0 {
			return slices.Sorted(slices.Values(n.Voters)), slices.Sorted(slices.Values(n.OutgoingVoters))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.replicaSet), nil
}

// stepClientPrefix starts the client name (session) of an explicit
// operation; workload clients are c0, c1, ...
const stepClientPrefix = "step-"

// stepClient is the session of the explicit operation of step index
// (1-based): a step runs once, so each explicit operation has its own.
func stepClient(index int) string { return fmt.Sprintf("%s%d", stepClientPrefix, index) }

// ---- conditions and selectors ----

// conditionText writes a condition as the file does: {jointState: entering}.
func conditionText(c experiment.Condition) string {
	var parts []string
	if c.Leader != nil {
		parts = append(parts, fmt.Sprintf("leader: %v", *c.Leader))
	}
	if len(c.LeaderIn) > 0 {
		parts = append(parts, "leaderIn: ["+strings.Join(c.LeaderIn, ", ")+"]")
	}
	if c.JointState != "" {
		parts = append(parts, "jointState: "+c.JointState)
	}
	if c.Applied != nil {
		parts = append(parts, fmt.Sprintf("applied: %d", *c.Applied))
	}
	if c.Node != "" {
		parts = append(parts, "node: "+c.Node)
	}
	if c.CaughtUp != "" {
		parts = append(parts, "caughtUp: "+c.CaughtUp)
	}
	if c.Reconfigured != nil {
		parts = append(parts, fmt.Sprintf("reconfigured: %v", *c.Reconfigured))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (r *run) condition(c experiment.Condition) backend.Condition {
	return func(view func() backend.View) bool {
		if c.Reconfigured != nil {
			r.mu.Lock()
			defer r.mu.Unlock()
			done := len(r.reconfigs) > 0 && r.reconfigs[len(r.reconfigs)-1].rec.Done
			return done == *c.Reconfigured
		}
		v := view()
		switch {
		case c.Leader != nil:
			return (v.Leader != "") == *c.Leader
		case len(c.LeaderIn) > 0:
			return v.Leader != "" && slices.Contains(c.LeaderIn, v.Leader)
		case c.JointState != "":
			if v.Leader == "" {
				return false
			}
			return v.Node(v.Leader).Joint == c.JointState
		case c.Applied != nil:
			for _, n := range v.Nodes {
				if (c.Node == "" || c.Node == n.ID) && n.Up && n.Applied < *c.Applied {
					return false
				}
			}
			return true
		case c.CaughtUp != "":
			if v.Leader == "" {
				return false
			}
			n := v.Node(c.CaughtUp)
			return n.Up && n.Applied >= v.Node(v.Leader).Commit
		}
		return false
	}
}

// allNames lists every node the experiment has started.
func (r *run) allNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodesLocked()
}

// resolve turns names and selectors into node ids, now.
func (r *run) resolve(names experiment.Nodes) ([]string, error) {
	v := r.c.Observe(r.ctx)
	all := r.allNames()
	var out []string
	for _, n := range names {
		switch n {
		case "leader":
			if v.Leader == "" {
				return nil, fmt.Errorf("selector leader: there is no leader now")
			}
			out = append(out, v.Leader)
		case "follower":
			var fs []string
			for _, id := range all {
				if id != v.Leader && v.Node(id).Up {
					fs = append(fs, id)
				}
			}
			if len(fs) == 0 {
				return nil, fmt.Errorf("selector follower: no running follower")
			}
			r.mu.Lock()
			out = append(out, fs[r.rng.IntN(len(fs))])
			r.mu.Unlock()
		case "minority", "majority":
			shuffled := r.shuffled(all)
			k := (len(all) - 1) / 2
			if n == "majority" {
				k = len(all)/2 + 1
			}
			out = append(out, shuffled[:k]...)
		default:
			out = append(out, n)
		}
	}
	return out, nil
}

func (r *run) shuffled(ids []string) []string {
	out := slices.Clone(ids)
	r.mu.Lock()
	r.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	r.mu.Unlock()
	return out
}

// partitionGroups turns a partition step into groups of nodes. Nodes
// explicit groups do not name form one more group, started or not (a node
// that starts later starts there). A shape splits the started nodes; the
// others join the minority side, so a node started during the partition
// cannot bridge it.
func (r *run) partitionGroups(p experiment.Partition) ([][]string, error) {
	all := r.allNames()
	unstarted := func() []string {
		var out []string
		for _, id := range r.universe {
			if !slices.Contains(all, id) {
				out = append(out, id)
			}
		}
		return out
	}
	if p.Shape == "" {
		all = r.universe
		named := map[string]bool{}
		for _, g := range p.Groups {
			for _, id := range g {
				named[id] = true
			}
		}
		groups := slices.Clone(p.Groups)
		var rest []string
		for _, id := range all {
			if !named[id] {
				rest = append(rest, id)
			}
		}
		if len(rest) > 0 {
			groups = append(groups, rest)
		}
		return groups, nil
	}
	switch p.Shape {
	case "isolate-leader":
		lead := r.c.Observe(r.ctx).Leader
		if lead == "" {
			return nil, fmt.Errorf("isolate-leader: there is no leader now")
		}
		var rest []string
		for _, id := range all {
			if id != lead {
				rest = append(rest, id)
			}
		}
		return [][]string{{lead}, append(rest, unstarted()...)}, nil
	case "majority-minority":
		s := r.shuffled(all)
		k := len(s)/2 + 1
		return [][]string{s[:k], append(s[k:], unstarted()...)}, nil
	case "majority-minority-voters":
		// Split the voters of the leader's configuration (the founders
		// when there is no leader); learners and other nodes join a
		// random side each.
		v := r.c.Observe(r.ctx)
		var voters []string
		if v.Leader != "" {
			voters = slices.Clone(v.Node(v.Leader).Voters)
		}
		if len(voters) == 0 {
			r.mu.Lock()
			voters = slices.Clone(r.replicaSet)
			r.mu.Unlock()
		}
		s := r.shuffled(voters)
		k := len(s)/2 + 1
		maj, minr := slices.Clone(s[:k]), slices.Clone(s[k:])
		for _, id := range r.universe {
			if slices.Contains(voters, id) {
				continue
			}
			r.mu.Lock()
			side := r.rng.IntN(2)
			r.mu.Unlock()
			if side == 0 {
				maj = append(maj, id)
			} else {
				minr = append(minr, id)
			}
		}
		return [][]string{maj, minr}, nil
	}
	return nil, fmt.Errorf("partition shape %s is applied as links, not groups", p.Shape)
}

// shapeLinks are the links a bridge or ring partition cuts (Jepsen's
// nemesis shapes): bridge, two halves joined by one node that sees both;
// ring, each node sees only its two neighbours on a random ring, so each
// sees a majority of 5 and no two see the same one.
func (r *run) shapeLinks(shape string, names []string) [][2]string {
	s := r.shuffled(names)
	n := len(s)
	var pairs [][2]string
	switch shape {
	case "bridge":
		half := 1 + (n-1)/2
		for _, a := range s[1:half] {
			for _, b := range s[half:] {
				pairs = append(pairs, [2]string{a, b})
			}
		}
	case "ring":
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				if d := min(j-i, n-(j-i)); d > 1 {
					pairs = append(pairs, [2]string{s[i], s[j]})
				}
			}
		}
	}
	return pairs
}

func groupsText(groups [][]string) string {
	var parts []string
	for _, g := range groups {
		parts = append(parts, "["+strings.Join(g, " ")+"]")
	}
	return strings.Join(parts, " | ")
}
