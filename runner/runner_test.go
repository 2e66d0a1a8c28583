package runner_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/runner"
	"github.com/raftlab/raftlab/runner/backend"
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

// The docs/BUGS.md scenarios on the simulator: the unsafe mode breaks on every
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
			// How they failed, in aggregate.json and the table: the
			// unsafe runs are illegal (with or without invariants).
			if unsafe.IllegalOnly+unsafe.IllegalAndInvariants != unsafe.NotLinear || unsafe.IllegalOnly+unsafe.InvariantsOnly+unsafe.IllegalAndInvariants != unsafe.Violations {
				t.Errorf("%s: violated by %d illegal only, %d invariants only, %d both; %d illegal, %d violations", c.unsafe,
					unsafe.IllegalOnly, unsafe.InvariantsOnly, unsafe.IllegalAndInvariants, unsafe.NotLinear, unsafe.Violations)
			}
			var out bytes.Buffer
			runner.PrintAggregate(&out, agg, "")
			if want := fmt.Sprintf("violated by: %d not linearizable only", unsafe.IllegalOnly); !strings.Contains(out.String(), want) {
				t.Errorf("the sweep table does not say how runs failed (%q):\n%s", want, out.String())
			}
		})
	}
}

// Safe mode under random faults, leader pauses and membership changes: no
// violation over RUNNER_RANDOM_SEEDS seeds (default 1,000) of a short
// virtual run, with the file's colliding (per-node) read contexts and with
// unique ones.
func TestRandomFaultsSafeOnSim(t *testing.T) {
	n := seeds(t, "RUNNER_RANDOM_SEEDS", 1000, 20)
	agg, runs, err := runner.Sweep(context.Background(), "../experiments/random-faults.yaml", runner.SweepOptions{
		Backend: sim.Backend{}, Seeds: n, Sets: []string{"workload.duration=3s"}, Parallel: 2,
		Matrix: []string{"workload.readContexts=per-node,unique"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range agg.Cells {
		t.Logf("random-faults, safe, %v, %d seeds of 3 s: %d violations, Wilson 95%% [%.4f, %.4f], %d ok operations", c.Sets, c.Runs, c.Violations, c.Wilson[0], c.Wilson[1], c.OkOps)
		if c.OkOps < int(n)*100 {
			t.Fatalf("%v: only %d ok operations over %d runs: the workload hardly ran", c.Sets, c.OkOps, n)
		}
	}
	for _, r := range runs {
		if r.Verdict != "ok" || r.Invariants > 0 || r.Error != "" {
			t.Fatalf("seed %d %v: verdict %s, %d invariant violations %s; replay: %s", r.Seed, r.Sets, r.Verdict, r.Invariants, r.Error, r.Replay)
		}
	}
}

// watched is the simulator with an eye on the workload's calls: reads
// answered by a node that was not the leader when called, and reads sent
// to a paused leader that it handled when it woke (the client may have
// given up by then: only one never handled ends "timeout: node paused").
type watched struct {
	sim.Backend
	followerReads, heldReads *int
}

func (b watched) Start(ctx context.Context, exp *experiment.Experiment, seed uint64) (backend.Cluster, error) {
	c, err := b.Backend.Start(ctx, exp, seed)
	return watchedCluster{Cluster: c, b: b}, err
}

type watchedCluster struct {
	backend.Cluster
	b watched
}

func (c watchedCluster) Do(id string, op backend.Op, timeout time.Duration, done func(backend.Result)) {
	v := c.Observe(context.Background())
	n := v.Node(id)
	follower, pausedLeader := v.Leader != id, n.Paused && n.Leader
	c.Cluster.Do(id, op, timeout, func(res backend.Result) {
		if op.Kind == backend.Get {
			if follower && res.Outcome == backend.OK {
				*c.b.followerReads++
			}
			if pausedLeader && res.Err != "timeout: node paused" {
				*c.b.heldReads++
			}
		}
		done(res)
	})
}

// What random-faults is for (issue 12): clients read through followers,
// and the leader is paused for longer than an election timeout, long
// enough for another leader to be elected, with reads waiting for it that
// it handles when it wakes. If any of these stops happening, the sweep can
// no longer catch a stale read from a paused leader.
func TestRandomFaultsReadsThroughFollowersAndPausesLeaders(t *testing.T) {
	exp, err := experiment.Load("../experiments/random-faults.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	et := int64(exp.Cluster.ElectionTimeoutMs)
	var followerReads, heldReads, reads, pauses, overtaken int
	const n = 4
	for seed := uint64(1); seed <= n; seed++ {
		run, err := runner.Execute(context.Background(), exp, runner.Options{Seed: seed,
			Backend: watched{followerReads: &followerReads, heldReads: &heldReads}})
		if err != nil {
			t.Fatal(err)
		}
		if v := run.Result.Linearizability.Verdict; v != "ok" {
			t.Fatalf("seed %d: verdict %s", seed, v)
		}
		for _, h := range run.History {
			if h.Op == "get" && h.Outcome == "ok" {
				reads++
			}
		}
		for _, s := range run.Result.Steps {
			// By kind, not label: a triggered fault's label starts with
			// its trigger ("on joint: pause leader ...").
			if s.Action != "random" || s.Kind != "pauseLeader" {
				continue
			}
			if s.EndMs-s.StartMs <= et {
				t.Errorf("seed %d: %q lasted %d ms, not longer than the election timeout (%d ms)", seed, s.Label, s.EndMs-s.StartMs, et)
			}
			pauses++
			if strings.Contains(s.Note, " led term ") {
				overtaken++
			}
		}
	}
	t.Logf("%d seeds: %d ok reads, %d through followers; %d leader pauses longer than the election timeout, %d with another leader at resume; %d reads handled by a leader woken from a pause",
		n, reads, followerReads, pauses, overtaken, heldReads)
	if followerReads == 0 || followerReads*2 < reads {
		t.Errorf("%d of %d ok reads through followers: the workload reads through the leader only", followerReads, reads)
	}
	if pauses == 0 {
		t.Error("random-faults paused no leader for longer than an election timeout")
	}
	// pauseLeader is drawn only when a majority of the other voters can
	// elect: most pauses are overtaken by another leader.
	if overtaken*4 < pauses*3 {
		t.Errorf("%d of %d leader pauses overtaken by another leader, want at least 75%%", overtaken, pauses)
	}
	if heldReads == 0 {
		t.Error("no read sent to a paused leader reached it when it woke")
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
