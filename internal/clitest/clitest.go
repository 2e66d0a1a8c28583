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
