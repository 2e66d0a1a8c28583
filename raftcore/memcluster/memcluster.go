package memcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/raftlab/raftlab/raftcore"
)

// Options configures every node of a cluster.
type Options struct {
	ElectionTick    int
	HeartbeatTick   int
	PreVote         bool
	CheckQuorum     bool
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	Seed            uint64
	// UnsafeAllowMultiVoterOneStep is passed to every node (docs/BUGS.md
	// unsafe-no-joint).
	UnsafeAllowMultiVoterOneStep bool
	// LoseUnsynced makes a crash lose what the node wrote but was not told
	// to fsync: a Ready whose MustSync is false is persisted the way a
	// server persists it, without an fsync, so its HardState does not
	// survive a crash unless a later synced Ready covered it. Off, every
	// write survives (the traces of the datadriven tests assume so).
	LoseUnsynced bool
}

// Node is one member process: its durable storage and, while it runs, its
// RawNode and state machine.
type Node struct {
	ID      string
	RN      *raftcore.RawNode // nil while crashed
	Storage *raftcore.MemoryStorage
	// KV is the state machine: "k=v" entries set k.
	KV map[string]string
	// Applied is the last applied index.
	Applied uint64
	// AppliedConfig is the configuration of the last applied config entry.
	AppliedConfig raftcore.Config
	// ReadStates collects answers to ReadIndex requests.
	ReadStates []raftcore.ReadState
	// Startup is the unsafe start-up membership (docs/BUGS.md early vote), or nil.
	Startup  *raftcore.Config
	restarts uint64
	// paused: the process is stopped (SIGSTOP, a GC pause, a stalled disk):
	// it neither ticks nor handles a Ready, and what the network delivers
	// to it waits in held, in arrival order, until it resumes.
	paused bool
	held   []raftcore.Message
	// written is the last HardState handed to storage, durable the last
	// one an fsync covered (Options.LoseUnsynced).
	written, durable raftcore.HardState
}

// Up reports whether the node is running (paused counts as running).
func (n *Node) Up() bool { return n.RN != nil }

// Paused reports whether the node is paused.
func (n *Node) Paused() bool { return n.paused }

// Cluster is a set of nodes on one MemNetwork.
type Cluster struct {
	Net   *raftcore.MemNetwork
	opts  Options
	nodes map[string]*Node
	// Trace, if set, receives one line per delivered message and per role
	// change: the text that datadriven tests compare.
	Trace io.Writer
	// OnApply, if set, is called for every entry a node applies.
	OnApply func(node string, e raftcore.Entry)
	// OnReady, if set, is called after a node handled a Ready.
	OnReady func(node string, rd raftcore.Ready)
	// OnStep, if set, is called after a node stepped a delivered message.
	OnStep func(node string)
}

// New starts a cluster whose founding voters are ids.
func New(opts Options, ids ...string) (*Cluster, error) {
	c := &Cluster{Net: raftcore.NewMemNetwork(opts.Seed), opts: opts, nodes: map[string]*Node{}}
	cfg := raftcore.NewConfig(ids)
	for _, id := range ids {
		st := raftcore.NewMemoryStorage()
		if err := raftcore.Bootstrap(st, cfg); err != nil {
			return nil, err
		}
		if err := c.add(id, st, nil); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// AddNode starts a node with an empty log that knows no membership: it will
// learn it from the leader once added to the configuration. With startup
// non-nil it instead takes that membership at once (docs/BUGS.md unsafe-early-vote).
func (c *Cluster) AddNode(id string, startup *raftcore.Config) error {
	if _, ok := c.nodes[id]; ok {
		return fmt.Errorf("memcluster: node %s exists", id)
	}
	return c.add(id, raftcore.NewMemoryStorage(), startup)
}

func (c *Cluster) add(id string, st *raftcore.MemoryStorage, startup *raftcore.Config) error {
	hs, err := st.InitialState()
	if err != nil {
		return err
	}
	n := &Node{ID: id, Storage: st, Startup: startup, written: hs, durable: hs}
	c.nodes[id] = n
	return c.start(n)
}

func (c *Cluster) start(n *Node) error {
	snap, err := n.Storage.Snapshot()
	if err != nil {
		return err
	}
	n.KV = map[string]string{}
	n.Applied = snap.Meta.Index
	n.AppliedConfig = snap.Meta.Config
	if !snap.IsEmpty() {
		n.KV = decodeKV(snap.Data)
	}
	n.ReadStates = nil
	rn, err := raftcore.NewRawNode(raftcore.Options{
		ID:                           n.ID,
		ElectionTick:                 c.opts.ElectionTick,
		HeartbeatTick:                c.opts.HeartbeatTick,
		Storage:                      n.Storage,
		Applied:                      n.Applied,
		MaxSizePerMsg:                c.opts.MaxSizePerMsg,
		MaxInflightMsgs:              c.opts.MaxInflightMsgs,
		CheckQuorum:                  c.opts.CheckQuorum,
		PreVote:                      c.opts.PreVote,
		Seed:                         c.opts.Seed + n.restarts*7919,
		UnsafeStartupMembership:      n.Startup,
		UnsafeAllowMultiVoterOneStep: c.opts.UnsafeAllowMultiVoterOneStep,
	})
	if err != nil {
		return err
	}
	n.RN = rn
	return nil
}

// IDs lists every node, running or not, sorted.
func (c *Cluster) IDs() []string {
	return slices.Sorted(maps.Keys(c.nodes))
}

// Node returns a node by id, or nil.
func (c *Cluster) Node(id string) *Node { return c.nodes[id] }

// RN returns the running RawNode of id, or an error if it is unknown or down.
func (c *Cluster) RN(id string) (*raftcore.RawNode, error) {
	n := c.nodes[id]
	if n == nil {
		return nil, fmt.Errorf("memcluster: no node %q (nodes: %v)", id, c.IDs())
	}
	if n.RN == nil {
		return nil, fmt.Errorf("memcluster: node %s is down", id)
	}
	return n.RN, nil
}

// Leader returns the running node that leads in the highest term, or "".
func (c *Cluster) Leader() string {
	var lead string
	var term uint64
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.RN == nil {
			continue
		}
		s := n.RN.BasicStatus()
		if s.State == raftcore.StateLeader && s.Term >= term {
			lead, term = id, s.Term
		}
	}
	return lead
}

// Crash stops a node: its storage stays, the rest is lost. With
// Options.LoseUnsynced, the storage keeps only what an fsync covered.
func (c *Cluster) Crash(id string) error {
	n := c.nodes[id]
	if n == nil || n.RN == nil {
		return fmt.Errorf("memcluster: cannot crash %q: unknown or already down", id)
	}
	if c.opts.LoseUnsynced && n.written != n.durable {
		// Entries always come with MustSync, and snapshots are written
		// durably on their own, so only the HardState can be behind. Its
		// commit index never falls below the snapshot's: a snapshot holds
		// committed entries only, and says so.
		hs := n.durable
		snap, err := n.Storage.Snapshot()
		if err != nil {
			return err
		}
		hs.Commit = max(hs.Commit, snap.Meta.Index)
		n.Storage.SetHardState(hs)
		n.written = hs
		n.durable = hs
		c.tracef("%s lost its unsynced hard state", id)
	}
	n.RN = nil
	n.paused, n.held = false, nil
	c.Net.DropPendingTo(id)
	c.tracef("%s crashed", id)
	return nil
}

// Restart starts a crashed node from its storage.
func (c *Cluster) Restart(id string) error {
	n := c.nodes[id]
	if n == nil || n.RN != nil {
		return fmt.Errorf("memcluster: cannot restart %q: unknown or running", id)
	}
	n.restarts++
	c.tracef("%s restarted", id)
	return c.start(n)
}

// Pause stops a running node the way SIGSTOP or a long GC pause does: its
// clock stops, it handles nothing, and messages delivered to it are held in
// arrival order. The others go on.
func (c *Cluster) Pause(id string) error {
	n := c.nodes[id]
	if n == nil || n.RN == nil || n.paused {
		return fmt.Errorf("memcluster: cannot pause %q: unknown, down or already paused", id)
	}
	n.paused = true
	c.tracef("%s paused", id)
	return nil
}

// Resume restarts a paused node's clock; the messages held for it are
// stepped first, in arrival order, by the next Deliver. Whatever the caller
// asks of the node before that (a read, a proposal) sees the node exactly as
// it was when it paused, as a resumed process does.
func (c *Cluster) Resume(id string) error {
	n := c.nodes[id]
	if n == nil || !n.paused {
		return fmt.Errorf("memcluster: cannot resume %q: unknown or not paused", id)
	}
	n.paused = false
	c.tracef("%s resumed with %d held messages", id, len(n.held))
	return nil
}

// SetStartup changes the unsafe start-up membership used by the next restart.
func (c *Cluster) SetStartup(id string, startup *raftcore.Config) { c.nodes[id].Startup = startup }

func (c *Cluster) tracef(format string, args ...any) {
	if c.Trace != nil {
		fmt.Fprintf(c.Trace, format+"\n", args...)
	}
}

// Tick advances every running, unpaused node and the network clock by one
// tick.
func (c *Cluster) Tick() {
	for _, id := range c.IDs() {
		if n := c.nodes[id]; n.RN != nil && !n.paused {
			n.RN.Tick()
		}
	}
	c.Net.AdvanceTime(1)
}

// TickNode advances one node's clock only.
func (c *Cluster) TickNode(id string, ticks int) error {
	rn, err := c.RN(id)
	if err != nil {
		return err
	}
	if c.nodes[id].paused {
		return fmt.Errorf("memcluster: %s is paused: its clock does not run", id)
	}
	for i := 0; i < ticks; i++ {
		rn.Tick()
	}
	return nil
}

// Process handles the pending Ready of every running node, in id order.
// It reports whether there was any.
func (c *Cluster) Process() bool {
	any := false
	for _, id := range c.IDs() {
		if c.ProcessNode(id) {
			any = true
		}
	}
	return any
}

// ProcessNode handles one node's Ready the way a server does: persist, send,
// apply, advance.
func (c *Cluster) ProcessNode(id string) bool {
	n := c.nodes[id]
	if n == nil || n.RN == nil || n.paused || !n.RN.HasReady() {
		return false
	}
	rd := n.RN.Ready()
	if rd.SoftState != nil {
		c.tracef("%s is %s (leader %s) at term %d", id, rd.SoftState.State, orDash(rd.SoftState.Lead), n.RN.BasicStatus().Term)
	}
	if !rd.Snapshot.IsEmpty() {
		if err := n.Storage.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raftcore.ErrSnapOutOfDate) {
			panic(err)
		}
	}
	if err := n.Storage.Append(rd.Entries); err != nil {
		panic(fmt.Sprintf("memcluster: %s: %v", id, err))
	}
	if !rd.HardState.IsEmpty() {
		n.Storage.SetHardState(rd.HardState)
		n.written = rd.HardState
	}
	if rd.MustSync || !rd.Snapshot.IsEmpty() {
		// The fsync covers every earlier write too.
		n.durable = n.written
	}
	c.Net.SendFrom(id, rd.Messages)
	if !rd.Snapshot.IsEmpty() {
		n.KV = decodeKV(rd.Snapshot.Data)
		n.Applied = rd.Snapshot.Meta.Index
		n.AppliedConfig = rd.Snapshot.Meta.Config
	}
	for _, e := range rd.CommittedEntries {
		c.apply(n, e)
	}
	n.ReadStates = append(n.ReadStates, rd.ReadStates...)
	n.RN.Advance(rd)
	if c.OnReady != nil {
		c.OnReady(id, rd)
	}
	return true
}

func (c *Cluster) apply(n *Node, e raftcore.Entry) {
	if e.Index <= n.Applied {
		return
	}
	switch e.Type {
	case raftcore.EntryConfig:
		if cfg, err := raftcore.DecodeConfig(e.Data); err == nil {
			n.AppliedConfig = cfg
		}
	case raftcore.EntryNormal:
		if k, v, ok := bytes.Cut(e.Data, []byte("=")); ok {
			n.KV[string(k)] = string(v)
		}
	}
	n.Applied = e.Index
	if c.OnApply != nil {
		c.OnApply(n.ID, e)
	}
}

// Deliver hands every message due by the network clock to its node and
// reports how many were delivered. Errors from Step (malformed messages)
// are counted by the node, not returned.
//
// Messages held for a node that has resumed are stepped first; messages for a
// paused node are held.
func (c *Cluster) Deliver() int {
	var msgs []raftcore.Message
	for _, id := range c.IDs() {
		if n := c.nodes[id]; !n.paused && len(n.held) > 0 {
			msgs = append(msgs, n.held...)
			n.held = nil
		}
	}
	msgs = append(msgs, c.Net.Deliverable()...)
	delivered := 0
	for _, m := range msgs {
		n := c.nodes[m.To]
		if n == nil || n.RN == nil {
			continue
		}
		if n.paused {
			n.held = append(n.held, m)
			continue
		}
		c.tracef("  %s", m)
		_ = n.RN.Step(m)
		delivered++
		if c.OnStep != nil {
			c.OnStep(m.To)
		}
	}
	return delivered
}

// Stabilize processes and delivers until nothing is left to do at the
// current time; it fails if that does not happen within limit rounds.
func (c *Cluster) Stabilize() error {
	for i := 0; i < 10000; i++ {
		p := c.Process()
		d := c.Deliver()
		if !p && d == 0 && c.Net.Pending() == 0 {
			// Messages held for paused nodes wait for them to resume.
			return nil
		}
		if !p && d == 0 {
			// Only delayed messages left: let time pass without ticking
			// the nodes.
			c.Net.AdvanceTime(1)
		}
	}
	return errors.New("memcluster: cluster did not stabilize within 10000 rounds")
}

// Flush processes and delivers what is due now, without moving the clock,
// for at most rounds rounds (messages delayed into the future stay queued).
func (c *Cluster) Flush(rounds int) {
	for i := 0; i < rounds; i++ {
		p := c.Process()
		d := c.Deliver()
		if !p && d == 0 {
			return
		}
	}
}

// RunTicks lets n ticks pass, stabilizing after each.
func (c *Cluster) RunTicks(n int) error {
	for i := 0; i < n; i++ {
		c.Tick()
		if err := c.Stabilize(); err != nil {
			return err
		}
	}
	return nil
}

// TickUntil ticks, processes and delivers until cond holds, at most limit
// ticks; it is how tests wait on a condition instead of sleeping.
func (c *Cluster) TickUntil(limit int, cond func() bool) error {
	for i := 0; i < limit; i++ {
		if cond() {
			return nil
		}
		if err := c.RunTicks(1); err != nil {
			return err
		}
	}
	if cond() {
		return nil
	}
	return fmt.Errorf("memcluster: condition not reached within %d ticks", limit)
}

// ElectLeader makes id campaign and runs until it leads, or fails.
func (c *Cluster) ElectLeader(id string) error {
	rn, err := c.RN(id)
	if err != nil {
		return err
	}
	if err := rn.Campaign(); err != nil {
		return err
	}
	if err := c.Stabilize(); err != nil {
		return err
	}
	if s := rn.BasicStatus(); s.State != raftcore.StateLeader {
		return fmt.Errorf("memcluster: %s did not become leader: %s", id, s)
	}
	return nil
}

// WaitApplied runs until every running node in ids has applied index.
func (c *Cluster) WaitApplied(index uint64, limit int, ids ...string) error {
	return c.TickUntil(limit, func() bool {
		for _, id := range ids {
			n := c.nodes[id]
			if n == nil || n.RN == nil || n.Applied < index {
				return false
			}
		}
		return true
	})
}

// Compact takes a snapshot of a node's state machine at its applied index
// and discards the log before it, as an application does periodically.
func (c *Cluster) Compact(id string) error {
	n := c.nodes[id]
	if n == nil || n.RN == nil {
		return fmt.Errorf("memcluster: cannot compact %q: unknown or down", id)
	}
	snap, _ := n.Storage.Snapshot()
	if n.Applied <= snap.Meta.Index {
		return nil
	}
	if _, err := n.Storage.CreateSnapshot(n.Applied, n.AppliedConfig, encodeKV(n.KV)); err != nil {
		return err
	}
	return n.Storage.Compact(n.Applied)
}

// LogOf returns the entries a node has persisted, and its snapshot index.
func (c *Cluster) LogOf(id string) ([]raftcore.Entry, uint64, error) {
	n := c.nodes[id]
	if n == nil {
		return nil, 0, fmt.Errorf("memcluster: no node %q", id)
	}
	first, _ := n.Storage.FirstIndex()
	last, _ := n.Storage.LastIndex()
	ents, err := n.Storage.Entries(first, last+1, ^uint64(0))
	return ents, first - 1, err
}

// SnapshotOf returns a node's latest snapshot.
func (c *Cluster) SnapshotOf(id string) (raftcore.Snapshot, error) {
	n := c.nodes[id]
	if n == nil {
		return raftcore.Snapshot{}, fmt.Errorf("memcluster: no node %q", id)
	}
	return n.Storage.Snapshot()
}

func encodeKV(kv map[string]string) []byte {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		fmt.Fprintf(&b, "%s=%s\n", k, kv[k])
	}
	return []byte(b.String())
}

func decodeKV(data []byte) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
