package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/clitest"
	"github.com/raftlab/raftlab/internal/cliusage"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	clitest.CheckHelp(t, "raft-operator", description, flagSet, "--", func(f *flag.Flag) string { return cliusage.Default(f, defaultNotes) })
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	clitest.CheckBadArgs(t, "raft-operator", []string{"--no-such-flag"}, []string{"stray"})
}

// Without a cluster to talk to, it says so and how to give it one, and
// exits 1.
func TestNoClusterExitsOneWithAHint(t *testing.T) {
	t.Setenv("KUBECONFIG", t.TempDir()+"/missing")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("HOME", t.TempDir())
	_, stderr, code := clitest.Run(t, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	if code != 1 || !strings.Contains(stderr, "raft-operator: ") || !strings.Contains(stderr, "KUBECONFIG") {
		t.Fatalf("exit %d, stderr %q; want 1 and a hint naming KUBECONFIG", code, stderr)
	}
}

func flagSet() *flag.FlagSet { fs, _ := newFlagSet(); return fs }
