package runner

import (
	"testing"
	"time"

	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// The strict coverage of one change kv-0 kv-1 kv-2 -> + kv-3, its driver
// steps from 1000 ms to 1400 ms, heartbeat 50 ms.
func strictRun() (*run, *reconfigRun) {
	exp := &experiment.Experiment{}
	exp.Cluster.HeartbeatMs = 50
	r := &run{exp: exp, flog: newFaultLog()}
	rr := &reconfigRun{rec: Reconfiguration{From: []string{"kv-0", "kv-1", "kv-2"}, To: []string{"kv-0", "kv-1", "kv-2", "kv-3"}},
		newbies: []string{"kv-3"}, fired: map[string]bool{}}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	ev := func(kind reconfig.EventKind, st reconfig.Step, at int) {
		rr.stepEvent(reconfig.Event{Kind: kind, Decision: reconfig.Decision{Step: st}}, ms(at))
	}
	add := reconfig.Step{Op: reconfig.OpAddLearner, Target: "kv-3", ConfigIndex: 5}
	enter := reconfig.Step{Op: reconfig.OpEnterJoint, Voters: rr.rec.To, ConfigIndex: 6}
	commit := reconfig.Step{Op: reconfig.OpCommitNew, ConfigIndex: 7}
	leave := reconfig.Step{Op: reconfig.OpLeaveJoint, ConfigIndex: 7}
	ev(reconfig.EventStepStarted, add, 1000)
	ev(reconfig.EventStepFailed, add, 1010)
	ev(reconfig.EventStepStarted, add, 1100) // a retry: the same step
	ev(reconfig.EventStepDone, add, 1110)
	ev(reconfig.EventStepStarted, enter, 1200)
	ev(reconfig.EventStepDone, enter, 1201)
	for t := 1205; t < 1300; t += 20 { // polls of the joint entry's commit
		ev(reconfig.EventStepStarted, commit, t)
	}
	ev(reconfig.EventStepDone, commit, 1300)
	ev(reconfig.EventStepStarted, leave, 1350)
	ev(reconfig.EventStepDone, leave, 1400)
	r.reconfigs = []*reconfigRun{rr}
	return r, rr
}

func at(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestStrictCoverageCountsStepsOnce(t *testing.T) {
	r, _ := strictRun()
	c := r.coverageAt(at(5000))
	if c.MembershipSteps != 3 {
		t.Errorf("%d membership steps, want 3 (AddLearner with its retry, EnterJoint with its CommitNew polls, LeaveJoint)", c.MembershipSteps)
	}
	if c.ChangesUnderFault != 0 || c.StepsUnderFault != 0 {
		t.Errorf("no fault at all, coverage %+v", c)
	}
}

func TestStrictCoverageFaultOnMember(t *testing.T) {
	r, _ := strictRun()
	r.flog.nodeEvent("kv-1", at(1150), true, false, false, false)
	r.flog.nodeEvent("kv-1", at(1260), false, false, false, true)
	c := r.coverageAt(at(5000))
	if c.ChangesUnderFault != 1 || c.ChangesUnderNodeFault != 1 || c.ChangesUnderNetworkFault != 0 || c.EnterJointUnderFault != 1 {
		t.Errorf("kv-1 down 1150..1260 ms: coverage %+v, want the change and its EnterJoint under a node fault", c)
	}
	// The learner added counts as a member; a cut between two members
	// is a network fault of the change.
	r, _ = strictRun()
	n := backend.Network{{From: "kv-3", To: "kv-0"}: {Drop: true}}
	r.flog.network(n, at(1340))
	r.flog.network(backend.Network{}, at(1420))
	if c := r.coverageAt(at(5000)); c.ChangesUnderNetworkFault != 1 || c.StepsUnderFault != 1 || c.EnterJointUnderFault != 0 {
		t.Errorf("kv-3 -> kv-0 cut 1340..1420 ms: coverage %+v, want the change (its LeaveJoint) under a network fault", c)
	}
}

func TestStrictCoverageNegative(t *testing.T) {
	for name, apply := range map[string]func(r *run){
		"a fault only on a non-member": func(r *run) {
			r.flog.nodeEvent("kv-4", at(900), true, false, false, false)
			r.flog.network(backend.Network{{From: "kv-4", To: "kv-0"}: {Drop: true}, {From: "kv-0", To: "kv-4"}: {Drop: true}}, at(900))
		},
		"a fault ending before the change starts": func(r *run) {
			r.flog.nodeEvent("kv-1", at(200), false, true, false, false)
			r.flog.nodeEvent("kv-1", at(990), false, false, true, false)
			r.flog.network(backend.Network{{From: "kv-1", To: "kv-0"}: {Drop: true}}, at(100))
			r.flog.network(backend.Network{}, at(999))
		},
		"a fault overlapping by less than a heartbeat": func(r *run) {
			r.flog.nodeEvent("kv-1", at(1390), true, false, false, false)
		},
		"a fault starting after the change ended": func(r *run) {
			r.flog.nodeEvent("kv-1", at(1400), true, false, false, false)
		},
		"a node dead for good": func(r *run) {
			r.gen = &generator{dead: map[string]bool{"kv-2": true}}
			r.flog.nodeEvent("kv-2", at(500), true, false, false, false)
		},
	} {
		r, _ := strictRun()
		apply(r)
		if c := r.coverageAt(at(5000)); c.ChangesUnderFault != 0 || c.StepsUnderFault != 0 {
			t.Errorf("%s: coverage %+v, want none", name, c)
		}
	}
}

// A one-step change (unsafe-no-joint) whose step is done in the instant
// it starts is judged over the heartbeat after its start: a cut in force
// for all of that heartbeat counts; one that ends a millisecond in, ends
// as it starts, or begins after it, does not.
func TestStrictCoverageShortChange(t *testing.T) {
	for name, c := range map[string]struct {
		from, to int
		want     int
	}{"spans it": {1000, 3000, 1}, "exactly its heartbeat": {1000, 1050, 1}, "ends a millisecond in": {900, 1001, 0},
		"ends as it starts": {900, 1000, 0}, "starts after": {1001, 3000, 0}} {
		exp := &experiment.Experiment{}
		exp.Cluster.HeartbeatMs = 50
		r := &run{exp: exp, flog: newFaultLog()}
		rr := &reconfigRun{rec: Reconfiguration{From: []string{"kv-0", "kv-1", "kv-2"}, To: []string{"kv-0", "kv-1", "kv-3"}, Done: true, EndMs: 1020}}
		st := reconfig.Step{Op: reconfig.OpChangeVoters, Voters: rr.rec.To, ConfigIndex: 1}
		rr.stepEvent(reconfig.Event{Kind: reconfig.EventStepStarted, Decision: reconfig.Decision{Step: st}}, at(1000))
		rr.stepEvent(reconfig.Event{Kind: reconfig.EventStepDone, Decision: reconfig.Decision{Step: st}}, at(1000))
		r.reconfigs = []*reconfigRun{rr}
		r.flog.network(backend.Network{{From: "kv-0", To: "kv-1"}: {Drop: true}}, at(c.from))
		r.flog.network(backend.Network{}, at(c.to))
		if cv := r.coverageAt(at(5000)); cv.ChangesUnderFault != c.want || cv.EnterJointUnderFault != c.want {
			t.Errorf("cut %s: coverage %+v, want %d", name, cv, c.want)
		}
	}
}

// A change whose driver is replaced ends there: a fault after that is not
// the replaced change's.
func TestStrictCoverageReplacedChange(t *testing.T) {
	exp := &experiment.Experiment{}
	exp.Cluster.HeartbeatMs = 50
	r := &run{exp: exp, flog: newFaultLog()}
	rr := &reconfigRun{rec: Reconfiguration{From: []string{"kv-0", "kv-1", "kv-2"}, To: []string{"kv-0", "kv-1", "kv-3"}}}
	st := reconfig.Step{Op: reconfig.OpAddLearner, Target: "kv-3", ConfigIndex: 1}
	rr.stepEvent(reconfig.Event{Kind: reconfig.EventStepStarted, Decision: reconfig.Decision{Step: st}}, at(1000))
	rr.stopped(at(1200))
	r.reconfigs = []*reconfigRun{rr}
	r.flog.nodeEvent("kv-1", at(1300), true, false, false, false)
	if cv := r.coverageAt(at(5000)); cv.ChangesUnderFault != 0 {
		t.Errorf("kv-1 killed after the change was replaced: coverage %+v, want none", cv)
	}
}
