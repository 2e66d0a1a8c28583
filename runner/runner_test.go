package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/raftlab/raftlab/runner"
	"github.com/raftlab/raftlab/runner/experiment"
	"github.com/raftlab/raftlab/runner/sim"
)

func seeds(t *testing.T, env string, full, short uint64) uint64 {
	if v := os.Getenv(env); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
		return n
	}
	if testing.Short() {
		return short
	}
	return full
}

// The BUGS.md scenarios on the simulator: the unsafe mode breaks on every
// seed, safe mode on none (RUNNER_BUG_SEEDS, default 200).
func TestBugsOnSim(t *testing.T) {
	n := seeds(t, "RUNNER_BUG_SEEDS", 200, 10)
	for _, c := range []struct{ file, unsafe string }{
		{"bug1.yaml", "unsafe-early-vote"},
		{"bug2.yaml", "unsafe-no-joint"},
	} {
		t.Run(c.file, func(t *testing.T) {
			agg, runs, err := runner.Sweep(context.Background(), filepath.Join("..", "experiments", c.file), runner.SweepOptions{
				Backend: sim.Backend{}, Seeds: n, Matrix: []string{"cluster.safetyMode=safe," + c.unsafe}, Parallel: 2})
			if err != nil {
				t.Fatal(err)
			}
			safe, unsafe := agg.Cells[0], agg.Cells[1]
			t.Logf("%s: safe %d/%d violated, %s %d/%d violated", c.file, safe.Violations, safe.Runs, c.unsafe, unsafe.Violations, unsafe.Runs)
			if safe.Violations != 0 || safe.Errors != 0 {
				for _, r := range runs {
					if r.Verdict != "ok" || r.Invariants > 0 || r.Error != "" {
						t.Errorf("safe mode broke: seed %d verdict %s, %d invariant violations %s; replay: %s", r.Seed, r.Verdict, r.Invariants, r.Error, r.Replay)
						break
					}
				}
			}
			if unsafe.NotLinear != unsafe.Runs {
				for _, r := range runs[n:] {
					if r.Verdict != "illegal" {
						t.Errorf("%s stayed linearizable on seed %d (verdict %s %s); replay: %s", c.unsafe, r.Seed, r.Verdict, r.Error, r.Replay)
						break
					}
				}
			}
			if !agg.Met {
				t.Error("expectations of the file not met on every run")
			}
		})
	}
}

// Safe mode under random faults and membership changes: no violation over
// RUNNER_RANDOM_SEEDS seeds (default 1,000) of a short virtual run.
func TestRandomFaultsSafeOnSim(t *testing.T) {
	n := seeds(t, "RUNNER_RANDOM_SEEDS", 1000, 20)
	agg, runs, err := runner.Sweep(context.Background(), "../experiments/random-faults.yaml", runner.SweepOptions{
		Backend: sim.Backend{}, Seeds: n, Sets: []string{"workload.duration=3s"}, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := agg.Cells[0]
	t.Logf("random-faults, safe, %d seeds of 3 s: %d violations, Wilson 95%% [%.4f, %.4f], %d ok operations", c.Runs, c.Violations, c.Wilson[0], c.Wilson[1], c.OkOps)
	for _, r := range runs {
		if r.Verdict != "ok" || r.Invariants > 0 || r.Error != "" {
			t.Fatalf("seed %d: verdict %s, %d invariant violations %s; replay: %s", r.Seed, r.Verdict, r.Invariants, r.Error, r.Replay)
		}
	}
	if c.OkOps < int(n)*100 {
		t.Fatalf("only %d ok operations over %d runs: the workload hardly ran", c.OkOps, n)
	}
}

// Same file and seed, byte-identical history; another seed, another one.
func TestSimDeterminism(t *testing.T) {
	hist := func(seed uint64) []byte {
		exp, err := experiment.Load("../experiments/random-faults.yaml", []string{"workload.duration=4s"})
		if err != nil {
			t.Fatal(err)
		}
		run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: sim.Backend{}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := run.Write(dir); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "history.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := hist(7), hist(7), hist(8)
	if len(a) < 10_000 {
		t.Fatalf("history of %d bytes: the run did nothing", len(a))
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the same file and seed gave different histories")
	}
	if bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same history: the seed is not used")
	}
}

// at: runs a step on the clock; when: waits for a cluster state and acts at
// once.
func TestAtAndWhenSteps(t *testing.T) {
	src := `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: at-when}
cluster: {replicas: 3}
workload: {clients: 2, rate: 50, duration: 3s}
steps:
  - {name: timed, at: 1500ms, kill: kv-1}
  - transferLeader: kv-0
  - scale: 4
  - {name: on-joint, when: {jointState: entering}, isolate: kv-2}
  - await: {reconfigured: true, timeout: 2s}
expect: {linearizable: true}
`
	exp, err := experiment.Parse("at-when.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: sim.Backend{}})
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]runner.StepRecord{}
	for _, s := range run.Result.Steps {
		steps[s.Label] = s
	}
	if s, ok := steps["timed"]; !ok || s.StartMs != 1500 {
		t.Fatalf("the at: 1500ms step ran at %+v", s)
	}
	joint, ok := steps["on-joint"]
	if !ok {
		t.Fatalf("the when: step did not run: %+v", run.Result.Steps)
	}
	// It ran in the same millisecond as the driver's EnterJoint.
	var enter int64 = -1
	for _, rc := range run.Result.Reconfigs {
		for _, st := range rc.Steps {
			var ms int64
			var rest string
			if _, err := fmt.Sscanf(st, "%dms %s", &ms, &rest); err == nil && rest == "EnterJoint" && enter < 0 {
				enter = ms
			}
		}
	}
	if enter < 0 {
		t.Fatalf("no EnterJoint in %+v", run.Result.Reconfigs)
	}
	if joint.StartMs != enter {
		t.Fatalf("the when: step ran at %d ms, the joint entry was appended at %d ms", joint.StartMs, enter)
	}
}
