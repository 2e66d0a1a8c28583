package runner_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/runner"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
	"github.com/raftlab/raftlab/runner/sim"
)

// The random generator reaches the windows where membership bugs live:
// over a few seeds of random-faults.yaml, most runs have a membership
// change with a step started under a fault in force, no change is a
// no-op, faults overlap, and membership states trigger faults.
func TestRandomGeneratorCoversChangesUnderFaults(t *testing.T) {
	const n = 10
	agg, runs, err := runner.Sweep(context.Background(), "../experiments/random-faults.yaml", runner.SweepOptions{
		Backend: sim.Backend{}, Seeds: n, Sets: []string{"workload.duration=5s"}, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := agg.Cells[0]
	t.Logf("%d seeds of 5 s: %d with a change under a fault; %d changes, %d under a fault, %d no-ops, %d violations",
		c.Runs, c.SeedsChangeUnderFault, c.Changes, c.ChangesUnderFault, c.NoOpChanges, c.Violations)
	if c.CoverageRate <= 0.5 {
		t.Errorf("coverage %.0f%%: at most half the seeds changed membership under a fault", 100*c.CoverageRate)
	}
	if c.NoOpChanges != 0 {
		t.Errorf("%d no-op membership changes", c.NoOpChanges)
	}
	if c.SeedsNoChange != 0 {
		t.Errorf("%d seeds without a membership change", c.SeedsNoChange)
	}
	overlapped, triggered, enterUnderFault := 0, 0, 0
	for _, r := range runs {
		if r.Error != "" || r.Verdict != "ok" || r.Invariants > 0 {
			t.Errorf("seed %d: verdict %s, %d invariant violations %s; replay: %s", r.Seed, r.Verdict, r.Invariants, r.Error, r.Replay)
		}
		if r.Coverage.MaxConcurrentFaults >= 2 {
			overlapped++
		}
		if r.Coverage.TriggeredFaults > 0 {
			triggered++
		}
		if r.Coverage.EnterJointUnderFault > 0 {
			enterUnderFault++
		}
	}
	if overlapped == 0 || triggered == 0 || enterUnderFault == 0 {
		t.Errorf("of %d seeds: %d had two faults in force at once, %d had faults triggered by membership states, %d entered a joint configuration under a fault; want each > 0",
			n, overlapped, triggered, enterUnderFault)
	}
}

// The engine speaks to the backend through SetNetwork only, and a
// partition no longer erases a delay: recorded is every network the
// engine set, and the deprecated calls fail the test.
type recorder struct {
	sim.Backend
	nets *[]backend.Network
	t    *testing.T
}

func (b recorder) Start(ctx context.Context, exp *experiment.Experiment, seed uint64) (backend.Cluster, error) {
	c, err := b.Backend.Start(ctx, exp, seed)
	return recordedCluster{Cluster: c, b: b}, err
}

type recordedCluster struct {
	backend.Cluster
	b recorder
}

func (c recordedCluster) SetNetwork(n backend.Network) error {
	*c.b.nets = append(*c.b.nets, n)
	return c.Cluster.SetNetwork(n)
}
func TestPartitionKeepsDelayAndUndoRemovesOnlyItsOwn(t *testing.T) {
	src := `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: compose}
cluster: {replicas: 3, electionTimeoutMs: 300, heartbeatMs: 50}
workload: {clients: 2, rate: 50, keys: 4, opTimeoutMs: 500, duration: 2s}
steps:
  - delay: {ms: 40, jitterMs: 5}
  - partition: [[kv-0], [kv-1, kv-2]]
  - loss: {from: kv-1, to: kv-2, percent: 100}
  - sleep: 300ms
  - partition: [[kv-0, kv-1, kv-2]]
  - sleep: 300ms
  - heal: {}
expect: {linearizable: true}
`
	exp, err := experiment.Parse("compose.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	var nets []backend.Network
	if _, err := runner.Execute(context.Background(), exp, runner.Options{Backend: recorder{nets: &nets, t: t}}); err != nil {
		t.Fatal(err)
	}
	if len(nets) != 5 {
		t.Fatalf("%d SetNetwork calls, want 5 (delay, partition, loss, partition, heal)", len(nets))
	}
	l01, l10, l12, l21 := backend.Link{From: "kv-0", To: "kv-1"}, backend.Link{From: "kv-1", To: "kv-0"}, backend.Link{From: "kv-1", To: "kv-2"}, backend.Link{From: "kv-2", To: "kv-1"}
	if f := nets[1][l01]; !f.Drop || f.DelayMs != 40 || f.JitterMs != 5 {
		t.Errorf("partition after delay: kv-0 -> kv-1 is %+v, want cut with the delay kept", f)
	}
	if f := nets[2][l12]; !f.Drop || nets[2][l21].Drop {
		t.Errorf("loss 100%% from kv-1 to kv-2: %+v one way, %+v back; want a one-way cut", f, nets[2][l21])
	}
	if f := nets[3][l10]; f.Drop || f.DelayMs != 40 {
		t.Errorf("partition replaced: kv-1 -> kv-0 is %+v, want the delay only", f)
	}
	if !nets[3][l12].Drop {
		t.Errorf("a new partition took away the loss step's one-way cut: %+v", nets[3][l12])
	}
	if len(nets[4]) != 0 {
		t.Errorf("heal left %d faulted links", len(nets[4]))
	}
}

// The history orders a client's return before its next call, although the
// simulator runs both in the same virtual millisecond: porcupine would
// otherwise take them for concurrent.
func TestHistoryReturnBeforeNextCall(t *testing.T) {
	run := execute(t, "closed-loop", `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: closed-loop}
cluster: {replicas: 3, electionTimeoutMs: 300, heartbeatMs: 50}
workload: {clients: 4, rate: 0, keys: 2, opTimeoutMs: 500, duration: 1s, outstanding: 2}
expect: {linearizable: true}
`)
	byClient := map[string][]runner.HistoryEntry{}
	seen := map[int64]bool{}
	for _, h := range run.History {
		byClient[h.Client] = append(byClient[h.Client], h)
		for _, ts := range []int64{h.CallNs, h.ReturnNs} {
			if seen[ts] {
				t.Fatalf("two history events stamped %d", ts)
			}
			seen[ts] = true
		}
	}
	sameMs := 0
	for cl, hs := range byClient {
		slices.SortFunc(hs, func(a, b runner.HistoryEntry) int { return int(a.CallNs - b.CallNs) })
		for i := 1; i < len(hs); i++ {
			if hs[i-1].ReturnNs >= hs[i].CallNs {
				t.Fatalf("client %s: return %d not before the next call %d", cl, hs[i-1].ReturnNs, hs[i].CallNs)
			}
			if hs[i-1].ReturnNs/1e6 == hs[i].CallNs/1e6 {
				sameMs++
			}
		}
	}
	if sameMs == 0 {
		t.Fatal("no call in the millisecond of the previous return: the test no longer tests the tie-break")
	}
	// outstanding: 2 is two sessions per client, each with its own
	// sequence numbers, in flight together.
	if len(byClient) != 8 || byClient["c0.1"] == nil {
		t.Fatalf("sessions %v, want c0, c0.1, ... c3.1", slices.Sorted(mapKeys(byClient)))
	}
	for _, h := range run.History {
		if strings.Contains(h.Err, "stale") || strings.Contains(h.Err, "mismatch") {
			t.Fatalf("session error with two slots per client: %+v", h)
		}
	}
	if v := run.Result.Linearizability.Verdict; v != "ok" {
		t.Fatalf("verdict %s", v)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Safe mode reaches joint consensus during the bug scenarios' partitions
// (the companions of bug1.yaml and bug2.yaml): the driver's EnterJoint
// lies within the partition (bug 2: strictly after it began; bug 1: in the
// instant the partition comes, when:{jointState: entering}), and the
// history stays linearizable.
func TestSafeModeEntersJointDuringThePartition(t *testing.T) {
	for _, file := range []string{"bug1-safe-joint.yaml", "bug2-safe-joint.yaml"} {
		exp, err := experiment.Load(filepath.Join("..", "experiments", file), nil)
		if err != nil {
			t.Fatal(err)
		}
		for seed := uint64(1); seed <= 3; seed++ {
			run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: sim.Backend{}, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			res := run.Result
			if res.Linearizability.Verdict != "ok" || len(res.Invariants) > 0 || !res.Expectations.Met {
				t.Fatalf("%s seed %d: verdict %s, invariants %v", file, seed, res.Linearizability.Verdict, res.Invariants)
			}
			var from, to int64 = -1, -1
			for _, s := range res.Steps {
				if s.Action == "partition" {
					from = s.StartMs
				}
				if s.Action == "heal" {
					to = s.StartMs
				}
			}
			var enter []int64
			for _, rc := range res.Reconfigs {
				for _, st := range rc.Steps {
					if ms, rest, ok := strings.Cut(st, "ms "); ok && strings.HasPrefix(rest, "EnterJoint") {
						v, _ := strconv.ParseInt(ms, 10, 64)
						enter = append(enter, v)
					}
				}
			}
			if len(enter) == 0 || enter[0] < from || enter[0] >= to {
				t.Fatalf("%s seed %d: EnterJoint at %v ms, partition %d..%d ms: not within", file, seed, enter, from, to)
			}
			if file == "bug2-safe-joint.yaml" && enter[0] == from {
				t.Fatalf("%s seed %d: EnterJoint at the partition's instant, want after it", file, seed)
			}
		}
	}
}

// Strict coverage end to end: a change with no fault has none, and a
// fault on a node that is no member of the change (started, then killed,
// before the change) does not count either (it did when any started node
// down counted for every later step).
func TestCoverageStrictEndToEnd(t *testing.T) {
	for name, c := range map[string]struct {
		steps string
		want  int
	}{
		"no fault": {steps: `
  - scale: 4
  - await: {reconfigured: true, timeout: 3s}`},
		"a fault on a non-member": {steps: `
  - start: [kv-4]
  - kill: kv-4
  - scale: 4
  - await: {reconfigured: true, timeout: 3s}`},
		"a fault ending before the change": {steps: `
  - partition: [[kv-0], [kv-1, kv-2]]
  - sleep: 300ms
  - heal: {}
  - sleep: 100ms
  - scale: 4
  - await: {reconfigured: true, timeout: 3s}`},
		"a member killed during the change": {want: 1, steps: `
  - scale: 4
  - kill: kv-1
  - await: {reconfigured: true, timeout: 3s}
  - restart: kv-1`},
	} {
		src := `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: strict}
cluster: {replicas: 3, electionTimeoutMs: 300, heartbeatMs: 50}
workload: {clients: 2, rate: 50, keys: 4, opTimeoutMs: 500, duration: 4s}
steps:` + c.steps + `
expect: {linearizable: true}
`
		exp, err := experiment.Parse("strict.yaml", []byte(src), nil)
		if err != nil {
			t.Fatal(err)
		}
		run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: sim.Backend{}})
		if err != nil {
			t.Fatal(err)
		}
		cv := run.Result.Coverage
		if cv.Changes != 1 || cv.ChangesUnderFault != c.want || (c.want == 0 && cv.StepsUnderFault != 0) {
			t.Errorf("%s: coverage %+v, want %d change(s) under a fault of 1", name, cv, c.want)
		}
	}
}

// Triggers fire once per change and state (a retried LeaveJoint is not a
// second leaving), and a voter dead for good is replaced or removed
// before any other change.
func TestTriggersOncePerChangeAndDeadVoterFirst(t *testing.T) {
	exp, err := experiment.Load("../experiments/random-faults.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	deadChecked := 0
	for seed := uint64(1); seed <= 12; seed++ {
		run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: sim.Backend{}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		res := run.Result
		leaves := 0
		for _, rc := range res.Reconfigs {
			for _, st := range rc.Steps {
				if strings.Contains(st, "LeaveJoint") {
					leaves++
					break
				}
			}
		}
		triggered, dead, faults := map[string]int{}, "", 0
		for _, s := range res.Steps {
			// coverage.faults counts faults only: not the leadership
			// transfers, nor changes.
			if s.Kind != "" && s.Kind != "change" && s.Kind != "transferLeader" && s.Kind != "reconfigure" {
				faults++
			}
			if s.Trigger != "" {
				triggered[s.Trigger]++
			}
			if s.Kind == "killForever" {
				// "kill kv-3 for good", or "on joint: kill kv-3 ..."
				// when a membership state triggered it.
				label := strings.TrimPrefix(s.Label, "on "+s.Trigger+": ")
				dead = strings.Fields(label)[1]
			}
			if s.Kind == "change" && dead != "" {
				_, voters, _ := strings.Cut(s.Label, ": voters ")
				from, _, _ := strings.Cut(voters, " -> ")
				if slices.Contains(strings.Fields(from), dead) {
					deadChecked++
					if !strings.Contains(s.Label, "replace "+dead+" by") && !strings.Contains(s.Label, "shrink without "+dead) {
						t.Errorf("seed %d: %s dead for good, yet the change %q neither replaces nor removes it", seed, dead, s.Label)
					}
				}
			}
		}
		if res.Coverage.Faults != faults {
			t.Errorf("seed %d: coverage counts %d faults, the steps show %d", seed, res.Coverage.Faults, faults)
		}
		if triggered["leaving"] > leaves {
			t.Errorf("seed %d: %d faults triggered on leaving, %d changes left a joint configuration", seed, triggered["leaving"], leaves)
		}
		if triggered["entering"] > res.Coverage.Changes || triggered["joint"] > res.Coverage.Changes || triggered["learner"] > res.Coverage.Changes*2 {
			t.Errorf("seed %d: triggers %v for %d changes", seed, triggered, res.Coverage.Changes)
		}
	}
	t.Logf("%d changes checked after a voter died for good", deadChecked)
	if deadChecked == 0 {
		t.Error("no change started while a voter was dead for good: the test tests nothing")
	}
}

// observing is the simulator with an eye on every Observe: the outgoing
// voters of joint configurations the engine saw.
type observing struct {
	sim.Backend
	outgoing *[][]string
}

func (b observing) Start(ctx context.Context, exp *experiment.Experiment, seed uint64) (backend.Cluster, error) {
	c, err := b.Backend.Start(ctx, exp, seed)
	return observingCluster{Cluster: c, b: b}, err
}

type observingCluster struct {
	backend.Cluster
	b observing
}

func (c observingCluster) Observe(ctx context.Context) backend.View {
	v := c.Cluster.Observe(ctx)
	if v.Leader != "" && v.Node(v.Leader).Joint == "joint" {
		*c.b.outgoing = append(*c.b.outgoing, v.Node(v.Leader).OutgoingVoters)
	}
	return v
}

// The simulator's views carry the outgoing voters of a joint
// configuration (quorumLeft needs a majority of each half).
func TestSimViewOutgoingVoters(t *testing.T) {
	src := `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: outgoing}
cluster: {replicas: 3, electionTimeoutMs: 300, heartbeatMs: 50, safetyMode: safe}
workload: {clients: 2, rate: 50, keys: 4, opTimeoutMs: 500, duration: 3s}
steps:
  - reconfigure: {voters: [kv-0, kv-1, kv-3]}
  - await: {reconfigured: true, timeout: 2s}
expect: {linearizable: true}
`
	exp, err := experiment.Parse("outgoing.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	var outgoing [][]string
	if _, err := runner.Execute(context.Background(), exp, runner.Options{Backend: observing{outgoing: &outgoing}}); err != nil {
		t.Fatal(err)
	}
	if len(outgoing) == 0 {
		t.Fatal("no joint configuration observed")
	}
	for _, o := range outgoing {
		if !slices.Equal(slices.Sorted(slices.Values(o)), []string{"kv-0", "kv-1", "kv-2"}) {
			t.Fatalf("joint configuration with outgoing voters %v, want kv-0 kv-1 kv-2", o)
		}
	}
}
