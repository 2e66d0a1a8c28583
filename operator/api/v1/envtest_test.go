package v1_test

// The tests of this package run the CRD of config/crd/bases against a real
// kube-apiserver and etcd (controller-runtime's envtest): the schema, the
// defaults, the CEL rules, the subresources, the printer columns and the
// names are the apiserver's to enforce, so only the apiserver can say they
// work. One control plane serves every test (it takes a few seconds to
// start); each test works in a namespace of its own and runs in parallel.
//
// The binaries come from KUBEBUILDER_ASSETS, a directory holding
// kube-apiserver and etcd: make test sets it from hack/k8s-bins.sh, which
// builds them once into a cache. Without it the tests skip, unless
// RAFTLAB_REQUIRE_ENVTEST=1 (make test sets it), which makes that a failure.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	raftv1 "github.com/raftlab/raftlab/operator/api/v1"
)

// howToRun is what the skip message and the failure without binaries say.
const howToRun = "make test, or KUBEBUILDER_ASSETS=$(hack/k8s-bins.sh envtest) go test ./operator/..."

var (
	// skipReason is why the envtest tests skip; empty when they run.
	skipReason string
	// cfg reaches the shared kube-apiserver; k8s is a client on it.
	cfg    *rest.Config
	k8s    client.Client
	scheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("RAFTLAB_REQUIRE_ENVTEST") == "1" {
			fmt.Fprintf(os.Stderr, "operator/api/v1: RAFTLAB_REQUIRE_ENVTEST=1 but KUBEBUILDER_ASSETS is unset "+
				"(a directory holding kube-apiserver and etcd); run %s\n", howToRun)
			return 1
		}
		skipReason = "the envtest tests need kube-apiserver and etcd: KUBEBUILDER_ASSETS is unset; run " + howToRun
		return m.Run()
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		p := filepath.Join(assets, b)
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			fmt.Fprintf(os.Stderr, "operator/api/v1: KUBEBUILDER_ASSETS=%s has no executable %s (%v); hack/k8s-bins.sh envtest builds it (%s)\n",
				assets, b, err, howToRun)
			return 1
		}
	}

	// controller-runtime complains after 30 s when nothing set a logger.
	logf.SetLogger(logr.Discard())
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, raftv1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintf(os.Stderr, "operator/api/v1: scheme: %v\n", err)
			return 1
		}
	}

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	var (
		stopOnce    sync.Once
		endWatchdog atomic.Value // func(): stops the watchdog
	)
	stop := func() {
		stopOnce.Do(func() {
			if err := env.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "operator/api/v1: stopping kube-apiserver and etcd: %v\n", err)
			}
		})
	}
	// envtest starts kube-apiserver and etcd in process groups of their
	// own, so a ^C to go test does not reach them: stop them here.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "operator/api/v1: %v: stopping kube-apiserver and etcd\n", s)
		stop()
		if end, ok := endWatchdog.Load().(func()); ok {
			end()
		}
		os.Exit(1)
	}()

	start := time.Now()
	var err error
	cfg, err = env.Start()
	if err != nil {
		stop()
		fmt.Fprintf(os.Stderr, "operator/api/v1: starting kube-apiserver and etcd from %s: %v\n", assets, err)
		return 1
	}
	// A panic or a -timeout ends this process without running the code
	// below: the watchdog then ends the control plane.
	end := watchdog()
	endWatchdog.Store(end)
	defer func() {
		stop()
		end()
	}()
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "operator/api/v1: kube-apiserver and etcd (%s) up, CRDs installed, in %v\n", assets, time.Since(start).Round(10*time.Millisecond))
	}

	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "operator/api/v1: client: %v\n", err)
		return 1
	}
	return m.Run()
}

// watchdog starts a shell that waits for this process to end and then
// ends its kube-apiserver and etcd children and removes envtest's temp dirs
// (etcd's data, the apiserver's certificates) named on their command lines;
// the returned func stops the watchdog (after a clean shutdown, which does
// all that itself). Linux only (it reads /proc); elsewhere it does nothing.
func watchdog() func() {
	var pids, dirs []string
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, pid := range strings.Fields(string(b)) {
			comm, err := os.ReadFile("/proc/" + pid + "/comm")
			if err != nil {
				continue
			}
			if c := strings.TrimSpace(string(comm)); c != "kube-apiserver" && c != "etcd" {
				continue
			}
			pids = append(pids, pid)
			cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			for _, arg := range strings.Split(string(cmdline), "\x00") {
				_, v, _ := strings.Cut(arg, "=")
				if d := filepath.Clean(v); strings.HasPrefix(filepath.Base(d), "k8s_test_framework_") && !slices.Contains(dirs, d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	if len(pids) == 0 {
		return func() {}
	}
	// sh -c script watchdog PARENT PID... -- DIR...
	const script = `parent=$1; shift
pids=; while [ "$1" != -- ]; do pids="$pids $1"; shift; done; shift
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill -TERM $pids 2>/dev/null; sleep 3; kill -KILL $pids 2>/dev/null
for d in "$@"; do rm -rf "$d"; done
exit 0`
	args := append([]string{"-c", script, "watchdog", strconv.Itoa(os.Getpid())}, pids...)
	args = append(append(args, "--"), dirs...)
	cmd := exec.Command("/bin/sh", args...)
	// Its own process group: a ^C reaches this process (which stops the
	// control plane itself) but not the watchdog, which then has nothing
	// left to do. No stdio: go test waits for its output pipes to close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
}

// needEnv skips t when there is no control plane, and returns a context
// bounded to a minute.
func needEnv(t *testing.T) context.Context {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace makes a namespace for t alone (envtest has no namespace
// controller, so it is not deleted afterwards; the control plane goes away
// with the test binary anyway).
func newNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "raft-test-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}
