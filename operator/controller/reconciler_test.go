package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/raftlab/raftlab/operator/api/v1"
	"github.com/raftlab/raftlab/reconfig"
)

// The first passes create the owned objects: a StatefulSet with the
// founders in every pod's RAFT_KV_PEERS, the headless peer Service that
// publishes unready members, the client Service, the tokens Secret and a
// PDB at a quorum; then the cluster is Ready with a leader.
func TestCreatesTheClusterAndReachesReady(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	rc := h.runUntil(50, ready(3), nil)
	if rc.Status.Leader != "demo-0" || rc.Status.ReadyMembers != 3 || !slices.Equal(rc.Status.FoundingMembers, []string{"demo-0", "demo-1", "demo-2"}) {
		t.Fatalf("status %+v", rc.Status)
	}
	for _, typ := range []string{v1.ConditionAvailable, v1.ConditionProgressing, v1.ConditionDegraded} {
		if condition(&rc.Status, typ) == nil {
			t.Errorf("no %s condition", typ)
		}
	}
	if c := condition(&rc.Status, v1.ConditionAvailable); c.Status != "True" || c.ObservedGeneration != rc.Generation {
		t.Errorf("Available = %+v", c)
	}
	var sts appsv1.StatefulSet
	if err := h.c.Get(h.ctx, h.key, &sts); err != nil {
		t.Fatal(err)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement || *sts.Spec.Replicas != 3 || sts.Spec.ServiceName != "demo-peers" {
		t.Errorf("statefulset spec %+v", sts.Spec)
	}
	env := map[string]string{}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	if want := "demo-0=demo-0.demo-peers.default.svc.cluster.local:7000,demo-1=demo-1.demo-peers.default.svc.cluster.local:7000,demo-2=demo-2.demo-peers.default.svc.cluster.local:7000"; env["RAFT_KV_PEERS"] != want {
		t.Errorf("RAFT_KV_PEERS = %q, want %q", env["RAFT_KV_PEERS"], want)
	}
	if ps := sts.Spec.Template.Spec.Containers[0].Lifecycle.PreStop; ps == nil || ps.Exec == nil || strings.Join(ps.Exec.Command, " ") != "/raft-kv hand-off" {
		t.Errorf("preStop %+v, want /raft-kv hand-off", ps)
	}
	if env["RAFT_KV_JOIN_UNLESS_PEER"] != "true" || env["RAFT_KV_ADMIN_TOKEN"] != "secret:admin-token" || env["RAFT_KV_MODE"] != "safe" {
		t.Errorf("env %v", env)
	}
	var peers corev1.Service
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: "demo-peers"}, &peers); err != nil {
		t.Fatal(err)
	}
	if peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("peer service %+v", peers.Spec)
	}
	var sec corev1.Secret
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: "demo-tokens"}, &sec); err != nil || len(sec.Data[AdminTokenKey]) != 64 {
		t.Fatalf("secret: %v %v", err, sec.Data)
	}
	var pdb policyv1.PodDisruptionBudget
	if err := h.c.Get(h.ctx, h.key, &pdb); err != nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Fatalf("pdb: %v %+v", err, pdb.Spec)
	}
	if steps := h.stepEvents(); len(steps) != 0 {
		t.Errorf("membership steps at creation: %v", steps)
	}
}

// Scale-out 3 -> 5 in safe mode: the StatefulSet grows first, then
// AddLearner for each, EnterJoint once both are caught up, the joint
// entry's commit, LeaveJoint; one event per step, and the PDB follows the
// quorum.
func TestScaleOutGoesThroughLearnersAndJointConsensus(t *testing.T) {
	// Every status write, as a watcher would see it.
	var joints []string
	funcs := &interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if rc, ok := obj.(*v1.RaftCluster); ok && sub == "status" {
			if js := rc.Status.JointState; js != "" && (len(joints) == 0 || joints[len(joints)-1] != js) {
				joints = append(joints, js)
			}
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}
	h := newHarness(t, testCluster(3, v1.Safe), funcs)
	h.runUntil(50, ready(3), nil)
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 5 })
	rc := h.runUntil(400, ready(5), h.podsCover)
	if got, want := h.stepEvents(), []string{"AddLearner", "AddLearner", "EnterJoint", "LeaveJoint"}; !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v; events:\n%s", got, want, strings.Join(h.events, "\n"))
	}
	if voters, outgoing, learners := h.config(); len(voters) != 5 || len(outgoing) != 0 || len(learners) != 0 {
		t.Fatalf("config voters %v outgoing %v learners %v", voters, outgoing, learners)
	}
	if h.stsReplicas() != 5 || rc.Status.LastReconfigAt == nil {
		t.Fatalf("sts %d, lastReconfigAt %v", h.stsReplicas(), rc.Status.LastReconfigAt)
	}
	if want := []string{"none", "entering", "committed", "leaving", "none"}; !slices.Equal(joints, want) {
		t.Errorf("joint states seen %v, want %v", joints, want)
	}
	var pdb policyv1.PodDisruptionBudget
	if err := h.c.Get(h.ctx, h.key, &pdb); err != nil || pdb.Spec.MinAvailable.IntValue() != 3 {
		t.Fatalf("pdb after 5 voters: %v %+v", err, pdb.Spec)
	}
	for _, e := range h.events {
		if strings.Contains(e, "EnterJoint") && !strings.Contains(e, "voters=(demo-0 demo-1 demo-2 demo-3 demo-4)") {
			t.Errorf("EnterJoint event without its voters: %s", e)
		}
	}
}

// Scale-in 5 -> 3 with the leader among the removed: EnterJoint without
// them, TransferLeader to a remaining voter before LeaveJoint, and the
// StatefulSet shrinks only once the members are out of the configuration.
func TestScaleInTransfersLeadershipFirstAndShrinksLast(t *testing.T) {
	h := newHarness(t, testCluster(5, v1.Safe), nil)
	h.runUntil(50, ready(5), nil)
	admin := &reconfig.ClusterAdmin{C: h.cluster, Now: h.clock.Now}
	if err := admin.TransferLeader(h.ctx, "demo-4"); err != nil {
		t.Fatal(err)
	}
	h.runUntil(50, func(rc *v1.RaftCluster) bool { return rc.Status.Leader == "demo-4" }, nil)
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 3 })
	rc := h.runUntil(400, ready(3), h.podsCover)
	if got, want := h.stepEvents(), []string{"EnterJoint", "TransferLeader", "LeaveJoint"}; !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v; events:\n%s", got, want, strings.Join(h.events, "\n"))
	}
	if slices.Contains([]string{"demo-3", "demo-4"}, rc.Status.Leader) {
		t.Fatalf("leader %s is a removed member", rc.Status.Leader)
	}
	h.runUntil(20, func(*v1.RaftCluster) bool { return h.stsReplicas() == 3 }, nil)
	var pvcs int
	for _, e := range h.events {
		if strings.Contains(e, "ResizeStatefulSet") && strings.Contains(e, "5 -> 3") {
			pvcs++
		}
	}
	if pvcs != 1 {
		t.Fatalf("want one resize 5 -> 3 event; events:\n%s", strings.Join(h.events, "\n"))
	}
}

// A restarted operator resumes from the cluster's committed configuration:
// a crash after every step (a fresh Reconciler, nothing in memory) still
// ends at 5 voters, through the same steps, none applied twice.
func TestResumesAfterACrashAfterEveryStep(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	h.runUntil(50, ready(3), nil)
	crashes := 0
	h.r.AfterStep = func(reconfig.Step) { crashes++ }
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 5 })
	seen := 0
	h.runUntil(600, ready(5), func() {
		h.podsCover()
		if crashes > seen {
			seen = crashes
			h.r = h.newReconciler()
			h.r.AfterStep = func(reconfig.Step) { crashes++ }
		}
	})
	if got, want := h.stepEvents(), []string{"AddLearner", "AddLearner", "EnterJoint", "LeaveJoint"}; !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	if crashes != len(h.stepEvents()) {
		t.Fatalf("%d crashes, want one after each of the %d steps", crashes, len(h.stepEvents()))
	}
}

// Retiring a member replaces it: demo-2 out, demo-3 in, in one joint change;
// demo-2's pod stays (a StatefulSet has no holes) outside the
// configuration.
func TestRetiredMemberIsReplacedInOneJointChange(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	h.runUntil(50, ready(3), nil)
	h.update(func(rc *v1.RaftCluster) { rc.Spec.RetiredMembers = []string{"demo-2"} })
	rc := h.runUntil(400, ready(3), h.podsCover)
	voters, _, _ := h.config()
	if !slices.Equal(voters, []string{"demo-0", "demo-1", "demo-3"}) {
		t.Fatalf("voters %v", voters)
	}
	if got, want := h.stepEvents(), []string{"AddLearner", "EnterJoint", "LeaveJoint"}; !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	if h.stsReplicas() != 4 {
		t.Fatalf("sts %d pods, want 4 (demo-2 idle)", h.stsReplicas())
	}
	for _, m := range rc.Status.Members {
		if m.ID == "demo-2" && m.Role != v1.RoleNone {
			t.Fatalf("demo-2: %+v", m)
		}
	}
}

// unsafe-early-vote: the new member votes at once (no AddLearner), and the
// step's event is a Warning that names the waived invariants.
func TestUnsafeEarlyVoteWaivesVisibly(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.UnsafeEarlyVote), nil)
	h.runUntil(50, ready(3), nil)
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 4 })
	h.runUntil(400, ready(4), nil)
	steps := h.stepEvents()
	if len(steps) == 0 || steps[0] != "EnterJoint" || slices.Contains(steps, "AddLearner") {
		t.Fatalf("steps %v, want EnterJoint first and no AddLearner", steps)
	}
	found := false
	for _, e := range h.events {
		if strings.HasPrefix(e, "Warning EnterJoint") && strings.Contains(e, "waived: learners-never-vote, promote-only-caught-up-and-durable") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no Warning EnterJoint event naming the waived invariants; events:\n%s", strings.Join(h.events, "\n"))
	}
}

// A pod lost for a while never changes the membership or the StatefulSet.
func TestTransientPodLossShrinksNothing(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	h.runUntil(50, ready(3), nil)
	h.downPods["demo-2"] = true
	for range 50 {
		if _, err := h.pass(); err != nil {
			t.Fatal(err)
		}
	}
	if h.stsReplicas() != 3 || len(h.stepEvents()) != 0 {
		t.Fatalf("after a pod loss: sts %d, steps %v", h.stsReplicas(), h.stepEvents())
	}
	voters, _, _ := h.config()
	if len(voters) != 3 {
		t.Fatalf("voters %v", voters)
	}
}

// spec.paused: observe and report, change nothing.
func TestPausedChangesNothing(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	h.runUntil(50, ready(3), nil)
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 5; rc.Spec.Paused = true })
	for range 50 {
		if _, err := h.pass(); err != nil {
			t.Fatal(err)
		}
	}
	rc := h.get()
	if h.stsReplicas() != 3 || len(h.stepEvents()) != 0 {
		t.Fatalf("paused: sts %d, steps %v", h.stsReplicas(), h.stepEvents())
	}
	if c := condition(&rc.Status, v1.ConditionProgressing); c == nil || c.Reason != "Paused" || rc.Status.Leader == "" {
		t.Fatalf("paused status %+v", rc.Status)
	}
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Paused = false })
	h.runUntil(400, ready(5), nil)
}

// A failing step backs off exponentially and sets Degraded with the reason;
// when it works again the change completes.
func TestFailingStepBacksOffAndDegrades(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	h.runUntil(50, ready(3), nil)
	h.adminErr = errors.New("connection refused")
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 4 })
	var delays []int64
	for range 40 {
		res, err := h.pass()
		if err != nil {
			t.Fatal(err)
		}
		if rc := h.get(); rc.Status.Failures > 0 && len(delays) < int(rc.Status.Failures) {
			delays = append(delays, res.RequeueAfter.Milliseconds())
		}
	}
	rc := h.get()
	if c := condition(&rc.Status, v1.ConditionDegraded); rc.Status.Phase != v1.Degraded || c.Status != "True" || c.Reason != "StepFailed" || !strings.Contains(c.Message, "connection refused") {
		t.Fatalf("status %+v", rc.Status)
	}
	if len(delays) < 3 || delays[1] != 2*delays[0] || delays[2] != 2*delays[1] {
		t.Fatalf("backoff delays %v ms, want doubling", delays)
	}
	h.adminErr = nil
	h.runUntil(400, ready(4), nil)
}

// A Kubernetes call that fails (the StatefulSet resize) is an error of the
// pass (controller-runtime backs off) and a Degraded reason; no membership
// step is taken for a member without a pod.
func TestFailedResizeDegradesAndTakesNoStep(t *testing.T) {
	fail := false
	funcs := &interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
		if _, ok := obj.(*appsv1.StatefulSet); ok && fail {
			return errors.New("apiserver unavailable")
		}
		return c.Patch(ctx, obj, patch, opts...)
	}}
	h := newHarness(t, testCluster(3, v1.Safe), funcs)
	h.runUntil(50, ready(3), nil)
	fail = true
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Replicas = 4 })
	_, err := h.pass()
	if err == nil || !strings.Contains(err.Error(), "apiserver unavailable") {
		t.Fatalf("pass: %v, want the patch error", err)
	}
	rc := h.get()
	if c := condition(&rc.Status, v1.ConditionDegraded); c == nil || c.Reason != "ResizeStatefulSet" {
		t.Fatalf("status %+v", rc.Status)
	}
	if len(h.stepEvents()) != 0 {
		t.Fatalf("steps %v with no pod for demo-3", h.stepEvents())
	}
	fail = false
	h.runUntil(400, ready(4), nil)
}

func TestReasonOfAndPolicyOf(t *testing.T) {
	if got := ReasonOf(reconfig.PromoteOnlyCaughtUp); got != "PromoteOnlyCaughtUpAndDurable" {
		t.Errorf("ReasonOf = %q", got)
	}
	if got := ReasonOf(reconfig.TransferBeforeRemoval); got != "TransferBeforeRemoval" {
		t.Errorf("ReasonOf = %q", got)
	}
	for in, want := range map[string]string{"1/min": "1m0s", "6/min": "10s", "1/s": "1s", "10/h": "6m0s", "4/s": "250ms"} {
		p := PolicyOf(v1.RaftClusterSpec{Reconfig: v1.ReconfigSpec{RateLimit: in}})
		if p.RateLimit.String() != want {
			t.Errorf("rateLimit %s: %v, want %s", in, p.RateLimit, want)
		}
	}
}

// A new image rolls the StatefulSet's template once the membership is as
// desired (and not during a change); the founders stay.
func TestNewImageRollsTheTemplate(t *testing.T) {
	h := newHarness(t, testCluster(3, v1.Safe), nil)
	h.runUntil(50, ready(3), nil)
	h.update(func(rc *v1.RaftCluster) { rc.Spec.Image = "localhost/raft-kv:v2" })
	h.runUntil(20, func(*v1.RaftCluster) bool {
		var sts appsv1.StatefulSet
		_ = h.c.Get(h.ctx, h.key, &sts)
		return sts.Spec.Template.Spec.Containers[0].Image == "localhost/raft-kv:v2"
	}, nil)
	var sts appsv1.StatefulSet
	if err := h.c.Get(h.ctx, h.key, &sts); err != nil {
		t.Fatal(err)
	}
	if sts.Annotations[FoundersAnnotation] != "demo-0,demo-1,demo-2" {
		t.Fatalf("founders %q", sts.Annotations[FoundersAnnotation])
	}
	rolls := 0
	for _, e := range h.events {
		if strings.Contains(e, "RollingUpdate") {
			rolls++
		}
	}
	for range 20 {
		if _, err := h.pass(); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range h.events {
		if strings.Contains(e, "RollingUpdate") {
			rolls--
		}
	}
	if rolls != 0 {
		t.Fatalf("the template was rolled again with nothing new; events:\n%s", strings.Join(h.events, "\n"))
	}
}
