package experiment

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos is a position in the experiment file.
type Pos struct{ Line, Column int }

// Experiment is one experiment file (docs/EXPERIMENTS.md).
type Experiment struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Cluster    Cluster  `yaml:"cluster"`
	Network    Network  `yaml:"network"`
	Workload   Workload `yaml:"workload"`
	Steps      []Step   `yaml:"steps"`
	Expect     Expect   `yaml:"expect"`
	Seed       uint64   `yaml:"seed"`

	// File is the path the experiment was read from.
	File string `yaml:"-"`
}

// Metadata names the experiment; Name is the results folder.
type Metadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// Cluster is the cluster the experiment starts.
type Cluster struct {
	// Replicas is the number of founding voters kv-0 .. kv-(Replicas-1).
	Replicas int `yaml:"replicas"`
	// SafetyMode: safe | unsafe-early-vote | unsafe-no-joint (docs/BUGS.md).
	SafetyMode        string `yaml:"safetyMode"`
	ElectionTimeoutMs int    `yaml:"electionTimeoutMs"`
	HeartbeatMs       int    `yaml:"heartbeatMs"`
	// SnapshotEntries: a node snapshots after this many applied entries
	// (0: never).
	SnapshotEntries int `yaml:"snapshotEntries"`
}

// Network is the simulator's network and disk between nodes when no fault
// applies (the local backend uses the real loopback and disk).
type Network struct {
	DelayMs  int `yaml:"delayMs"`
	JitterMs int `yaml:"jitterMs"`
	// FsyncMs is the simulated disk's sync time.
	FsyncMs int `yaml:"fsyncMs"`
	// SnapshotKBps is the bandwidth a snapshot crosses a peer link at
	// (KB, 1000 bytes, per second); 0 means the simulator's default.
	SnapshotKBps int `yaml:"snapshotKBps"`
	// ClientDelayMs + uniform[0, ClientJitterMs] is the time a client
	// request takes to reach its node, and again its response to come
	// back.
	ClientDelayMs  int `yaml:"clientDelayMs"`
	ClientJitterMs int `yaml:"clientJitterMs"`
	// ClientLossPercent is the chance, in [0, 100], that a client request,
	// or its response, is lost: the client then waits for its timeout.
	ClientLossPercent float64 `yaml:"clientLossPercent"`
}

// Workload is the background load of N clients.
type Workload struct {
	Clients int `yaml:"clients"`
	// Rate is operations per second over all clients; 0 is closed loop.
	Rate float64 `yaml:"rate"`
	Keys int     `yaml:"keys"`
	// KeyDistribution: uniform | zipf.
	KeyDistribution string  `yaml:"keyDistribution"`
	ZipfS           float64 `yaml:"zipfS"`
	ReadRatio       float64 `yaml:"readRatio"`
	ValueBytes      int     `yaml:"valueBytes"`
	OpTimeoutMs     int     `yaml:"opTimeoutMs"`
	// ReadContexts is how the simulator's nodes name their ReadIndex
	// requests: unique (the default: node id, a nonce drawn at each boot
	// and a counter, so no two reads of a run share a context) or
	// per-node (each node numbers its reads 1, 2, 3, ... as raft-kv does,
	// so reads of different nodes share contexts; a node never reuses
	// one, not even after a restart, so it cannot take another read's
	// answer for its own). A correct core never matches on contexts, so
	// per-node tests more. The local backend ignores it.
	ReadContexts string `yaml:"readContexts"`
	// Outstanding is how many operations each client keeps in flight
	// (default 1). kvserver allows one outstanding request per session,
	// so each slot is a session of its own (client c3's slots are c3,
	// c3.1, c3.2, ...), with its own sequence numbers.
	Outstanding int `yaml:"outstanding"`
	// Duration is how long the workload runs; the steps run meanwhile, and
	// the run ends when both are over.
	Duration Duration `yaml:"duration"`
}

// The values of Workload.ReadContexts.
const (
	ReadContextsUnique  = "unique"
	ReadContextsPerNode = "per-node"
)

// Expect is what must hold for the run to pass (exit code 0).
type Expect struct {
	// Linearizable: the porcupine verdict must be ok (true) or illegal
	// (false). A verdict of unknown meets neither.
	Linearizable *bool `yaml:"linearizable"`
	// Invariants: the configuration history must keep (true) or break
	// (false) the reconfiguration invariants.
	Invariants *bool `yaml:"invariants"`
	// MinOkOps: at least this many acknowledged operations.
	MinOkOps *int `yaml:"minOkOps"`
	// IfSafe replaces the fields it sets when the run's safetyMode is safe:
	// a bug scenario expects the violation in its unsafe mode and none in
	// safe mode, from one file.
	IfSafe *Expect `yaml:"ifSafe"`
}

// For returns the expectations that apply in a safety mode.
func (e Expect) For(mode string) Expect {
	out := e
	out.IfSafe = nil
	if mode == "safe" && e.IfSafe != nil {
		if e.IfSafe.Linearizable != nil {
			out.Linearizable = e.IfSafe.Linearizable
		}
		if e.IfSafe.Invariants != nil {
			out.Invariants = e.IfSafe.Invariants
		}
		if e.IfSafe.MinOkOps != nil {
			out.MinOkOps = e.IfSafe.MinOkOps
		}
	}
	return out
}

// Duration is a YAML duration that must carry a unit ("300ms", "5s").
type Duration time.Duration

// D is the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errAt(n, "expected a duration such as 500ms or 5s, got %s", kindName(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		if _, nerr := strconv.ParseFloat(n.Value, 64); nerr == nil {
			return errAt(n, "duration %q has no unit; write for example %sms or %ss", n.Value, n.Value, n.Value)
		}
		return errAt(n, "expected a duration such as 500ms or 5s, got %q", n.Value)
	}
	if v < 0 {
		return errAt(n, "duration %q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in Go's notation.
func (d Duration) String() string { return time.Duration(d).String() }

// Nodes is one node name or a list of them; names may be selectors
// (leader, follower, minority, majority) resolved when the step runs.
type Nodes []string

func (ns *Nodes) decodeNode(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" || n.Tag == "!!null" {
			return errAt(n, "expected a node name or a list of them, got nothing")
		}
		*ns = Nodes{n.Value}
		return nil
	case yaml.SequenceNode:
		out := Nodes{}
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Value == "" {
				return errAt(c, "expected a node name, got %s", kindName(c))
			}
			out = append(out, c.Value)
		}
		if len(out) == 0 {
			return errAt(n, "expected at least one node")
		}
		*ns = out
		return nil
	}
	return errAt(n, "expected a node name or a list of them, got %s", kindName(n))
}

// Partition is either explicit groups ([[kv-0, kv-3], [kv-1, kv-2]]) or a
// named shape: isolate-leader, majority-minority, bridge, ring.
type Partition struct {
	Groups [][]string
	Shape  string
}

// Shapes are the named partitions (Jepsen's nemesis shapes).
// majority-minority-voters splits the current voters only (the others
// join a random side).
var Shapes = []string{"isolate-leader", "majority-minority", "majority-minority-voters", "bridge", "ring"}

func (p *Partition) decodeNode(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		for _, s := range Shapes {
			if n.Value == s {
				p.Shape = s
				return nil
			}
		}
		return errAt(n, "unknown partition shape %q; expected groups like [[kv-0, kv-1], [kv-2]] or one of: %s", n.Value, strings.Join(Shapes, ", "))
	case yaml.SequenceNode:
		for _, g := range n.Content {
			var ns Nodes
			if g.Kind != yaml.SequenceNode {
				return errAt(g, "expected a group (a list of nodes), got %s", kindName(g))
			}
			if err := ns.decodeNode(g); err != nil {
				return err
			}
			p.Groups = append(p.Groups, ns)
		}
		if len(p.Groups) < 1 {
			return errAt(n, "a partition needs at least one group")
		}
		return nil
	}
	return errAt(n, "expected partition groups or a shape name, got %s", kindName(n))
}

// Empty is a step argument that takes no value: `heal: {}`.
type Empty struct{}

func (e *Empty) decodeNode(n *yaml.Node) error {
	if (n.Kind == yaml.MappingNode && len(n.Content) == 0) || (n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "")) {
		return nil
	}
	return errAt(n, "expected {} (this step takes no arguments), got %s", kindName(n))
}

// Step is one step of the script. Exactly one action is set.
type Step struct {
	Pos Pos `yaml:"-"`
	// Name labels the step in results and plots (default: the action).
	Name string `yaml:"name"`
	// At runs the step at this offset from the start instead of in sequence.
	At *Duration `yaml:"at"`
	// When makes the step wait for a cluster state, then act at once.
	When *Condition `yaml:"when"`

	Sleep          *Duration    `yaml:"sleep"`
	Await          *Condition   `yaml:"await"`
	Partition      *Partition   `yaml:"partition"`
	Isolate        *Nodes       `yaml:"isolate"`
	Heal           *Empty       `yaml:"heal"`
	Delay          *LinkFault   `yaml:"delay"`
	Loss           *LinkFault   `yaml:"loss"`
	Kill           *Nodes       `yaml:"kill"`
	Restart        *Nodes       `yaml:"restart"`
	Pause          *Nodes       `yaml:"pause"`
	Resume         *Nodes       `yaml:"resume"`
	Start          *Nodes       `yaml:"start"`
	Scale          *int         `yaml:"scale"`
	Reconfigure    *Reconfigure `yaml:"reconfigure"`
	TransferLeader *string      `yaml:"transferLeader"`
	Put            *Op          `yaml:"put"`
	Get            *Op          `yaml:"get"`
	Random         *Random      `yaml:"random"`
}

// Condition is a cluster state to wait for. Every await has a timeout.
type Condition struct {
	Leader   *bool    `yaml:"leader"`
	LeaderIn []string `yaml:"leaderIn"`
	// JointState: none | entering | joint | leaving (the leader's view:
	// entering = C_old,new appended, not committed; joint = committed;
	// leaving = C_new appended, not committed).
	JointState string `yaml:"jointState"`
	// Applied: every running node (or Node) has applied this index.
	Applied  *uint64 `yaml:"applied"`
	Node     string  `yaml:"node"`
	CaughtUp string  `yaml:"caughtUp"`
	// Reconfigured: the membership change in progress is done.
	Reconfigured *bool    `yaml:"reconfigured"`
	Timeout      Duration `yaml:"timeout"`
}

// JointStates are the values of Condition.JointState.
var JointStates = []string{"none", "entering", "joint", "leaving"}

// LinkFault delays or drops peer messages of some nodes or one link.
type LinkFault struct {
	// Nodes: every message from or to these nodes (default: all).
	Nodes Nodes `yaml:"nodes"`
	// From and To: one direction of one link (loss percent 100 on one
	// direction is a one-way cut).
	From     string  `yaml:"from"`
	To       string  `yaml:"to"`
	Ms       int     `yaml:"ms"`
	JitterMs int     `yaml:"jitterMs"`
	Percent  float64 `yaml:"percent"`
}

// Reconfigure changes the voters through the reconfiguration driver of the
// run's safety mode; the driver runs in the background until done (see
// await: {reconfigured: true}).
type Reconfigure struct {
	Voters []string `yaml:"voters"`
}

// Op is an explicit operation through one node; the put or get waits for
// its outcome, which goes into the history like the workload's.
type Op struct {
	Node  string `yaml:"node"`
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// Random plays random faults until the workload ends. Faults start on
// their own schedule, one every Every on average (uniform in 0.5..1.5
// Every), and each lasts Hold on average (uniform in 0.5..1.5 Hold, longer
// for killLong), so with Hold above Every several are in force at once (at
// most MaxActive). Membership changes run on a schedule of their own
// (ChangeEvery), and On makes a membership state trigger a fault at once.
// It draws from the run's seed.
type Random struct {
	Every Duration `yaml:"every"`
	Hold  Duration `yaml:"hold"`
	// Kinds are the faults drawn (default: RandomKinds, all but the
	// legacy reconfigure); a kind listed twice is drawn twice as often.
	// docs/EXPERIMENTS.md lists them: partition, partitionVoters, bridge,
	// ring, oneWay, isolateLeader, kill, killLong, killForever,
	// crashRecovery, pause, pauseLeader, delay, slow, loss,
	// transferLeader, and reconfigure (a membership change drawn as a
	// fault, the old way; changeEvery is the better one).
	Kinds []string `yaml:"kinds"`
	// MaxReplicas bounds the random memberships (default
	// cluster.replicas + 2): nodes kv-0 .. kv-(MaxReplicas-1).
	MaxReplicas int `yaml:"maxReplicas"`
	// MaxActive bounds the random faults in force at once (default 3); a
	// fault due while MaxActive are in force is skipped.
	MaxActive int `yaml:"maxActive"`
	// ChangeEvery: a membership change (replace a voter, grow or shrink
	// by one, never to the current voters) every ChangeEvery on average,
	// independent of the faults; 0: none.
	ChangeEvery Duration `yaml:"changeEvery"`
	// On: membership states that trigger a fault (one of Kinds) as the
	// leader enters them, once per membership change and state: entering
	// (EnterJoint or the one-step change starts), joint (C_old,new seen
	// committed), leaving (LeaveJoint starts), learner (fires when
	// AddLearner starts: the new learner has the log to catch up).
	On []string `yaml:"on"`
}

// RandomKinds are the fault kinds random steps choose from by default.
var RandomKinds = []string{"partition", "partitionVoters", "bridge", "ring", "oneWay", "isolateLeader",
	"kill", "killLong", "killForever", "crashRecovery", "pause", "pauseLeader", "delay", "slow", "loss", "transferLeader"}

// RandomLegacyKinds are kinds accepted but not drawn by default.
var RandomLegacyKinds = []string{"reconfigure"}

// RandomTriggers are the values of Random.On.
var RandomTriggers = []string{"entering", "joint", "leaving", "learner"}

// Action is the name of the step's action.
func (s Step) Action() string {
	switch {
	case s.Sleep != nil:
		return "sleep"
	case s.Await != nil:
		return "await"
	case s.Partition != nil:
		return "partition"
	case s.Isolate != nil:
		return "isolate"
	case s.Heal != nil:
		return "heal"
	case s.Delay != nil:
		return "delay"
	case s.Loss != nil:
		return "loss"
	case s.Kill != nil:
		return "kill"
	case s.Restart != nil:
		return "restart"
	case s.Pause != nil:
		return "pause"
	case s.Resume != nil:
		return "resume"
	case s.Start != nil:
		return "start"
	case s.Scale != nil:
		return "scale"
	case s.Reconfigure != nil:
		return "reconfigure"
	case s.TransferLeader != nil:
		return "transferLeader"
	case s.Put != nil:
		return "put"
	case s.Get != nil:
		return "get"
	case s.Random != nil:
		return "random"
	}
	return ""
}

func (s Step) actions() int {
	n := 0
	for _, set := range []bool{s.Sleep != nil, s.Await != nil, s.Partition != nil, s.Isolate != nil, s.Heal != nil,
		s.Delay != nil, s.Loss != nil, s.Kill != nil, s.Restart != nil, s.Pause != nil, s.Resume != nil,
		s.Start != nil, s.Scale != nil, s.Reconfigure != nil, s.TransferLeader != nil, s.Put != nil, s.Get != nil, s.Random != nil} {
		if set {
			n++
		}
	}
	return n
}

// Label is the step's name, or a short description of its action.
func (s Step) Label() string {
	if s.Name != "" {
		return s.Name
	}
	switch {
	case s.Sleep != nil:
		return "sleep " + s.Sleep.String()
	case s.Partition != nil:
		if s.Partition.Shape != "" {
			return "partition " + s.Partition.Shape
		}
		var gs []string
		for _, g := range s.Partition.Groups {
			gs = append(gs, "["+strings.Join(g, " ")+"]")
		}
		return "partition " + strings.Join(gs, " | ")
	case s.Isolate != nil:
		return "isolate " + strings.Join(*s.Isolate, " ")
	case s.Kill != nil:
		return "kill " + strings.Join(*s.Kill, " ")
	case s.Restart != nil:
		return "restart " + strings.Join(*s.Restart, " ")
	case s.Pause != nil:
		return "pause " + strings.Join(*s.Pause, " ")
	case s.Resume != nil:
		return "resume " + strings.Join(*s.Resume, " ")
	case s.Start != nil:
		return "start " + strings.Join(*s.Start, " ")
	case s.Scale != nil:
		return fmt.Sprintf("scale to %d", *s.Scale)
	case s.Reconfigure != nil:
		return "reconfigure to " + strings.Join(s.Reconfigure.Voters, " ")
	case s.TransferLeader != nil:
		return "transfer leadership to " + *s.TransferLeader
	case s.Put != nil:
		return fmt.Sprintf("put %s=%s via %s", s.Put.Key, s.Put.Value, s.Put.Node)
	case s.Get != nil:
		return fmt.Sprintf("get %s via %s", s.Get.Key, s.Get.Node)
	}
	return s.Action()
}
