package main

import (
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/clitest"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

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
		stdout, stderr, code := clitest.Run(t, tc.args...)
		if code != 0 {
			t.Errorf("runner %v: exit %d, want 0; stderr %q", tc.args, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("runner %v: output lacks %q:\n%s", tc.args, w, stdout)
			}
		}
	}
	if _, stderr, code := clitest.Run(t, "--no-such-flag"); code != 2 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("runner --no-such-flag: exit %d, stderr %q; want 2 and one line", code, stderr)
	}
}
