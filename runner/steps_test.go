package runner_test

import (
	"context"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/runner"
	"github.com/raftlab/raftlab/runner/experiment"
	"github.com/raftlab/raftlab/runner/sim"
)

func execute(t *testing.T, name, src string) *runner.Run {
	t.Helper()
	exp, err := experiment.Parse(name+".yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: sim.Backend{}})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// A when: step whose condition never holds fails the run, naming the step,
// and does not act.
func TestWhenThatNeverMatchesFailsTheRun(t *testing.T) {
	src := `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: when-never}
cluster: {replicas: 3}
workload: {clients: 2, rate: 50, duration: 1s}
steps:
  - sleep: 100ms
  - {name: never, when: {jointState: joint}, kill: kv-1}
expect: {linearizable: true}
`
	run := execute(t, "when-never", src)
	res := run.Result
	if res.Expectations.Met {
		t.Fatalf("a when: that never matched left the run passing: %+v", res.Expectations)
	}
	var item *runner.Expectation
	for i, it := range res.Expectations.Items {
		if !it.Met && strings.Contains(it.Name, "step 2") {
			item = &res.Expectations.Items[i]
		}
	}
	if item == nil {
		t.Fatalf("no failed expectation names step 2: %+v", res.Expectations.Items)
	}
	if !strings.Contains(item.Name, "line 8") || !strings.Contains(item.Name, "jointState: joint") {
		t.Fatalf("the failure %q does not name the step's line and condition", item.Name)
	}
	for _, it := range res.Expectations.Items {
		if it.Name == "linearizable" && !it.Met {
			t.Fatalf("linearizable should still hold: %+v", it)
		}
	}
	var rec *runner.StepRecord
	for i, s := range res.Steps {
		if s.Index == 2 {
			rec = &res.Steps[i]
		}
	}
	if rec == nil || rec.OK || !strings.Contains(rec.Note, "never matched") {
		t.Fatalf("step 2 is recorded as %+v, want not ok with a note", rec)
	}
	var b strings.Builder
	run.PrintSummary(&b, "")
	if !strings.Contains(b.String(), "FAIL") || !strings.Contains(b.String(), "step 2") {
		t.Fatalf("the summary does not fail the run on step 2:\n%s", b.String())
	}
}

// Two explicit operations at the same instant run concurrently, each in a
// session of its own.
func TestExplicitOperationsHaveTheirOwnSessions(t *testing.T) {
	src := `apiVersion: raftlab/v1
kind: Experiment
metadata: {name: explicit-sessions}
cluster: {replicas: 3}
workload: {clients: 1, rate: 20, duration: 1s}
steps:
  - {at: 300ms, put: {node: leader, key: x, value: one}}
  - {at: 300ms, put: {node: leader, key: y, value: two}}
  - {at: 600ms, get: {node: leader, key: x}}
expect: {linearizable: true}
`
	run := execute(t, "explicit-sessions", src)
	clients := map[string]int{}
	var explicit []runner.HistoryEntry
	for _, h := range run.History {
		if h.Key == "x" || h.Key == "y" {
			explicit = append(explicit, h)
			clients[h.Client]++
		}
	}
	if len(explicit) != 3 {
		t.Fatalf("want the 3 explicit operations in the history, got %+v", explicit)
	}
	if len(clients) != 3 {
		t.Fatalf("explicit operations share sessions: %v", clients)
	}
	for _, h := range explicit {
		if h.Outcome != "ok" {
			t.Fatalf("explicit operation %+v did not succeed", h)
		}
		if strings.HasPrefix(h.Client, "c") {
			t.Fatalf("explicit operation under a workload client name: %+v", h)
		}
	}
	// Called in the same virtual instant: the history orders their calls
	// (stamps are strictly increasing) but each is called before the
	// other returns, so they are concurrent.
	if explicit[0].CallNs/1e6 != explicit[1].CallNs/1e6 || explicit[1].CallNs >= explicit[0].ReturnNs || explicit[0].CallNs >= explicit[1].ReturnNs {
		t.Fatalf("the two at: 300ms puts were not called at the same instant, concurrently: %+v", explicit[:2])
	}
	if !run.Result.Expectations.Met {
		t.Fatalf("expectations not met: %+v", run.Result.Expectations)
	}
}
