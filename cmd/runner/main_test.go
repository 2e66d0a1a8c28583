package main

import (
	"bytes"
	"errors"
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

// TestHelpExitsZero: the binary's --help and -h, and its subcommands',
// exit 0 and describe the command (runner/cli tests every flag and default).
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"runner plays declarative experiments", "apply", "sweep", "validate"}},
		{[]string{"-h"}, []string{"runner plays declarative experiments"}},
		{[]string{"apply", "--help"}, []string{"apply plays one experiment file", "--backend string", `(default "local")`}},
		{[]string{"apply", "-h"}, []string{"apply plays one experiment file", "--check-timeout duration"}},
		{[]string{"sweep", "--help"}, []string{"sweep runs one experiment file", "--seeds uint", "(default 100)"}},
		{[]string{"validate", "-h"}, []string{"validate parses each file", "--set stringArray"}},
		{[]string{"help", "apply"}, []string{"apply plays one experiment file"}},
	} {
		stdout, stderr, code := runBinary(t, tc.args...)
		if code != 0 {
			t.Errorf("runner %v: exit %d, want 0; stderr %q", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("runner %v: output lacks %q:\n%s", tc.args, w, stdout)
			}
		}
	}
	if _, stderr, code := runBinary(t, "--no-such-flag"); code != 2 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("runner --no-such-flag: exit %d, stderr %q; want 2 and one line", code, stderr)
	}
}
