package reconfig

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// Mode selects how membership changes are carried out. The names are the
// RaftCluster resource's safetyMode values (docs/BUGS.md).
type Mode string

const (
	// Safe: learners first, promotion only once caught up, joint consensus
	// for every change of voters, leader transferred before its removal.
	Safe Mode = "safe"
	// UnsafeEarlyVote (docs/BUGS.md bug 1): new members become voters at once,
	// without a learner stage and without waiting to catch up.
	UnsafeEarlyVote Mode = "unsafe-early-vote"
	// UnsafeNoJoint (docs/BUGS.md bug 2): one configuration entry straight from
	// C_old to C_new, however many voters change.
	UnsafeNoJoint Mode = "unsafe-no-joint"
)

// ParseMode checks a safety mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Safe, UnsafeEarlyVote, UnsafeNoJoint:
		return m, nil
	}
	return "", fmt.Errorf("reconfig: unknown safety mode %q: want %q, %q or %q", s, Safe, UnsafeEarlyVote, UnsafeNoJoint)
}

// Invariant names a safety rule of membership change. Every decision checks
// all of them and names the one that stops it.
type Invariant string

const (
	// LearnersNeverVote: a new member enters as a learner, which counts in no
	// quorum; it becomes a voter only through a configuration change.
	LearnersNeverVote Invariant = "learners-never-vote"
	// OneChangeInFlight: no configuration entry is proposed while another is
	// uncommitted (Raft thesis §4.1).
	OneChangeInFlight Invariant = "one-change-in-flight"
	// PromoteOnlyCaughtUp: a learner becomes a voter only once its durable
	// match index has stayed within MaxLag of the leader's last index for
	// the stabilization period.
	PromoteOnlyCaughtUp Invariant = "promote-only-caught-up-and-durable"
	// JointConsensus: more than one voter never changes in one step (Raft
	// thesis §4.3).
	JointConsensus Invariant = "joint-consensus"
	// TransferBeforeRemoval: the leader hands leadership to a remaining
	// voter before the configuration that removes it is proposed.
	TransferBeforeRemoval Invariant = "transfer-before-removal"
	// ConfigIndexIncreases: observations and steps never go back to an
	// older configuration index (a stale observation is not acted on).
	ConfigIndexIncreases Invariant = "config-index-increases"
	// RateLimit: a new change starts at least Policy.RateLimit after the
	// last one ended.
	RateLimit Invariant = "rate-limit"
	// LeaderStable: no step while the leader changed more than
	// Policy.FlapThreshold times within Policy.FlapWindow.
	LeaderStable Invariant = "leader-stable"
)

// AllInvariants lists every invariant, in the order they are checked.
var AllInvariants = []Invariant{LearnersNeverVote, OneChangeInFlight, PromoteOnlyCaughtUp, JointConsensus,
	TransferBeforeRemoval, ConfigIndexIncreases, RateLimit, LeaderStable}

// MemberObs is what the leader knows of one member's replication.
type MemberObs struct {
	// Match is the highest index known to be on the member's disk (the
	// leader counts only acknowledged, hence durable, entries).
	Match uint64
	// Durable: the member's copy up to Match is on stable storage.
	Durable bool
	// Reachable: the leader heard from it within an election timeout.
	Reachable bool
}

// Observation is the cluster as a driver saw it through its Admin.
type Observation struct {
	// At is when it was taken.
	At time.Time
	// Leader is the leader's id, "" when there is none.
	Leader string
	Term   uint64
	// LastIndex is the leader's last log index.
	LastIndex uint64
	// Config is the latest configuration in the leader's log (in force on
	// the leader) at ConfigIndex; Committed says whether that entry is
	// committed. CommittedConfig/CommittedIndex is the newest committed one.
	Config          raftcore.Config
	ConfigIndex     uint64
	Committed       bool
	CommittedConfig raftcore.Config
	CommittedIndex  uint64
	Joint           raftcore.JointState
	// Members holds every voter and learner of Config (and may hold more).
	Members map[string]MemberObs
	// LeaderChanges, when the cluster keeps a record of its own, are the
	// times a new leader took over, oldest first (the first leader the
	// record knows of is not a change). Nil: the cluster keeps none, and
	// the driver counts the changes it observed itself. The cluster's own
	// record is better evidence: it holds changes between two
	// observations, and survives a restart of whoever drives.
	LeaderChanges []time.Time
}

// CommittedConfigIndex is the index of the newest committed configuration.
func (o Observation) CommittedConfigIndex() uint64 {
	if o.Committed {
		return o.ConfigIndex
	}
	return o.CommittedIndex
}

// Policy is the tunable part of a decision.
type Policy struct {
	// MaxLag: a learner is caught up when LastIndex - Match <= MaxLag.
	MaxLag uint64
	// Stabilization: how long a learner must stay caught up before it is
	// promoted (as Consul autopilot's ServerStabilizationTime).
	Stabilization time.Duration
	// RateLimit: the cooldown between two changes (RaftCluster
	// reconfig.rateLimit).
	RateLimit time.Duration
	// FlapThreshold and FlapWindow: back off while the leader changed more
	// than FlapThreshold times within FlapWindow.
	FlapThreshold int
	FlapWindow    time.Duration
	// MaxObservationAge: an observation older than this is not acted on.
	MaxObservationAge time.Duration
	// Retry is the first backoff after a failed step (doubled up to
	// MaxRetry).
	Retry, MaxRetry time.Duration
}

// DefaultPolicy is a policy for clusters with election timeouts around a
// second.
func DefaultPolicy() Policy {
	return Policy{MaxLag: 64, Stabilization: 3 * time.Second, RateLimit: 10 * time.Second,
		FlapThreshold: 3, FlapWindow: time.Minute, MaxObservationAge: 5 * time.Second,
		Retry: 200 * time.Millisecond, MaxRetry: 10 * time.Second}
}

// Op is a step's action.
type Op string

const (
	OpAddLearner     Op = "AddLearner"
	OpEnterJoint     Op = "EnterJoint"
	OpCommitNew      Op = "CommitNew" // wait for (or report) the joint entry's commit
	OpTransferLeader Op = "TransferLeader"
	OpLeaveJoint     Op = "LeaveJoint"
	OpRemoveMember   Op = "RemoveMember"
	// OpChangeVoters is the unsafe one-step change (UnsafeNoJoint).
	OpChangeVoters Op = "ChangeVoters"
)

// Step is one action for a driver to carry out through its Admin.
type Step struct {
	Op Op
	// Target is the member for AddLearner, TransferLeader and RemoveMember.
	Target string
	// Voters is the new voter set for EnterJoint and ChangeVoters.
	Voters []string
	// ConfigIndex is the configuration index the step expects (the Admin
	// call fails cleanly if it moved): the latest index for changes, the
	// joint entry's index for CommitNew.
	ConfigIndex uint64
	// StartsChange: this step begins a new membership change (the rate
	// limit is counted from the end of the previous one).
	StartsChange bool
	// EndsChange: once done, the target membership is reached or this
	// change is complete.
	EndsChange bool
}

func (s Step) String() string {
	var b strings.Builder
	b.WriteString(string(s.Op))
	if s.Target != "" {
		b.WriteString(" " + s.Target)
	}
	if s.Voters != nil {
		fmt.Fprintf(&b, " voters=(%s)", strings.Join(s.Voters, " "))
	}
	fmt.Fprintf(&b, " @%d", s.ConfigIndex)
	return b.String()
}

// Kind is the kind of a decision.
type Kind string

const (
	// Act: carry out Step.
	Act Kind = "act"
	// Wait: nothing to do until Until (or the next observation); Why says
	// what is awaited.
	Wait Kind = "wait"
	// Blocked: an invariant forbids going on; a new observation or target
	// is needed.
	Blocked Kind = "blocked"
	// Done: the cluster has the desired membership.
	Done Kind = "done"
)

// Decision is the brain's answer.
type Decision struct {
	Kind Kind
	Step Step
	// Why explains the decision in one line.
	Why string
	// Until is when to look again (Wait).
	Until time.Time
	// Invariant is the rule that makes this a Wait or Blocked, if any.
	Invariant Invariant
	// Waived lists the invariants an unsafe mode let this step break.
	Waived []Invariant
}

func (d Decision) String() string {
	var b strings.Builder
	b.WriteString(string(d.Kind))
	if d.Kind == Act {
		b.WriteString(" " + d.Step.String())
	}
	if d.Invariant != "" {
		fmt.Fprintf(&b, " [%s]", d.Invariant)
	}
	if !d.Until.IsZero() {
		fmt.Fprintf(&b, " until=%s", d.Until.UTC().Format("15:04:05.000"))
	}
	if d.Why != "" {
		b.WriteString(": " + d.Why)
	}
	if len(d.Waived) > 0 {
		ws := make([]string, len(d.Waived))
		for i, w := range d.Waived {
			ws[i] = string(w)
		}
		fmt.Fprintf(&b, " (waived: %s)", strings.Join(ws, ", "))
	}
	return b.String()
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
