package v1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	raftv1 "github.com/raftlab/raftlab/operator/api/v1"
)

// minimal is a RaftCluster with only what has no default.
func minimal(ns, name string) *raftv1.RaftCluster {
	return &raftv1.RaftCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       raftv1.RaftClusterSpec{Replicas: 3, Image: "localhost/raft-kv:dev"},
	}
}

// raw is a RaftCluster as kubectl would send it from YAML: only the given
// spec fields, nothing a Go struct would add (such as "reconfig": {}).
func raw(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": raftv1.GroupVersion.String(),
		"kind":       "RaftCluster",
		"metadata":   map[string]any{"namespace": ns, "name": name},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

// duration is d as Go prints a time.Duration, "unset" for nil.
func duration(d *metav1.Duration) string {
	if d == nil {
		return "unset"
	}
	return d.Duration.String()
}

// refused fails t unless err is the apiserver's Invalid with every one of
// want in its message.
func refused(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, want refused with %q", what, want)
		return
	}
	if !apierrors.IsInvalid(err) {
		t.Errorf("%s: refused with %v (reason %v), want Invalid", what, err, apierrors.ReasonForError(err))
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: refused with %q, which does not say %q", what, err.Error(), w)
		}
	}
}

func TestDefaults(t *testing.T) {
	ctx := needEnv(t)
	t.Parallel()
	ns := newNamespace(ctx, t)

	check := func(t *testing.T, name string, wantReplicas int32) {
		t.Helper()
		var got raftv1.RaftCluster
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &got); err != nil {
			t.Fatalf("get: %v", err)
		}
		s := got.Spec
		for _, c := range []struct {
			field     string
			got, want any
		}{
			{"replicas", s.Replicas, wantReplicas},
			{"safetyMode", s.SafetyMode, raftv1.Safe},
			{"electionTimeoutMs", s.ElectionTimeoutMs, int32(1000)},
			{"heartbeatMs", s.HeartbeatMs, int32(100)},
			{"reconfig.rateLimit", s.Reconfig.RateLimit, "1/min"},
			{"reconfig.maxParallel", s.Reconfig.MaxParallel, int32(1)},
			{"reconfig.catchUpMaxLag", s.Reconfig.CatchUpMaxLag, int64(64)},
			{"reconfig.leaderFlapThreshold", s.Reconfig.LeaderFlapThreshold, int32(3)},
			{"reconfig.stabilization", duration(s.Reconfig.Stabilization), "3s"},
			{"reconfig.leaderFlapWindow", duration(s.Reconfig.LeaderFlapWindow), "1m0s"},
			{"storageSize", s.StorageSize.String(), "1Gi"},
			{"imagePullPolicy", s.ImagePullPolicy, corev1.PullIfNotPresent},
			{"paused", s.Paused, false},
		} {
			if c.got != c.want {
				t.Errorf("%s: spec.%s = %v, want the default %v", name, c.field, c.got, c.want)
			}
		}
	}

	// Through the Go client: it sends every field without omitempty, and
	// "reconfig": {}; an unset storageSize must not go out as "0".
	if err := k8s.Create(ctx, minimal(ns, "typed")); err != nil {
		t.Fatalf("create with replicas and image only (Go client): %v", err)
	}
	check(t, "typed", 3)

	// As from YAML: no reconfig at all (its default {} must apply, then the
	// defaults inside it), and no replicas (default 3).
	if err := k8s.Create(ctx, raw(ns, "yaml", map[string]any{"replicas": int64(3), "image": "localhost/raft-kv:dev"})); err != nil {
		t.Fatalf("create with replicas and image only (YAML): %v", err)
	}
	check(t, "yaml", 3)
	if err := k8s.Create(ctx, raw(ns, "image-only", map[string]any{"image": "localhost/raft-kv:dev"})); err != nil {
		t.Fatalf("create with image only: %v", err)
	}
	check(t, "image-only", 3)
}

func TestCreateRefused(t *testing.T) {
	ctx := needEnv(t)
	t.Parallel()
	ns := newNamespace(ctx, t)

	typed := []struct {
		name   string
		mutate func(*raftv1.RaftCluster)
		want   []string
	}{
		{"safetyMode yolo", func(rc *raftv1.RaftCluster) { rc.Spec.SafetyMode = "yolo" },
			[]string{"spec.safetyMode", `"yolo"`, `"safe", "unsafe-early-vote", "unsafe-no-joint"`}},
		{"replicas 0", func(rc *raftv1.RaftCluster) { rc.Spec.Replicas = 0 },
			[]string{"spec.replicas", "greater than or equal to 1"}},
		{"replicas 16", func(rc *raftv1.RaftCluster) { rc.Spec.Replicas = 16 },
			[]string{"spec.replicas", "less than or equal to 15"}},
		{"rateLimit fast", func(rc *raftv1.RaftCluster) { rc.Spec.Reconfig.RateLimit = "fast" },
			[]string{"spec.reconfig.rateLimit", `"fast"`}},
		{"rateLimit 0/s", func(rc *raftv1.RaftCluster) { rc.Spec.Reconfig.RateLimit = "0/s" },
			[]string{"spec.reconfig.rateLimit"}},
		{"maxParallel 2", func(rc *raftv1.RaftCluster) { rc.Spec.Reconfig.MaxParallel = 2 },
			[]string{"spec.reconfig.maxParallel", "only 1 is supported today"}},
		{"heartbeatMs 600 of electionTimeoutMs 1000", func(rc *raftv1.RaftCluster) {
			rc.Spec.HeartbeatMs, rc.Spec.ElectionTimeoutMs = 600, 1000
		}, []string{"heartbeatMs must be at most half of electionTimeoutMs"}},
		{"heartbeatMs 600 of the default electionTimeoutMs", func(rc *raftv1.RaftCluster) { rc.Spec.HeartbeatMs = 600 },
			[]string{"heartbeatMs must be at most half of electionTimeoutMs"}},
		{"electionTimeoutMs 150 of the default heartbeatMs", func(rc *raftv1.RaftCluster) { rc.Spec.ElectionTimeoutMs = 150 },
			[]string{"heartbeatMs must be at most half of electionTimeoutMs"}},
		{"empty image", func(rc *raftv1.RaftCluster) { rc.Spec.Image = "" },
			[]string{"spec.image"}},
		{"imagePullPolicy Sometimes", func(rc *raftv1.RaftCluster) { rc.Spec.ImagePullPolicy = "Sometimes" },
			[]string{"spec.imagePullPolicy", `"Always", "IfNotPresent", "Never"`}},
		{"negative storageSize", func(rc *raftv1.RaftCluster) { rc.Spec.StorageSize = resource.MustParse("-1Gi") },
			[]string{"spec.storageSize", "storageSize must be more than zero"}},
		{"negative stabilization", func(rc *raftv1.RaftCluster) {
			// A Go client cannot even hold a duration Go cannot parse (the
			// raw "3 seconds" case below); a negative one is refused too.
			rc.Spec.Reconfig.Stabilization = &metav1.Duration{Duration: -1e9}
		}, []string{"spec.reconfig.stabilization", "must be a duration"}},
		{"a retired member of another cluster", func(rc *raftv1.RaftCluster) { rc.Spec.RetiredMembers = []string{"other-1"} },
			[]string{"spec.retiredMembers", "each entry must be a member id of this cluster"}},
		{"a retired member with a padded ordinal", func(rc *raftv1.RaftCluster) { rc.Spec.RetiredMembers = []string{rc.Name + "-02"} },
			[]string{"spec.retiredMembers", "each entry must be a member id of this cluster"}},
		{"17 retired members", func(rc *raftv1.RaftCluster) {
			for i := range 17 {
				rc.Spec.RetiredMembers = append(rc.Spec.RetiredMembers, fmt.Sprintf("demo-%d", i))
			}
		}, []string{"spec.retiredMembers", "16"}},
	}
	for i, c := range typed {
		rc := minimal(ns, fmt.Sprintf("typed-%d", i))
		c.mutate(rc)
		refused(t, c.name, k8s.Create(ctx, rc), c.want...)
	}

	image := "localhost/raft-kv:dev"
	untyped := []struct {
		name string
		spec map[string]any
		want []string
	}{
		{"no spec", nil, []string{"spec", "Required"}},
		{"no image", map[string]any{"replicas": int64(3)}, []string{"spec.image", "Required"}},
		{"storageSize 0", map[string]any{"image": image, "storageSize": "0"},
			[]string{"storageSize must be more than zero"}},
		{"storageSize lots", map[string]any{"image": image, "storageSize": "lots"},
			[]string{"spec.storageSize"}},
		// A duration Go cannot parse would break every Go client that
		// lists RaftClusters (the operator's cache): it must not get in.
		{"stabilization 3 seconds", map[string]any{"image": image, "reconfig": map[string]any{"stabilization": "3 seconds"}},
			[]string{"spec.reconfig.stabilization", "must be a duration"}},
		{"leaderFlapWindow 1d", map[string]any{"image": image, "reconfig": map[string]any{"leaderFlapWindow": "1d"}},
			[]string{"spec.reconfig.leaderFlapWindow", "must be a duration"}},
		{"snapshotInterval 30", map[string]any{"image": image, "snapshotInterval": "30"},
			[]string{"spec.snapshotInterval", "must be a duration"}},
		{"replicas as a string", map[string]any{"image": image, "replicas": "3"},
			[]string{"spec.replicas"}},
	}
	for i, c := range untyped {
		refused(t, c.name, k8s.Create(ctx, raw(ns, fmt.Sprintf("raw-%d", i), c.spec)), c.want...)
	}

	// And what the rules must let through.
	ok := raw(ns, "ok-durations", map[string]any{
		"image":             image,
		"snapshotInterval":  "1m30s",
		"reconfig":          map[string]any{"stabilization": "500ms", "leaderFlapWindow": "0", "rateLimit": "10/h"},
		"heartbeatMs":       int64(500),
		"electionTimeoutMs": int64(1000),
	})
	if err := k8s.Create(ctx, ok); err != nil {
		t.Errorf("create with durations 1m30s, 500ms, 0, rateLimit 10/h, heartbeatMs 500 of 1000: %v", err)
	}
	for _, m := range []raftv1.SafetyMode{raftv1.Safe, raftv1.UnsafeEarlyVote, raftv1.UnsafeNoJoint} {
		rc := minimal(ns, "mode-"+string(m))
		rc.Spec.SafetyMode = m
		if err := k8s.Create(ctx, rc); err != nil {
			t.Errorf("create with safetyMode %s: %v", m, err)
		}
	}
}

func TestUpdateRules(t *testing.T) {
	ctx := needEnv(t)
	t.Parallel()
	ns := newNamespace(ctx, t)

	class := func(s string) *string { return &s }
	base := minimal(ns, "demo")
	base.Spec.StorageClassName = class("standard")
	base.Spec.RetiredMembers = []string{"demo-1", "demo-2"}
	if err := k8s.Create(ctx, base); err != nil {
		t.Fatalf("create: %v", err)
	}
	noClass := minimal(ns, "no-class")
	if err := k8s.Create(ctx, noClass); err != nil {
		t.Fatalf("create: %v", err)
	}

	// update reads the object fresh, changes it and updates it.
	update := func(name string, mutate func(*raftv1.RaftCluster)) error {
		var rc raftv1.RaftCluster
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &rc); err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		mutate(&rc)
		return k8s.Update(ctx, &rc)
	}

	for _, c := range []struct {
		name   string
		object string
		mutate func(*raftv1.RaftCluster)
		want   []string
	}{
		{"storageSize 1Gi -> 2Gi", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.StorageSize = resource.MustParse("2Gi") },
			[]string{"spec.storageSize", "storageSize cannot change"}},
		{"storageClassName standard -> fast", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.StorageClassName = class("fast") },
			[]string{"spec.storageClassName", "storageClassName cannot change"}},
		{"storageClassName standard -> unset", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.StorageClassName = nil },
			[]string{"spec.storageClassName", "storageClassName cannot change"}},
		{"storageClassName unset -> fast", "no-class", func(rc *raftv1.RaftCluster) { rc.Spec.StorageClassName = class("fast") },
			[]string{"spec.storageClassName", "storageClassName cannot change"}},
		{"storageClassName unset -> empty", "no-class", func(rc *raftv1.RaftCluster) { rc.Spec.StorageClassName = class("") },
			[]string{"spec.storageClassName", "storageClassName cannot change"}},
		{"safetyMode safe -> unsafe-no-joint", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.SafetyMode = raftv1.UnsafeNoJoint },
			[]string{"spec.safetyMode", "safetyMode cannot change"}},
		{"retiredMembers [demo-1 demo-2] -> [demo-2]", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.RetiredMembers = []string{"demo-2"} },
			[]string{"spec.retiredMembers", "retiredMembers can only grow"}},
		{"retiredMembers [demo-1 demo-2] -> [demo-2 demo-3]", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.RetiredMembers = []string{"demo-2", "demo-3"} },
			[]string{"spec.retiredMembers", "retiredMembers can only grow"}},
		// A Go client omits an empty list: the rule must still see it.
		{"retiredMembers [demo-1 demo-2] -> []", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.RetiredMembers = nil },
			[]string{"spec.retiredMembers", "retiredMembers can only grow"}},
		{"replicas 3 -> 16", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.Replicas = 16 },
			[]string{"spec.replicas"}},
		{"reconfig.maxParallel 1 -> 2", "demo", func(rc *raftv1.RaftCluster) { rc.Spec.Reconfig.MaxParallel = 2 },
			[]string{"only 1 is supported today"}},
	} {
		refused(t, c.name, update(c.object, c.mutate), c.want...)
	}

	// Accepted: the changes the operator exists for, and non-changes.
	for _, c := range []struct {
		name   string
		mutate func(*raftv1.RaftCluster)
		check  func(*raftv1.RaftCluster) bool
	}{
		{"replicas 3 -> 5", func(rc *raftv1.RaftCluster) { rc.Spec.Replicas = 5 },
			func(rc *raftv1.RaftCluster) bool { return rc.Spec.Replicas == 5 }},
		{"retiredMembers grow to [demo-1 demo-2 demo-4]", func(rc *raftv1.RaftCluster) {
			rc.Spec.RetiredMembers = []string{"demo-1", "demo-2", "demo-4"}
		}, func(rc *raftv1.RaftCluster) bool { return len(rc.Spec.RetiredMembers) == 3 }},
		{"paused and a rate limit", func(rc *raftv1.RaftCluster) { rc.Spec.Paused, rc.Spec.Reconfig.RateLimit = true, "6/min" },
			func(rc *raftv1.RaftCluster) bool { return rc.Spec.Paused && rc.Spec.Reconfig.RateLimit == "6/min" }},
		{"storageSize 1Gi -> 1024Mi (the same size)", func(rc *raftv1.RaftCluster) { rc.Spec.StorageSize = resource.MustParse("1024Mi") },
			func(rc *raftv1.RaftCluster) bool { return rc.Spec.StorageSize.Cmp(resource.MustParse("1Gi")) == 0 }},
		{"storageSize unset (its default is the same 1Gi)", func(rc *raftv1.RaftCluster) { rc.Spec.StorageSize = resource.Quantity{} },
			func(rc *raftv1.RaftCluster) bool { return rc.Spec.StorageSize.Cmp(resource.MustParse("1Gi")) == 0 }},
		{"a label (nothing in spec)", func(rc *raftv1.RaftCluster) { rc.Labels = map[string]string{"team": "raft"} },
			func(rc *raftv1.RaftCluster) bool { return rc.Labels["team"] == "raft" }},
	} {
		if err := update("demo", c.mutate); err != nil {
			t.Errorf("%s: refused: %v", c.name, err)
			continue
		}
		var rc raftv1.RaftCluster
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "demo"}, &rc); err != nil {
			t.Fatalf("get: %v", err)
		}
		if !c.check(&rc) {
			t.Errorf("%s: accepted but not stored: spec %+v", c.name, rc.Spec)
		}
	}

	// A size written in a form that is not Go's canonical one: the Go
	// client reads 1.5Gi and writes it back as 1536Mi. That is no change,
	// so an update that does not touch the size (a label, as the operator
	// adds a finalizer) must go through.
	if err := k8s.Create(ctx, raw(ns, "odd-size", map[string]any{"image": "x", "storageSize": "1.5Gi"})); err != nil {
		t.Fatalf("create with storageSize 1.5Gi: %v", err)
	}
	if err := update("odd-size", func(rc *raftv1.RaftCluster) { rc.Labels = map[string]string{"a": "b"} }); err != nil {
		t.Errorf("update of a label of a cluster created with storageSize 1.5Gi (written back as 1536Mi): %v", err)
	}
}

func TestStatusSubresource(t *testing.T) {
	ctx := needEnv(t)
	t.Parallel()
	ns := newNamespace(ctx, t)

	rc := minimal(ns, "demo")
	if err := k8s.Create(ctx, rc); err != nil {
		t.Fatalf("create: %v", err)
	}
	if rc.Status.Phase != "" || rc.Status.Leader != "" {
		t.Errorf("a new cluster has status %+v, want none", rc.Status)
	}
	gen := rc.Generation

	// Status through /status: stored; a spec change sent along is ignored.
	rc.Status = raftv1.RaftClusterStatus{
		ObservedGeneration: gen,
		Phase:              raftv1.Ready,
		Replicas:           3,
		ReadyMembers:       2,
		Leader:             "demo-0",
		Term:               7,
		JointState:         "none",
		Members: []raftv1.MemberStatus{
			{ID: "demo-0", Role: raftv1.RoleVoter, CaughtUp: true, Reachable: true, PodReady: true, MatchIndex: 12},
			{ID: "demo-1", Role: raftv1.RoleVoter, CaughtUp: true, Reachable: true, PodReady: true, MatchIndex: 12},
			{ID: "demo-2", Role: raftv1.RoleVoter, Lag: 40, MatchIndex: 8},
		},
		Conditions: []metav1.Condition{{Type: raftv1.ConditionAvailable, Status: metav1.ConditionTrue,
			Reason: "LeaderElected", Message: "demo-0 leads in term 7", LastTransitionTime: metav1.Now()}},
	}
	rc.Spec.Replicas = 7
	if err := k8s.Status().Update(ctx, rc); err != nil {
		t.Fatalf("status update: %v", err)
	}
	var got raftv1.RaftCluster
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(rc), &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Spec.Replicas != 3 {
		t.Errorf("a status update changed spec.replicas to %d, want 3", got.Spec.Replicas)
	}
	if got.Generation != gen {
		t.Errorf("a status update moved the generation %d -> %d", gen, got.Generation)
	}
	if got.Status.ObservedGeneration != gen || got.Status.Phase != raftv1.Ready || got.Status.Leader != "demo-0" ||
		got.Status.ReadyMembers != 2 || got.Status.Term != 7 || len(got.Status.Members) != 3 || got.Status.Members[2].Lag != 40 ||
		len(got.Status.Conditions) != 1 {
		t.Errorf("status after /status update = %+v, want what was written", got.Status)
	}

	// A spec update: the status sent along is ignored, the generation moves.
	got.Spec.Replicas = 5
	got.Status.Phase = raftv1.Degraded
	got.Status.Leader = ""
	if err := k8s.Update(ctx, &got); err != nil {
		t.Fatalf("spec update: %v", err)
	}
	var after raftv1.RaftCluster
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(rc), &after); err != nil {
		t.Fatalf("get: %v", err)
	}
	if after.Spec.Replicas != 5 {
		t.Errorf("spec update not stored: replicas %d, want 5", after.Spec.Replicas)
	}
	if after.Status.Phase != raftv1.Ready || after.Status.Leader != "demo-0" {
		t.Errorf("a spec update changed the status to phase %q leader %q, want Ready demo-0", after.Status.Phase, after.Status.Leader)
	}
	if after.Generation != gen+1 {
		t.Errorf("generation after a spec update = %d, want %d", after.Generation, gen+1)
	}
	if after.Status.ObservedGeneration != gen {
		t.Errorf("observedGeneration = %d, want %d (as written)", after.Status.ObservedGeneration, gen)
	}

	// The status schema is enforced too.
	after.Status.Phase = "Happy"
	refused(t, "status phase Happy", k8s.Status().Update(ctx, &after), "status.phase", `"Pending", "Ready", "Reconfiguring", "Degraded"`)
}

func TestScaleSubresource(t *testing.T) {
	ctx := needEnv(t)
	t.Parallel()
	ns := newNamespace(ctx, t)

	rc := minimal(ns, "demo")
	if err := k8s.Create(ctx, rc); err != nil {
		t.Fatalf("create: %v", err)
	}
	const selector = "app.kubernetes.io/instance=demo,app.kubernetes.io/name=raft-kv"
	rc.Status.Replicas = 2 // voters in force, behind the spec's 3
	rc.Status.Selector = selector
	if err := k8s.Status().Update(ctx, rc); err != nil {
		t.Fatalf("status update: %v", err)
	}

	scale := &autoscalingv1.Scale{}
	if err := k8s.SubResource("scale").Get(ctx, rc, scale); err != nil {
		t.Fatalf("get scale: %v", err)
	}
	if scale.Spec.Replicas != 3 || scale.Status.Replicas != 2 || scale.Status.Selector != selector {
		t.Errorf("scale = spec %d, status %d %q; want spec.replicas 3, status.replicas 2, selector %q",
			scale.Spec.Replicas, scale.Status.Replicas, scale.Status.Selector, selector)
	}

	// kubectl scale raftcluster demo --replicas 5
	scale.Spec.Replicas = 5
	if err := k8s.SubResource("scale").Update(ctx, rc, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("update scale to 5: %v", err)
	}
	var got raftv1.RaftCluster
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(rc), &got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Spec.Replicas != 5 {
		t.Errorf("after scaling to 5: spec.replicas = %d", got.Spec.Replicas)
	}
	if got.Status.Replicas != 2 {
		t.Errorf("scaling changed status.replicas to %d, want 2", got.Status.Replicas)
	}

	// The schema holds through /scale too.
	scale = &autoscalingv1.Scale{}
	if err := k8s.SubResource("scale").Get(ctx, rc, scale); err != nil {
		t.Fatalf("get scale: %v", err)
	}
	scale.Spec.Replicas = 16
	refused(t, "scale to 16", k8s.SubResource("scale").Update(ctx, rc, client.WithSubResourceBody(scale)), "replicas")
}

// columns are the printer columns, in order, after Name.
var columns = []struct{ name, jsonPath, typ string }{
	{"Replicas", ".spec.replicas", "integer"},
	{"Ready", ".status.readyMembers", "integer"},
	{"Leader", ".status.leader", "string"},
	{"Phase", ".status.phase", "string"},
	{"Joint", ".status.jointState", "string"},
	{"Mode", ".spec.safetyMode", "string"},
	{"Age", ".metadata.creationTimestamp", "date"},
}

func TestPrinterColumns(t *testing.T) {
	ctx := needEnv(t)
	t.Parallel()
	ns := newNamespace(ctx, t)

	// The CRD as the server holds it.
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(ctx, client.ObjectKey{Name: "raftclusters.storage.sys"}, &crd); err != nil {
		t.Fatalf("get CRD: %v", err)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("CRD versions = %d, want 1 (v1)", len(crd.Spec.Versions))
	}
	pc := crd.Spec.Versions[0].AdditionalPrinterColumns
	if len(pc) != len(columns) {
		t.Errorf("CRD has %d printer columns, want %d", len(pc), len(columns))
	}
	for i := range min(len(pc), len(columns)) {
		if pc[i].Name != columns[i].name || pc[i].JSONPath != columns[i].jsonPath || pc[i].Type != columns[i].typ {
			t.Errorf("printer column %d = %s %s %s, want %s %s %s", i, pc[i].Name, pc[i].JSONPath, pc[i].Type,
				columns[i].name, columns[i].jsonPath, columns[i].typ)
		}
	}

	// And what kubectl get shows: a Table from the server.
	rc := minimal(ns, "demo")
	rc.Spec.SafetyMode = raftv1.UnsafeEarlyVote
	if err := k8s.Create(ctx, rc); err != nil {
		t.Fatalf("create: %v", err)
	}
	rc.Status = raftv1.RaftClusterStatus{Replicas: 3, ReadyMembers: 2, Leader: "demo-1", Phase: raftv1.Reconfiguring, JointState: "entering"}
	if err := k8s.Status().Update(ctx, rc); err != nil {
		t.Fatalf("status update: %v", err)
	}
	table := getTable(ctx, t, "/apis/storage.sys/v1/namespaces/"+ns+"/raftclusters")
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	want := []string{"Name"}
	for _, c := range columns {
		want = append(want, c.name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("table columns = %q, want %q", names, want)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("table has %d rows, want 1", len(table.Rows))
	}
	var cells []string
	for _, c := range table.Rows[0].Cells {
		cells = append(cells, fmt.Sprint(c))
	}
	wantCells := []string{"demo", "3", "2", "demo-1", "Reconfiguring", "entering", "unsafe-early-vote"}
	if len(cells) != len(want) || !slices.Equal(cells[:len(wantCells)], wantCells) {
		t.Errorf("table row = %q, want %q and an age", cells, wantCells)
	} else if age := cells[len(cells)-1]; age == "" || age == "<unknown>" {
		t.Errorf("age cell = %q, want an age such as 2s", age)
	}
}

// getTable GETs path as a meta.k8s.io/v1 Table, as kubectl get does.
func getTable(ctx context.Context, t *testing.T, path string) *metav1.Table {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s as a Table: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as a Table: %s: %s", path, resp.Status, body)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatalf("decode Table: %v\n%s", err, body)
	}
	if table.Kind != "Table" {
		t.Fatalf("GET %s as a Table answered kind %q", path, table.Kind)
	}
	return &table
}

func TestDiscovery(t *testing.T) {
	needEnv(t)
	t.Parallel()

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatalf("discovery client: %v", err)
	}
	list, err := dc.ServerResourcesForGroupVersion("storage.sys/v1")
	if err != nil {
		t.Fatalf("discovery of storage.sys/v1: %v", err)
	}
	found := map[string]metav1.APIResource{}
	for _, r := range list.APIResources {
		found[r.Name] = r
	}
	r, ok := found["raftclusters"]
	if !ok {
		t.Fatalf("storage.sys/v1 serves %v, no raftclusters", found)
	}
	if r.Kind != "RaftCluster" || !r.Namespaced || r.SingularName != "raftcluster" {
		t.Errorf("raftclusters: kind %q namespaced %v singular %q, want RaftCluster, true, raftcluster", r.Kind, r.Namespaced, r.SingularName)
	}
	if !slices.Equal(r.ShortNames, []string{"raft"}) {
		t.Errorf("short names %q, want [raft] (kubectl get raft)", r.ShortNames)
	}
	if !slices.Equal(r.Categories, []string{"raftlab"}) {
		t.Errorf("categories %q, want [raftlab] (kubectl get raftlab)", r.Categories)
	}
	for _, sub := range []string{"raftclusters/status", "raftclusters/scale"} {
		if _, ok := found[sub]; !ok {
			t.Errorf("no subresource %s served", sub)
		}
	}
	if s := found["raftclusters/scale"]; s.Group != "autoscaling" || s.Kind != "Scale" {
		t.Errorf("raftclusters/scale is %s %s, want autoscaling Scale", s.Group, s.Kind)
	}
}
