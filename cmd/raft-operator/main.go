// Command raft-operator is raftlab's Kubernetes operator for RaftCluster
// (storage.sys/v1): it runs operator/controller's reconciler in a
// controller-runtime manager, with leader election, /metrics, /healthz and
// /readyz. See docs/OPERATOR.md.
//
// raft-operator --help prints what it is, a usage line and every flag with
// its default, and exits 0. Exit codes: 0 after SIGTERM or SIGINT (or
// --help), 1 when the manager fails, 2 on bad flags (one line on stderr).
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/raftlab/raftlab/internal/cliusage"
	v1 "github.com/raftlab/raftlab/operator/api/v1"
	"github.com/raftlab/raftlab/operator/controller"
)

const description = `raft-operator is raftlab's Kubernetes operator for RaftCluster resources
(storage.sys/v1). For each RaftCluster it keeps a StatefulSet of raft-kv
members, their Services, a PodDisruptionBudget and a tokens Secret, and it
changes the membership one safe step at a time: it observes the members
through their admin plane, asks raftlab's reconfig planner for the next
step (AddLearner, EnterJoint, CommitNew, TransferLeader, LeaveJoint,
RemoveMember), carries it out, and records it in the resource's status and
in an Event. It reads its cluster from KUBECONFIG or, in a pod, from the
service account.`

type options struct {
	metricsAddr, probeAddr, clusterDomain, leaderNamespace string
	leaderElect                                            bool
	logJSON                                                bool
}

var defaultNotes = map[string]string{
	"leader-election-namespace": "the pod's namespace (in a cluster), none outside",
}

func newFlagSet() (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet("raft-operator", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := &options{}
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "`address` of the Prometheus /metrics endpoint (0 disables it)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "`address` of /healthz and /readyz")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect one active operator among replicas (a Lease raft-operator.storage.sys)")
	fs.StringVar(&o.leaderNamespace, "leader-election-namespace", "", "`namespace` of the leader election Lease")
	fs.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS `domain`, for the members' peer addresses")
	fs.BoolVar(&o.logJSON, "log-json", true, "log JSON lines (false: text)")
	return fs, o
}

func usage(w io.Writer) {
	fs, _ := newFlagSet()
	fmt.Fprintf(w, "%s\n\nUsage:\n  raft-operator [flags]\n\n"+
		"Exit codes: 0 after SIGTERM or SIGINT (or --help), 1 when the manager fails, 2 bad flags.\n\nFlags:\n", description)
	cliusage.PrintFlags(w, fs, "--", defaultNotes)
}

func parse(args []string, stdout, stderr io.Writer) (o *options, code int, done bool) {
	fs, o := newFlagSet()
	if code, done := cliusage.Parse(fs, args, "raft-operator", "-h", usage, stdout, stderr); done {
		return nil, code, true
	}
	return o, 0, false
}

func main() {
	o, code, done := parse(os.Args[1:], os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, nil)
	if !o.logJSON {
		h = slog.NewTextHandler(os.Stderr, nil)
	}
	ctrl.SetLogger(logr.FromSlogHandler(h))
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "raft-operator: %v\n", err)
		os.Exit(1)
	}
}

func run(o *options) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no cluster to talk to: %w (set KUBECONFIG, or run in a pod)", err)
	}
	// The informers hold only the operator's own objects (its label), not
	// every Pod and Secret of the cluster.
	own := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": controller.ManagedBy})}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: own, &corev1.Secret{}: own, &corev1.Service{}: own,
			&appsv1.StatefulSet{}: own, &policyv1.PodDisruptionBudget{}: own,
		}},
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "raft-operator.storage.sys",
		LeaderElectionNamespace: o.leaderNamespace,
		// A new leader waits for the old one's lease, then resumes from the
		// members' committed configuration (the status is only a cache).
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	r := &controller.Reconciler{Client: mgr.GetClient(), Scheme: scheme, Recorder: mgr.GetEventRecorder("raft-operator"),
		ClusterDomain: o.clusterDomain}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
