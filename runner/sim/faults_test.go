package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/disk"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// start parses a small experiment (extra is YAML appended to it) and
// starts it on the simulator with seed 1.
func start(t *testing.T, extra string) (*Cluster, *experiment.Experiment) {
	t.Helper()
	src := "apiVersion: raftlab/v1\nkind: Experiment\nmetadata: {name: faults}\n" +
		"workload: {clients: 1, rate: 1, duration: 1s}\nexpect: {linearizable: true}\n" + extra
	if !strings.Contains(extra, "cluster:") {
		src += "cluster: {replicas: 3}\n"
	}
	c := startSrc(t, src, 1)
	return c, c.exp
}

// startSrc starts the experiment src on the simulator with seed.
func startSrc(t *testing.T, src string, seed uint64) *Cluster {
	t.Helper()
	exp, err := experiment.Parse("faults.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Backend{}.Start(context.Background(), exp, seed)
	if err != nil {
		t.Fatal(err)
	}
	return cl.(*Cluster)
}

func waitLeader(t *testing.T, c *Cluster) string {
	t.Helper()
	ctx := context.Background()
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return c.Leader() != "" }, 10*time.Second) {
		t.Fatal("no leader elected")
	}
	return c.Leader()
}

// put writes key=value through node and waits for the outcome.
func put(t *testing.T, c *Cluster, node, key, value string, seq uint64) backend.Result {
	t.Helper()
	var res *backend.Result
	c.Do(node, backend.Op{Kind: backend.Put, Key: key, Value: value, ClientID: "t", Seq: seq}, time.Second,
		func(r backend.Result) { res = &r })
	if !c.WaitUntil(context.Background(), func(func() backend.View) bool { return res != nil }, 2*time.Second) {
		t.Fatalf("put %s: no outcome", key)
	}
	return *res
}

func follower(c *Cluster, lead string) string {
	for _, id := range c.ids {
		if id != lead {
			return id
		}
	}
	return ""
}

// TestKillLosesUnsyncedWrites pins the crash model on the MemFS itself: a
// kill keeps exactly what was synced. On a file: the synced bytes stay,
// every write after the last sync goes, and a name no directory sync
// covered vanishes. Through the WAL: a hard state appended but never
// synced (a vote the code "forgot" to sync) is gone after the crash and
// recovery; the same write synced survives.
func TestKillLosesUnsyncedWrites(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		fs := disk.NewMemFS()
		if err := fs.MkdirAll("/d"); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		write := func(f disk.File, b string, off int64) {
			if _, err := f.WriteAt([]byte(b), off); err != nil {
				t.Fatal(err)
			}
		}
		write(f, "synced", 0)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		write(f, "-lost", 6)
		write(f, "SY", 0) // an overwrite of synced bytes, unsynced
		g, err := fs.Create("/d/new")
		if err != nil {
			t.Fatal(err)
		}
		write(g, "x", 0)
		if err := g.Sync(); err != nil { // its data synced, its name not
			t.Fatal(err)
		}
		fs.CrashLosingUnsynced()
		if b, err := fs.ReadFile("/d/f"); err != nil || string(b) != "synced" {
			t.Fatalf("after the crash /d/f = %q, %v; want exactly the synced bytes", b, err)
		}
		if ok, _ := fs.Exists("/d/new"); ok {
			t.Fatal("a name no SyncDir covered survived the crash")
		}
	})
	for _, synced := range []bool{false, true} {
		t.Run(fmt.Sprintf("synced=%v", synced), func(t *testing.T) {
			fs := disk.NewMemFS()
			st, err := disk.Open(dataDir, disk.Options{FS: fs, SegmentSize: segmentSize})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Bootstrap(raftcore.NewConfig([]string{"a", "b", "c"})); err != nil {
				t.Fatal(err)
			}
			before, _ := st.InitialState()
			vote := raftcore.HardState{Term: before.Term + 3, Vote: "b", Commit: before.Commit}
			ent := raftcore.Entry{Term: vote.Term, Index: 2, Data: []byte("x")}
			tk, err := st.Append(vote, []raftcore.Entry{ent})
			if err != nil {
				t.Fatal(err)
			}
			if synced {
				if err := st.Sync(tk); err != nil {
					t.Fatal(err)
				}
			}
			fs.CrashLosingUnsynced()
			st, err = disk.Open(dataDir, disk.Options{FS: fs, SegmentSize: segmentSize})
			if err != nil {
				t.Fatal(err)
			}
			hs, _ := st.InitialState()
			last, _ := st.LastIndex()
			if synced && (hs != vote || last != 2) {
				t.Fatalf("synced vote and entry: recovered %+v, last index %d; want %+v, 2", hs, last, vote)
			}
			if !synced && (hs != before || last != 1) {
				t.Fatalf("unsynced vote and entry: recovered %+v, last index %d; want them lost: %+v, 1", hs, last, before)
			}
		})
	}
}

// TestKillDropsWhatTheNodeDidNotSync: in a running cluster, a vote written
// to a follower's WAL without a sync (what a core that marked a vote "no
// sync needed" would leave) does not survive Kill, and Restart recovers
// the node from its MemFS: its synced log and hard state, nothing more.
func TestKillDropsWhatTheNodeDidNotSync(t *testing.T) {
	c, _ := start(t, "")
	lead := waitLeader(t, c)
	if r := put(t, c, lead, "k", "v", 1); r.Outcome != backend.OK {
		t.Fatalf("put: %+v", r)
	}
	f := c.nodes[follower(c, lead)]
	c.WaitUntil(context.Background(), func(func() backend.View) bool { return !f.syncing && !f.rn.HasReady() }, time.Second)
	synced, _ := f.st.InitialState()
	lastSynced, _ := f.st.LastIndex()
	forgot := raftcore.HardState{Term: synced.Term + 1, Vote: f.id, Commit: synced.Commit}
	if _, err := f.st.Append(forgot, nil); err != nil {
		t.Fatal(err)
	}
	if hs, _ := f.st.InitialState(); hs != forgot {
		t.Fatalf("appended %+v, storage reads %+v", forgot, hs)
	}
	if err := c.Kill(f.id); err != nil {
		t.Fatal(err)
	}
	if hs, _ := f.st.InitialState(); hs != synced {
		t.Fatalf("after kill: hard state %+v, want the synced %+v (the unsynced vote lost)", hs, synced)
	}
	if last, _ := f.st.LastIndex(); last != lastSynced {
		t.Fatalf("after kill: last index %d, want %d", last, lastSynced)
	}
	if err := c.Restart(f.id, nil); err != nil {
		t.Fatal(err)
	}
	if st := f.rn.BasicStatus(); st.Term != synced.Term || st.Vote != synced.Vote {
		t.Fatalf("restarted at term %d vote %q, want %d %q", st.Term, st.Vote, synced.Term, synced.Vote)
	}
	if !c.WaitUntil(context.Background(), func(func() backend.View) bool { return f.sm.Applied() >= lastSynced }, 3*time.Second) {
		t.Fatalf("restarted node applied %d, want %d", f.sm.Applied(), lastSynced)
	}
	if v, ok := f.sm.Get("k"); !ok || string(v) != "v" {
		t.Fatalf("restarted node reads k = %q %v", v, ok)
	}
}

// TestSyncTakesFsyncMs: a Ready that must be synced holds its messages
// for network.fsyncMs, and what it appended is durable only then.
func TestSyncTakesFsyncMs(t *testing.T) {
	c, _ := start(t, "network: {fsyncMs: 40}\n")
	lead := waitLeader(t, c)
	n := c.nodes[lead]
	startAt := c.now
	var res *backend.Result
	c.Do(lead, backend.Op{Kind: backend.Put, Key: "k", Value: "v", ClientID: "t", Seq: 1}, time.Second,
		func(r backend.Result) { res = &r })
	c.settle()
	last, _ := n.st.LastIndex()
	if !n.syncing || n.st.DurableIndex() >= last {
		t.Fatalf("right after the proposal: syncing %v, durable %d, last %d; want a sync in progress", n.syncing, n.st.DurableIndex(), last)
	}
	if !c.WaitUntil(context.Background(), func(func() backend.View) bool { return res != nil }, time.Second) || res.Outcome != backend.OK {
		t.Fatalf("put: %+v", res)
	}
	// The leader's sync, then the follower's, each 40 ms.
	if took := c.now - startAt; took < 80 {
		t.Fatalf("put acknowledged after %d ms, want at least two fsyncs (80 ms)", took)
	}
	if n.st.DurableIndex() < last {
		t.Fatalf("after the ack: durable %d < %d", n.st.DurableIndex(), last)
	}
}

// TestClocksDriftAndTickApart: each node's clock runs at its own rate,
// within maxDriftPPM, and ticks at its own phase.
func TestClocksDriftAndTickApart(t *testing.T) {
	c, _ := start(t, "cluster: {replicas: 5}\n")
	before := map[string]uint64{}
	for _, id := range c.ids {
		before[id] = c.nodes[id].ticks
	}
	const ms = 10_000
	c.WaitUntil(context.Background(), nil, ms*time.Millisecond)
	rates, phases := map[int64]bool{}, map[int64]bool{}
	for _, id := range c.ids {
		n := c.nodes[id]
		rates[n.tickUs] = true
		phases[n.nextTickUs%1000] = true
		got := float64(n.ticks - before[id])
		want := float64(ms) * 1000 / float64(n.tickUs)
		if got < want-2 || got > want+2 {
			t.Errorf("%s: %v ticks in %d ms, want %.0f (tick every %d us)", id, got, ms, want, n.tickUs)
		}
		if d := n.tickUs - 1000; d < -maxDriftPPM/1000 || d > maxDriftPPM/1000 {
			t.Errorf("%s: tick every %d us, drift beyond %d ppm", id, n.tickUs, maxDriftPPM)
		}
	}
	if len(rates) < 3 || len(phases) < 3 {
		t.Fatalf("5 nodes with %d clock rates and %d phases: want them apart", len(rates), len(phases))
	}
}

// TestElectionTimeoutsInMilliseconds: a node's election timeout is drawn
// in ticks of one millisecond of its clock, in [electionTimeoutMs,
// 2*electionTimeoutMs): an isolated follower, restarted again and again,
// campaigns after that many of its ticks, a different number each boot
// (with one tick per heartbeat there would be six possible values).
func TestElectionTimeoutsInMilliseconds(t *testing.T) {
	c, exp := start(t, "")
	lead := waitLeader(t, c)
	f := c.nodes[follower(c, lead)]
	campaigned := false
	c.sent = func(from string, msgs []raftcore.Message) {
		if from == f.id && len(msgs) > 0 && msgs[0].Type == raftcore.MsgPreVote {
			campaigned = true
		}
	}
	nw := backend.Network{}
	for _, id := range c.ids {
		if id != f.id {
			nw[backend.Link{From: f.id, To: id}] = backend.LinkFault{Drop: true}
			nw[backend.Link{From: id, To: f.id}] = backend.LinkFault{Drop: true}
		}
	}
	if err := c.SetNetwork(nw); err != nil {
		t.Fatal(err)
	}
	et := uint64(exp.Cluster.ElectionTimeoutMs)
	seen := map[uint64]bool{}
	const boots = 12
	for i := 0; i < boots; i++ {
		if err := c.Kill(f.id); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(f.id, nil); err != nil {
			t.Fatal(err)
		}
		campaigned = false
		from := f.ticks
		if !c.WaitUntil(context.Background(), func(func() backend.View) bool { return campaigned }, time.Second) {
			t.Fatal("the isolated follower did not campaign within 1 s")
		}
		ticks := f.ticks - from
		if ticks < et || ticks >= 2*et {
			t.Fatalf("campaigned after %d ticks, want [%d, %d)", ticks, et, 2*et)
		}
		seen[ticks] = true
	}
	if len(seen) < boots-2 {
		t.Fatalf("%d boots campaigned after only %d distinct tick counts: %v", boots, len(seen), seen)
	}
}

// TestSetNetworkComposesAndReplaces: a link's fault adds to the base
// network, a Drop cuts one direction only, and each SetNetwork replaces
// the whole set.
func TestSetNetworkComposesAndReplaces(t *testing.T) {
	c, _ := start(t, "network: {delayMs: 2, jitterMs: 1}\n")
	l := backend.Link{From: "kv-0", To: "kv-1"}
	if err := c.SetNetwork(backend.Network{l: {DelayMs: 5, JitterMs: 3, LossPercent: 50, DuplicatePercent: 20},
		{From: "kv-2", To: "kv-0"}: {Drop: true}}); err != nil {
		t.Fatal(err)
	}
	want := raftcore.LinkFaults{Delay: 7, Jitter: 4, Drop: 0.5, Duplicate: 0.2}
	if got := c.net.LinkFaultsOf("kv-0", "kv-1"); got != want {
		t.Fatalf("kv-0->kv-1: %+v, want %+v", got, want)
	}
	if got := c.net.LinkFaultsOf("kv-1", "kv-0"); got != c.base {
		t.Fatalf("kv-1->kv-0 (not named): %+v, want the base %+v", got, c.base)
	}
	if c.net.Connected("kv-2", "kv-0") || !c.net.Connected("kv-0", "kv-2") {
		t.Fatal("Drop kv-2->kv-0 must cut that direction only")
	}
	if err := c.SetNetwork(backend.Network{{From: "kv-1", To: "kv-2"}: {Drop: true}}); err != nil {
		t.Fatal(err)
	}
	if got := c.net.LinkFaultsOf("kv-0", "kv-1"); got != c.base {
		t.Fatalf("after a new set, kv-0->kv-1: %+v, want the base", got)
	}
	if !c.net.Connected("kv-2", "kv-0") || c.net.Connected("kv-1", "kv-2") {
		t.Fatal("the new set replaces the old one's cuts")
	}
	if err := c.SetNetwork(nil); err != nil {
		t.Fatal(err)
	}
	if !c.net.Connected("kv-1", "kv-2") {
		t.Fatal("an empty network heals every cut")
	}
}

// TestOneWayCutStopsReplication: cutting the leader's link to a follower,
// one way, stops the follower's log while the other follower keeps up.
func TestOneWayCutStopsReplication(t *testing.T) {
	c, _ := start(t, "")
	lead := waitLeader(t, c)
	var cut, other string
	for _, id := range c.ids {
		if id != lead {
			if cut == "" {
				cut = id
			} else {
				other = id
			}
		}
	}
	if err := c.SetNetwork(backend.Network{{From: lead, To: cut}: {Drop: true}}); err != nil {
		t.Fatal(err)
	}
	c.WaitUntil(context.Background(), nil, 20*time.Millisecond)
	base := c.nodes[cut].sm.Applied()
	for i := uint64(1); i <= 5; i++ {
		if r := put(t, c, lead, "k", fmt.Sprint(i), i); r.Outcome != backend.OK {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	c.WaitUntil(context.Background(), nil, 100*time.Millisecond)
	if got := c.nodes[cut].sm.Applied(); got != base {
		t.Fatalf("%s behind a one-way cut applied %d -> %d", cut, base, got)
	}
	if c.nodes[other].sm.Applied() < c.nodes[lead].sm.Applied()-1 {
		t.Fatalf("%s applied %d, leader %d", other, c.nodes[other].sm.Applied(), c.nodes[lead].sm.Applied())
	}
}

// TestDuplicatesAreDelivered: with DuplicatePercent 100 every message is
// delivered twice, and the cluster still works (the core tolerates it).
func TestDuplicatesAreDelivered(t *testing.T) {
	c, _ := start(t, "")
	lead := waitLeader(t, c)
	nw := backend.Network{}
	for _, a := range c.ids {
		for _, b := range c.ids {
			if a != b {
				nw[backend.Link{From: a, To: b}] = backend.LinkFault{DuplicatePercent: 100}
			}
		}
	}
	if err := c.SetNetwork(nw); err != nil {
		t.Fatal(err)
	}
	sent, dup := c.net.Sent, c.net.Duplicated
	for i := uint64(1); i <= 5; i++ {
		if r := put(t, c, lead, "k", fmt.Sprint(i), i); r.Outcome != backend.OK {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	if c.net.Sent == sent || c.net.Duplicated-dup != c.net.Sent-sent {
		t.Fatalf("%d messages sent, %d duplicated: want every one", c.net.Sent-sent, c.net.Duplicated-dup)
	}
}

// TestDelayedMessageDoesNotCrossALaterCut: a message in flight on a slow
// link when a cut is set is lost at delivery, and one sent on the cut link
// is lost even if the cut heals before it would have arrived.
func TestDelayedMessageDoesNotCrossALaterCut(t *testing.T) {
	c, _ := start(t, "")
	waitLeader(t, c)
	from, to := "kv-0", "kv-1"
	if c.Leader() == to {
		from, to = "kv-1", "kv-0"
	}
	term := c.nodes[to].rn.BasicStatus().Term
	// A heartbeat from a far higher term: if it arrives, to moves to it.
	bump := raftcore.Message{Type: raftcore.MsgHeartbeat, From: from, To: to, Term: term + 100}
	slow := backend.Network{{From: from, To: to}: {DelayMs: 50}}
	if err := c.SetNetwork(slow); err != nil {
		t.Fatal(err)
	}
	c.net.SendFrom(from, []raftcore.Message{bump})
	c.WaitUntil(context.Background(), nil, 10*time.Millisecond)
	if err := c.SetNetwork(backend.Network{{From: from, To: to}: {Drop: true}}); err != nil {
		t.Fatal(err)
	}
	c.WaitUntil(context.Background(), nil, 100*time.Millisecond)
	if got := c.nodes[to].rn.BasicStatus().Term; got >= term+100 {
		t.Fatalf("the delayed message crossed the cut set after it was sent (term %d)", got)
	}
	// Sent while cut, the cut healed before it is due: still lost.
	c.net.SendFrom(from, []raftcore.Message{bump})
	if err := c.SetNetwork(slow); err != nil {
		t.Fatal(err)
	}
	c.WaitUntil(context.Background(), nil, 100*time.Millisecond)
	if got := c.nodes[to].rn.BasicStatus().Term; got >= term+100 {
		t.Fatalf("a message sent on a cut link arrived after the heal (term %d)", got)
	}
	// The control: on the slow link alone it does arrive.
	c.net.SendFrom(from, []raftcore.Message{bump})
	c.WaitUntil(context.Background(), nil, 100*time.Millisecond)
	if got := c.nodes[to].rn.BasicStatus().Term; got < term+100 {
		t.Fatalf("the control message did not arrive (term %d, want >= %d)", got, term+100)
	}
}

// lagBehindSnapshot kills a follower, writes enough that the leader
// compacts past it, and restarts it, so that the leader must send a
// snapshot. It returns the leader and the follower.
func lagBehindSnapshot(t *testing.T, c *Cluster) (lead, f string) {
	t.Helper()
	lead = waitLeader(t, c)
	f = follower(c, lead)
	if err := c.Kill(f); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 30; i++ {
		if r := put(t, c, lead, fmt.Sprint("k", i), "value", i); r.Outcome != backend.OK {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	if snap, _ := c.nodes[lead].st.Snapshot(); snap.Meta.Index < 20 {
		t.Fatalf("leader snapshot at %d, want past the follower", snap.Meta.Index)
	}
	if err := c.Restart(f, nil); err != nil {
		t.Fatal(err)
	}
	return lead, f
}

// TestSnapshotTransferTakesTime: a snapshot takes its size over
// network.snapshotKBps to arrive, is reported finished only once it has.
func TestSnapshotTransferTakesTime(t *testing.T) {
	c, _ := start(t, "cluster: {replicas: 3, snapshotEntries: 10}\nnetwork: {snapshotKBps: 1}\n")
	_, f := lagBehindSnapshot(t, c)
	ctx := context.Background()
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return len(c.transfers) > 0 }, 2*time.Second) {
		t.Fatal("no snapshot sent")
	}
	tr := c.transfers[0]
	sentAt, size := c.now, int64(len(tr.m.Snapshot.Data)+snapshotOverhead)
	if !c.WaitUntil(ctx, func(func() backend.View) bool { d, _ := c.Snapshots(); return d > 0 }, 10*time.Second) {
		t.Fatal("the snapshot never arrived")
	}
	if took := c.now - sentAt; took < size { // 1 KB/s is 1 byte per ms
		t.Fatalf("a %d-byte snapshot at 1 KB/s arrived after %d ms", size, took)
	}
	if _, failed := c.Snapshots(); failed != 0 {
		t.Fatalf("%d transfers failed on a healthy network", failed)
	}
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return c.nodes[f].sm.Applied() >= 30 }, 2*time.Second) {
		t.Fatalf("follower applied %d after the snapshot", c.nodes[f].sm.Applied())
	}
}

// TestSnapshotAcrossACutFails: a cut during the transfer fails it, the
// leader is told (ReportSnapshot false, so it probes again), nothing
// reaches the follower, and after the heal a new snapshot gets through.
func TestSnapshotAcrossACutFails(t *testing.T) {
	c, _ := start(t, "cluster: {replicas: 3, snapshotEntries: 10}\nnetwork: {snapshotKBps: 1}\n")
	lead, f := lagBehindSnapshot(t, c)
	ctx := context.Background()
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return len(c.transfers) > 0 }, 2*time.Second) {
		t.Fatal("no snapshot sent")
	}
	if pr := c.nodes[lead].rn.Status().Progress[f]; pr.State != raftcore.ProgressSnapshot {
		t.Fatalf("leader's progress of %s: %v, want snapshot", f, pr.State)
	}
	applied := c.nodes[f].sm.Applied()
	c.WaitUntil(ctx, nil, 50*time.Millisecond)
	if err := c.SetNetwork(backend.Network{{From: lead, To: f}: {Drop: true}}); err != nil {
		t.Fatal(err)
	}
	if d, failed := c.Snapshots(); d != 0 || failed != 1 || len(c.transfers) != 0 {
		t.Fatalf("after the cut: %d delivered, %d failed, %d in flight; want 0, 1, 0", d, failed, len(c.transfers))
	}
	c.settle()
	if pr := c.nodes[lead].rn.Status().Progress[f]; pr.State == raftcore.ProgressSnapshot {
		t.Fatalf("leader still waits on the failed snapshot: %+v", pr)
	}
	// Told of the failure, the leader probes again at once and tries a
	// new snapshot, which fails at once on the cut link; told of a
	// success, it would wait for an answer that cannot come.
	c.WaitUntil(ctx, nil, time.Second)
	if _, failed := c.Snapshots(); failed < 2 {
		t.Fatalf("%d failed transfers in the second after the cut: the leader did not retry", failed)
	}
	if got := c.nodes[f].sm.Applied(); got != applied {
		t.Fatalf("follower applied %d -> %d across the cut", applied, got)
	}
	if err := c.SetNetwork(nil); err != nil {
		t.Fatal(err)
	}
	if !c.WaitUntil(ctx, func(func() backend.View) bool { d, _ := c.Snapshots(); return d > 0 }, 10*time.Second) {
		t.Fatal("no snapshot arrived after the heal")
	}
	if !c.WaitUntil(ctx, func(func() backend.View) bool { return c.nodes[f].sm.Applied() >= 30 }, 2*time.Second) {
		t.Fatalf("follower applied %d after the heal", c.nodes[f].sm.Applied())
	}
}

// TestClientDelayAndLostAnswers: client requests take clientDelayMs each
// way, and with clientLossPercent some writes end unknown although they
// were applied (their answer was lost); none ends ok unless applied.
func TestClientDelayAndLostAnswers(t *testing.T) {
	c, exp := start(t, "network: {clientDelayMs: 30}\n")
	lead := waitLeader(t, c)
	at := c.now
	if r := put(t, c, lead, "k", "v", 1); r.Outcome != backend.OK {
		t.Fatalf("put: %+v", r)
	}
	if took := c.now - at; took < 60 {
		t.Fatalf("a put with 30 ms client delay took %d ms, want at least 60", took)
	}
	exp.Network.ClientLossPercent = 50
	results := map[string]backend.Result{}
	for i := uint64(0); i < 40; i++ {
		key := fmt.Sprint("k", i)
		c.Do(lead, backend.Op{Kind: backend.Put, Key: key, Value: "v", ClientID: "t", Seq: 2 + i}, 500*time.Millisecond,
			func(r backend.Result) { results[key] = r })
	}
	c.WaitUntil(context.Background(), func(func() backend.View) bool { return len(results) == 40 }, time.Second)
	if len(results) != 40 {
		t.Fatalf("%d of 40 writes ended", len(results))
	}
	lostAnswer, lostRequest := 0, 0
	for key, r := range results {
		_, applied := c.nodes[lead].sm.Get(key)
		switch {
		case r.Outcome == backend.OK && !applied:
			t.Fatalf("%s: ok but not applied", key)
		case r.Outcome == backend.Unknown && applied:
			lostAnswer++
		case r.Outcome == backend.Unknown:
			lostRequest++
		case r.Outcome != backend.OK:
			t.Fatalf("%s: %+v", key, r)
		}
	}
	if lostAnswer == 0 || lostRequest == 0 {
		t.Fatalf("50%% loss: %d applied writes with a lost answer, %d lost requests; want some of each", lostAnswer, lostRequest)
	}
}

// TestFaultsAreDeterministic: the same file and seed give the same run
// with every fault of this file on (drift, disk crashes, duplication,
// slow snapshots, client delay and loss).
func TestFaultsAreDeterministic(t *testing.T) {
	run := func() string {
		c, _ := start(t, "cluster: {replicas: 3, snapshotEntries: 10}\n"+
			"network: {jitterMs: 3, snapshotKBps: 5, clientDelayMs: 2, clientJitterMs: 4, clientLossPercent: 10}\n")
		lead := waitLeader(t, c)
		var trace []string
		nw := backend.Network{}
		for _, a := range c.ids {
			for _, b := range c.ids {
				if a != b {
					nw[backend.Link{From: a, To: b}] = backend.LinkFault{DuplicatePercent: 30, LossPercent: 5, JitterMs: 5}
				}
			}
		}
		if err := c.SetNetwork(nw); err != nil {
			t.Fatal(err)
		}
		f := follower(c, lead)
		for i := uint64(1); i <= 60; i++ {
			if i == 10 {
				_ = c.Kill(f)
			}
			if i == 40 {
				_ = c.Restart(f, nil)
			}
			node := c.ids[int(i)%len(c.ids)]
			c.Do(node, backend.Op{Kind: backend.Put, Key: fmt.Sprint("k", i%7), Value: fmt.Sprint(i), ClientID: "t", Seq: i},
				300*time.Millisecond, func(r backend.Result) { trace = append(trace, fmt.Sprintf("%d %d %+v", c.now, i, r)) })
			c.WaitUntil(context.Background(), nil, 20*time.Millisecond)
		}
		c.WaitUntil(context.Background(), nil, 2*time.Second)
		d, failed := c.Snapshots()
		trace = append(trace, fmt.Sprint(c.Observe(context.Background()), c.stats.Elections, d, failed, c.net.Sent, c.net.Duplicated))
		// Raw order: the completions' order is part of what must repeat.
		return fmt.Sprint(trace)
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("two runs differ:\n%s\n%s", a, b)
	}
}
