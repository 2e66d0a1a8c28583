package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/internal/clitest"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

func flagSet() *flag.FlagSet { fs, _ := newFlagSet(); return fs }

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	clitest.CheckHelp(t, "mutants", description, flagSet, "-", func(f *flag.Flag) string { return f.DefValue })
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	clitest.CheckBadArgs(t, "mutants", []string{"--no-such-flag"}, []string{"stray"}, []string{"-raft-seeds", "0"})
}

// The committed catalog loads, and every snippet matches the tree exactly
// once: a code change that moves a mutant's lines fails here, in make test,
// not only in the gate.
func TestCatalogMatchesTheTree(t *testing.T) {
	root := filepath.Join("..", "..")
	c, err := LoadCatalog(filepath.Join(root, "mutants", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mutants) < 14 {
		t.Errorf("%d mutants; the gate wants at least 14", len(c.Mutants))
	}
	if err := c.CheckAgainst(root); err != nil {
		t.Error(err)
	}
}

func TestApplyNeedsExactlyOneMatch(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.go"), []byte("a := 1\nb := 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		old  string
		want string // "" for success
	}{
		{"c := 1", "occurs 0 times"},
		{":= 1", "occurs 2 times"},
		{"a := 1", ""},
	} {
		m := Mutant{Name: "m", Description: "d", Edit: Edit{File: "f.go", Old: tc.old, New: "a := 2"}}
		err := m.Apply(dir)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("old %q: %v", tc.old, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mutant m")):
			t.Errorf("old %q: error %v, want one naming the mutant and saying %q", tc.old, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f.go")); string(b) != "a := 2\nb := 1\n" {
		t.Errorf("after the edit: %q", b)
	}
}

func TestLoadCatalogRejectsBadEntries(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"unknown field": "mutants:\n  - name: a\n    description: d\n    file: f\n    old: x\n    new: y\n    typo: z\n",
		"duplicate":     "mutants:\n  - {name: a, description: d, file: f, old: x, new: y}\n  - {name: a, description: d, file: f, old: x, new: z}\n",
		"no change":     "mutants:\n  - {name: a, description: d, file: f, old: x, new: x}\n",
		"empty":         "mutants: []\n",
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCatalog(p); err == nil {
			t.Errorf("%s: loaded without an error", name)
		}
	}
}

// A check that hangs is killed, with its whole process group, at its
// timeout, and reported as timed out rather than as failed.
func TestRunKillsAtTimeout(t *testing.T) {
	start := time.Now()
	_, timedOut, err := run(context.Background(), 200*time.Millisecond, t.TempDir(), []string{"sh", "-c", "sleep 30 & sleep 30"}, nil)
	if !timedOut || err == nil {
		t.Fatalf("timedOut %v, err %v; want a timeout", timedOut, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("returned after %v", d)
	}
	if _, timedOut, err := run(context.Background(), time.Minute, t.TempDir(), []string{"sh", "-c", "exit 3"}, nil); timedOut || err == nil {
		t.Fatalf("exit 3: timedOut %v, err %v; want a failure without a timeout", timedOut, err)
	}
}

// The variables that pick a check's seeds, failure limit or faults never
// reach a check from the caller's environment: only the gate's own do.
func TestGoEnvStripsSeedVariables(t *testing.T) {
	for _, kv := range [][2]string{
		{"RAFT_SEED", "7"}, {"RAFT_SEEDS", "2"}, {"RAFT_SEED_BASE", "100"}, {"DISK_SEED", "3"},
		{"DISK_SEED_BASE", "50"}, {"RECONFIG_SEED", "9"}, {"SIM_SEEDS", "1"}, {"SIM_SEED_BASE", "4"},
		{"RUNNER_RANDOM_SEEDS", "1"}, {"RAFT_MAX_FAILURES", "9"}, {"RAFT_KV_FAULTS", "drop"},
		{"MUTANTS_KEEP_ME", "1"},
	} {
		t.Setenv(kv[0], kv[1])
	}
	out, _, err := run(context.Background(), time.Minute, t.TempDir(), []string{"env"}, []string{"RAFT_SEEDS=1000", "RAFT_MAX_FAILURES=3"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = append(got[k], v)
		}
	}
	for _, k := range []string{"RAFT_SEED", "RAFT_SEED_BASE", "DISK_SEED", "DISK_SEED_BASE", "RECONFIG_SEED",
		"SIM_SEEDS", "SIM_SEED_BASE", "RUNNER_RANDOM_SEEDS", "RAFT_KV_FAULTS"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s=%v reached the check", k, v)
		}
	}
	if v := got["RAFT_SEEDS"]; len(v) != 1 || v[0] != "1000" {
		t.Errorf("RAFT_SEEDS = %v, want the gate's 1000 only", v)
	}
	if v := got["RAFT_MAX_FAILURES"]; len(v) != 1 || v[0] != "3" {
		t.Errorf("RAFT_MAX_FAILURES = %v, want the gate's 3 only", v)
	}
	if v := got["MUTANTS_KEEP_ME"]; len(v) != 1 || v[0] != "1" {
		t.Errorf("an unrelated variable was dropped: %v", v)
	}
}

func TestSeedRulesClassify(t *testing.T) {
	classify := seedRules(raftcoreSafety, raftcoreLiveness)
	for _, tc := range []struct {
		out   string
		class Class
		seed  int
	}{
		{"    random_test.go:52: seed 19: step 150: [commit of an earlier term: ...]\n", ClassSafety, 19},
		{"seed 10: no progress after healing: memcluster: condition not reached\n", ClassLiveness, 10},
		// A liveness seed first does not hide a later safety one.
		{"seed 4: no progress after healing: x\nseed 9: after healing: [double vote: ...]\n", ClassSafety, 9},
		{"seed 3: reads not answered after healing, 40 rounds\n", ClassLiveness, 3},
		{"seed 5: memcluster: unknown node\n", ClassFailure, 5},
		{"panic: runtime error: index out of range [3] with length 3\n", ClassPanic, 0},
		{"panic: raftcore: invariant: commit went back\n", ClassPanicInvariant, 0},
		{"panic: test timed out after 3m0s\n", ClassTimeout, 0},
	} {
		f := classify("", tc.out)
		if f.class != tc.class || f.seed != tc.seed {
			t.Errorf("%q: class %s seed %d, want %s seed %d", tc.out, f.class, f.seed, tc.class, tc.seed)
		}
	}
	rf := seedRules(reconfigSafety, reconfigLiveness)
	if f := rf("", "bugs_test.go:49: seed 0: the safe driver did not act: wait\n"); f.class != ClassLiveness {
		t.Errorf("a driver that did not act: %s, want liveness", f.class)
	}
	if f := rf("", "seed 59: EnterJoint voters=(a b) @112 promotes kv-4 with match 0 of 113 (reachable true)\n"); f.class != ClassSafety || f.seed != 59 {
		t.Errorf("a lagging promotion: %+v, want safety at seed 59", f)
	}
}

// fakeTree is a module whose test TestProp breaks "safety" when F returns
// 2 and only "liveness" when it returns 3; TestOther always passes.
var fakeTree = map[string][]byte{
	"go.mod": []byte("module example.com/fake\n\ngo 1.21\n"),
	"p/p.go": []byte("package p\n\nfunc F() int { return 1 }\n"),
	"p/p_test.go": []byte(`package p

import "testing"

func TestProp(t *testing.T) {
	switch F() {
	case 2:
		t.Errorf("seed 2: no progress after healing: stuck")
		t.Errorf("seed 5: step 7: [double vote: n1]")
	case 3:
		t.Errorf("seed 1: no progress after healing: stuck")
	}
}

func TestOther(t *testing.T) {}
`),
}

func fakeGate(t *testing.T, tests []string) *gate {
	t.Helper()
	bt := buildTarget{"p.test", "./p", true}
	return &gate{files: fakeTree, budget: Budget{Timeout: 2 * time.Minute}, log: io.Discard,
		checkList: func(string) []check {
			return []check{{name: "fake", build: bt, tests: tests, classify: seedRules(raftcoreSafety, raftcoreLiveness),
				args: goTestArgs(2*time.Minute, "p", tests, "", 0)}}
		}}
}

// A check whose -test.run matches a test that no longer exists does not
// pass: "no tests to run" exits 0, so the gate checks that every test it
// names started.
func TestControlFailsWhenAnExpectedTestDidNotRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary")
	}
	if o := fakeGate(t, []string{"TestProp", "TestOther"}).runTree(context.Background(), nil); o.Status != "passed" {
		t.Fatalf("control with every test present: %s %s", o.Status, o.Detail)
	}
	o := fakeGate(t, []string{"TestProp", "TestRenamed"}).runTree(context.Background(), nil)
	if o.Status != "error" || !strings.Contains(o.Detail, "TestRenamed") {
		t.Fatalf("control naming a missing test: status %s, detail %q; want an error naming TestRenamed", o.Status, o.Detail)
	}
	m := &Mutant{Name: "m", Description: "d", Edit: Edit{File: "p/p.go", Old: "return 1", New: "return 1 + 0"}}
	if o := fakeGate(t, []string{"TestProp", "TestRenamed"}).runTree(context.Background(), m); o.Status != "error" {
		t.Fatalf("a passing mutant run naming a missing test: status %s, want error", o.Status)
	}
}

// A mutant is caught by safety only: a liveness failure alone is reported
// as liveness-only, which fails the gate.
func TestOnlySafetyCatches(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test binary")
	}
	g := fakeGate(t, []string{"TestProp", "TestOther"})
	safety := &Mutant{Name: "s", Description: "d", Edit: Edit{File: "p/p.go", Old: "return 1", New: "return 2"}}
	if o := g.runTree(context.Background(), safety); o.Status != "caught" || o.Class != ClassSafety || o.FirstSeed != 5 || o.CaughtBy != "fake" {
		t.Errorf("safety mutant: %+v; want caught by fake, class safety, seed 5", o)
	}
	live := &Mutant{Name: "l", Description: "d", Edit: Edit{File: "p/p.go", Old: "return 1", New: "return 3"}}
	if o := g.runTree(context.Background(), live); o.Status != "liveness-only" || o.Class != ClassLiveness {
		t.Errorf("liveness mutant: %+v; want liveness-only", o)
	}
}
