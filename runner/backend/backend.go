// Package backend is the seam between the runner's engine and the places
// an experiment runs: the deterministic simulator (runner/sim), real
// processes on loopback (runner/local) and, later, Kubernetes. The engine
// plays the steps and the workload through Cluster; a backend only carries
// them out and reports what it sees.
package backend

import (
	"context"
	"time"

	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/experiment"
)

// Kind is an operation's type.
type Kind string

const (
	Put Kind = "put"
	Get Kind = "get"
)

// Outcome is what a client knows of an operation.
type Outcome string

const (
	// OK: acknowledged (a write applied, a read answered).
	OK Outcome = "ok"
	// Failed: certainly not applied.
	Failed Outcome = "failed"
	// Unknown: may have been applied, at any time after the call.
	Unknown Outcome = "unknown"
)

// Op is one client operation through one node.
type Op struct {
	Kind     Kind
	Key      string
	Value    string
	ClientID string
	Seq      uint64
}

// Result is an operation's outcome; for a read, Value and Found.
type Result struct {
	Outcome Outcome
	Value   string
	Found   bool
	// Err explains a failed or unknown outcome.
	Err string
}

// Link is one direction of a peer link: messages From one node To another.
type Link struct{ From, To string }

// LinkFault is what happens to the messages on one link direction, on top
// of the experiment's base network (network: in the file).
type LinkFault struct {
	// Drop: every message is lost (a cut link).
	Drop bool
	// DelayMs + uniform[0, JitterMs] more before delivery.
	DelayMs, JitterMs int
	// LossPercent and DuplicatePercent in [0, 100].
	LossPercent, DuplicatePercent float64
}

// IsZero reports whether f leaves messages alone.
func (f LinkFault) IsZero() bool { return f == LinkFault{} }

// Compose is f and g in force together: a drop wins, delays and jitters
// add, losses and duplications combine as independent chances.
func (f LinkFault) Compose(g LinkFault) LinkFault {
	both := func(a, b float64) float64 { return 100 - (100-a)*(100-b)/100 }
	return LinkFault{Drop: f.Drop || g.Drop, DelayMs: f.DelayMs + g.DelayMs, JitterMs: f.JitterMs + g.JitterMs,
		LossPercent: both(f.LossPercent, g.LossPercent), DuplicatePercent: both(f.DuplicatePercent, g.DuplicatePercent)}
}

// Network is the whole set of link faults in force; a link it does not
// name carries messages with the base network only. Node ids are concrete
// (no wildcards) and may name nodes not started yet.
type Network map[Link]LinkFault

// NodeView is what the runner sees of one node.
type NodeView struct {
	ID      string
	Up      bool // running (not killed); a paused node is Up and Paused
	Paused  bool
	Leader  bool
	Term    uint64
	Applied uint64
	Commit  uint64
	// Joint is the node's joint state: none, entering, joint, leaving.
	Joint string
	// Voters and Learners of the node's latest configuration.
	Voters, Learners []string
	// OutgoingVoters are the outgoing half of a joint configuration (the
	// voters before the change), nil when it is not joint.
	OutgoingVoters []string
}

// View is a snapshot of the cluster.
type View struct {
	Nodes []NodeView
	// Leader is the running leader of the highest term, or "".
	Leader string
}

// Node returns a node's view, or a zero view with Up false.
func (v View) Node(id string) NodeView {
	for _, n := range v.Nodes {
		if n.ID == id {
			return n
		}
	}
	return NodeView{ID: id}
}

// Condition is what WaitUntil waits for. view returns the state of the
// cluster the condition is judged on: on a backend that sees every change
// as it happens (sim) the state now; on one that learns of changes by
// events (local), the state as of one event after another, in the order
// they came, so that a state shorter than a poll (a joint configuration
// entering) is not missed. A condition that needs no cluster state does
// not call view.
type Condition func(view func() View) bool

// Cluster is a running experiment cluster. The engine calls it from one
// goroutine, except the callbacks it hands in (op completion, timers),
// which a concurrent backend may run on other goroutines.
type Cluster interface {
	// Now is the time since the experiment started (virtual on sim).
	Now() time.Duration
	// Clock is Now as a reconfig.Clock (for the reconfiguration driver).
	Clock() reconfig.Clock
	// WaitUntil runs the cluster until cond holds or timeout passes and
	// reports whether cond held. cond == nil waits the whole timeout.
	WaitUntil(ctx context.Context, cond Condition, timeout time.Duration) bool
	// After runs fn at the given time since the start (at once if past).
	After(at time.Duration, fn func())
	// Observe reports the cluster's state.
	Observe(ctx context.Context) View

	// SetNetwork replaces the link faults in force with n, the engine's
	// composition of every active fault. The backend keeps n: it applies
	// it to the nodes running now, to a paused node (at the latest when it
	// resumes, before it sends anything) and to every node that starts or
	// restarts later, before its first message. Delay, loss and
	// duplication are drawn when a message is sent; a cut is checked again
	// when a message is delivered, so a message delayed before a cut was
	// set never crosses it.
	SetNetwork(n Network) error

	// Start starts a new, empty node; startup is the membership it takes
	// in unsafe-early-vote mode (nil otherwise).
	Start(id string, startup []string) error
	// Kill stops a node at once. What survives differs by backend and is
	// part of what an experiment tests: on sim it is a power loss (the
	// node's file system keeps only what was synced); on local it is
	// SIGKILL of the process (the machine's page cache survives, so
	// unsynced writes usually do too).
	Kill(id string) error
	// Restart starts a killed node from its disk; startup as in Start.
	Restart(id string, startup []string) error
	Pause(id string) error
	Resume(id string) error
	TransferLeader(to string) error
	// Admin is the reconfiguration driver's way in.
	Admin() reconfig.Admin

	// Do issues op through node and calls done exactly once with its
	// outcome, within timeout (then Unknown, for a write).
	Do(node string, op Op, timeout time.Duration, done func(Result))

	// Stats are backend-specific measurements (message counts, catch-up
	// bytes), merged into the results.
	Stats() Stats
	// Close stops everything the backend started.
	Close() error
}

// Stats are what a backend measured beyond the history.
type Stats struct {
	// BytesTo counts peer payload bytes (entries and snapshots) sent to
	// each node; nil when the backend cannot see them.
	BytesTo map[string]uint64
	// Elections lists every election won: who, term, counted voters and
	// whether the configuration it counted came from its log.
	Elections []Election
	// Configs are the configuration entries committed, by index.
	Configs []ConfigRecord
	// ConfigsSampled: Configs may miss configurations (local, when a
	// node's event ring overflowed before it was read, or the records do
	// not form one chain), so consecutive ones are not compared.
	ConfigsSampled bool
	// Violations are invariant breaks the backend saw directly.
	Violations []string
	// Dir is where the backend kept its files (local: data and logs).
	Dir string
}

// Election is one won election.
type Election struct {
	AtMs    int64
	Leader  string
	Term    uint64
	Granted []string
	// Counted is the configuration the votes were counted in; LogConfig
	// the leader's configuration from its log at that moment.
	Counted, LogConfig string
	// NonMembers are granters that were not voters of LogConfig.
	NonMembers []string
}

// ConfigRecord is one configuration entry seen committed.
type ConfigRecord struct {
	Index    uint64
	Voters   []string
	Outgoing []string
	Learners []string
	AtMs     int64
}

// Backend starts clusters for experiments.
type Backend interface {
	Name() string
	Start(ctx context.Context, exp *experiment.Experiment, seed uint64) (Cluster, error)
}
