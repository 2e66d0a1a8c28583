package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	kvclient "github.com/raftlab/raftlab/kvserver/client"
	v1 "github.com/raftlab/raftlab/operator/api/v1"
	"github.com/raftlab/raftlab/reconfig"
)

// AdminFactory builds the Admin of a cluster: nodes maps the members whose
// pods have an IP to their admin URLs, peers maps members to the peer
// addresses a new member is added with, token is the admin bearer token.
type AdminFactory func(rc *v1.RaftCluster, nodes, peers map[string]string, token string) reconfig.Admin

// HTTPAdmin is the AdminFactory of real clusters: raft-kv's admin plane.
func HTTPAdmin(_ *v1.RaftCluster, nodes, peers map[string]string, token string) reconfig.Admin {
	return &kvclient.Admin{Nodes: nodes, PeerAddrs: peers, Token: token, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Reconciler drives a RaftCluster: each pass observes the members through
// their admin plane, asks reconfig.Decide for one step, carries out at
// most one membership step, and records it in the status and an Event.
// It holds no consensus logic: what to do next, and whether it is safe, is
// reconfig's; what the cluster is, is what its leader reports (the status
// is a cache).
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// NewAdmin defaults to HTTPAdmin.
	NewAdmin AdminFactory
	// Clock defaults to the real clock.
	Clock reconfig.Clock
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string
	// AfterStep, if set, is called after every membership step that
	// succeeded (tests crash the operator there).
	AfterStep func(reconfig.Step)

	mu     sync.Mutex
	memory map[types.NamespacedName]*memory
}

// memory is what a reconciler keeps of a cluster between passes. None of it
// is needed for safety (a new process starts from the members' committed
// configuration): it makes promotion wait for a stable sample, keeps the
// backoff of a failing step whatever event wakes a pass, and keeps the
// highest committed configuration index seen even when a stale status was
// written.
type memory struct {
	tracker reconfig.Tracker
	retryAt time.Time
	seen    uint64
}

// The RBAC the reconciler needs (config/rbac/role.yaml is generated from it).
// +kubebuilder:rbac:groups=storage.sys,resources=raftclusters,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=storage.sys,resources=raftclusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=storage.sys,resources=raftclusters/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups=storage.sys,resources=raftclusters/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=services;secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler: it watches RaftClusters and
// the objects it owns.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Its own status updates do not trigger a pass: the pass requeues
		// itself at the decision's deadline, or after a backoff.
		For(&v1.RaftCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Named("raftcluster").
		Complete(r)
}

func (r *Reconciler) clock() reconfig.Clock {
	if r.Clock == nil {
		return realClock{}
	}
	return r.Clock
}

// memoryOf is the memory of a cluster. Passes of one cluster never run at
// once (controller-runtime's queue), so the caller may use it unlocked.
func (r *Reconciler) memoryOf(key types.NamespacedName) *memory {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memory == nil {
		r.memory = map[types.NamespacedName]*memory{}
	}
	m := r.memory[key]
	if m == nil {
		m = &memory{}
		r.memory[key] = m
	}
	return m
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.memory, key)
	r.mu.Unlock()
}

// Periodic re-observation when nothing is going on.
const idleResync = 15 * time.Second

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rc v1.RaftCluster
	if err := r.Client.Get(ctx, req.NamespacedName, &rc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !rc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the owned objects go with it; the volumes stay
	}
	pass := &pass{r: r, rc: &rc, base: rc.DeepCopy(), orig: rc.Status.DeepCopy(), now: r.clock().Now(), policy: PolicyOf(rc.Spec),
		mem: r.memoryOf(req.NamespacedName)}
	res, err := pass.run(ctx)
	if serr := pass.writeStatus(ctx); serr != nil {
		return ctrl.Result{}, errors.Join(err, serr)
	}
	return res, err
}

// pass is one reconcile of one RaftCluster.
type pass struct {
	r  *Reconciler
	rc *v1.RaftCluster
	// base is the object as last read or written: the status is written
	// as a merge patch against it, which a concurrent spec change (kubectl
	// scale) does not make fail, so what a step recorded is never dropped.
	base   *v1.RaftCluster
	mem    *memory
	orig   *v1.RaftClusterStatus
	now    time.Time
	policy reconfig.Policy
	sts    *appsv1.StatefulSet
	// changed: the status must be written even if it compares equal (a
	// step happened).
	changed bool
}

func (p *pass) writeStatus(ctx context.Context) error {
	st := &p.rc.Status
	st.ObservedGeneration = p.rc.Generation
	st.Selector = SelectorString(p.rc)
	if !p.changed && equalStatus(p.orig, st) {
		return nil
	}
	if err := p.r.Client.Status().Patch(ctx, p.rc, client.MergeFrom(p.base)); err != nil {
		return err
	}
	p.base = p.rc.DeepCopy()
	return nil
}

func equalStatus(a, b *v1.RaftClusterStatus) bool {
	// Condition transition times are kept when nothing changed, so a deep
	// comparison is enough.
	return equalJSON(a, b)
}

func (p *pass) run(ctx context.Context) (ctrl.Result, error) {
	rc := p.rc
	logger := log.FromContext(ctx)
	if msg := validate(rc); msg != "" {
		p.degraded("InvalidSpec", msg)
		return ctrl.Result{}, nil // a spec change triggers the next pass
	}
	token, err := p.ensureSecret(ctx)
	if err != nil {
		return p.failed("EnsureObjects", err)
	}
	for _, obj := range []client.Object{desiredPeerService(rc), desiredClientService(rc)} {
		if err := p.ensure(ctx, obj); err != nil {
			return p.failed("EnsureObjects", err)
		}
	}
	if err := p.ensureStatefulSet(ctx); err != nil {
		return p.failed("EnsureObjects", err)
	}
	founders := strings.Split(p.sts.Annotations[FoundersAnnotation], ",")
	rc.Status.FoundingMembers = founders

	var pods corev1.PodList
	if err := p.r.Client.List(ctx, &pods, client.InNamespace(rc.Namespace), client.MatchingLabels(Labels(rc))); err != nil {
		return p.failed("ListPods", err)
	}
	nodes, podReady, running := map[string]string{}, map[string]bool{}, map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if Ordinal(rc, pod.Name) < 0 || !pod.DeletionTimestamp.IsZero() {
			continue
		}
		podReady[pod.Name] = isPodReady(pod)
		if pod.Status.PodIP != "" && pod.Status.Phase == corev1.PodRunning {
			running[pod.Name] = true
			nodes[pod.Name] = fmt.Sprintf("http://%s:%d", pod.Status.PodIP, AdminPort)
		}
	}
	desired := DesiredVoters(rc)
	peers := map[string]string{}
	for i := 0; i < int(*p.sts.Spec.Replicas)+len(desired)+len(rc.Spec.RetiredMembers); i++ {
		id := MemberID(rc, i)
		peers[id] = fmt.Sprintf("%s:%d", PeerHost(rc, id, p.r.domain()), PeerPort)
	}
	newAdmin := p.r.NewAdmin
	if newAdmin == nil {
		newAdmin = HTTPAdmin
	}
	admin := newAdmin(rc, nodes, peers, token)
	if len(nodes) == 0 {
		return p.noLeader("no member pod is running yet", podReady)
	}
	obs, err := admin.Observe(ctx)
	// Decisions are judged at the time after the observation (its age
	// counts against Policy.MaxObservationAge).
	p.now = p.r.clock().Now()
	if err != nil {
		return p.noLeader("observe: "+err.Error(), podReady)
	}
	if obs.Leader == "" {
		return p.noLeader("no leader: the members are electing one", podReady)
	}
	p.record(obs, podReady)
	if err := p.ensurePDB(ctx, len(obs.Config.Voters)); err != nil {
		return p.failed("EnsureObjects", err)
	}
	need := podsNeeded(rc, desired, obs)
	if rc.Spec.Paused {
		setCondition(&rc.Status, v1.ConditionProgressing, false, "Paused", "spec.paused: observing only, no membership step and no resize", rc.Generation, p.now)
		rc.Status.CurrentStep, rc.Status.StepReason = "", "paused"
		return ctrl.Result{RequeueAfter: idleResync}, nil
	}
	if *p.sts.Spec.Replicas < need {
		if err := p.resize(ctx, need); err != nil {
			return p.failed("ResizeStatefulSet", err)
		}
	}

	in := reconfig.Input{Obs: obs, Desired: desired, Mode: reconfig.Mode(rc.Spec.SafetyMode), Policy: p.policy, Now: p.now,
		LeaderChanges: obs.LeaderChanges, CaughtUpSince: p.mem.tracker.Observe(obs, p.policy), SeenConfigIndex: p.mem.seen}
	if t := rc.Status.LastReconfigAt; t != nil {
		in.LastChangeEnded = t.Time
	}
	if p.orig.ConfigCommitted {
		// The committed configuration index never goes back: what an
		// earlier pass (or process) saw committed bounds what a stale
		// leader can say.
		in.SeenConfigIndex = max(in.SeenConfigIndex, uint64(p.orig.ConfigIndex))
	}
	dec := reconfig.Decide(in)
	if dec.Invariant != reconfig.ConfigIndexIncreases {
		p.mem.seen = max(in.SeenConfigIndex, obs.CommittedConfigIndex())
	}
	switch dec.Kind {
	case reconfig.Done:
		rc.Status.CurrentStep, rc.Status.StepReason, rc.Status.Waived = "", dec.Why, nil
		if *p.sts.Spec.Replicas > need {
			if err := p.resize(ctx, need); err != nil {
				return p.failed("ResizeStatefulSet", err)
			}
		}
		// A new image or timing rolls the members one at a time (the
		// StatefulSet's rolling update waits for each to be ready again,
		// the PDB keeps a quorum), and only between membership changes.
		if err := p.rollTemplate(ctx, founders); err != nil {
			return p.failed("UpdateStatefulSet", err)
		}
		p.settle(obs)
		return ctrl.Result{RequeueAfter: idleResync}, nil
	case reconfig.Wait:
		p.progressing(dec, reasonOfWait(dec))
		return ctrl.Result{RequeueAfter: p.until(dec.Until)}, nil
	case reconfig.Blocked:
		reason := ReasonOf(dec.Invariant)
		if reason == "" {
			reason = "Blocked"
		}
		if rc.Status.StepReason != dec.Why {
			p.event(corev1.EventTypeWarning, reason, "Blocked", "%s", dec.Why)
		}
		rc.Status.CurrentStep, rc.Status.StepReason = "", dec.Why
		p.degraded(reason, dec.Why)
		setCondition(&rc.Status, v1.ConditionProgressing, false, reason, dec.Why, rc.Generation, p.now)
		return ctrl.Result{RequeueAfter: p.backoff()}, nil
	}

	// Act: at most one membership step.
	step := dec.Step
	if step.Op == reconfig.OpAddLearner && !running[step.Target] {
		wait := dec
		wait.Why = fmt.Sprintf("%s: waiting for pod %s to run", step, step.Target)
		p.progressing(wait, "WaitingForPod")
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if p.now.Before(p.mem.retryAt) {
		return ctrl.Result{RequeueAfter: p.mem.retryAt.Sub(p.now)}, nil // backing off after a failed step
	}
	rc.Status.CurrentStep, rc.Status.StepReason = step.String(), dec.Why
	rc.Status.Waived = invariantNames(dec.Waived)
	p.progressing(dec, string(step.Op))
	// The status shows the observation and the step in progress before the
	// step is carried out (a watcher sees every joint state the operator
	// saw, and a crash during the step leaves a status that names it).
	p.changed = true
	if err := p.writeStatus(ctx); err != nil {
		return ctrl.Result{}, err
	}
	p.orig = rc.Status.DeepCopy()
	if age := p.r.clock().Now().Sub(obs.At); p.policy.MaxObservationAge > 0 && age > p.policy.MaxObservationAge {
		// Writing the status took long: the judgement (caught up, leader)
		// is too old to act on. Observe again.
		return ctrl.Result{RequeueAfter: 10 * time.Millisecond}, nil
	}
	err = reconfig.Do(ctx, admin, step)
	now := p.r.clock().Now()
	switch {
	case err == nil:
		rc.Status.Failures = 0
		p.mem.retryAt = time.Time{}
		// What the step made of the configuration, until the next pass
		// observes it: the joint entry (or the leave entry) is appended.
		switch step.Op {
		case reconfig.OpEnterJoint:
			rc.Status.JointState = "entering"
		case reconfig.OpLeaveJoint:
			rc.Status.JointState = "leaving"
		}
		if step.EndsChange {
			rc.Status.LastReconfigAt = &metav1.Time{Time: now}
		}
		typ, note := corev1.EventTypeNormal, fmt.Sprintf("%s: %s", step, dec.Why)
		if len(dec.Waived) > 0 {
			typ = corev1.EventTypeWarning
			note += fmt.Sprintf(" (%s mode waived: %s)", rc.Spec.SafetyMode, strings.Join(invariantNames(dec.Waived), ", "))
		}
		p.event(typ, string(step.Op), "Reconfigure", "%s", note)
		logger.Info("membership step done", "step", step.String(), "why", dec.Why, "waived", invariantNames(dec.Waived))
		p.progressing(dec, string(step.Op))
		if p.r.AfterStep != nil {
			p.r.AfterStep(step)
		}
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	case errors.Is(err, reconfig.ErrPending):
		p.progressing(reconfig.Decision{Kind: reconfig.Wait, Why: step.String() + ": not yet"}, string(step.Op))
		return ctrl.Result{RequeueAfter: p.policy.Retry}, nil
	case errors.Is(err, reconfig.ErrConfigMoved):
		// Never repeat blindly: observe first; the step's expected
		// configuration index guards a repeat.
		p.event(corev1.EventTypeWarning, "StepFailed", "Reconfigure", "%s: %v (observing again before anything else)", step, err)
		return ctrl.Result{RequeueAfter: p.policy.Retry}, nil
	default:
		// A refusal, an unknown outcome (a timeout: the target may be
		// dead) or a lost leader: back off, and observe first next time.
		rc.Status.Failures++
		p.mem.retryAt = now.Add(p.backoff())
		p.event(corev1.EventTypeWarning, "StepFailed", "Reconfigure", "%s: %v (retry #%d after a backoff)", step, err, rc.Status.Failures)
		p.degraded("StepFailed", fmt.Sprintf("%s: %v", step, err))
		setCondition(&rc.Status, v1.ConditionProgressing, true, "StepFailed", fmt.Sprintf("%s: %v", step, err), rc.Generation, now)
		return ctrl.Result{RequeueAfter: p.backoff()}, nil
	}
}

func invariantNames(invs []reconfig.Invariant) []string {
	var out []string
	for _, i := range invs {
		out = append(out, string(i))
	}
	return out
}

// reasonOfWait is the Progressing reason of a wait: the invariant that
// holds the change back, or the awaited step.
func reasonOfWait(d reconfig.Decision) string {
	if d.Invariant != "" {
		return ReasonOf(d.Invariant)
	}
	return "Waiting"
}

func (r *Reconciler) domain() string {
	if r.ClusterDomain == "" {
		return "cluster.local"
	}
	return r.ClusterDomain
}

// until turns a decision's deadline into a requeue delay, bounded so that
// the cluster is observed again at least every idleResync.
func (p *pass) until(t time.Time) time.Duration {
	d := t.Sub(p.now)
	return min(max(d, 50*time.Millisecond), idleResync)
}

// backoff is the delay before a failed step is tried again: exponential in
// the consecutive failures, from Policy.Retry up to Policy.MaxRetry.
func (p *pass) backoff() time.Duration {
	n := max(p.rc.Status.Failures, 1)
	d := p.policy.Retry << min(n-1, 16)
	if p.policy.MaxRetry > 0 && d > p.policy.MaxRetry {
		d = p.policy.MaxRetry
	}
	return d
}

// record copies an observation into the status.
func (p *pass) record(obs reconfig.Observation, podReady map[string]bool) {
	st := &p.rc.Status
	st.Leader, st.Term = obs.Leader, int64(obs.Term)
	st.JointState = jointStateName(obs.Joint)
	st.ConfigIndex, st.ConfigCommitted = int64(obs.ConfigIndex), obs.Committed
	st.Replicas = int32(len(obs.Config.Voters))
	st.Members = memberStatuses(p.rc, obs, p.policy, podReady)
	st.ReadyMembers = 0
	for _, m := range st.Members {
		if m.Role == v1.RoleVoter && m.Reachable && m.CaughtUp {
			st.ReadyMembers++
		}
	}
	setCondition(st, v1.ConditionAvailable, true, "LeaderElected", fmt.Sprintf("%s leads term %d", obs.Leader, obs.Term), p.rc.Generation, p.now)
}

// settle sets the phase once the membership is as desired.
func (p *pass) settle(obs reconfig.Observation) {
	st := &p.rc.Status
	setCondition(st, v1.ConditionProgressing, false, "MembershipReached", "voters as desired: "+strings.Join(obs.Config.Voters, " "), p.rc.Generation, p.now)
	var lagging []string
	for _, m := range st.Members {
		if m.Role == v1.RoleVoter && !(m.Reachable && m.CaughtUp) {
			lagging = append(lagging, m.ID)
		}
	}
	if len(lagging) > 0 {
		p.degraded("MemberNotCaughtUp", fmt.Sprintf("voters not reachable or not caught up: %s", strings.Join(lagging, " ")))
		return
	}
	st.Phase = v1.Ready
	setCondition(st, v1.ConditionDegraded, false, "AsExpected", "every voter is reachable and caught up", p.rc.Generation, p.now)
}

// progressing records a change in progress.
func (p *pass) progressing(d reconfig.Decision, reason string) {
	st := &p.rc.Status
	st.Phase = v1.Reconfiguring
	if d.Kind == reconfig.Wait {
		st.StepReason = d.Why
	}
	setCondition(st, v1.ConditionProgressing, true, reason, d.Why, p.rc.Generation, p.now)
	if st.Failures == 0 {
		setCondition(st, v1.ConditionDegraded, false, "AsExpected", "a membership change is in progress", p.rc.Generation, p.now)
	}
}

func (p *pass) degraded(reason, msg string) {
	p.rc.Status.Phase = v1.Degraded
	setCondition(&p.rc.Status, v1.ConditionDegraded, true, reason, msg, p.rc.Generation, p.now)
}

// noLeader records a pass that found no leader: Pending before the
// cluster ever had one, Degraded after.
func (p *pass) noLeader(why string, podReady map[string]bool) (ctrl.Result, error) {
	st := &p.rc.Status
	st.Leader = ""
	setCondition(st, v1.ConditionAvailable, false, "NoLeader", why, p.rc.Generation, p.now)
	if st.ConfigIndex == 0 && p.orig.Leader == "" {
		st.Phase = v1.Pending
		setCondition(st, v1.ConditionProgressing, true, "Bootstrapping", why, p.rc.Generation, p.now)
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	for i := range st.Members {
		st.Members[i].PodReady = podReady[st.Members[i].ID]
		st.Members[i].Reachable = false
	}
	st.ReadyMembers = 0
	p.degraded("NoLeader", why)
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// failed records a failed Kubernetes call and backs off.
func (p *pass) failed(reason string, err error) (ctrl.Result, error) {
	p.degraded(reason, err.Error())
	return ctrl.Result{}, err // controller-runtime backs off exponentially
}

func (p *pass) event(typ, reason, action, note string, args ...any) {
	if p.r.Recorder != nil {
		p.r.Recorder.Eventf(p.rc, nil, typ, reason, action, note, args...)
	}
}

// validate checks what the CRD's schema cannot: the retired members must
// be this cluster's member ids.
func validate(rc *v1.RaftCluster) string {
	for _, id := range rc.Spec.RetiredMembers {
		if Ordinal(rc, id) < 0 {
			return fmt.Sprintf("spec.retiredMembers: %q is not a member id of %s (want %s-<ordinal>)", id, rc.Name, rc.Name)
		}
	}
	return ""
}

// podsNeeded is the StatefulSet size: every desired voter and every member
// of the configuration in force (outgoing voters and learners included)
// has its pod. The StatefulSet shrinks only once a member is out of the
// configuration, and a pod lost for a while never changes the membership.
func podsNeeded(rc *v1.RaftCluster, desired []string, obs reconfig.Observation) int32 {
	need := 0
	for _, id := range slices.Concat(desired, obs.Config.Voters, obs.Config.OutgoingVoters, obs.Config.Learners) {
		if o := Ordinal(rc, id); o+1 > need {
			need = o + 1
		}
	}
	return int32(need)
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ensureSecret creates the tokens Secret once (random tokens) and returns
// the admin token. An existing Secret is never rewritten: the members run
// with its tokens.
func (p *pass) ensureSecret(ctx context.Context) (string, error) {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: p.rc.Namespace, Name: SecretName(p.rc)}
	err := p.r.Client.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: Labels(p.rc)},
			Data: map[string][]byte{AdminTokenKey: []byte(randomToken()), PeerTokenKey: []byte(randomToken())}}
		if err := controllerutil.SetControllerReference(p.rc, &s, p.r.Scheme); err != nil {
			return "", err
		}
		if err := p.r.Client.Create(ctx, &s); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	tok := string(s.Data[AdminTokenKey])
	if tok == "" {
		return "", fmt.Errorf("secret %s has no %q: restore it (the members run with it) or delete the RaftCluster", key, AdminTokenKey)
	}
	return tok, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// ensure creates obj if it does not exist (owned by the RaftCluster), and
// otherwise leaves it: the operator's objects have nothing to update once
// made, but for the StatefulSet's size and the PDB's quorum.
func (p *pass) ensure(ctx context.Context, obj client.Object) error {
	if err := controllerutil.SetControllerReference(p.rc, obj, p.r.Scheme); err != nil {
		return err
	}
	err := p.r.Client.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ensureStatefulSet gets the StatefulSet, creating it on the first pass with
// the desired voters as founders.
func (p *pass) ensureStatefulSet(ctx context.Context) error {
	var sts appsv1.StatefulSet
	key := types.NamespacedName{Namespace: p.rc.Namespace, Name: p.rc.Name}
	err := p.r.Client.Get(ctx, key, &sts)
	if apierrors.IsNotFound(err) {
		founders := DesiredVoters(p.rc)
		want := desiredStatefulSet(p.rc, founders, podsNeeded(p.rc, founders, reconfig.Observation{}), p.r.domain())
		if err := controllerutil.SetControllerReference(p.rc, want, p.r.Scheme); err != nil {
			return err
		}
		if err := p.r.Client.Create(ctx, want); err != nil {
			return err
		}
		p.event(corev1.EventTypeNormal, "Created", "Create", "StatefulSet %s with founders %s", want.Name, strings.Join(founders, " "))
		p.sts = want
		return nil
	}
	if err != nil {
		return err
	}
	if sts.Annotations[FoundersAnnotation] == "" {
		return fmt.Errorf("statefulset %s has no %s annotation: it was not made by this operator, or the annotation was removed; restore it", key, FoundersAnnotation)
	}
	p.sts = &sts
	return nil
}

// resize sets the StatefulSet's replicas.
func (p *pass) resize(ctx context.Context, n int32) error {
	from := *p.sts.Spec.Replicas
	patch := client.MergeFrom(p.sts.DeepCopy())
	p.sts.Spec.Replicas = &n
	if err := p.r.Client.Patch(ctx, p.sts, patch); err != nil {
		return err
	}
	p.changed = true
	p.event(corev1.EventTypeNormal, "ResizeStatefulSet", "Resize", "StatefulSet %s: %d -> %d pods", p.sts.Name, from, n)
	return nil
}

// ensurePDB keeps the PodDisruptionBudget at a quorum of the voters.
func (p *pass) ensurePDB(ctx context.Context, voters int) error {
	want := desiredPDB(p.rc, max(voters, 1))
	var pdb policyv1.PodDisruptionBudget
	err := p.r.Client.Get(ctx, client.ObjectKeyFromObject(want), &pdb)
	if apierrors.IsNotFound(err) {
		return p.ensure(ctx, want)
	}
	if err != nil {
		return err
	}
	if pdb.Spec.MinAvailable != nil && *pdb.Spec.MinAvailable == *want.Spec.MinAvailable {
		return nil
	}
	patch := client.MergeFrom(pdb.DeepCopy())
	pdb.Spec.MinAvailable = want.Spec.MinAvailable
	return p.r.Client.Patch(ctx, &pdb, patch)
}

// rollTemplate updates the StatefulSet's pod template when the spec asks
// for another one (image, pull policy, timings, snapshot settings). The
// founders stay those of the annotation: they are fixed at creation.
func (p *pass) rollTemplate(ctx context.Context, founders []string) error {
	want := desiredStatefulSet(p.rc, founders, *p.sts.Spec.Replicas, p.r.domain())
	if equality.Semantic.DeepDerivative(want.Spec.Template, p.sts.Spec.Template) {
		return nil
	}
	patch := client.MergeFrom(p.sts.DeepCopy())
	p.sts.Spec.Template = want.Spec.Template
	if err := p.r.Client.Patch(ctx, p.sts, patch); err != nil {
		return err
	}
	p.changed = true
	p.event(corev1.EventTypeNormal, "RollingUpdate", "Update", "StatefulSet %s: new pod template (image %s); members restart one at a time", p.sts.Name, p.rc.Spec.Image)
	return nil
}
