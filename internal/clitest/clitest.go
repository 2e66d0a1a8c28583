// Package clitest runs a command's main in a child process from its own
// test binary, so that tests see the real exit code, stdout and stderr
// without building the binary.
package clitest

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
// of the tests.
const runMainEnv = "RAFTLAB_TEST_RUN_MAIN"

// Main is the package's TestMain: in the child it runs main (and exits 0 if
// main returns), otherwise the tests.
func Main(m *testing.M, main func()) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Run runs the command's main in a child process with args.
func Run(t *testing.T, args ...string) (stdout, stderr string, code int) {
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

// CheckFlagsListed fails t unless help lists every flag of fs, each with
// its description and the default defaultOf gives, in the form of
// cliusage.PrintFlags (dash is "-" or "--"), and shows no other defaults.
func CheckFlagsListed(t *testing.T, cmd, help string, fs *flag.FlagSet, dash string, defaultOf func(*flag.Flag) string) {
	t.Helper()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			typ = " " + typ
		}
		want := "\n  " + dash + f.Name + typ + "\n        " + usage + "\n        default: " + defaultOf(f) + "\n"
		if !strings.Contains(help, want) {
			t.Errorf("%s: help lacks %q", cmd, want)
		}
	})
	if shown := strings.Count(help, "\n        default: "); n == 0 || shown != n {
		t.Errorf("%s: %d defaults shown, %d flags", cmd, shown, n)
	}
}

// CheckHelp fails t unless --help, -h and -help each exit 0 with nothing on
// stderr and print the description, a "Usage:" line for the command, a
// "Flags:" list and every flag of fs with its default (CheckFlagsListed).
func CheckHelp(t *testing.T, cmd, description string, fs func() *flag.FlagSet, dash string, defaultOf func(*flag.Flag) string) {
	t.Helper()
	for _, arg := range []string{"--help", "-h", "-help"} {
		stdout, stderr, code := Run(t, arg)
		if code != 0 || stderr != "" {
			t.Errorf("%s %s: exit %d, stderr %q; want 0 and none", cmd, arg, code, stderr)
		}
		for _, s := range []string{description, "Usage:\n  " + cmd + " ", "Flags:\n"} {
			if !strings.Contains(stdout, s) {
				t.Errorf("%s %s: output lacks %q:\n%s", cmd, arg, s, stdout)
			}
		}
		CheckFlagsListed(t, cmd+" "+arg, stdout, fs(), dash, defaultOf)
	}
}

// CheckBadArgs fails t unless each argument list exits 2 with nothing on
// stdout and one line on stderr that begins with "cmd: ".
func CheckBadArgs(t *testing.T, cmd string, argLists ...[]string) {
	t.Helper()
	for _, args := range argLists {
		stdout, stderr, code := Run(t, args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, cmd+": ") {
			t.Errorf("%s %v: exit %d, stdout %q, stderr %q; want 2 and one line on stderr", cmd, args, code, stdout, stderr)
		}
	}
}
