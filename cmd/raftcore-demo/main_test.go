package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runMainEnv, set in a re-executed test binary, makes it run main instead
// of the tests, so the tests see the real exit code.
const runMainEnv = "RAFTLAB_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
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
		fs := flagSet()
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			n++
			typ, usage := flag.UnquoteUsage(f)
			if typ != "" {
				typ = " " + typ
			}
			want := "\n  -" + f.Name + typ + "\n        " + usage + "\n        default: " + shownDefault(f) + "\n"
			if !strings.Contains(stdout, want) {
				t.Errorf("raftcore-demo %s: output lacks %q", arg, want)
			}
		})
		if n == 0 || strings.Count(stdout, "\n        default: ") != n {
			t.Errorf("raftcore-demo %s: %d defaults shown, %d flags", arg, strings.Count(stdout, "\n        default: "), n)
		}
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
