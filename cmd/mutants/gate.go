package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Budget is how much evidence each check gathers: seeds per randomized test
// and sweep, and the wall-clock bound of one check.
type Budget struct {
	RaftSeeds     int           `json:"raftSeeds"`
	Figure8Seeds  int           `json:"figure8Seeds"`
	DiskSeeds     int           `json:"diskSeeds"`
	ReconfigSeeds int           `json:"reconfigSeeds"`
	SweepSeeds    int           `json:"sweepSeeds"`
	Timeout       time.Duration `json:"timeoutNs"`
}

// check is one piece of the project's safety evidence: a command run in a
// tree, which exits non-zero when it sees a violation. Only checks that
// assert invariants are here (the memcluster Checker, linearizability,
// durability), never golden-output tests, which any change fails.
type check struct {
	name string
	// build is the binary the check needs, built once per tree.
	build buildTarget
	// seeds is the check's seed budget (0: one run of a file's own seed).
	seeds int
	// tests, for a Go test binary, are the tests it must run (-test.run
	// matches exactly these): a run in which one of them did not start
	// (=== RUN) is an error, never a pass, so that a renamed test cannot
	// turn the check into "no tests to run".
	tests []string
	// args gives the command line; classify reads a failing run's output
	// (and the tree): what kind of failure, and the first seed showing it.
	args     func(tree, bin string) (dir string, argv, env []string)
	classify classifyFunc
}

// buildTarget is a test binary (`go test -c`) or a command (`go build`).
type buildTarget struct {
	name, pkg string
	test      bool
}

var (
	raftcoreTest = buildTarget{"raftcore.test", "./raftcore", true}
	diskTest     = buildTarget{"disk.test", "./raftcore/disk", true}
	reconfigTest = buildTarget{"reconfig.test", "./reconfig", true}
	kvsmTest     = buildTarget{"sm.test", "./kvserver/sm", true}
	runnerBin    = buildTarget{"runner", "./cmd/runner", false}
)

// Seeds run from 1: the gate's checks get no *_SEED_BASE (goEnv), so a
// seed printed by a failing test is its ordinal too.

// checks lists the evidence cheapest first. The experiment library is
// expanded per file when the tree is known, since files come and go.
func checks(b Budget) []check {
	goTest := func(dir string, tests []string, envVar string, seeds int) func(tree, bin string) (string, []string, []string) {
		return goTestArgs(b.Timeout, dir, tests, envVar, seeds)
	}
	diskTests := []string{"TestCrashRecovery", "TestCrashDuringSegmentCreation", "TestUnfinishedLastSegmentKeepsEarlierOnes"}
	kvTests := []string{"TestSessionWindowModel", "TestApplyAndExactlyOnce"}
	reconfigTests := []string{"TestDriverRandomized", "TestBugScenariosThroughTheDriver"}
	sweepOut := func(tree string) string { return filepath.Join(tree, "results", "mutants-sweep") }
	return []check{
		{name: "disk-crash", build: diskTest, seeds: b.DiskSeeds, tests: diskTests, classify: modelCheck(0),
			args: goTest("raftcore/disk", diskTests, "DISK_SEEDS", b.DiskSeeds)},
		// The session table against a model of exactly-once answers
		// (random retries, gaps, sliding windows, snapshot restores).
		{name: "kv-sessions-model", build: kvsmTest, tests: kvTests, classify: modelCheck(1),
			args: goTest("kvserver/sm", kvTests, "", 0)},
		{name: "raftcore-randomized", build: raftcoreTest, seeds: b.RaftSeeds, tests: []string{"TestRandomized"},
			classify: seedRules(raftcoreSafety, raftcoreLiveness),
			args:     goTest("raftcore", []string{"TestRandomized"}, "RAFT_SEEDS", b.RaftSeeds)},
		{name: "raftcore-figure8", build: raftcoreTest, seeds: b.Figure8Seeds, tests: []string{"TestRandomizedFigure8"},
			classify: seedRules(raftcoreSafety, raftcoreLiveness),
			args:     goTest("raftcore", []string{"TestRandomizedFigure8"}, "RAFT_SEEDS", b.Figure8Seeds)},
		{name: "reconfig-randomized", build: reconfigTest, seeds: b.ReconfigSeeds, tests: reconfigTests,
			classify: seedRules(reconfigSafety, reconfigLiveness),
			args:     goTest("reconfig", reconfigTests, "RECONFIG_SEEDS", b.ReconfigSeeds)},
		{name: "sweep-random-faults", build: runnerBin, seeds: b.SweepSeeds,
			classify: func(tree, out string) finding { return runnerFindings(sweepOut(tree), out) },
			args: func(tree, bin string) (string, []string, []string) {
				return tree, []string{bin, "sweep", "experiments/random-faults.yaml", "--backend", "sim",
					"--seeds", strconv.Itoa(b.SweepSeeds), "-q", "--out", sweepOut(tree)}, nil
			}},
	}
}

// goTestArgs runs the tests of a test binary in dir (relative to the tree),
// with envVar (if any) set to its seed budget. Every listed test runs (no
// -test.failfast), verbosely, so that the gate sees each one start and
// classifies every failure.
func goTestArgs(timeout time.Duration, dir string, tests []string, envVar string, seeds int) func(tree, bin string) (string, []string, []string) {
	return func(tree, bin string) (string, []string, []string) {
		var env []string
		if envVar != "" {
			// A few failing seeds, not one: a seed that stops making
			// progress (liveness) must not hide a later one that breaks
			// safety.
			env = []string{envVar + "=" + strconv.Itoa(seeds), "RAFT_MAX_FAILURES=" + strconv.Itoa(maxFailures)}
		}
		return filepath.Join(tree, dir), []string{bin, "-test.run", testPattern(tests), "-test.count=1", "-test.v", "-test.timeout", timeout.String()}, env
	}
}

// maxFailures is the RAFT_MAX_FAILURES of the gate's randomized tests.
const maxFailures = 3

// testPattern is the -test.run pattern matching exactly tests.
func testPattern(tests []string) string {
	qs := make([]string, len(tests))
	for i, t := range tests {
		qs[i] = regexp.QuoteMeta(t)
	}
	return "^(" + strings.Join(qs, "|") + ")$"
}

// experimentChecks is the experiment library in safe mode on the simulator,
// one check per file of the tree's experiments/.
func experimentChecks(tree string) []check {
	files, _ := filepath.Glob(filepath.Join(tree, "experiments", "*.yaml"))
	sort.Strings(files)
	var out []check
	for _, f := range files {
		rel := "experiments/" + filepath.Base(f)
		outDir := func(tree string) string { return filepath.Join(tree, "results", "mutants-apply", filepath.Base(rel)) }
		out = append(out, check{name: "experiment:" + filepath.Base(f), build: runnerBin,
			classify: func(tree, out string) finding { return runnerFindings(outDir(tree), out) },
			args: func(tree, bin string) (string, []string, []string) {
				return tree, []string{bin, "apply", rel, "--backend", "sim", "--set", "cluster.safetyMode=safe", "-q",
					"--out", outDir(tree)}, nil
			}})
	}
	return out
}

// Outcome is what one tree did under the evidence.
type Outcome struct {
	Mutant      string `json:"mutant"`
	Description string `json:"description,omitempty"`
	// Status is caught (a check saw a safety or invariant violation),
	// liveness-only, panic-only, timeout-only, failure-only (checks failed,
	// none by safety; named after the strongest class seen), survived
	// (every check passed), passed (the control), catalog-error or error.
	Status string `json:"status"`
	// CaughtBy and Class: the first check that caught the mutant and its
	// class (for a mutant not caught, the first failing check).
	CaughtBy  string  `json:"caughtBy,omitempty"`
	Class     Class   `json:"class,omitempty"`
	FirstSeed int     `json:"seedsToFirstCatch,omitempty"`
	Seconds   float64 `json:"seconds"`
	Detail    string  `json:"detail,omitempty"`
	// Failures is every check that failed, in the order they ran (with
	// -all, every check ran).
	Failures []CheckFailure `json:"failures,omitempty"`
	// Checks is, for the control, how long each check took.
	Checks map[string]float64 `json:"checks,omitempty"`
}

// CheckFailure is one failing check of a tree.
type CheckFailure struct {
	Check     string  `json:"check"`
	Class     Class   `json:"class"`
	FirstSeed int     `json:"firstSeed,omitempty"`
	Detail    string  `json:"detail,omitempty"`
	Seconds   float64 `json:"seconds"`
}

// gate runs trees: the source tree copied, mutated or not.
type gate struct {
	src string
	// files is the source tree as read once at the start: the control and
	// every mutant run on the same snapshot, even while the work tree
	// changes under the gate.
	files   map[string][]byte
	budget  Budget
	log     io.Writer
	logsDir string
	// all runs every check of a mutant instead of stopping at the first
	// that catches it.
	all bool
	// checkList gives the checks of a tree (nil: checks and
	// experimentChecks).
	checkList func(tree string) []check
	// deps holds, per build target, the directories (relative to the
	// tree's root) of every package linked into it, tests included.
	deps map[string]map[string]bool
}

// loadDeps lists the packages each check's binary is built from, so that a
// check that cannot see a mutant (kvserver/sm is not in raftcore's tests) is
// skipped rather than run for nothing.
func (g *gate) loadDeps(ctx context.Context) error {
	g.deps = map[string]map[string]bool{}
	for _, bt := range []buildTarget{raftcoreTest, diskTest, reconfigTest, kvsmTest, runnerBin} {
		argv := []string{"go", "list", "-deps", "-f", "{{.Dir}}", bt.pkg}
		if bt.test {
			argv = []string{"go", "list", "-deps", "-test", "-f", "{{.Dir}}", bt.pkg}
		}
		out, _, err := run(ctx, g.budget.Timeout, g.src, argv, nil)
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(out, 10))
		}
		abs, err := filepath.Abs(g.src)
		if err != nil {
			return err
		}
		set := map[string]bool{}
		for _, d := range strings.Split(strings.TrimSpace(out), "\n") {
			if rel, err := filepath.Rel(abs, d); err == nil && !strings.HasPrefix(rel, "..") {
				set[filepath.ToSlash(rel)] = true
			}
		}
		g.deps[bt.name] = set
	}
	return nil
}

// sees reports whether a check's binary is built from a file m edits.
func (g *gate) sees(c check, m *Mutant) bool {
	if m == nil || g.deps == nil {
		return true
	}
	for _, e := range m.Edits() {
		if g.deps[c.build.name][filepath.ToSlash(filepath.Dir(e.File))] {
			return true
		}
	}
	return false
}

// sourceFiles lists what a tree copy holds: the files git knows or would
// add (tracked and untracked but not ignored), without run outputs. It only
// reads the index.
func sourceFiles(src string) (map[string][]byte, error) {
	var names []string
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = src
	if out, err := cmd.Output(); err == nil {
		names = strings.Split(string(out), "\x00")
	} else {
		// Not a git work tree (a copy): every file but .git's.
		err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if rel, err := filepath.Rel(src, p); err == nil && !d.IsDir() {
				names = append(names, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	files := map[string][]byte{}
	for _, f := range names {
		if f == "" || strings.HasPrefix(f, "results/") || strings.HasPrefix(f, "bin/") {
			continue
		}
		if st, err := os.Lstat(filepath.Join(src, f)); err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return nil, err
		}
		files[f] = b
	}
	return files, nil
}

func (g *gate) copyTree() (string, error) {
	dir, err := os.MkdirTemp("", "raftlab-mutant-")
	if err != nil {
		return "", err
	}
	for f, b := range g.files {
		dst := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// goEnv is the environment of every command the gate runs: the caller's,
// without the variables that select what the checks do (seedVar), so that
// an exported RAFT_SEED or DISK_SEED_BASE cannot shrink or shift the
// evidence, then the gate's own. Builds of different scratch trees share
// the build cache: with -trimpath the absolute path of the tree is in no
// cache key, so only the mutated package and its dependents are compiled
// again.
func goEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !seedVar(name) {
			env = append(env, kv)
		}
	}
	return append(env, "GOFLAGS=-trimpath", "GOWORK=off", "GOTOOLCHAIN=local")
}

// seedVar reports whether an environment variable selects the seeds, the
// failure limit or the faults of a check: *_SEED, *_SEEDS, *_SEED_BASE,
// *_MAX_FAILURES and RAFT_KV_FAULTS.
func seedVar(name string) bool {
	for _, suffix := range []string{"_SEED", "_SEEDS", "_SEED_BASE", "_MAX_FAILURES"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return name == "RAFT_KV_FAULTS"
}

// run runs argv in dir with a timeout, killing its whole process group
// when it expires; output is stdout and stderr together.
func run(ctx context.Context, timeout time.Duration, dir string, argv, env []string) (output string, timedOut bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(goEnv(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	return buf.String(), ctx.Err() == context.DeadlineExceeded, err
}

// build compiles bt in tree; a failure is returned with the compiler's output.
func (g *gate) build(ctx context.Context, tree string, bt buildTarget) (string, error) {
	bin := filepath.Join(tree, ".mutants-bin", bt.name)
	argv := []string{"go", "build", "-o", bin, bt.pkg}
	if bt.test {
		argv = []string{"go", "test", "-c", "-o", bin, bt.pkg}
	}
	if out, _, err := run(ctx, g.budget.Timeout, tree, argv, nil); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(out, 30))
	}
	return bin, nil
}

// runTree copies the source, applies m (nil: the control), checks that it
// builds and runs the evidence until a check fails.
func (g *gate) runTree(ctx context.Context, m *Mutant) (o Outcome) {
	start := time.Now()
	o = Outcome{Mutant: "(control)"}
	if m != nil {
		o.Mutant, o.Description = m.Name, m.Description
	}
	defer func() { o.Seconds = time.Since(start).Seconds() }()
	tree, err := g.copyTree()
	if err != nil {
		o.Status, o.Detail = "error", err.Error()
		return o
	}
	defer os.RemoveAll(tree)
	if m != nil {
		if err := m.Apply(tree); err != nil {
			o.Status, o.Detail = "catalog-error", err.Error()
			return o
		}
	}
	// A mutant must build: one that does not is a catalog error, not a
	// catch. Building the packages it edits is enough (an edit of a body
	// cannot break the packages that import it), and much cheaper than the
	// whole tree, most of which the first check never needs.
	buildArgs := []string{"go", "build", "./..."}
	if m != nil {
		buildArgs = []string{"go", "build"}
		for _, e := range m.Edits() {
			if pkg := "./" + filepath.ToSlash(filepath.Dir(e.File)); !slices.Contains(buildArgs, pkg) {
				buildArgs = append(buildArgs, pkg)
			}
		}
	}
	if out, _, err := run(ctx, g.budget.Timeout, tree, buildArgs, nil); err != nil {
		o.Status, o.Detail = "catalog-error", "does not build: "+tail(out, 30)
		if m == nil {
			o.Status = "error"
		}
		return o
	}
	bins := map[string]string{}
	var all []check
	if g.checkList != nil {
		all = g.checkList(tree)
	} else {
		all = append(checks(g.budget), experimentChecks(tree)...)
	}
	if m == nil {
		o.Checks = map[string]float64{}
	}
	for _, c := range all {
		if !g.sees(c, m) {
			fmt.Fprintf(g.log, "  %-34s %-32s %6s skipped: built from no file the mutant edits\n", o.Mutant, c.name, "")
			continue
		}
		bin, ok := bins[c.build.name]
		if !ok {
			if bin, err = g.build(ctx, tree, c.build); err != nil {
				o.Status, o.Detail = "catalog-error", err.Error()
				if m == nil {
					o.Status = "error"
				}
				return o
			}
			bins[c.build.name] = bin
		}
		dir, argv, env := c.args(tree, bin)
		t0 := time.Now()
		out, timedOut, err := run(ctx, g.budget.Timeout, dir, argv, env)
		secs := time.Since(t0).Seconds()
		if ctx.Err() != nil {
			o.Status, o.Detail = "error", "interrupted"
			return o
		}
		// A run that passed without starting every test it names proves
		// nothing: the check is broken (a test renamed or removed).
		if missing := missingTests(c.tests, out); err == nil && len(missing) > 0 {
			fmt.Fprintf(g.log, "  %-34s %-32s %6.1fs ERROR: did not run %v\n", o.Mutant, c.name, secs, missing)
			g.saveLog(o.Mutant, c.name, argv, env, out)
			o.Status, o.CaughtBy = "error", c.name
			o.Detail = fmt.Sprintf("check %s passed without running %s (a renamed or removed test?): fix the gate's check", c.name, strings.Join(missing, ", "))
			return o
		}
		if m == nil {
			o.Checks[c.name] = secs
		}
		if err == nil {
			fmt.Fprintf(g.log, "  %-34s %-32s %6.1fs pass\n", o.Mutant, c.name, secs)
			continue
		}
		f := finding{class: ClassTimeout, detail: "timed out after " + g.budget.Timeout.String()}
		if !timedOut {
			f = c.classify(tree, out)
		}
		fmt.Fprintf(g.log, "  %-34s %-32s %6.1fs FAIL (%s)\n", o.Mutant, c.name, secs, f.class)
		g.saveLog(o.Mutant, c.name, argv, env, out)
		o.Failures = append(o.Failures, CheckFailure{Check: c.name, Class: f.class, FirstSeed: f.seed, Detail: f.detail, Seconds: secs})
		if m == nil {
			o.Status, o.CaughtBy, o.Class = "error", c.name, f.class
			o.Detail = "the unmutated tree fails this check: the gate is meaningless until it passes\n" + tail(out, 40)
			return o
		}
		if f.class.Catches() && o.Status != "caught" {
			o.Status, o.CaughtBy, o.Class, o.FirstSeed, o.Detail = "caught", c.name, f.class, f.seed, f.detail
		}
		if o.Status == "caught" && !g.all {
			return o
		}
	}
	switch {
	case m == nil:
		o.Status = "passed"
	case o.Status == "caught":
	case len(o.Failures) > 0:
		// Not caught: report the strongest failure seen, first of its class.
		best := o.Failures[0]
		for _, f := range o.Failures[1:] {
			if f.Class.rank() < best.Class.rank() {
				best = f
			}
		}
		o.Status, o.CaughtBy, o.Class, o.FirstSeed, o.Detail = string(best.Class)+"-only", best.Check, best.Class, best.FirstSeed, best.Detail
	default:
		o.Status = "survived"
	}
	return o
}

func (g *gate) saveLog(mutant, checkName string, argv, env []string, out string) {
	if g.logsDir == "" {
		return
	}
	name := strings.NewReplacer("(", "", ")", "", ":", "-", "/", "-").Replace(mutant + "." + checkName + ".log")
	head := fmt.Sprintf("# %s %s\n", strings.Join(env, " "), strings.Join(argv, " "))
	_ = os.WriteFile(filepath.Join(g.logsDir, name), []byte(head+tail(out, 400)), 0o644)
}

// firstFailure is the first line that says what broke.
func firstFailure(out string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "seed ") || strings.HasPrefix(l, "panic:") || strings.Contains(l, "NOT") ||
			strings.Contains(l, "violat") || strings.HasPrefix(l, "--- FAIL") {
			if strings.HasPrefix(l, "--- FAIL") {
				continue
			}
			return truncate(l, 200)
		}
	}
	return truncate(strings.TrimSpace(tail(out, 1)), 200)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// errSurvivors is returned when the gate fails.
var errSurvivors = errors.New("mutation gate failed")
