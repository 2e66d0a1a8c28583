package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/e2e-framework/pkg/envconf"

	"github.com/raftlab/raftlab/kvserver"
	kvclient "github.com/raftlab/raftlab/kvserver/client"
	v1 "github.com/raftlab/raftlab/operator/api/v1"
	"github.com/raftlab/raftlab/operator/controller"
)

// Where `make deploy` puts the operator.
const (
	operatorNamespace  = "raftlab-system"
	operatorDeployment = "raft-operator"
)

func crClient(cfg *envconf.Config) client.Client {
	return cfg.Client().Resources().GetControllerRuntimeClient()
}

// waitFor polls cond every 200 ms until it holds or timeout passes; the
// error names what was awaited and the last state seen.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		last = state
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v; last seen: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitOperator(ctx context.Context, cfg *envconf.Config) error {
	c := crClient(cfg)
	return waitFor(ctx, 2*time.Minute, "the operator Deployment "+operatorNamespace+"/"+operatorDeployment+" available (make deploy)", func() (bool, string) {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: operatorDeployment}, &d); err != nil {
			return false, err.Error()
		}
		return d.Status.AvailableReplicas >= 1, fmt.Sprintf("available %d", d.Status.AvailableReplicas)
	})
}

// newCluster is a RaftCluster tuned for a test: fast changes.
func newCluster(name string, replicas int32, mode v1.SafetyMode) *v1.RaftCluster {
	return &v1.RaftCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1.RaftClusterSpec{Replicas: replicas, Image: "localhost/raft-kv:dev", ImagePullPolicy: corev1.PullIfNotPresent,
			SafetyMode: mode, ElectionTimeoutMs: 1000, HeartbeatMs: 100,
			Reconfig: v1.ReconfigSpec{RateLimit: "60/min", MaxParallel: 1, CatchUpMaxLag: 64,
				Stabilization: &metav1.Duration{Duration: time.Second}, LeaderFlapThreshold: 10,
				LeaderFlapWindow: &metav1.Duration{Duration: 10 * time.Second}}},
	}
}

func getCluster(ctx context.Context, t *testing.T, c client.Client, name string) *v1.RaftCluster {
	t.Helper()
	var rc v1.RaftCluster
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &rc); err != nil {
		t.Fatal(err)
	}
	return &rc
}

func describe(rc *v1.RaftCluster) string {
	var ms []string
	for _, m := range rc.Status.Members {
		ms = append(ms, fmt.Sprintf("%s:%s/caught=%v/ready=%v", m.ID, m.Role, m.CaughtUp, m.PodReady))
	}
	return fmt.Sprintf("phase=%s leader=%s voters=%d ready=%d joint=%s step=%q reason=%q gen=%d/%d members=[%s]",
		rc.Status.Phase, rc.Status.Leader, rc.Status.Replicas, rc.Status.ReadyMembers, rc.Status.JointState,
		rc.Status.CurrentStep, rc.Status.StepReason, rc.Status.ObservedGeneration, rc.Generation, strings.Join(ms, " "))
}

// waitReady waits until the cluster is Ready with replicas voters, all
// ready, for the spec's current generation.
func waitReady(ctx context.Context, t *testing.T, c client.Client, name string, replicas int32, timeout time.Duration) *v1.RaftCluster {
	t.Helper()
	var rc v1.RaftCluster
	err := waitFor(ctx, timeout, fmt.Sprintf("%s Ready with %d voters", name, replicas), func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &rc); err != nil {
			return false, err.Error()
		}
		return rc.Status.Phase == v1.Ready && rc.Status.Replicas == replicas && rc.Status.ReadyMembers == replicas &&
			rc.Status.ObservedGeneration == rc.Generation && rc.Status.Leader != "", describe(&rc)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &rc
}

// clusterDNSResolver resolves through the cluster's DNS Service, so that
// the members' names (demo-0.demo-peers.NS.svc.cluster.local), which
// raft-kv gives in its leader redirects, resolve where the suite runs.
func clusterDNSResolver(ctx context.Context, t *testing.T, c client.Client) *net.Resolver {
	t.Helper()
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "kube-dns"}, &svc); err != nil {
		t.Fatalf("the cluster's DNS Service kube-system/kube-dns: %v", err)
	}
	dnsAddr := net.JoinHostPort(svc.Spec.ClusterIP, "53")
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
}

func httpClient(r *net.Resolver) *http.Client {
	d := &net.Dialer{Timeout: 3 * time.Second, Resolver: r}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}

// kvClient writes and reads through the cluster's client Service.
func kvClient(ctx context.Context, t *testing.T, c client.Client, rc *v1.RaftCluster) *kvclient.Client {
	t.Helper()
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: controller.ClientServiceName(rc)}, &svc); err != nil {
		t.Fatal(err)
	}
	kc, err := kvclient.New([]string{fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, controller.ClientPort)},
		kvclient.Options{HTTP: httpClient(clusterDNSResolver(ctx, t, c)), AttemptTimeout: 3 * time.Second, MaxAttempts: 20, ClientID: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// adminToken reads the cluster's admin token from its Secret.
func adminToken(ctx context.Context, t *testing.T, c client.Client, rc *v1.RaftCluster) string {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: controller.SecretName(rc)}, &s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data[controller.AdminTokenKey])
}

// podIP is a member pod's IP.
func podIP(ctx context.Context, t *testing.T, c client.Client, id string) string {
	t.Helper()
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: id}, &pod); err != nil {
		t.Fatal(err)
	}
	return pod.Status.PodIP
}

// admin calls a member's admin plane.
func admin(ctx context.Context, t *testing.T, c client.Client, rc *v1.RaftCluster, id, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://%s:%d%s", podIP(ctx, t, c, id), controller.AdminPort, path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken(ctx, t, c, rc))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, id, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s on %s: %v", method, path, id, err)
		}
	}
	return resp.StatusCode
}

func memberStatus(ctx context.Context, t *testing.T, c client.Client, rc *v1.RaftCluster, id string) kvserver.StatusJSON {
	t.Helper()
	var st kvserver.StatusJSON
	if code := admin(ctx, t, c, rc, id, http.MethodGet, "/admin/status", "", &st); code != 200 {
		t.Fatalf("status of %s: HTTP %d", id, code)
	}
	return st
}

// stepEvents lists the operator's membership-step events about rc (reason
// and note), oldest first.
func stepEvents(ctx context.Context, t *testing.T, c client.Client, rc *v1.RaftCluster) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "RaftCluster" && e.Regarding.Name == rc.Name && e.Action == "Reconfigure" && e.Reason != "StepFailed" {
			out = append(out, e)
		}
	}
	sortEvents(out)
	return out
}

func reasons(evs []eventsv1.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Reason == "CommitNew" {
			continue // seen only when a pass finds the joint entry uncommitted
		}
		out = append(out, e.Reason)
	}
	return out
}

func metaOf(podName string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: podName}
}
