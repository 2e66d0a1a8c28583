package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raftlab/raftlab/internal/cliusage"
)

// description is the head of mutants --help.
const description = `mutants is raftlab's mutation gate: for every mutant of the catalog (a
named Raft bug written as an exact edit), it copies the tree to a scratch
folder, applies the mutant, builds it, and runs the safety evidence
cheapest first (disk crash tests, raftcore's randomized test, reconfig's
randomized driver test, a random-fault sweep on the simulator, the
experiment library in safe mode) until a check catches it: by a safety or
invariant violation only, never by liveness, a plain panic or a timeout. A
control run of the unmutated tree, which must pass every check, comes first.`

type options struct {
	catalog, src, out, only string
	control, all            bool
	budget                  Budget
}

func newFlagSet() (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("mutants", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.catalog, "catalog", "mutants/catalog.yaml", "the mutant catalog")
	fs.StringVar(&o.src, "src", ".", "the source tree (a git work tree) to copy and mutate")
	fs.StringVar(&o.out, "out", "results/mutants", "where table.txt, report.json and logs/ go")
	fs.StringVar(&o.only, "only", "", "comma-separated mutant names to run (default: all)")
	fs.BoolVar(&o.control, "control", true, "run the unmutated tree first; it must pass every check")
	fs.BoolVar(&o.all, "all", false, "run every check for every mutant instead of stopping at the first that catches it (the table then shows every check that fails)")
	fs.IntVar(&o.budget.DiskSeeds, "disk-seeds", 300, "seeds of the disk crash test (DISK_SEEDS)")
	fs.IntVar(&o.budget.RaftSeeds, "raft-seeds", 1000, "seeds of raftcore's randomized test (RAFT_SEEDS)")
	fs.IntVar(&o.budget.Figure8Seeds, "figure8-seeds", 500, "seeds of raftcore's Figure 8 schedules (RAFT_SEEDS of TestRandomizedFigure8)")
	fs.IntVar(&o.budget.ReconfigSeeds, "reconfig-seeds", 200, "seeds of reconfig's randomized tests (RECONFIG_SEEDS)")
	fs.IntVar(&o.budget.SweepSeeds, "sweep-seeds", 100, "seeds of the random-faults sweep on the simulator")
	fs.DurationVar(&o.budget.Timeout, "timeout", 3*time.Minute, "bound on one build or check")
	return fs, o
}

func usage(w io.Writer) {
	fs, _ := newFlagSet()
	fmt.Fprintf(w, "%s\n\nUsage:\n  mutants [flags]\n\n"+
		"Exit codes: 0 every mutant caught (or -help), 1 a mutant not caught by\n"+
		"safety (survived, liveness-only, ...), the control failed or the catalog\n"+
		"is broken, 2 on bad flags.\n\nFlags:\n", description)
	cliusage.PrintFlags(w, fs, "-", nil)
}

func parse(args []string, stdout, stderr io.Writer) (*options, int, bool) {
	fs, o := newFlagSet()
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return nil, 0, true
	case err != nil:
		fmt.Fprintf(stderr, "mutants: %v (see mutants -h)\n", err)
		return nil, 2, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "mutants: no arguments are taken, got %q (see mutants -h)\n", fs.Args())
		return nil, 2, true
	case o.budget.DiskSeeds <= 0 || o.budget.RaftSeeds <= 0 || o.budget.Figure8Seeds <= 0 || o.budget.ReconfigSeeds <= 0 || o.budget.SweepSeeds <= 0 || o.budget.Timeout <= 0:
		fmt.Fprintln(stderr, "mutants: seed budgets and -timeout must be positive (see mutants -h)")
		return nil, 2, true
	}
	return o, 0, false
}

func main() {
	o, code, done := parse(os.Args[1:], os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := gateMain(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "mutants: %v\n", err)
		os.Exit(1)
	}
}

func gateMain(ctx context.Context, o *options, w io.Writer) error {
	start := time.Now()
	cat, err := LoadCatalog(o.catalog)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	mutants := cat.Mutants
	if o.only != "" {
		names := strings.Split(o.only, ",")
		mutants = nil
		for _, m := range cat.Mutants {
			if slices.Contains(names, m.Name) {
				mutants = append(mutants, m)
			}
		}
		if len(mutants) != len(names) {
			return fmt.Errorf("-only %q names a mutant the catalog does not have", o.only)
		}
	}
	files, err := sourceFiles(o.src)
	if err != nil {
		return err
	}
	// The whole catalog is checked against the tree before anything runs.
	if err := cat.CheckAgainstFiles(func(f string) ([]byte, error) {
		if b, ok := files[f]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s: not in the source tree", f)
	}); err != nil {
		return fmt.Errorf("catalog %s is out of date with the tree:\n%w", o.catalog, err)
	}
	logsDir := filepath.Join(o.out, "logs")
	if err := os.RemoveAll(logsDir); err != nil {
		return err
	}
	if err := os.MkdirAll(logsDir, 0o755); err != nil {
		return err
	}
	g := &gate{src: o.src, files: files, budget: o.budget, log: w, logsDir: logsDir, all: o.all}
	if err := g.loadDeps(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "mutation gate: %d mutants, budget raft %d, figure8 %d, disk %d, reconfig %d, sweep %d seeds, timeout %v\n",
		len(mutants), o.budget.RaftSeeds, o.budget.Figure8Seeds, o.budget.DiskSeeds, o.budget.ReconfigSeeds, o.budget.SweepSeeds, o.budget.Timeout)
	var outcomes []Outcome
	if o.control {
		c := g.runTree(ctx, nil)
		outcomes = append(outcomes, c)
		if c.Status != "passed" {
			report(w, o, outcomes, time.Since(start))
			return fmt.Errorf("control run %s (check %s): %s", c.Status, orDash(c.CaughtBy), c.Detail)
		}
	}
	for i := range mutants {
		outcomes = append(outcomes, g.runTree(ctx, &mutants[i]))
		if ctx.Err() != nil {
			break
		}
	}
	if err := report(w, o, outcomes, time.Since(start)); err != nil {
		return err
	}
	var bad []string
	for _, oc := range outcomes {
		if oc.Status != "caught" && oc.Status != "passed" {
			bad = append(bad, oc.Mutant+" "+oc.Status)
		}
	}
	if len(bad) > 0 || ctx.Err() != nil {
		return fmt.Errorf("%w: %s", errSurvivors, strings.Join(bad, ", "))
	}
	return nil
}

// legend explains the table; it is printed under it.
const legend = `status: caught = a check saw a safety or invariant violation (class safety,
  or panic-invariant: a panic whose message names an invariant); liveness-only,
  panic-only, timeout-only, failure-only = checks failed, none by safety or an
  invariant (the strongest class seen is named); survived = every check passed.
  Only caught passes the gate.
class: safety, panic-invariant (catch); liveness (no progress, unanswered
  reads, a driver that did not act, expectations not met), panic (any other),
  timeout, failure (a failure the gate cannot classify) (do not catch).
caught by: the first check that caught the mutant (else its strongest failure).
other failing checks: every other check that failed, with its class (with
  -all every check runs; without it, checks after the catch do not).
`

// report prints the table and writes table.txt and report.json.
func report(w io.Writer, o *options, outcomes []Outcome, total time.Duration) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mutant\tstatus\tcaught by\tclass\tseeds to first catch\ttime\tother failing checks")
	for _, oc := range outcomes {
		seeds := "-"
		if oc.FirstSeed > 0 {
			seeds = fmt.Sprint(oc.FirstSeed)
		}
		var others []string
		for _, f := range oc.Failures {
			if f.Check != oc.CaughtBy {
				others = append(others, f.Check+" ("+string(f.Class)+")")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", oc.Mutant, oc.Status, orDash(oc.CaughtBy), orDash(string(oc.Class)), seeds, oc.Seconds, orDash(strings.Join(others, ", ")))
	}
	tw.Flush()
	fmt.Fprintf(&b, "total %.1fs\n\n%s", total.Seconds(), legend)
	for _, oc := range outcomes {
		if oc.Status != "caught" && oc.Status != "passed" {
			fmt.Fprintf(&b, "\n%s: %s\n%s\n", oc.Mutant, oc.Status, oc.Detail)
		}
	}
	fmt.Fprint(w, "\n"+b.String())
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "table.txt"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(struct {
		Catalog  string    `json:"catalog"`
		Budget   Budget    `json:"budget"`
		All      bool      `json:"all"`
		Seconds  float64   `json:"seconds"`
		Outcomes []Outcome `json:"outcomes"`
	}{o.catalog, o.budget, o.all, total.Seconds(), outcomes}, "", "  ")
	return os.WriteFile(filepath.Join(o.out, "report.json"), append(j, '\n'), 0o644)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
