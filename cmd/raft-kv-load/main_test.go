package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/clitest"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return clitest.Run(t, args...)
}

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		stdout, stderr, code := runBinary(t, arg)
		if code != 0 || stderr != "" {
			t.Errorf("raft-kv-load %s: exit %d, stderr %q; want 0 and none", arg, code, stderr)
		}
		for _, s := range []string{description, "Usage:\n  raft-kv-load ", "Flags:\n"} {
			if !strings.Contains(stdout, s) {
				t.Errorf("raft-kv-load %s: output lacks %q:\n%s", arg, s, stdout)
			}
		}
		clitest.CheckFlagsListed(t, "raft-kv-load "+arg, stdout, flagSet(), "--", shownDefault)
	}
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"stray"}} {
		stdout, stderr, code := runBinary(t, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "raft-kv-load: ") {
			t.Errorf("raft-kv-load %v: exit %d, stdout %q, stderr %q; want 2 and one line on stderr", args, code, stdout, stderr)
		}
	}
}

func flagSet() *flag.FlagSet { fs, _ := newFlagSet(); return fs }

func shownDefault(f *flag.Flag) string {
	if d, ok := defaultNotes[f.Name]; ok {
		return d
	}
	return f.DefValue
}

func TestHelpDefaults(t *testing.T) {
	stdout, _, _ := runBinary(t, "-h")
	for _, want := range []string{"--clients int\n        concurrent clients\n        default: 64\n",
		"--duration duration\n        measured duration\n        default: 10s\n",
		"--dir directory\n        data directory for --spawn\n        default: a temporary directory, removed after\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("raft-kv-load -h lacks %q", want)
		}
	}
}
