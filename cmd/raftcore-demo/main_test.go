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
			t.Errorf("raftcore-demo %s: exit %d, stderr %q; want 0 and none", arg, code, stderr)
		}
		for _, s := range []string{description, "Usage:\n  raftcore-demo ", "Flags:\n"} {
			if !strings.Contains(stdout, s) {
				t.Errorf("raftcore-demo %s: output lacks %q:\n%s", arg, s, stdout)
			}
		}
		clitest.CheckFlagsListed(t, "raftcore-demo "+arg, stdout, flagSet(), "-", shownDefault)
	}
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"stray"}} {
		stdout, stderr, code := runBinary(t, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "raftcore-demo: ") {
			t.Errorf("raftcore-demo %v: exit %d, stdout %q, stderr %q; want 2 and one line on stderr", args, code, stdout, stderr)
		}
	}
}

func flagSet() *flag.FlagSet { fs, _, _ := newFlagSet(); return fs }

func shownDefault(f *flag.Flag) string { return f.DefValue }

func TestHelpDefaults(t *testing.T) {
	stdout, _, _ := runBinary(t, "-h")
	if !strings.Contains(stdout, "-seeds int\n        seeds per scenario and mode (positive)\n        default: 200\n") {
		t.Errorf("raftcore-demo -h lacks -seeds' default:\n%s", stdout)
	}
	if _, stderr, code := runBinary(t, "-seeds", "0"); code != 2 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("raftcore-demo -seeds 0: exit %d, stderr %q", code, stderr)
	}
}
