package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"

	v1 "github.com/raftlab/raftlab/operator/api/v1"
)

var testEnv env.Environment

// namespace is the suite's own namespace, made at the start and deleted at
// the end.
var namespace string

func TestMain(m *testing.M) {
	kc := os.Getenv("RAFTLAB_E2E_KUBECONFIG")
	if kc == "" {
		if os.Getenv("RAFTLAB_REQUIRE_E2E") == "1" {
			fmt.Fprintln(os.Stderr, "e2e: RAFTLAB_REQUIRE_E2E=1 but RAFTLAB_E2E_KUBECONFIG is not set: run make e2e")
			os.Exit(1)
		}
		fmt.Println("e2e: skipped (no cluster): make e2e runs it, or set RAFTLAB_E2E_KUBECONFIG to a cluster with the operator deployed")
		os.Exit(0)
	}
	cfg := envconf.NewWithKubeConfig(kc)
	if err := v1.AddToScheme(cfg.Client().Resources().GetScheme()); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	namespace = envconf.RandomName("raftlab-e2e", 16)
	testEnv = env.NewWithConfig(cfg)
	testEnv.Setup(envfuncs.CreateNamespace(namespace), operatorAvailable)
	testEnv.Finish(envfuncs.DeleteNamespace(namespace))
	os.Exit(testEnv.Run(m))
}

// operatorAvailable fails the suite early, with what to do, when the
// operator is not running.
func operatorAvailable(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
	return ctx, waitOperator(ctx, cfg)
}
