package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SafetyMode is how membership changes are carried out (docs/BUGS.md). The
// unsafe modes reproduce real bugs on purpose; the operator says in every
// step's event which invariants they waive.
// +kubebuilder:validation:Enum=safe;unsafe-early-vote;unsafe-no-joint
type SafetyMode string

const (
	// Safe: learners first, promotion only once caught up and durable, one
	// joint change for every change of voters (Raft thesis §4.3), the
	// leader transferred away before its removal.
	Safe SafetyMode = "safe"
	// UnsafeEarlyVote: a new member votes at once, before it has the log.
	UnsafeEarlyVote SafetyMode = "unsafe-early-vote"
	// UnsafeNoJoint: C_old switches to C_new in one entry, however many
	// voters change.
	UnsafeNoJoint SafetyMode = "unsafe-no-joint"
)

// Phase sums a RaftCluster up.
// +kubebuilder:validation:Enum=Pending;Ready;Reconfiguring;Degraded
type Phase string

const (
	// Pending: the members are being created and have not elected a
	// leader yet.
	Pending Phase = "Pending"
	// Ready: a leader, every desired voter in the configuration and caught
	// up, no change in progress.
	Ready Phase = "Ready"
	// Reconfiguring: a membership change is in progress.
	Reconfiguring Phase = "Reconfiguring"
	// Degraded: no leader, a member lost, or a step failing; the reason is
	// in the Degraded condition.
	Degraded Phase = "Degraded"
)

// Condition types.
const (
	// ConditionAvailable: a leader is elected and serving.
	ConditionAvailable = "Available"
	// ConditionProgressing: a membership change is in progress.
	ConditionProgressing = "Progressing"
	// ConditionDegraded: something needs attention (its reason says what).
	ConditionDegraded = "Degraded"
)

// ReconfigSpec tunes how fast and how carefully membership changes.
type ReconfigSpec struct {
	// RateLimit is how often a membership change may start, as a count per
	// unit: "1/min" (one change a minute), "6/min", "1/s", "10/h". A new
	// change starts at least 1/rate after the previous one ended.
	// +kubebuilder:default="1/min"
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]*/(s|min|h)$`
	// +optional
	RateLimit string `json:"rateLimit,omitempty"`
	// MaxParallel is how many membership changes may be in flight at once.
	// Only 1 is supported today: one configuration change at a time (Raft
	// thesis §4.1); several members still change together in one joint
	// change.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self == 1",message="reconfig.maxParallel: only 1 is supported today (one configuration change at a time; several members still change together in one joint change)"
	// +optional
	MaxParallel int32 `json:"maxParallel,omitempty"`
	// CatchUpMaxLag: a learner is caught up when the leader's last index
	// minus the learner's durable match index is at most this.
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=0
	// +optional
	CatchUpMaxLag int64 `json:"catchUpMaxLag,omitempty"`
	// Stabilization is how long a learner must stay caught up before it is
	// promoted to voter (a Go duration: "3s", "1m30s").
	// +kubebuilder:default="3s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$')",message="must be a duration such as \"500ms\", \"3s\" or \"1m30s\""
	// +optional
	Stabilization *metav1.Duration `json:"stabilization,omitempty"`
	// LeaderFlapThreshold and LeaderFlapWindow: no membership step while the
	// leader changed more than LeaderFlapThreshold times within
	// LeaderFlapWindow (a Go duration), as the members themselves recorded
	// it.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +optional
	LeaderFlapThreshold int32 `json:"leaderFlapThreshold,omitempty"`
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$')",message="must be a duration such as \"500ms\", \"3s\" or \"1m30s\""
	// +optional
	LeaderFlapWindow *metav1.Duration `json:"leaderFlapWindow,omitempty"`
}

// The rules on storageClassName and retiredMembers sit on the spec and not
// on the fields: a rule on a field is not evaluated when the field is absent
// from the old or the new object, so there it would let storageClassName be
// set or unset, and retiredMembers be emptied (a Go client omits an empty
// list).

// RaftClusterSpec is what the user wants.
// +kubebuilder:validation:XValidation:rule="self.heartbeatMs * 2 <= self.electionTimeoutMs",message="heartbeatMs must be at most half of electionTimeoutMs: a follower must hear at least two heartbeats before it calls an election"
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="storageClassName cannot change, nor be set or unset after creation: the members' volumes already exist in their class",fieldPath=".storageClassName"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.retiredMembers) || (has(self.retiredMembers) && oldSelf.retiredMembers.all(m, m in self.retiredMembers))",message="retiredMembers can only grow: a retired member's id is never used again (its volume holds an old log)",fieldPath=".retiredMembers"
type RaftClusterSpec struct {
	// Replicas is the number of voting members.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=15
	// +kubebuilder:default=3
	Replicas int32 `json:"replicas"`
	// Image is the raft-kv image.
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
	// ImagePullPolicy of the members' pods.
	// +kubebuilder:default=IfNotPresent
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// omitzero, not omitempty: omitempty does not omit a struct, so a Go
	// client would send an unset size as "0" and the default would never
	// apply. The rule compares by value because a Go client writes a
	// quantity back in canonical form ("1.5Gi" as "1536Mi").

	// StorageSize is the size of each member's volume (its WAL and
	// snapshots), fixed at creation. Sizes are compared by value: "1Gi" and
	// "1024Mi" are the same.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="storageSize must be more than zero"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity(string(oldSelf))) == 0",message="storageSize cannot change: every member's volume was created with it and a StatefulSet's volume claims are immutable; create a new RaftCluster for another size"
	// +optional
	StorageSize resource.Quantity `json:"storageSize,omitzero"`
	// StorageClassName of the members' volumes (the cluster's default if
	// unset), fixed at creation: it can be neither changed, nor set or unset
	// later.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
	// SnapshotEntries: a member snapshots its state machine every this many
	// applied entries (0: raft-kv's default).
	// +kubebuilder:validation:Minimum=0
	// +optional
	SnapshotEntries int64 `json:"snapshotEntries,omitempty"`
	// SnapshotInterval: a member also snapshots when this long passed since
	// its last snapshot ("30s"; unset: raft-kv's default).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$')",message="must be a duration such as \"500ms\", \"3s\" or \"1m30s\""
	// +optional
	SnapshotInterval *metav1.Duration `json:"snapshotInterval,omitempty"`
	// ElectionTimeoutMs is the election timeout (randomized in [t, 2t)).
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=10
	// +optional
	ElectionTimeoutMs int32 `json:"electionTimeoutMs,omitempty"`
	// HeartbeatMs is the heartbeat interval (raft-kv's tick).
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +optional
	HeartbeatMs int32 `json:"heartbeatMs,omitempty"`
	// SafetyMode selects safe membership changes or one of the unsafe modes
	// that reproduce real bugs. It is fixed at creation: the members run
	// with it.
	// +kubebuilder:default=safe
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="safetyMode cannot change: every member was started with it; create a new RaftCluster for another mode"
	// +optional
	SafetyMode SafetyMode `json:"safetyMode,omitempty"`
	// Reconfig tunes membership changes.
	// +kubebuilder:default={}
	// +optional
	Reconfig ReconfigSpec `json:"reconfig,omitempty"`
	// Paused: the operator observes and reports, and changes nothing (no
	// membership step, no StatefulSet resize).
	// +optional
	Paused bool `json:"paused,omitempty"`
	// RetiredMembers are members to take out of the cluster for good, each
	// replaced by a new member with the next free ordinal: retiring
	// "demo-2" of a 3-replica cluster makes the voters demo-0, demo-1 and
	// demo-3, in one joint change. A retired member's pod stays (idle,
	// outside the configuration) while members with higher ordinals exist,
	// because a StatefulSet has no holes; its volume is kept. A retired id
	// is never used again, so the list can only grow.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	RetiredMembers []string `json:"retiredMembers,omitempty"`
}

// MemberRole is a member's part in the configuration.
// +kubebuilder:validation:Enum=voter;learner;none
type MemberRole string

const (
	RoleVoter   MemberRole = "voter"
	RoleLearner MemberRole = "learner"
	// RoleNone: a pod of the StatefulSet outside the configuration (a new
	// member not added yet, a retired or removed one).
	RoleNone MemberRole = "none"
)

// MemberStatus is what the leader last reported of one member.
type MemberStatus struct {
	// ID is the member's Raft id, its pod's name.
	ID string `json:"id"`
	// Role in the configuration in force.
	Role MemberRole `json:"role"`
	// Joint, during a joint configuration: "outgoing" (in C_old only),
	// "incoming" (in C_new only), empty when in both or none.
	// +optional
	Joint string `json:"joint,omitempty"`
	// CaughtUp: its durable match index is within catchUpMaxLag of the
	// leader's last index.
	CaughtUp bool `json:"caughtUp"`
	// MatchIndex is the highest index known to be on its disk.
	// +optional
	MatchIndex int64 `json:"matchIndex,omitempty"`
	// Lag is the leader's last index minus MatchIndex.
	// +optional
	Lag int64 `json:"lag,omitempty"`
	// Reachable: the leader heard from it within an election timeout.
	Reachable bool `json:"reachable"`
	// PodReady: its pod passes raft-kv's /readyz.
	PodReady bool `json:"podReady"`
}

// RaftClusterStatus is the operator's last observation: a cache, never the
// truth.
type RaftClusterStatus struct {
	// ObservedGeneration is the spec generation this status was made for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Replicas is the number of voters in the configuration in force (the
	// scale subresource's status).
	// +optional
	Replicas int32 `json:"replicas"`
	// Selector selects the members' pods (the scale subresource's
	// selector).
	// +optional
	Selector string `json:"selector,omitempty"`
	// ReadyMembers counts the voters that are reachable and caught up.
	// +optional
	ReadyMembers int32 `json:"readyMembers"`
	// Leader is the member that leads, empty when there is none.
	// +optional
	Leader string `json:"leader,omitempty"`
	// Term is the leader's term.
	// +optional
	Term int64 `json:"term,omitempty"`
	// FoundingMembers are the members that founded the cluster (the others
	// joined as learners).
	// +optional
	FoundingMembers []string `json:"foundingMembers,omitempty"`
	// Members, in ordinal order.
	// +optional
	// +listType=map
	// +listMapKey=id
	Members []MemberStatus `json:"members,omitempty"`
	// JointState of the configuration in force.
	// +kubebuilder:validation:Enum=none;entering;committed;leaving
	// +optional
	JointState string `json:"jointState,omitempty"`
	// ConfigIndex is the log index of the configuration in force, and
	// ConfigCommitted whether it is committed.
	// +optional
	ConfigIndex int64 `json:"configIndex,omitempty"`
	// +optional
	ConfigCommitted bool `json:"configCommitted,omitempty"`
	// LastReconfigAt is when the last membership change ended; the rate
	// limit counts from it, also across operator restarts.
	// +optional
	LastReconfigAt *metav1.Time `json:"lastReconfigAt,omitempty"`
	// CurrentStep is the step in progress or last decided ("EnterJoint
	// voters=(demo-0 demo-1 demo-2 demo-3 demo-4) @12"), empty when done.
	// +optional
	CurrentStep string `json:"currentStep,omitempty"`
	// StepReason says why (the planner's one line).
	// +optional
	StepReason string `json:"stepReason,omitempty"`
	// Waived lists the invariants the unsafe mode waived for the last
	// step.
	// +optional
	Waived []string `json:"waived,omitempty"`
	// Failures counts consecutive failed steps or observations; the retry
	// backs off exponentially with it.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// Conditions: Available, Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RaftCluster is a raft-kv cluster whose membership the operator changes
// through raftlab's reconfig planner.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=raft,categories=raftlab
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyMembers`
// +kubebuilder:printcolumn:name="Leader",type=string,JSONPath=`.status.leader`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Joint",type=string,JSONPath=`.status.jointState`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.safetyMode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.retiredMembers) || self.spec.retiredMembers.all(m, m.startsWith(self.metadata.name + '-') && m.substring(size(self.metadata.name) + 1).matches('^(0|[1-9][0-9]*)$'))",message="spec.retiredMembers: each entry must be a member id of this cluster, <name>-<ordinal> (for demo: demo-2); an entry cannot be removed once set, so check it before applying",fieldPath=".spec.retiredMembers"
type RaftCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:validation:Required
	Spec   RaftClusterSpec   `json:"spec,omitempty"`
	Status RaftClusterStatus `json:"status,omitempty"`
}

// RaftClusterList is a list of RaftClusters.
//
// +kubebuilder:object:root=true
type RaftClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RaftCluster `json:"items"`
}
