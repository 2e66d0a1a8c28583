package local

// Real-process tests of the local backend (skipped with -short): the
// desired network follows paused and restarted nodes, and conditions see
// short membership states through the nodes' events.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/localcluster"
	"github.com/raftlab/raftlab/runner"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

var raftKVBin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "raft-kv-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			raftKVBin = filepath.Join(dir, "raft-kv")
			if err := localcluster.BuildRaftKV(context.Background(), raftKVBin); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

const baseYAML = `apiVersion: raftlab/v1
kind: Experiment
metadata:
  name: localtest
cluster:
  replicas: 3
  electionTimeoutMs: 300
  heartbeatMs: 50
workload:
  clients: 1
  rate: 10
  keys: 5
  duration: 5s
%s
expect:
  linearizable: true
seed: 1
`

func parse(t *testing.T, steps string) *experiment.Experiment {
	t.Helper()
	exp, err := experiment.Parse("test.yaml", []byte(fmt.Sprintf(baseYAML, steps)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// startLocal starts a 3-node local cluster and waits for a leader.
func startLocal(t *testing.T) (*Cluster, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	bc, err := Backend{Bin: raftKVBin, Dir: t.TempDir()}.Start(context.Background(), parse(t, ""), 1)
	if err != nil {
		t.Fatal(err)
	}
	c := bc.(*Cluster)
	t.Cleanup(func() {
		if t.Failed() {
			for _, id := range c.lc.IDs() {
				b, _ := os.ReadFile(c.lc.Node(id).LogPath)
				t.Logf("--- %s log ---\n%s", id, b)
			}
		}
		_ = c.Close()
	})
	ctx := context.Background()
	if !c.WaitUntil(ctx, func(view func() backend.View) bool { return view().Leader != "" }, 30*time.Second) {
		t.Fatal("no leader within 30 s")
	}
	return c, c.Observe(ctx).Leader
}

// isolation cuts id from every other node, both ways.
func isolation(c *Cluster, id string) backend.Network {
	n := backend.Network{}
	for _, o := range others(c.lc.IDs(), id) {
		n[backend.Link{From: id, To: o}] = backend.LinkFault{Drop: true}
		n[backend.Link{From: o, To: id}] = backend.LinkFault{Drop: true}
	}
	return n
}

// put writes one key through the leader and waits for its outcome.
func put(t *testing.T, c *Cluster, lead, key string) {
	t.Helper()
	done := make(chan backend.Result, 1)
	c.Do(lead, backend.Op{Kind: backend.Put, Key: key, Value: "v", ClientID: "t-" + key, Seq: 1}, 10*time.Second, func(r backend.Result) { done <- r })
	if r := <-done; r.Outcome != backend.OK {
		t.Fatalf("put %s through %s: %+v", key, lead, r)
	}
}

func status(t *testing.T, c *Cluster, id string) kvserver.StatusJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.lc.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A partition set while a node is paused is in force when it resumes, and
// a heal then reconnects it. On the old code SetNetwork called the paused
// node (its 2 s admin timeout failed the call), and the node resumed with
// no partition.
func TestLocalPartitionWhilePausedTakesEffectAndHeals(t *testing.T) {
	c, lead := startLocal(t)
	f := others(c.lc.IDs(), lead)[0]
	if err := c.Pause(f); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.SetNetwork(isolation(c, f)); err != nil {
		t.Fatalf("partition while %s is paused: %v", f, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("SetNetwork took %v: it waited on the paused node", d)
	}
	if err := c.Resume(f); err != nil {
		t.Fatal(err)
	}
	// The cut is in force at f and at its peers, both ways (a cut is
	// enforced by its sender and its receiver).
	for _, o := range others(c.lc.IDs(), f) {
		for _, p := range [][2]string{{f, o}, {o, f}} {
			fs := status(t, c, p[0]).Faults[p[1]]
			if !fs[kvserver.DirOut].Drop || !fs[kvserver.DirIn].Drop {
				t.Fatalf("%s lacks its cut with %s: %v", p[0], p[1], status(t, c, p[0]).Faults)
			}
		}
	}
	// And it works: a write committed after the cut does not reach f.
	put(t, c, lead, "after-cut")
	target := status(t, c, lead).Commit
	ctx := context.Background()
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return status(t, c, lead).Applied >= target }, 20*time.Second) {
		t.Fatal("the leader did not apply its write")
	}
	if got := status(t, c, f).Applied; got >= target {
		t.Fatalf("%s applied %d >= %d through the partition", f, got, target)
	}
	if err := c.SetNetwork(backend.Network{}); err != nil {
		t.Fatal(err)
	}
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return status(t, c, f).Applied >= target }, 30*time.Second) {
		t.Fatalf("%s did not catch up after the heal (applied %d < %d)", f, status(t, c, f).Applied, target)
	}
	if fs := status(t, c, f).Faults; len(fs) != 0 {
		t.Fatalf("%s keeps faults after the heal: %v", f, fs)
	}
}

// A delay set while a node is down is in force from its restart, on its
// side only (not applied twice). On the old code the restarted node had no
// fault (SetNetwork reached running nodes only).
func TestLocalDelaySetBeforeRestartAppliesAfterRestart(t *testing.T) {
	c, lead := startLocal(t)
	f := others(c.lc.IDs(), lead)[0]
	if err := c.Kill(f); err != nil {
		t.Fatal(err)
	}
	n := backend.Network{{From: f, To: lead}: {DelayMs: 40, JitterMs: 5, DuplicatePercent: 10}}
	if err := c.SetNetwork(n); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(f, nil); err != nil {
		t.Fatal(err)
	}
	got := status(t, c, f).Faults
	want := kvserver.Fault{DelayMs: 40, JitterMs: 5, DuplicatePercent: 10}
	if len(got) != 1 || got[lead][kvserver.DirOut] != want || len(got[lead]) != 1 {
		t.Fatalf("%s after restart has faults %v, want out to %s %v", f, got, lead, want)
	}
	if lf := status(t, c, lead).Faults; len(lf) != 0 {
		t.Fatalf("the delay is applied on %s too: %v", lead, lf)
	}
	// The restarted node logged that it started with them: in force
	// before its first message, not from a later admin call.
	b, _ := os.ReadFile(c.lc.Node(f).LogPath)
	if !strings.Contains(string(b), kvserver.InitialFaultsEnv+": starting with faults") {
		t.Fatalf("%s did not start with its faults:\n%s", f, b)
	}
}

// A when: {jointState: entering} step is matched on local: the joint
// configuration is entering only from its append to its commit, a few
// milliseconds, which a status poll every 10 ms mostly misses; the events
// report it. The run also records every configuration, so the history is
// not sampled.
func TestLocalWhenJointEnteringMatched(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	exp := parse(t, `steps:
  - sleep: 1s
  - reconfigure: {voters: [kv-0, kv-1]}
  - name: at-entering
    when: {jointState: entering}
    heal: {}
  - await: {reconfigured: true, timeout: 10s}`)
	run, err := runner.Execute(context.Background(), exp, runner.Options{Backend: Backend{Bin: raftKVBin, Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, s := range run.Result.Steps {
		if s.Label == "at-entering" {
			found = true
			if !s.OK {
				t.Fatalf("the when: entering step did not run: %+v", s)
			}
		}
	}
	if !found {
		t.Fatalf("no step record at-entering in %+v", run.Result.Steps)
	}
	// Bootstrap, joint, new: every one recorded, chained, so checked.
	if h := run.Result.ConfigHistory; h != "complete" || len(run.Result.Configurations) < 3 {
		t.Fatalf("configuration history %s: %v", h, run.Result.Configurations)
	}
}

// WaitUntil sees a state that an event reported and that was over before
// any status could show it: a condition on the leader's joint state
// entering matches though the live cluster never leaves none. The events
// here are made up (the leader's own keep flowing); they stand for a
// change whose entering lasted less than a poll. On the old code (polling
// Observe every 10 ms) the wait timed out.
func TestLocalWaitUntilSeesTransientEventState(t *testing.T) {
	c, lead := startLocal(t)
	ctx := context.Background()
	started := make(chan struct{})
	var once sync.Once
	got := make(chan bool, 1)
	go func() {
		got <- c.WaitUntil(ctx, func(view func() backend.View) bool {
			once.Do(func() { close(started) })
			v := view()
			return v.Leader == lead && v.Node(lead).Joint == "entering"
		}, 10*time.Second)
	}()
	<-started
	c.mu.Lock()
	gen := c.subGen[lead]
	base := kvserver.EventJSON{Kind: kvserver.EventState, Role: "leader", Leader: lead, Term: 1 << 40, ConfigIndex: 1 << 40,
		Config: &kvserver.ConfigJSON{Voters: []string{"kv-0", "kv-1"}, OutgoingVoters: []string{"kv-0", "kv-1", "kv-2"}}}
	for _, joint := range []string{"entering", "committed"} {
		e := base
		e.JointState, e.AtUnixMicro = joint, time.Now().UnixMicro()
		c.onEventLocked(lead, gen, e)
	}
	c.mu.Unlock()
	if !<-got {
		t.Fatal("the entering state an event reported was not seen")
	}
	if j := c.Observe(ctx).Node(lead).Joint; j == "entering" {
		t.Fatalf("the live view shows %s: the test does not test the events", j)
	}
}

// A heal while a node is paused is in force when it resumes: the cut it
// had when it stopped is gone, and it catches up. On the old code the heal
// failed on the paused node (its admin call timed out) and it resumed
// still cut.
func TestLocalHealWhilePausedTakesEffect(t *testing.T) {
	c, lead := startLocal(t)
	f := others(c.lc.IDs(), lead)[0]
	if err := c.SetNetwork(isolation(c, f)); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(f); err != nil {
		t.Fatal(err)
	}
	put(t, c, lead, "while-paused")
	target := status(t, c, lead).Commit
	if err := c.SetNetwork(backend.Network{}); err != nil {
		t.Fatalf("heal while %s is paused: %v", f, err)
	}
	if err := c.Resume(f); err != nil {
		t.Fatal(err)
	}
	if fs := status(t, c, f).Faults; len(fs) != 0 {
		t.Fatalf("%s resumed with faults %v after the heal", f, fs)
	}
	ctx := context.Background()
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return status(t, c, f).Applied >= target }, 30*time.Second) {
		t.Fatalf("%s did not catch up after resuming healed", f)
	}
}

// A view handed out by Observe shares no slice with the stored view.
func TestCloneViewSharesNothing(t *testing.T) {
	v := backend.View{Nodes: []backend.NodeView{{ID: "kv-0", Voters: []string{"kv-0", "kv-1"}, Learners: []string{"kv-2"}}}}
	out := cloneView(v)
	out.Nodes[0].Voters[0], out.Nodes[0].Learners[0] = "x", "y"
	if v.Nodes[0].Voters[0] != "kv-0" || v.Nodes[0].Learners[0] != "kv-2" {
		t.Fatalf("the clone shares the stored view's slices: %+v", v.Nodes[0])
	}
}

// The views forget a killed or restarted process's last status; WaitUntil
// evaluates the cluster as it is at the call, not a view built from
// events older than the call; a restarted node's faults are read back.
func TestLocalStaleStateNotEvaluated(t *testing.T) {
	c, lead := startLocal(t)
	ctx := context.Background()
	f := others(c.lc.IDs(), lead)[0]

	// A state an old event reported (here: made up), over before the call.
	// A real event during the wait (an election on a loaded machine)
	// builds a new view from every node's latest model, the made-up one
	// included: that try proves nothing and is made again.
	const fakeTerm = 1 << 40
	for try := 0; ; try++ {
		c.mu.Lock()
		saved := c.models[f]
		c.models[f] = &nodeModel{role: "leader", leader: f, joint: "none", term: fakeTerm}
		before := c.viewSeq
		c.mu.Unlock()
		seen := c.WaitUntil(ctx, func(view func() backend.View) bool {
			for _, n := range view().Nodes {
				if n.Term == fakeTerm {
					return true
				}
			}
			return false
		}, 200*time.Millisecond)
		c.mu.Lock()
		if c.models[f].term == fakeTerm {
			c.models[f] = saved
		}
		quiet := c.viewSeq == before
		c.mu.Unlock()
		if !seen {
			break
		}
		if quiet || try == 20 {
			t.Fatalf("WaitUntil evaluated a view of events older than the call (try %d, quiet %v)", try, quiet)
		}
	}

	put(t, c, lead, "k")
	c.Observe(ctx) // records every node's applied and commit
	c.mu.Lock()
	_, had := c.polled[f]
	c.mu.Unlock()
	if !had {
		t.Fatalf("no status recorded for %s", f)
	}
	if err := c.Kill(f); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	_, stale := c.polled[f]
	c.mu.Unlock()
	if stale {
		t.Fatalf("the killed %s's last status is still in the views", f)
	}
	n := backend.Network{backend.Link{From: f, To: lead}: backend.LinkFault{DelayMs: 5}}
	if err := c.SetNetwork(n); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(f, nil); err != nil {
		t.Fatalf("restart with faults: %v", err)
	}
	c.mu.Lock()
	_, stale = c.polled[f]
	c.mu.Unlock()
	if stale {
		t.Fatalf("the restarted %s has the old process's status in the views", f)
	}
	c.netMu.Lock()
	err := c.checkFaults(f, kvserver.FaultSet{Faults: []kvserver.FaultRequest{{Peer: lead, Direction: kvserver.DirOut, Fault: kvserver.Fault{DelayMs: 7}}}})
	c.netMu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "started with faults") {
		t.Fatalf("a node enforcing other faults than it was given passes the check: %v", err)
	}
}

// A network change while a node starts is not held up by the start (up to
// its wait for the node to serve), and the node has it once Restart returns.
func TestLocalSetNetworkDuringRestart(t *testing.T) {
	c, lead := startLocal(t)
	f := others(c.lc.IDs(), lead)[0]
	if err := c.Kill(f); err != nil {
		t.Fatal(err)
	}
	restarted := make(chan error, 1)
	go func() { restarted <- c.Restart(f, nil) }()
	starting := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.starting[f]
	}
	deadline := time.Now().Add(10 * time.Second)
	for !starting() {
		select {
		case err := <-restarted:
			t.Skipf("the restart was over before it was seen starting (%v)", err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the restart is not seen starting")
		}
	}
	n := isolation(c, f)
	if err := c.SetNetwork(n); err != nil {
		t.Fatal(err)
	}
	if !starting() {
		t.Log("the node served before SetNetwork returned: inconclusive on the blocking")
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart: %v", err)
	}
	c.netMu.Lock()
	err := c.checkFaults(f, c.faultSet(f))
	c.netMu.Unlock()
	if err != nil {
		t.Fatalf("the network set while %s started is not on it: %v", f, err)
	}
}
