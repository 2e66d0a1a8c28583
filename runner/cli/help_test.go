package cli

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestHelpExitsZero: --help and -h of runner and of every subcommand exit 0
// and print what the command does and every flag with its default.
func TestHelpExitsZero(t *testing.T) {
	root := newRoot(context.Background(), io.Discard, io.Discard)
	cmds := append(root.Commands(), root)
	seen := map[string]bool{}
	for _, c := range cmds {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		seen[c.Name()] = true
		var args []string
		if c != root {
			args = []string{c.Name()}
		}
		desc := c.Long
		if desc == "" {
			t.Errorf("runner %s has no Long description", c.Name())
			desc = c.Short
		}
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := runCLI(t, append(args, h)...)
			if code != ExitMet {
				t.Errorf("runner %v %s: exit %d, want 0; stderr %q", args, h, code, errOut)
			}
			if !strings.Contains(out, desc) || !strings.Contains(out, "Usage:") {
				t.Errorf("runner %v %s: output lacks the description or usage:\n%s", args, h, out)
			}
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(out, "--"+f.Name+" ") {
					t.Errorf("runner %v %s: output lacks --%s", args, h, f.Name)
				}
				if def := shownDefault(f); def != "" && !strings.Contains(out, def) {
					t.Errorf("runner %v %s: output lacks --%s's default %s", args, h, f.Name, def)
				}
			})
		}
	}
	for _, name := range []string{"runner", "apply", "sweep", "validate"} {
		if !seen[name] {
			t.Errorf("no command %s", name)
		}
	}
	// The defaults a user relies on, spelled out.
	code, out, _ := runCLI(t, "apply", "--help")
	for _, want := range []string{`(default "local")`, "(default 1m0s)", "default results/<experiment>/<run-id>", "default: build ./cmd/raft-kv"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("runner apply --help lacks %q", want)
		}
	}
	code, out, _ = runCLI(t, "sweep", "-h")
	for _, want := range []string{`(default "sim")`, "(default 100)", "(default 1)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("runner sweep -h lacks %q", want)
		}
	}
}

// shownDefault is how cobra shows a flag's non-zero default.
func shownDefault(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "[]", "0s":
		return ""
	}
	if f.Value.Type() == "string" {
		return `(default "` + f.DefValue + `")`
	}
	return "(default " + f.DefValue + ")"
}

func TestBadFlagExits2(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"apply", "--no-such-flag", "x.yaml"}, {"sweep", "--seeds", "x", "x.yaml"}} {
		code, out, errOut := runCLI(t, args...)
		if code != ExitInvalid || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Errorf("runner %v: exit %d, stdout %q, stderr %q; want 2 and one line on stderr", args, code, out, errOut)
		}
	}
}
