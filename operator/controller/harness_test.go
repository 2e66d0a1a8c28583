package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/raftlab/raftlab/operator/api/v1"
	"github.com/raftlab/raftlab/raftcore/memcluster"
	"github.com/raftlab/raftlab/reconfig"
)

// A tick of the in-memory cluster is this much time on the virtual clock.
const tickDuration = 100 * time.Millisecond

type virtualClock struct{ t time.Time }

func (c *virtualClock) Now() time.Time { return c.t }

// harness runs the reconciler against controller-runtime's fake client and
// an in-memory raftcore cluster (memcluster) behind reconfig.ClusterAdmin:
// real Raft membership changes, a fake API server. It plays the kubelet
// too: the StatefulSet's pods exist, run and are ready, and a new pod's
// member is started (empty, not a member) in the Raft cluster.
type harness struct {
	t       *testing.T
	ctx     context.Context
	c       client.Client
	cluster *memcluster.Cluster
	clock   *virtualClock
	rec     *events.FakeRecorder
	r       *Reconciler
	key     types.NamespacedName
	// events are the recorded events, "Type Reason Note".
	events []string
	// downPods are pods the "kubelet" does not run (a transient loss).
	downPods map[string]bool
	// adminErr, when set, fails every membership step.
	adminErr error
}

func testScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func testCluster(replicas int32, mode v1.SafetyMode) *v1.RaftCluster {
	return &v1.RaftCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default", Generation: 1},
		Spec: v1.RaftClusterSpec{Replicas: replicas, Image: "localhost/raft-kv:dev", SafetyMode: mode,
			ElectionTimeoutMs: 1000, HeartbeatMs: 100,
			Reconfig: v1.ReconfigSpec{RateLimit: "60/min", MaxParallel: 1, CatchUpMaxLag: 10,
				Stabilization: &metav1.Duration{Duration: time.Second}, LeaderFlapThreshold: 3, LeaderFlapWindow: &metav1.Duration{Duration: time.Minute}}},
	}
}

// flakyAdmin is the in-memory cluster's Admin, failing steps on demand.
type flakyAdmin struct {
	reconfig.Admin
	h *harness
}

func (a flakyAdmin) AddLearner(ctx context.Context, id string, idx uint64) error {
	if a.h.adminErr != nil {
		return a.h.adminErr
	}
	return a.Admin.AddLearner(ctx, id, idx)
}

func (a flakyAdmin) EnterJoint(ctx context.Context, voters []string, idx uint64) error {
	if a.h.adminErr != nil {
		return a.h.adminErr
	}
	return a.Admin.EnterJoint(ctx, voters, idx)
}

func newHarness(t *testing.T, rc *v1.RaftCluster, funcs *interceptor.Funcs) *harness {
	t.Helper()
	founders := DesiredVoters(rc)
	cl, err := memcluster.New(memcluster.Options{ElectionTick: 10, HeartbeatTick: 1, PreVote: true, CheckQuorum: true, Seed: 1}, founders...)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ElectLeader(founders[0]); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(testScheme(t)).WithStatusSubresource(&v1.RaftCluster{}).WithObjects(rc)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	h := &harness{t: t, ctx: context.Background(), c: b.Build(), cluster: cl,
		clock: &virtualClock{t: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)},
		rec:   events.NewFakeRecorder(1000), key: types.NamespacedName{Namespace: rc.Namespace, Name: rc.Name}, downPods: map[string]bool{}}
	h.r = h.newReconciler()
	return h
}

// newReconciler is a fresh operator process: nothing in memory.
func (h *harness) newReconciler() *Reconciler {
	return &Reconciler{Client: h.c, Scheme: h.c.Scheme(), Recorder: h.rec, Clock: h.clock,
		NewAdmin: func(*v1.RaftCluster, map[string]string, map[string]string, string) reconfig.Admin {
			return flakyAdmin{Admin: &reconfig.ClusterAdmin{C: h.cluster, Now: h.clock.Now}, h: h}
		}}
}

// pass runs one reconcile, then lets the Raft cluster and the clock move a
// tick, and plays the kubelet.
func (h *harness) pass() (ctrl.Result, error) {
	h.t.Helper()
	res, err := h.r.Reconcile(h.ctx, ctrl.Request{NamespacedName: h.key})
	h.drainEvents()
	if rerr := h.cluster.RunTicks(1); rerr != nil {
		h.t.Fatal(rerr)
	}
	h.clock.t = h.clock.t.Add(tickDuration)
	h.kubelet()
	return res, err
}

func (h *harness) drainEvents() {
	for {
		select {
		case e := <-h.rec.Events:
			h.events = append(h.events, e)
		default:
			return
		}
	}
}

// kubelet makes the StatefulSet's pods exist and run (but downPods), and
// deletes the pods beyond its size.
func (h *harness) kubelet() {
	h.t.Helper()
	var sts appsv1.StatefulSet
	if err := h.c.Get(h.ctx, h.key, &sts); err != nil {
		if apierrors.IsNotFound(err) {
			return
		}
		h.t.Fatal(err)
	}
	n := int(*sts.Spec.Replicas)
	for i := 0; i < n+8; i++ {
		name := fmt.Sprintf("%s-%d", h.key.Name, i)
		var pod corev1.Pod
		err := h.c.Get(h.ctx, types.NamespacedName{Namespace: h.key.Namespace, Name: name}, &pod)
		exists := err == nil
		want := i < n && !h.downPods[name]
		switch {
		case want && !exists:
			pod = corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.key.Namespace, Labels: sts.Spec.Template.Labels},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.0.%d", 10+i),
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
			if err := h.c.Create(h.ctx, &pod); err != nil {
				h.t.Fatal(err)
			}
			if h.cluster.Node(name) == nil {
				if err := h.cluster.AddNode(name, nil); err != nil { // empty: not a member until added
					h.t.Fatal(err)
				}
			}
		case !want && exists:
			if err := h.c.Delete(h.ctx, &pod); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func (h *harness) get() *v1.RaftCluster {
	h.t.Helper()
	var rc v1.RaftCluster
	if err := h.c.Get(h.ctx, h.key, &rc); err != nil {
		h.t.Fatal(err)
	}
	return &rc
}

func (h *harness) update(f func(*v1.RaftCluster)) {
	h.t.Helper()
	rc := h.get()
	f(rc)
	rc.Generation++
	if err := h.c.Update(h.ctx, rc); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) stsReplicas() int32 {
	h.t.Helper()
	var sts appsv1.StatefulSet
	if err := h.c.Get(h.ctx, h.key, &sts); err != nil {
		h.t.Fatal(err)
	}
	return *sts.Spec.Replicas
}

// voters is the configuration of the Raft cluster's leader.
func (h *harness) config() (voters, outgoing, learners []string) {
	h.t.Helper()
	rn, err := h.cluster.RN(h.cluster.Leader())
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := rn.BasicStatus().Config
	return cfg.Voters, cfg.OutgoingVoters, cfg.Learners
}

// runUntil runs passes until cond holds, at most limit passes; check runs
// after every pass.
func (h *harness) runUntil(limit int, cond func(*v1.RaftCluster) bool, check func()) *v1.RaftCluster {
	h.t.Helper()
	for i := 0; i < limit; i++ {
		if _, err := h.pass(); err != nil {
			h.t.Fatalf("pass %d: %v", i, err)
		}
		if check != nil {
			check()
		}
		if rc := h.get(); cond(rc) {
			return rc
		}
	}
	rc := h.get()
	h.t.Fatalf("not reached in %d passes: phase %s step %q reason %q, events:\n%s", limit, rc.Status.Phase, rc.Status.CurrentStep, rc.Status.StepReason, strings.Join(h.events, "\n"))
	return nil
}

// ready: the spec's voters are the configuration, no change in progress.
func ready(replicas int) func(*v1.RaftCluster) bool {
	return func(rc *v1.RaftCluster) bool {
		return rc.Status.Phase == v1.Ready && int(rc.Status.Replicas) == replicas && rc.Status.ObservedGeneration == rc.Generation
	}
}

// stepEvents are the recorded membership step events' reasons, in order,
// but CommitNew: the in-memory cluster often commits the joint entry within
// the pass that appended it, so whether the next pass sees it uncommitted
// (and waits on CommitNew) is timing; on a real cluster it usually does.
// At most one CommitNew per joint change is allowed.
func (h *harness) stepEvents() []string {
	var out []string
	commits := 0
	for _, e := range h.events {
		f := strings.Fields(e)
		if len(f) > 1 && f[1] == "CommitNew" {
			commits++
			continue
		}
		if len(f) > 1 && slices.Contains([]string{"AddLearner", "EnterJoint", "LeaveJoint", "TransferLeader", "RemoveMember", "ChangeVoters"}, f[1]) {
			out = append(out, f[1])
		}
	}
	if joints := slices.Index(out, "EnterJoint"); commits > 1 || (commits == 1 && joints < 0) {
		h.t.Fatalf("%d CommitNew events for %v", commits, out)
	}
	return out
}

// podsCover checks the invariant of scaling: every member of the
// configuration has its pod slot in the StatefulSet.
func (h *harness) podsCover() {
	h.t.Helper()
	voters, outgoing, learners := h.config()
	n := h.stsReplicas()
	rc := h.get()
	for _, id := range slices.Concat(voters, outgoing, learners) {
		if Ordinal(rc, id) >= int(n) {
			h.t.Fatalf("member %s (voters %v outgoing %v learners %v) has no pod: StatefulSet shrunk to %d too early", id, voters, outgoing, learners, n)
		}
	}
}

var _ = policyv1.PodDisruptionBudget{}
