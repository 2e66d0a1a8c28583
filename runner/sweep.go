package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// SweepOptions configure a sweep: the matrix times the seeds.
type SweepOptions struct {
	Backend backend.Backend
	// Seeds runs seeds SeedStart .. SeedStart+Seeds-1 in every cell.
	Seeds, SeedStart uint64
	// Matrix is path=v1,v2,... axes; the cells are their product.
	Matrix []string
	// Sets apply to every cell.
	Sets     []string
	Parallel int
	// Progress, if set, receives a progress bar.
	Progress io.Writer
	// CheckTimeout as in Options.
	CheckTimeout time.Duration
}

// Aggregate is aggregate.json: one line per matrix cell.
type Aggregate struct {
	SchemaVersion int      `json:"schemaVersion"`
	Experiment    string   `json:"experiment"`
	File          string   `json:"file"`
	Backend       string   `json:"backend"`
	Seeds         uint64   `json:"seeds"`
	SeedStart     uint64   `json:"seedStart"`
	Matrix        []string `json:"matrix"`
	Sets          []string `json:"sets"`
	WallMs        int64    `json:"wallMs"`
	Cells         []Cell   `json:"cells"`
	// Met: every run of every cell met its expectations.
	Met bool `json:"met"`
}

// Cell is one matrix cell's counts over the seeds.
type Cell struct {
	Sets []string `json:"sets"`
	Runs int      `json:"runs"`
	// Violations: runs whose history was not linearizable or that broke a
	// reconfiguration invariant.
	Violations    int `json:"violations"`
	NotLinear     int `json:"illegal"`
	UnknownChecks int `json:"unknownVerdicts"`
	InvariantRuns int `json:"invariantRuns"`
	// How the violated runs failed, so a reader sees which check has
	// power: porcupine's verdict illegal with no invariant violation,
	// invariant violations with a linearizable (or unknown) history, and
	// both.
	IllegalOnly          int     `json:"illegalOnly"`
	InvariantsOnly       int     `json:"invariantsOnly"`
	IllegalAndInvariants int     `json:"illegalAndInvariants"`
	Errors               int     `json:"errors"`
	ViolationRate        float64 `json:"violationRate"`
	// Wilson is the 95% Wilson score interval of the violation rate.
	Wilson [2]float64 `json:"wilson95"`
	// ExpectMet counts runs that met the file's expectations.
	ExpectMet   int      `json:"expectationsMet"`
	FirstFailed []uint64 `json:"firstSeedsNotMet"`
	OkOps       int      `json:"okOps"`
	// Coverage next to the violation rate: a clean cell whose changes
	// never met a fault is no evidence. SeedsChangeUnderFault are the
	// runs with at least one membership change under a fault in force,
	// CoverageRate their share; the rest sum the runs' coverage.
	SeedsChangeUnderFault int     `json:"seedsChangeUnderFault"`
	CoverageRate          float64 `json:"coverageRate"`
	Changes               int     `json:"changes"`
	NoOpChanges           int     `json:"noOpChanges"`
	ChangesUnderFault     int     `json:"changesUnderFault"`
	SeedsNoChange         int     `json:"seedsNoChange"`
}

// SweepRun is one line of runs.jsonl.
type SweepRun struct {
	Sets       []string `json:"sets"`
	Seed       uint64   `json:"seed"`
	Verdict    string   `json:"verdict"`
	Invariants int      `json:"invariantViolations"`
	Met        bool     `json:"met"`
	OkOps      int      `json:"okOps"`
	Unknown    int      `json:"unknownOutcomes"`
	Error      string   `json:"error,omitempty"`
	Replay     string   `json:"replay"`
	// Coverage is the run's result.json coverage.
	Coverage Coverage `json:"coverage"`
}

// Wilson95 is the Wilson score interval of k successes in n at 95%.
func Wilson95(k, n int) [2]float64 {
	if n == 0 {
		return [2]float64{0, 1}
	}
	const z = 1.959963984540054
	p := float64(k) / float64(n)
	nf := float64(n)
	den := 1 + z*z/nf
	center := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return [2]float64{math.Max(0, center-half), math.Min(1, center+half)}
}

// Cells expands --matrix axes (path=v1,v2) into their product of --set
// lists, one per matrix cell.
func Cells(matrix []string) ([][]string, error) {
	out := [][]string{{}}
	for _, axis := range matrix {
		path, vals, ok := strings.Cut(axis, "=")
		if !ok || path == "" || vals == "" {
			return nil, fmt.Errorf("--matrix %q: expected path=v1,v2, for example cluster.safetyMode=safe,unsafe-no-joint", axis)
		}
		var next [][]string
		for _, c := range out {
			for _, v := range strings.Split(vals, ",") {
				next = append(next, append(append([]string{}, c...), path+"="+v))
			}
		}
		out = next
	}
	return out, nil
}

// Sweep runs file over the matrix times the seeds and aggregates.
func Sweep(ctx context.Context, file string, o SweepOptions) (*Aggregate, []SweepRun, error) {
	cs, err := Cells(o.Matrix)
	if err != nil {
		return nil, nil, err
	}
	// Validate every cell before running anything.
	var name string
	for _, c := range cs {
		exp, err := experiment.Load(file, append(append([]string{}, o.Sets...), c...))
		if err != nil {
			return nil, nil, err
		}
		name = exp.Metadata.Name
	}
	if o.Seeds == 0 {
		o.Seeds = 100
	}
	if o.SeedStart == 0 {
		o.SeedStart = 1
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	type job struct {
		cell int
		seed uint64
	}
	total := len(cs) * int(o.Seeds)
	jobs := make(chan job)
	runs := make([]SweepRun, total)
	var mu sync.Mutex
	doneCount := 0
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				sets := append(append([]string{}, o.Sets...), cs[j.cell]...)
				sr := SweepRun{Sets: cs[j.cell], Seed: j.seed, Replay: replayCommand(file, o.Backend.Name(), j.seed, sets)}
				exp, err := experiment.Load(file, sets)
				if err == nil {
					var run *Run
					run, err = Execute(ctx, exp, Options{Backend: o.Backend, Seed: j.seed, Sets: sets, CheckTimeout: o.CheckTimeout})
					if err == nil {
						res := run.Result
						sr.Verdict, sr.Invariants, sr.Met = res.Linearizability.Verdict, len(res.Invariants), res.Expectations.Met
						sr.OkOps, sr.Unknown = res.Operations.OK, res.Operations.Unknown
						sr.Coverage = res.Coverage
					}
				}
				if err != nil {
					sr.Error = err.Error()
				}
				idx := j.cell*int(o.Seeds) + int(j.seed-o.SeedStart)
				mu.Lock()
				runs[idx] = sr
				doneCount++
				if o.Progress != nil && (doneCount*100/total != (doneCount-1)*100/total || doneCount == total) {
					progress(o.Progress, doneCount, total, time.Since(start))
				}
				mu.Unlock()
			}
		}()
	}
	for c := range cs {
		for s := uint64(0); s < o.Seeds; s++ {
			select {
			case jobs <- job{cell: c, seed: o.SeedStart + s}:
			case <-ctx.Done():
			}
		}
	}
	close(jobs)
	wg.Wait()
	if o.Progress != nil {
		fmt.Fprintln(o.Progress)
	}
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("sweep interrupted: %w", ctx.Err())
	}
	agg := &Aggregate{SchemaVersion: SchemaVersion, Experiment: name, File: file, Backend: o.Backend.Name(),
		Seeds: o.Seeds, SeedStart: o.SeedStart, Matrix: nonNil(o.Matrix), Sets: nonNil(o.Sets),
		WallMs: time.Since(start).Milliseconds(), Met: true}
	for ci, c := range cs {
		cell := Cell{Sets: nonNil(c), FirstFailed: []uint64{}}
		for _, sr := range runs[ci*int(o.Seeds) : (ci+1)*int(o.Seeds)] {
			cell.Runs++
			if sr.Error != "" {
				cell.Errors++
			}
			if sr.Verdict == "illegal" {
				cell.NotLinear++
			}
			if sr.Verdict == "unknown" {
				cell.UnknownChecks++
			}
			if sr.Invariants > 0 {
				cell.InvariantRuns++
			}
			if sr.Verdict == "illegal" || sr.Invariants > 0 {
				cell.Violations++
			}
			switch {
			case sr.Verdict == "illegal" && sr.Invariants > 0:
				cell.IllegalAndInvariants++
			case sr.Verdict == "illegal":
				cell.IllegalOnly++
			case sr.Invariants > 0:
				cell.InvariantsOnly++
			}
			if sr.Met {
				cell.ExpectMet++
			} else if len(cell.FirstFailed) < 10 {
				cell.FirstFailed = append(cell.FirstFailed, sr.Seed)
			}
			cell.OkOps += sr.OkOps
			cv := sr.Coverage
			if cv.ChangesUnderFault > 0 {
				cell.SeedsChangeUnderFault++
			}
			if cv.Changes == 0 {
				cell.SeedsNoChange++
			}
			cell.Changes += cv.Changes
			cell.NoOpChanges += cv.NoOpChanges
			cell.ChangesUnderFault += cv.ChangesUnderFault
		}
		cell.ViolationRate = float64(cell.Violations) / float64(cell.Runs)
		cell.CoverageRate = float64(cell.SeedsChangeUnderFault) / float64(cell.Runs)
		cell.Wilson = Wilson95(cell.Violations, cell.Runs)
		agg.Met = agg.Met && cell.ExpectMet == cell.Runs
		agg.Cells = append(agg.Cells, cell)
	}
	return agg, runs, nil
}

func progress(w io.Writer, done, total int, el time.Duration) {
	const width = 30
	filled := done * width / total
	eta := time.Duration(0)
	if done > 0 {
		eta = el * time.Duration(total-done) / time.Duration(done)
	}
	fmt.Fprintf(w, "\r[%s%s] %d/%d runs, %s elapsed, ~%s left ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		done, total, el.Round(time.Second), eta.Round(time.Second))
}

// WriteSweep writes aggregate.json and runs.jsonl into dir.
func WriteSweep(dir string, agg *Aggregate, runs []SweepRun) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(agg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "aggregate.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "runs.jsonl"))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, r := range runs {
		if err := enc.Encode(r); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// PrintAggregate writes the per-cell table.
func PrintAggregate(w io.Writer, agg *Aggregate, dir string) {
	fmt.Fprintf(w, "sweep %s (%s) on %s: %d seeds from %d per cell, %.1f s\n", agg.Experiment, agg.File, agg.Backend, agg.Seeds, agg.SeedStart, float64(agg.WallMs)/1000)
	fmt.Fprintf(w, "%-44s %6s %10s %9s %18s %10s %12s\n", "cell", "runs", "violated", "rate", "wilson 95%", "expect met", "coverage")
	for _, c := range agg.Cells {
		name := strings.Join(c.Sets, " ")
		if name == "" {
			name = "(file as is)"
		}
		fmt.Fprintf(w, "%-44s %6d %10d %8.1f%% [%6.2f%%, %6.2f%%] %10d %11.1f%%\n", name, c.Runs, c.Violations, 100*c.ViolationRate, 100*c.Wilson[0], 100*c.Wilson[1], c.ExpectMet, 100*c.CoverageRate)
		fmt.Fprintf(w, "  coverage: %d of %d runs had a membership change under a fault in force; %d changes, %d under a fault, %d no-ops; %d runs without a change\n",
			c.SeedsChangeUnderFault, c.Runs, c.Changes, c.ChangesUnderFault, c.NoOpChanges, c.SeedsNoChange)
		if c.Violations > 0 {
			fmt.Fprintf(w, "  violated by: %d not linearizable only (porcupine illegal), %d invariant violations only, %d both\n",
				c.IllegalOnly, c.InvariantsOnly, c.IllegalAndInvariants)
		}
		if c.Errors > 0 {
			fmt.Fprintf(w, "  %d runs failed to run (see runs.jsonl)\n", c.Errors)
		}
		if len(c.FirstFailed) > 0 {
			fmt.Fprintf(w, "  expectations not met for seeds %v (replay one with --seed)\n", c.FirstFailed)
		}
	}
	if dir != "" {
		fmt.Fprintf(w, "aggregate    %s/aggregate.json, runs.jsonl\n", dir)
	}
	if agg.Met {
		fmt.Fprintln(w, "result       PASS: every run met its expectations (exit 0)")
	} else {
		fmt.Fprintln(w, "result       FAIL: some runs did not meet their expectations (exit 1)")
	}
}
