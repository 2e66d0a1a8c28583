package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/clitest"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	clitest.CheckHelp(t, "raftcore-demo", description, flagSet, "-", shownDefault)
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	clitest.CheckBadArgs(t, "raftcore-demo", []string{"--no-such-flag"}, []string{"stray"})
}

func flagSet() *flag.FlagSet { fs, _, _ := newFlagSet(); return fs }

func shownDefault(f *flag.Flag) string { return f.DefValue }

func TestHelpDefaults(t *testing.T) {
	stdout, _, _ := clitest.Run(t, "-h")
	if !strings.Contains(stdout, "-seeds int\n        seeds per scenario and mode (positive)\n        default: 200\n") {
		t.Errorf("raftcore-demo -h lacks -seeds' default:\n%s", stdout)
	}
	if _, stderr, code := clitest.Run(t, "-seeds", "0"); code != 2 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("raftcore-demo -seeds 0: exit %d, stderr %q", code, stderr)
	}
}
