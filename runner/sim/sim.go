package sim

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftlab/raftlab/kvserver/sm"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/disk"
	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// Backend is the simulator.
type Backend struct{}

// Name implements backend.Backend.
func (Backend) Name() string { return "sim" }

// epoch is the virtual clock's zero, for the reconfiguration driver.
var epoch = time.Unix(1_700_000_000, 0).UTC()

// Start implements backend.Backend.
func (Backend) Start(_ context.Context, exp *experiment.Experiment, seed uint64) (backend.Cluster, error) {
	c := &Cluster{
		exp: exp, seed: seed,
		net:      raftcore.NewMemNetwork(seed),
		nodes:    map[string]*node{},
		fsync:    int64(exp.Network.FsyncMs),
		stats:    backend.Stats{BytesTo: map[string]uint64{}},
		configAt: map[uint64]string{},
		rng:      rand.New(rand.NewPCG(seed, 0x73696d)),
		crng:     rand.New(rand.NewPCG(seed, 0x636c69656e74)),
		snapKBps: int64(exp.Network.SnapshotKBps),
	}
	if c.snapKBps == 0 {
		c.snapKBps = defaultSnapshotKBps
	}
	// A message put on a cut link is lost, even if the cut heals before
	// it would have arrived.
	c.net.LoseOnCut = true
	c.baseFault = backend.LinkFault{DelayMs: exp.Network.DelayMs, JitterMs: exp.Network.JitterMs}
	c.base = linkFaults(c.baseFault)
	c.net.SetFaults(c.base)
	var ids []string
	for i := 0; i < exp.Cluster.Replicas; i++ {
		ids = append(ids, fmt.Sprintf("kv-%d", i))
	}
	cfg := raftcore.NewConfig(ids)
	for _, id := range ids {
		if err := c.add(id, &cfg, nil); err != nil {
			return nil, err
		}
	}
	return c, nil
}

const (
	// dataDir is every node's data directory, on its own MemFS.
	dataDir = "/data"
	// segmentSize keeps the simulated WAL segments small, so that runs
	// rotate segments (and drop them after snapshots) as a long-lived
	// server does, without zero-filling 16 MiB per node.
	segmentSize = 64 << 10
	// maxDriftPPM bounds each node's clock drift: its millisecond ticks
	// come up to 3% early or late (a loaded machine's timers, not a quartz
	// crystal's ppm), so that timeouts measured on different nodes
	// disagree, as they do in a real cluster.
	maxDriftPPM = 30_000
	// defaultSnapshotKBps is the snapshot bandwidth when the file sets
	// none (network.snapshotKBps): 1 MB/s, slow enough that a snapshot of
	// a few KB is in flight for milliseconds and a cut can interrupt it.
	defaultSnapshotKBps = 1000
	// snapshotOverhead is what a snapshot message carries beyond its data
	// (framing, metadata, configuration).
	snapshotOverhead = 256
)

// linkFaults is a backend link fault as the MemNetwork takes it.
func linkFaults(f backend.LinkFault) raftcore.LinkFaults {
	return raftcore.LinkFaults{Delay: f.DelayMs, Jitter: f.JitterMs, Drop: f.LossPercent / 100, Duplicate: f.DuplicatePercent / 100}
}

type event struct {
	at  int64
	seq uint64
	fn  func()
}

type events []event

func (h events) Len() int { return len(h) }
func (h events) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h events) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *events) Push(x any)   { *h = append(*h, x.(event)) }
func (h *events) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type wkey struct {
	client string
	seq    uint64
}

type pending struct {
	done func(backend.Result)
	key  string
	// data is a write's proposed entry: only an entry with these bytes
	// answers it (another command under the same client id and sequence
	// number leaves it waiting for its own, as raft-kv's node does).
	data []byte
}

type readWait struct {
	index uint64
	p     *pending
}

// node is one simulated process: its disk survives a crash, the rest not.
type node struct {
	id  string
	idx int
	// fs is the node's disk; st the storage open on it (after a crash,
	// the storage recovered from what the crash kept).
	fs       *disk.MemFS
	st       *disk.Storage
	rn       *raftcore.RawNode // nil while down
	sm       *sm.Machine
	cfg      raftcore.Config // applied configuration
	gen      int             // bumped by each crash: stale sync events see it
	restarts uint64
	paused   bool
	syncing  bool
	// While paused (SIGSTOP) nothing runs: peer messages wait in inbox,
	// client requests in calls (the kernel accepts the connections) and
	// the node's own continuations (a completed fsync, a snapshot report)
	// in later. Resume runs later and moves inbox and calls to backlog,
	// which the node then works through one item at a time (see Resume).
	inbox    []raftcore.Message
	calls    []func()
	later    []func()
	backlog  []*source
	writes   map[wkey]*pending
	reads    map[string]*pending
	readWait []readWait
	startup  *raftcore.Config
	// nonce is drawn from the cluster's seeded source at each boot;
	// readNext numbers the node's ReadIndex requests (see readContext).
	nonce    uint64
	readNext uint64
	// The node's clock: it ticks its RawNode once per millisecond of its
	// own time, tickUs microseconds of virtual time (1000 +- its drift),
	// at nextTickUs next (a phase of its own, not on the millisecond).
	tickUs, nextTickUs int64
	ticks              uint64 // ticks taken, for tests
}

// source is one queue of a woken node's backlog: one peer's messages in
// arrival order (peer set), or one client request.
type source struct {
	peer  string
	items []func()
}

// Cluster is a simulated cluster. Not safe for concurrent use.
type Cluster struct {
	exp       *experiment.Experiment
	seed      uint64
	now       int64 // ms since the start
	net       *raftcore.MemNetwork
	base      raftcore.LinkFaults
	baseFault backend.LinkFault
	// network is the set of link faults in force (SetNetwork), on top
	// of the base network.
	network  backend.Network
	nodes    map[string]*node
	ids      []string // sorted
	ev       events
	seq      uint64
	fsync    int64
	stats    backend.Stats
	configAt map[uint64]string
	// rng is the simulator's own seeded source: boot nonces and the order
	// in which a resumed node handles what waited for it. crng draws the
	// client network's delays and losses, so that turning them on leaves
	// the other draws alone.
	rng, crng *rand.Rand
	// snapKBps is the snapshot bandwidth (bytes per millisecond);
	// transfers are the snapshots in flight.
	snapKBps                  int64
	transfers                 []*transfer
	snapDelivered, snapFailed int
	// sent, if set, sees every batch of peer messages a node sends (tests).
	sent func(from string, msgs []raftcore.Message)
}

// add creates a node with an empty disk (bootstrapped with founders, if
// given) and boots it.
func (c *Cluster) add(id string, founders, startup *raftcore.Config) error {
	var idx int
	if _, err := fmt.Sscanf(id, "kv-%d", &idx); err != nil {
		return fmt.Errorf("sim: bad node id %q", id)
	}
	fs := disk.NewMemFS()
	st, err := disk.Open(dataDir, disk.Options{FS: fs, SegmentSize: segmentSize})
	if err != nil {
		return fmt.Errorf("sim: %s: %w", id, err)
	}
	if founders != nil {
		if err := st.Bootstrap(*founders); err != nil {
			return fmt.Errorf("sim: %s: %w", id, err)
		}
	}
	// The node's clock, from a source of its own: the same node drifts
	// the same way whatever else the run does.
	crng := rand.New(rand.NewPCG(c.seed, 0x636c6f636b00+uint64(idx)))
	tickUs := 1000 + (1000*(crng.Int64N(2*maxDriftPPM+1)-maxDriftPPM))/1_000_000
	n := &node{id: id, idx: idx, fs: fs, st: st, startup: startup, tickUs: tickUs,
		nextTickUs: c.now*1000 + crng.Int64N(tickUs) + 1}
	c.nodes[id] = n
	c.ids = append(c.ids, id)
	slices.Sort(c.ids)
	return c.boot(n)
}

func (c *Cluster) boot(n *node) error {
	snap, err := n.st.Snapshot()
	if err != nil {
		return err
	}
	n.sm = sm.New()
	n.cfg = snap.Meta.Config
	if !snap.IsEmpty() {
		if err := n.sm.Restore(snap.Data); err != nil {
			return err
		}
	}
	ecfg := c.exp.Cluster
	// One tick is one millisecond of the node's own clock, so that the
	// core's randomized election timeout, [ElectionTick, 2*ElectionTick)
	// ticks, takes any millisecond in [electionTimeoutMs,
	// 2*electionTimeoutMs), not a multiple of the heartbeat.
	rn, err := raftcore.NewRawNode(raftcore.Options{
		ID: n.id, ElectionTick: ecfg.ElectionTimeoutMs, HeartbeatTick: ecfg.HeartbeatMs,
		Storage: n.st, Applied: snap.Meta.Index,
		PreVote: true, CheckQuorum: true, MaxInflightMsgs: 256, MaxSizePerMsg: 1 << 20,
		Seed:                         c.seed*1_000_003 + uint64(n.idx)*7919 + n.restarts*104_729,
		UnsafeStartupMembership:      n.startup,
		UnsafeAllowMultiVoterOneStep: ecfg.SafetyMode == string(reconfig.UnsafeNoJoint),
	})
	if err != nil {
		return err
	}
	n.rn = rn
	n.writes = map[wkey]*pending{}
	n.reads = map[string]*pending{}
	n.readWait = nil
	n.syncing = false
	n.paused = false
	n.inbox, n.calls, n.later, n.backlog = nil, nil, nil, nil
	n.nonce = c.rng.Uint64()
	if c.exp.Workload.ReadContexts != experiment.ReadContextsPerNode {
		n.readNext = 0
	}
	return nil
}

// readContext names a new ReadIndex request of n. The node matches the
// ReadStates it gets back by this name, so it never reuses one: unique
// contexts are the node id, the boot's nonce and a counter of the boot;
// per-node contexts are a counter of the node's whole life ("1", "2",
// ...), the same on every node, as raft-kv once numbered its reads. The
// core must answer each read to the node that asked for it, after a
// heartbeat round sent after the read arrived, whatever the bytes say.
func (c *Cluster) readContext(n *node) string {
	n.readNext++
	if c.exp.Workload.ReadContexts == experiment.ReadContextsPerNode {
		return strconv.FormatUint(n.readNext, 10)
	}
	return fmt.Sprintf("%s/%016x/%d", n.id, n.nonce, n.readNext)
}

// whenRunning runs fn now, or at resume if n is paused: a stopped process
// finishes nothing, although its disk write completes meanwhile.
func (c *Cluster) whenRunning(n *node, fn func()) {
	if n.paused {
		n.later = append(n.later, fn)
		return
	}
	fn()
}

// Now implements backend.Cluster.
func (c *Cluster) Now() time.Duration { return time.Duration(c.now) * time.Millisecond }

type clock struct{ c *Cluster }

func (k clock) Now() time.Time { return epoch.Add(k.c.Now()) }

// Clock implements backend.Cluster.
func (c *Cluster) Clock() reconfig.Clock { return clock{c} }

func (c *Cluster) schedule(at int64, fn func()) {
	if at < c.now {
		at = c.now
	}
	c.seq++
	heap.Push(&c.ev, event{at: at, seq: c.seq, fn: fn})
}

// After implements backend.Cluster.
func (c *Cluster) After(at time.Duration, fn func()) { c.schedule(at.Milliseconds(), fn) }

// WaitUntil implements backend.Cluster: it runs the simulation.
func (c *Cluster) WaitUntil(ctx context.Context, cond backend.Condition, timeout time.Duration) bool {
	deadline := c.now + timeout.Milliseconds()
	view := func() backend.View { return c.Observe(ctx) }
	for {
		c.settle()
		if cond != nil && cond(view) {
			return true
		}
		if c.now >= deadline || ctx.Err() != nil {
			return false
		}
		c.advance()
	}
}

// advance moves the clock one millisecond and ticks every node whose own
// clock passed a millisecond: a fast node now and then ticks twice, a
// slow one skips a millisecond, and nodes reach their timeouts at
// different moments. A stopped (paused) or crashed node's ticks are lost,
// as a stopped process's timer does not catch up.
func (c *Cluster) advance() {
	c.now++
	c.net.AdvanceTime(1)
	nowUs := c.now * 1000
	for _, id := range c.ids {
		n := c.nodes[id]
		for n.nextTickUs <= nowUs {
			n.nextTickUs += n.tickUs
			if n.rn != nil && !n.paused {
				n.rn.Tick()
				n.ticks++
			}
		}
	}
}

// settle runs everything due at the current millisecond until quiet.
func (c *Cluster) settle() {
	for round := 0; round < 100_000; round++ {
		busy := false
		for len(c.ev) > 0 && c.ev[0].at <= c.now {
			e := heap.Pop(&c.ev).(event)
			e.fn()
			busy = true
		}
		for _, m := range c.net.Deliverable() {
			if c.deliver(m) {
				busy = true
			}
		}
		for _, id := range c.ids {
			if c.drainOne(c.nodes[id]) {
				busy = true
			}
		}
		for _, id := range c.ids {
			if c.ready(c.nodes[id]) {
				busy = true
			}
		}
		if !busy {
			return
		}
	}
	panic("sim: the cluster did not settle within one millisecond")
}

// deliver hands a message that arrived to its node, and reports whether
// the node did something with it now.
func (c *Cluster) deliver(m raftcore.Message) bool {
	n := c.nodes[m.To]
	if n == nil || n.rn == nil {
		return false
	}
	if n.paused {
		n.inbox = append(n.inbox, m)
		return false
	}
	if len(n.backlog) > 0 {
		// Behind what waited for the node, from the same peer.
		c.enqueue(n, m)
		return true
	}
	_ = n.rn.Step(m)
	return true
}

// ready starts handling a node's Ready as raft-kv's loop does
// (kvserver/node.go handleReady): a snapshot is installed (its files
// synced), the hard state and entries are appended to the WAL, and, if the
// Ready must be synced, the sync completes fsyncMs later; only then does
// the node send, apply and advance. What the Ready does not mark as
// needing a sync stays in the WAL's buffer until some later sync, and a
// crash before that loses it (Kill).
func (c *Cluster) ready(n *node) bool {
	if n.rn == nil || n.paused || n.syncing || !n.rn.HasReady() {
		return false
	}
	rd := n.rn.Ready()
	if rd.SoftState != nil && rd.SoftState.State == raftcore.StateLeader {
		c.recordElection(n)
	}
	c.checkOneChange(n, rd)
	if !rd.Snapshot.IsEmpty() {
		if err := n.st.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raftcore.ErrSnapOutOfDate) {
			panic(fmt.Sprintf("sim: %s: %v", n.id, err))
		}
	}
	ticket, err := n.st.Append(rd.HardState, rd.Entries)
	if err != nil {
		panic(fmt.Sprintf("sim: %s: %v", n.id, err))
	}
	sync := rd.MustSync || !rd.Snapshot.IsEmpty()
	if k := len(rd.CommittedEntries); k > 0 && rd.CommittedEntries[k-1].Index > n.st.DurableIndex() {
		// Nothing is applied (and acknowledged) before it is durable, as
		// in raft-kv.
		sync = true
	}
	if !sync {
		c.finish(n, rd)
		return true
	}
	done := func() {
		if err := n.st.Sync(ticket); err != nil {
			panic(fmt.Sprintf("sim: %s: sync: %v", n.id, err))
		}
		c.finish(n, rd)
	}
	if c.fsync == 0 {
		done()
		return true
	}
	n.syncing = true
	gen := n.gen
	c.schedule(c.now+c.fsync, func() {
		c.whenRunning(n, func() {
			if n.gen != gen || n.rn == nil {
				return // crashed before the sync completed: the Ready is lost
			}
			n.syncing = false
			done()
		})
	})
	return true
}

// finish is the rest of a Ready once its sync (if any) completed.
func (c *Cluster) finish(n *node, rd raftcore.Ready) {
	msgs := make([]raftcore.Message, 0, len(rd.Messages))
	for _, m := range rd.Messages {
		b := uint64(0)
		for _, e := range m.Entries {
			b += uint64(len(e.Data))
		}
		if m.Snapshot != nil {
			b += uint64(len(m.Snapshot.Data))
		}
		if b > 0 {
			c.stats.BytesTo[m.To] += b
		}
		if m.Type == raftcore.MsgSnap {
			c.sendSnapshot(n, m)
			continue
		}
		msgs = append(msgs, m)
	}
	if c.sent != nil {
		c.sent(n.id, msgs)
	}
	c.net.SendFrom(n.id, msgs)
	if !rd.Snapshot.IsEmpty() {
		if err := n.sm.Restore(rd.Snapshot.Data); err != nil {
			panic(fmt.Sprintf("sim: %s: snapshot: %v", n.id, err))
		}
		n.cfg = rd.Snapshot.Meta.Config
	}
	for _, e := range rd.CommittedEntries {
		c.apply(n, e)
	}
	for _, rs := range rd.ReadStates {
		if p := n.reads[string(rs.RequestCtx)]; p != nil {
			delete(n.reads, string(rs.RequestCtx))
			n.readWait = append(n.readWait, readWait{index: rs.Index, p: p})
		}
	}
	c.serveReads(n)
	n.rn.Advance(rd)
	c.maybeSnapshot(n)
}

func (c *Cluster) apply(n *node, e raftcore.Entry) {
	if e.Index <= n.sm.Applied() {
		return
	}
	switch {
	case e.Type == raftcore.EntryConfig:
		n.sm.Skip(e.Index)
		if cfg, err := raftcore.DecodeConfig(e.Data); err == nil {
			n.cfg = cfg
			c.recordConfig(n, e.Index, cfg)
		}
	case len(e.Data) == 0:
		n.sm.Skip(e.Index)
	default:
		res := n.sm.Apply(e.Index, e.Data)
		if cmd, err := sm.Decode(e.Data); err == nil && res.Err == nil {
			k := wkey{cmd.ClientID, cmd.Seq}
			if p := n.writes[k]; p != nil && bytes.Equal(p.data, e.Data) {
				delete(n.writes, k)
				p.done(writeOutcome(res))
			}
		}
	}
}

// writeOutcome is what a write whose entry was applied answers, as
// raft-kv's server maps it (kvserver/node.go writeOutcome): the request's
// outcome, not just this entry's. Every refusal applied nothing here, but
// only a mismatch, a full table or a plain stale one proves that this
// request never was (nor will be) applied.
func writeOutcome(res sm.Result) backend.Result {
	switch {
	case res.SessionExpired:
		return backend.Result{Outcome: backend.Unknown, Err: "session expired: not applied by this entry; an earlier copy may have been"}
	case res.TableFull:
		return backend.Result{Outcome: backend.Failed, Err: "too many active sessions: not applied"}
	case res.Mismatch:
		return backend.Result{Outcome: backend.Failed, Err: "request mismatch: this client id and sequence number were applied to another command"}
	case res.Stale && res.Forgotten:
		return backend.Result{Outcome: backend.Unknown, Err: "stale request: the session no longer remembers whether it was applied"}
	case res.Stale:
		return backend.Result{Outcome: backend.Failed, Err: "stale request: never applied, nor will be"}
	}
	// Applied now, or a duplicate answered with the first copy's result.
	return backend.Result{Outcome: backend.OK}
}

func (c *Cluster) serveReads(n *node) {
	keep := n.readWait[:0]
	for _, rw := range n.readWait {
		if n.sm.Applied() < rw.index {
			keep = append(keep, rw)
			continue
		}
		v, ok := n.sm.Get(rw.p.key)
		rw.p.done(backend.Result{Outcome: backend.OK, Value: string(v), Found: ok})
	}
	n.readWait = keep
}

func (c *Cluster) maybeSnapshot(n *node) {
	every := uint64(c.exp.Cluster.SnapshotEntries)
	if every == 0 {
		return
	}
	snap, _ := n.st.Snapshot()
	applied := n.sm.Applied()
	if applied < snap.Meta.Index+every {
		return
	}
	if _, err := n.st.CreateSnapshot(applied, n.cfg, n.sm.Snapshot()); err != nil {
		return
	}
	// Keep a short tail so that a follower just behind needs no snapshot.
	if keep := every / 10; applied > keep {
		_ = n.st.Compact(applied - keep)
	}
}

// recordElection notes how a new leader won: the votes it counted and the
// configuration of its own log (docs/BUGS.md: membership from outside the log
// lets non-members elect).
func (c *Cluster) recordElection(n *node) {
	rec := n.rn.LastElection()
	logCfg := c.logConfig(n)
	e := backend.Election{AtMs: c.now, Leader: n.id, Term: rec.Term, Granted: slices.Clone(rec.Granted),
		Counted: rec.Config.String(), LogConfig: logCfg.String()}
	for _, g := range rec.Granted {
		if !logCfg.IsVoter(g) {
			e.NonMembers = append(e.NonMembers, g)
		}
	}
	c.stats.Elections = append(c.stats.Elections, e)
}

// logConfig is the configuration of the last configuration entry in a
// node's log (stable and unstable), or of its snapshot.
func (c *Cluster) logConfig(n *node) raftcore.Config {
	st := n.rn.BasicStatus()
	if ents, _, err := c.LogOf(n.id); err == nil {
		for i := len(ents) - 1; i >= 0; i-- {
			if ents[i].Type == raftcore.EntryConfig && ents[i].Index <= st.LastIndex {
				if cfg, err := raftcore.DecodeConfig(ents[i].Data); err == nil {
					return cfg
				}
			}
		}
	}
	snap, _ := n.st.Snapshot()
	return snap.Meta.Config
}

// checkOneChange: a leader appends a configuration entry only once the
// previous one is committed (one change in flight).
func (c *Cluster) checkOneChange(n *node, rd raftcore.Ready) {
	if n.rn.BasicStatus().State != raftcore.StateLeader {
		return
	}
	prev := uint64(0)
	if ents, _, err := c.LogOf(n.id); err == nil {
		for _, e := range ents {
			if e.Type == raftcore.EntryConfig {
				prev = e.Index
			}
		}
	}
	commit := n.rn.BasicStatus().Commit
	for _, e := range rd.Entries {
		if e.Type != raftcore.EntryConfig {
			continue
		}
		if prev > commit {
			c.stats.Violations = append(c.stats.Violations, fmt.Sprintf(
				"one-change-in-flight: %s appended a configuration at %d while the one at %d was not committed (commit %d) [%dms]",
				n.id, e.Index, prev, commit, c.now))
		}
		prev = e.Index
	}
}

func (c *Cluster) recordConfig(n *node, index uint64, cfg raftcore.Config) {
	s := cfg.String()
	if seen, ok := c.configAt[index]; ok {
		if seen != s {
			c.stats.Violations = append(c.stats.Violations, fmt.Sprintf(
				"config-index-increases: two configurations committed at index %d: %s and %s (%s) [%dms]", index, seen, s, n.id, c.now))
		}
		return
	}
	c.configAt[index] = s
	c.stats.Configs = append(c.stats.Configs, backend.ConfigRecord{Index: index, Voters: slices.Clone(cfg.Voters),
		Outgoing: slices.Clone(cfg.OutgoingVoters), Learners: slices.Clone(cfg.Learners), AtMs: c.now})
}

// Observe implements backend.Cluster.
func (c *Cluster) Observe(context.Context) backend.View {
	var v backend.View
	var term uint64
	for _, id := range c.ids {
		n := c.nodes[id]
		nv := backend.NodeView{ID: id, Up: n.rn != nil, Paused: n.paused}
		if n.rn != nil {
			st := n.rn.BasicStatus()
			nv.Leader = st.State == raftcore.StateLeader
			nv.Term, nv.Commit, nv.Applied = st.Term, st.Commit, n.sm.Applied()
			nv.Joint = jointName(st.JointState)
			nv.Voters = slices.Clone(st.Config.Voters)
			nv.Learners = slices.Clone(st.Config.Learners)
			nv.OutgoingVoters = slices.Clone(st.Config.OutgoingVoters)
			if nv.Leader && !n.paused && st.Term >= term {
				v.Leader, term = id, st.Term
			}
		}
		v.Nodes = append(v.Nodes, nv)
	}
	return v
}

func jointName(j raftcore.JointState) string {
	s := strings.ToLower(j.String())
	switch {
	case strings.Contains(s, "enter"):
		return "entering"
	case strings.Contains(s, "leav"):
		return "leaving"
	case strings.Contains(s, "joint") || strings.Contains(s, "commit"):
		return "joint"
	}
	return "none"
}

// Leader implements reconfig.InProcess: paused leaders do not answer.
func (c *Cluster) Leader() string { return c.Observe(context.Background()).Leader }

// RN implements reconfig.InProcess.
func (c *Cluster) RN(id string) (*raftcore.RawNode, error) {
	n := c.nodes[id]
	if n == nil || n.rn == nil {
		return nil, fmt.Errorf("sim: node %s is not running", id)
	}
	if n.paused {
		return nil, fmt.Errorf("sim: node %s is paused", id)
	}
	return n.rn, nil
}

// LogOf implements reconfig.InProcess.
func (c *Cluster) LogOf(id string) ([]raftcore.Entry, uint64, error) {
	n := c.nodes[id]
	if n == nil {
		return nil, 0, fmt.Errorf("sim: no node %s", id)
	}
	if n.st == nil {
		return nil, 0, fmt.Errorf("sim: node %s has no storage (its recovery failed)", id)
	}
	first, _ := n.st.FirstIndex()
	last, _ := n.st.LastIndex()
	ents, err := n.st.Entries(first, last+1, ^uint64(0))
	return ents, first - 1, err
}

// SnapshotOf implements reconfig.InProcess.
func (c *Cluster) SnapshotOf(id string) (raftcore.Snapshot, error) {
	n := c.nodes[id]
	if n == nil {
		return raftcore.Snapshot{}, fmt.Errorf("sim: no node %s", id)
	}
	if n.st == nil {
		return raftcore.Snapshot{}, fmt.Errorf("sim: node %s has no storage (its recovery failed)", id)
	}
	return n.st.Snapshot()
}

// Admin implements backend.Cluster.
func (c *Cluster) Admin() reconfig.Admin {
	return &reconfig.ClusterAdmin{C: c, Now: c.Clock().Now}
}

// SetNetwork implements backend.Cluster. nw replaces every cut and link
// fault in force. A link's fault composes with the base network (delays
// and jitters add, chances combine); Drop cuts the link one way. Delay,
// jitter, loss and duplication are drawn when a message is sent, with the
// faults in force then; a cut is judged both when a message is sent and
// when it is due, so a message delayed before a cut is lost at delivery
// and none crosses it. A snapshot in flight on a link that this cuts fails
// now (sendSnapshot). Node ids need not be running: the network holds for
// whoever has the id, now or after a start or restart; messages for a
// paused node that crossed before the cut wait in its socket (inbox).
func (c *Cluster) SetNetwork(nw backend.Network) error {
	// Validate before changing anything, so that a refused network leaves
	// the one in force whole.
	for l := range nw {
		if l.From == "" || l.To == "" || l.From == l.To {
			return fmt.Errorf("sim: bad link %q -> %q: a link joins two different named nodes", l.From, l.To)
		}
	}
	c.network = maps.Clone(nw)
	cuts := map[[2]string]bool{}
	faults := map[[2]string]raftcore.LinkFaults{}
	for l, f := range c.network {
		g := c.baseFault.Compose(f)
		if g.Drop {
			cuts[[2]string{l.From, l.To}] = true
			continue
		}
		faults[[2]string{l.From, l.To}] = linkFaults(g)
	}
	c.net.SetLinks(cuts, faults)
	c.net.SetFaults(c.base)
	c.checkTransfers()
	return nil
}

func startupConfig(ids []string) *raftcore.Config {
	if ids == nil {
		return nil
	}
	cfg := raftcore.NewConfig(ids)
	return &cfg
}

// Start implements backend.Cluster.
func (c *Cluster) Start(id string, startup []string) error {
	if _, ok := c.nodes[id]; ok {
		return fmt.Errorf("sim: node %s already exists", id)
	}
	return c.add(id, nil, startupConfig(startup))
}

// Kill implements backend.Cluster: the node stops at once, and so does its
// machine: its MemFS loses every byte and every directory change that was
// not synced, whatever the code chose to sync (the worst a power loss can
// do), and the storage is recovered from what is left through disk.Open's
// recovery, as Restart will find it. Its clients' calls end unknown, and
// the snapshots it was sending or receiving fail.
func (c *Cluster) Kill(id string) error {
	n := c.nodes[id]
	if n == nil || n.rn == nil {
		return fmt.Errorf("sim: cannot kill %s: not running", id)
	}
	n.rn = nil
	n.gen++
	n.fs.CrashLosingUnsynced()
	st, err := disk.Open(dataDir, disk.Options{FS: n.fs, SegmentSize: segmentSize})
	if err != nil {
		// What the disk kept does not recover: a real bug in the WAL, or
		// in what the node synced. The node stays down.
		c.stats.Violations = append(c.stats.Violations, fmt.Sprintf(
			"recovery: %s does not recover from its disk after a crash: %v [%dms]", id, err, c.now))
		n.st = nil
	} else {
		n.st = st
	}
	c.net.DropPendingTo(id)
	c.checkTransfers()
	c.failPending(n, "node killed")
	calls := n.calls
	for _, src := range n.backlog {
		if src.peer == "" {
			calls = append(calls, src.items...)
		}
	}
	n.inbox, n.calls, n.later, n.backlog = nil, nil, nil, nil
	for _, call := range calls {
		call() // n.rn is nil: each ends as a reset call
	}
	return nil
}

func (c *Cluster) failPending(n *node, why string) {
	for _, k := range sortedKeys(n.writes) {
		n.writes[k].done(backend.Result{Outcome: backend.Unknown, Err: why})
	}
	for _, k := range slices.Sorted(maps.Keys(n.reads)) {
		n.reads[k].done(backend.Result{Outcome: backend.Unknown, Err: why})
	}
	for _, rw := range n.readWait {
		rw.p.done(backend.Result{Outcome: backend.Unknown, Err: why})
	}
	n.writes, n.reads, n.readWait = map[wkey]*pending{}, map[string]*pending{}, nil
}

// Restart implements backend.Cluster.
func (c *Cluster) Restart(id string, startup []string) error {
	n := c.nodes[id]
	if n == nil || n.rn != nil {
		return fmt.Errorf("sim: cannot restart %s: unknown or running", id)
	}
	if n.st == nil {
		return fmt.Errorf("sim: cannot restart %s: its disk did not recover", id)
	}
	n.restarts++
	n.startup = startupConfig(startup)
	if err := c.boot(n); err != nil {
		// The disk recovered, but the core refuses what it holds: a node
		// that can never come back after this crash.
		c.stats.Violations = append(c.stats.Violations, fmt.Sprintf(
			"recovery: %s cannot start from its recovered disk: %v [%dms]", id, err, c.now))
		return fmt.Errorf("sim: restart %s: %w", id, err)
	}
	return nil
}

// Pause implements backend.Cluster (SIGSTOP): no ticks, no messages, no
// client requests handled; all of them wait for Resume.
func (c *Cluster) Pause(id string) error {
	n := c.nodes[id]
	if n == nil || n.rn == nil {
		return fmt.Errorf("sim: cannot pause %s: not running", id)
	}
	n.paused = true
	return nil
}

// Resume implements backend.Cluster (SIGCONT). The node first finishes
// what it had started (a synced Ready). Then it works through the peer
// messages and client requests that waited for it as its loop would: one
// at a time, its Ready handled after each, the next taken from a source
// chosen at random (the seeded source) among each peer's messages in
// arrival order (one connection, one reader) and each client request (a
// goroutine of its own). Messages that arrive meanwhile queue behind their
// peer's. So a read that reached the stopped node may be handled before
// heartbeat answers that reached it earlier, and answered before the new
// term's messages tell the node that it no longer leads.
func (c *Cluster) Resume(id string) error {
	n := c.nodes[id]
	if n == nil || n.rn == nil {
		return fmt.Errorf("sim: cannot resume %s: not running", id)
	}
	n.paused = false
	later := n.later
	n.later = nil
	for _, fn := range later {
		fn()
	}
	for _, m := range n.inbox {
		c.enqueue(n, m)
	}
	for _, call := range n.calls {
		n.backlog = append(n.backlog, &source{items: []func(){call}})
	}
	n.inbox, n.calls = nil, nil
	return nil
}

// enqueue puts a message for n behind the others from its sender.
func (c *Cluster) enqueue(n *node, m raftcore.Message) {
	step := func() { _ = n.rn.Step(m) }
	for _, src := range n.backlog {
		if src.peer == m.From {
			src.items = append(src.items, step)
			return
		}
	}
	n.backlog = append(n.backlog, &source{peer: m.From, items: []func(){step}})
}

// drainOne handles one item of a running node's backlog.
func (c *Cluster) drainOne(n *node) bool {
	if n.rn == nil || n.paused || len(n.backlog) == 0 {
		return false
	}
	i := c.rng.IntN(len(n.backlog))
	src := n.backlog[i]
	fn := src.items[0]
	if src.items = src.items[1:]; len(src.items) == 0 {
		n.backlog = slices.Delete(n.backlog, i, i+1)
	}
	fn()
	return true
}

// TransferLeader implements backend.Cluster.
func (c *Cluster) TransferLeader(to string) error {
	lead := c.Leader()
	if lead == "" {
		return errors.New("sim: no leader to transfer from")
	}
	if lead == to {
		return nil
	}
	return c.nodes[lead].rn.TransferLeader(to)
}

// Do implements backend.Cluster. A call to a node that is down fails. One
// to a paused node waits, as a connection to a stopped process does: the
// client gives up at its timeout (unknown), the node handles the request
// when it resumes all the same, and a crash meanwhile resets it (unknown).
//
// With a client network (network.clientDelayMs, clientJitterMs,
// clientLossPercent) the request takes its delay to reach the node and the
// answer its own delay to come back, and either may be lost: the client
// then hears nothing and gives up at its timeout, unknown, whatever the
// node did (a write may well have been applied).
func (c *Cluster) Do(id string, op backend.Op, timeout time.Duration, done func(backend.Result)) {
	finished := false
	once := func(r backend.Result) {
		if !finished {
			finished = true
			done(r)
		}
	}
	nw := c.exp.Network
	if nw.ClientDelayMs == 0 && nw.ClientJitterMs == 0 && nw.ClientLossPercent == 0 {
		c.do(id, op, c.now+timeout.Milliseconds(), once)
		return
	}
	deadline := c.now + timeout.Milliseconds()
	c.schedule(deadline, func() { once(backend.Result{Outcome: backend.Unknown, Err: "timeout: no answer"}) })
	if c.clientLost() {
		return
	}
	answer := func(r backend.Result) {
		if c.clientLost() {
			return
		}
		c.schedule(c.now+c.clientDelay(), func() { once(r) })
	}
	c.schedule(c.now+c.clientDelay(), func() { c.do(id, op, deadline, answer) })
}

// clientDelay draws one client message's delay.
func (c *Cluster) clientDelay() int64 {
	d := int64(c.exp.Network.ClientDelayMs)
	if j := c.exp.Network.ClientJitterMs; j > 0 {
		d += c.crng.Int64N(int64(j) + 1)
	}
	return d
}

// clientLost draws whether one client message is lost.
func (c *Cluster) clientLost() bool {
	p := c.exp.Network.ClientLossPercent
	return p > 0 && c.crng.Float64()*100 < p
}

// do is a request that reached node id; once answers the client (at most
// once) and deadline is when the client gives up.
func (c *Cluster) do(id string, op backend.Op, deadline int64, once func(backend.Result)) {
	n := c.nodes[id]
	if n == nil || n.rn == nil {
		once(backend.Result{Outcome: backend.Failed, Err: "connection refused: node down"})
		return
	}
	p := &pending{done: once, key: op.Key}
	if n.paused {
		gen, handled := n.gen, false
		n.calls = append(n.calls, func() {
			handled = true
			if n.gen != gen || n.rn == nil {
				once(backend.Result{Outcome: backend.Unknown, Err: "connection reset: node killed"})
				return
			}
			c.start(n, op, deadline, p)
		})
		c.schedule(deadline, func() {
			if !handled {
				once(backend.Result{Outcome: backend.Unknown, Err: "timeout: node paused"})
			}
		})
		return
	}
	c.start(n, op, deadline, p)
}

// start hands a client request to a running node; the client gives up at
// deadline (an earlier one: at once).
func (c *Cluster) start(n *node, op backend.Op, deadline int64, p *pending) {
	once := p.done
	switch op.Kind {
	case backend.Put:
		cmd := sm.Command{ClientID: op.ClientID, Seq: op.Seq, Op: sm.OpPut, Key: op.Key, Value: []byte(op.Value)}
		data := cmd.Encode()
		if err := n.rn.Propose(data); err != nil {
			once(backend.Result{Outcome: backend.Failed, Err: err.Error()})
			return
		}
		p.data = data
		k := wkey{op.ClientID, op.Seq}
		n.writes[k] = p
		gen := n.gen
		c.schedule(deadline, func() {
			if n.gen == gen && n.writes[k] == p {
				delete(n.writes, k)
			}
			once(backend.Result{Outcome: backend.Unknown, Err: "timeout"})
		})
	case backend.Get:
		ctx := c.readContext(n)
		if err := n.rn.ReadIndex([]byte(ctx)); err != nil {
			once(backend.Result{Outcome: backend.Failed, Err: err.Error()})
			return
		}
		n.reads[ctx] = p
		gen := n.gen
		c.schedule(deadline, func() {
			if n.gen == gen {
				delete(n.reads, ctx)
				n.readWait = slices.DeleteFunc(n.readWait, func(rw readWait) bool { return rw.p == p })
			}
			once(backend.Result{Outcome: backend.Unknown, Err: "timeout"})
		})
	default:
		once(backend.Result{Outcome: backend.Failed, Err: "unknown operation " + string(op.Kind)})
	}
}

// Stats implements backend.Cluster.
func (c *Cluster) Stats() backend.Stats { return c.stats }

// Close implements backend.Cluster.
func (c *Cluster) Close() error { return nil }

func sortedKeys(m map[wkey]*pending) []wkey {
	ks := make([]wkey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b wkey) int {
		if a.client != b.client {
			return strings.Compare(a.client, b.client)
		}
		return int(a.seq) - int(b.seq)
	})
	return ks
}
