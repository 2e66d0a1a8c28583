package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	v1 "github.com/raftlab/raftlab/operator/api/v1"
)

// scale sets spec.replicas through the scale subresource, as `kubectl
// scale raftcluster NAME --replicas N` does.
func scale(ctx context.Context, t *testing.T, c client.Client, rc *v1.RaftCluster, n int32) {
	t.Helper()
	// The operator writes the status all the time: a conflict is read
	// again and retried, as kubectl scale does.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc := &autoscalingv1.Scale{}
		if err := c.SubResource("scale").Get(ctx, rc, sc); err != nil {
			return err
		}
		sc.Spec.Replicas = n
		return c.SubResource("scale").Update(ctx, rc, client.WithSubResourceBody(sc))
	})
	if err != nil {
		t.Fatalf("scale to %d: %v", n, err)
	}
}

// watchJoint records every jointState the cluster's status shows, through
// a watch, until stop is called.
func watchJoint(ctx context.Context, t *testing.T, cfg *envconf.Config, name string) (stop func() []string) {
	t.Helper()
	wc, err := client.NewWithWatch(cfg.Client().RESTConfig(), client.Options{Scheme: cfg.Client().Resources().GetScheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1.RaftClusterList{}, client.InNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			rc, ok := ev.Object.(*v1.RaftCluster)
			if !ok || rc.Name != name || rc.Status.JointState == "" {
				continue
			}
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1] != rc.Status.JointState {
				seen = append(seen, rc.Status.JointState)
			}
			mu.Unlock()
		}
	}()
	return func() []string {
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

func TestOperator(t *testing.T) {
	const name = "demo"
	lifecycle := features.New("a RaftCluster's life: create, write, scale out, scale in, lose the leader, lose the operator").
		Assess("demo with 3 replicas reaches Ready with a leader", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			start := time.Now()
			if err := c.Create(ctx, newCluster(name, 3, v1.Safe)); err != nil {
				t.Fatal(err)
			}
			rc := waitReady(ctx, t, c, name, 3, 3*time.Minute)
			t.Logf("Ready in %v: %s", time.Since(start).Round(time.Millisecond), describe(rc))
			return ctx
		}).
		Assess("a write through the client Service is read back", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			rc := getCluster(ctx, t, c, name)
			kc := kvClient(ctx, t, c, rc)
			defer kc.Close()
			if _, err := kc.Put(ctx, "hello", []byte("world")); err != nil {
				t.Fatal(err)
			}
			v, found, err := kc.Get(ctx, "hello")
			if err != nil || !found || string(v) != "world" {
				t.Fatalf("get hello: %q %v %v", v, found, err)
			}
			return ctx
		}).
		Assess("scale 3 -> 5: learners, then joint consensus, one Event per step", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			rc := getCluster(ctx, t, c, name)
			stop := watchJoint(ctx, t, cfg, name)
			before := len(stepEvents(ctx, t, c, rc))
			start := time.Now()
			scale(ctx, t, c, rc, 5)
			rc = waitReady(ctx, t, c, name, 5, 4*time.Minute)
			t.Logf("3 -> 5 in %v", time.Since(start).Round(time.Millisecond))
			joints := stop()
			if want := []string{"none", "entering", "committed", "leaving", "none"}; !isSubsequence(want[1:4], joints) || joints[len(joints)-1] != "none" {
				t.Errorf("jointState seen %v, want %v in order", joints, want)
			}
			evs := stepEvents(ctx, t, c, rc)[before:]
			if got, want := reasons(evs), []string{"AddLearner", "AddLearner", "EnterJoint", "LeaveJoint"}; !slices.Equal(got, want) {
				t.Errorf("step events %v, want %v", got, want)
			}
			for _, e := range evs {
				if countOf(e) > 1 {
					t.Errorf("event %s %q repeated %d times", e.Reason, e.Note, countOf(e))
				}
			}
			return ctx
		}).
		Assess("scale 5 -> 3 with the leader among the removed: TransferLeader first, volumes kept", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			rc := getCluster(ctx, t, c, name)
			lead := rc.Status.Leader
			if lead != "demo-4" {
				if code := admin(ctx, t, c, rc, lead, http.MethodPost, "/admin/transfer-leader", `{"to":"demo-4"}`, nil); code != 200 {
					t.Fatalf("transfer-leader to demo-4: HTTP %d", code)
				}
				if err := waitFor(ctx, 30*time.Second, "demo-4 leads", func() (bool, string) {
					st := memberStatus(ctx, t, c, rc, "demo-4")
					return st.State == "leader", st.State
				}); err != nil {
					t.Fatal(err)
				}
			}
			before := len(stepEvents(ctx, t, c, rc))
			scale(ctx, t, c, rc, 3)
			rc = waitReady(ctx, t, c, name, 3, 4*time.Minute)
			if slices.Contains([]string{"demo-3", "demo-4"}, rc.Status.Leader) {
				t.Fatalf("leader %s was removed", rc.Status.Leader)
			}
			if got, want := reasons(stepEvents(ctx, t, c, rc)[before:]), []string{"EnterJoint", "TransferLeader", "LeaveJoint"}; !slices.Equal(got, want) {
				t.Errorf("step events %v, want %v", got, want)
			}
			if err := waitFor(ctx, time.Minute, "the StatefulSet down to 3 pods", func() (bool, string) {
				var pods corev1.PodList
				_ = c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": name})
				return len(pods.Items) == 3, fmt.Sprintf("%d pods", len(pods.Items))
			}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"demo-3", "demo-4"} {
				var pvc corev1.PersistentVolumeClaim
				if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "data-" + id}, &pvc); err != nil {
					t.Errorf("volume of removed member %s: %v (volumes are never deleted)", id, err)
				}
			}
			return ctx
		}).
		Assess("delete the leader's pod under load: a new leader, no acknowledged write lost", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			rc := getCluster(ctx, t, c, name)
			kc := kvClient(ctx, t, c, rc)
			defer kc.Close()
			old := rc.Status.Leader
			acked := map[string]string{}
			var mu sync.Mutex
			stopLoad := make(chan struct{})
			loadDone := make(chan struct{})
			go func() {
				defer close(loadDone)
				for i := 0; ; i++ {
					select {
					case <-stopLoad:
						return
					default:
					}
					k, v := fmt.Sprintf("load-%d", i), fmt.Sprintf("v%d", i)
					wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := kc.Put(wctx, k, []byte(v))
					cancel()
					if err == nil {
						mu.Lock()
						acked[k] = v
						mu.Unlock()
					}
				}
			}()
			if err := waitFor(ctx, time.Minute, "20 writes acknowledged before the loss", func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) >= 20, fmt.Sprintf("%d acknowledged", len(acked))
			}); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, &corev1.Pod{ObjectMeta: metaOf(old)}); err != nil {
				t.Fatal(err)
			}
			if err := waitFor(ctx, 2*time.Minute, "a new leader", func() (bool, string) {
				rc := getCluster(ctx, t, c, name)
				return rc.Status.Leader != "" && rc.Status.Leader != old, describe(rc)
			}); err != nil {
				t.Fatal(err)
			}
			waitReady(ctx, t, c, name, 3, 3*time.Minute)
			close(stopLoad)
			<-loadDone
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < 10 {
				t.Fatalf("only %d writes acknowledged: the load did not run", len(acked))
			}
			for k, v := range acked {
				got, found, err := kc.Get(ctx, k)
				if err != nil || !found || string(got) != v {
					t.Fatalf("acknowledged %s=%s read back as %q found=%v err=%v", k, v, got, found, err)
				}
			}
			t.Logf("%d acknowledged writes across the leader's loss, all read back", len(acked))
			return ctx
		}).
		Assess("kill the operator in the middle of a change: it finishes", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			rc := getCluster(ctx, t, c, name)
			scale(ctx, t, c, rc, 4)
			if err := waitFor(ctx, 2*time.Minute, "a change in progress", func() (bool, string) {
				rc := getCluster(ctx, t, c, name)
				return rc.Status.Phase == v1.Reconfiguring && rc.Status.CurrentStep != "", describe(rc)
			}); err != nil {
				t.Fatal(err)
			}
			var pods corev1.PodList
			if err := c.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/name": "raft-operator"}); err != nil || len(pods.Items) == 0 {
				t.Fatalf("operator pods: %v (%d)", err, len(pods.Items))
			}
			for i := range pods.Items {
				if err := c.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(0)); err != nil {
					t.Fatal(err)
				}
			}
			waitReady(ctx, t, c, name, 4, 4*time.Minute)
			return ctx
		}).
		Feature()

	unsafe := features.New("unsafe-early-vote").
		Assess("the new member votes at once and the events name the waived invariants", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			c := crClient(cfg)
			if err := c.Create(ctx, newCluster("early", 3, v1.UnsafeEarlyVote)); err != nil {
				t.Fatal(err)
			}
			rc := waitReady(ctx, t, c, "early", 3, 3*time.Minute)
			scale(ctx, t, c, rc, 4)
			err := waitFor(ctx, 3*time.Minute, "early-3 a voter", func() (bool, string) {
				rc = getCluster(ctx, t, c, "early")
				for _, m := range rc.Status.Members {
					if m.ID == "early-3" && m.Role == v1.RoleVoter {
						return true, describe(rc)
					}
				}
				return false, describe(rc)
			})
			if err != nil {
				t.Fatal(err)
			}
			evs := stepEvents(ctx, t, c, rc)
			if len(evs) == 0 || evs[0].Reason != "EnterJoint" || slices.Contains(reasons(evs), "AddLearner") {
				t.Fatalf("step events %v, want EnterJoint first and no AddLearner", reasons(evs))
			}
			if evs[0].Type != corev1.EventTypeWarning || !strings.Contains(evs[0].Note, "waived: learners-never-vote, promote-only-caught-up-and-durable") {
				t.Fatalf("EnterJoint event %s %q, want a Warning naming the waived invariants", evs[0].Type, evs[0].Note)
			}
			return ctx
		}).
		Feature()

	testEnv.Test(t, lifecycle, unsafe)
}

func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
