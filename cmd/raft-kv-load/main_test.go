package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/clitest"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	clitest.CheckHelp(t, "raft-kv-load", description, flagSet, "--", shownDefault)
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	clitest.CheckBadArgs(t, "raft-kv-load", []string{"--no-such-flag"}, []string{"stray"})
}

func flagSet() *flag.FlagSet { fs, _ := newFlagSet(); return fs }

func shownDefault(f *flag.Flag) string {
	if d, ok := defaultNotes[f.Name]; ok {
		return d
	}
	return f.DefValue
}

func TestHelpDefaults(t *testing.T) {
	stdout, _, _ := clitest.Run(t, "-h")
	for _, want := range []string{"--clients int\n        concurrent clients\n        default: 64\n",
		"--duration duration\n        measured duration\n        default: 10s\n",
		"--dir directory\n        data directory for --spawn\n        default: a temporary directory, removed after\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("raft-kv-load -h lacks %q", want)
		}
	}
}
