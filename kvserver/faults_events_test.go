package kvserver

// Issue 13 tests of the fault plane and the event log: a message held by a
// delay is judged when it is released, duplication, PUT /admin/faults, the
// initial faults from the environment, and GET /admin/events.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/reconfig"
)

// waitDeliveredOrDropped waits (bounded) until b got a message or a's and
// b's transports counted a drop; it reports which.
func waitDeliveredOrDropped(t *testing.T, a, b *testPeer, dropsBefore uint64) (delivered bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.got:
			return true
		case <-tick.C:
			if a.tr.dropped.Load()+b.tr.dropped.Load() > dropsBefore {
				// Released and dropped; nothing can arrive later (the
				// message was the only one sent).
				select {
				case <-b.got:
					return true
				default:
					return false
				}
			}
		case <-deadline:
			t.Fatal("the delayed message was neither delivered nor dropped within 15 s")
			return false
		}
	}
}

// A message held by a delay when a drop is set on its link is dropped when
// its delay ends: the partition cut what was in flight. On the old code the
// delayed message was delivered after the partition began, on both the
// sending (out) and the receiving (in) side.
func TestPeerDelayedMessageJudgedAtRelease(t *testing.T) {
	for _, dir := range []string{DirOut, DirIn} {
		t.Run(dir, func(t *testing.T) {
			ps := startPeers(t, []string{"a", "b"}, nil)
			a, b := ps["a"], ps["b"]
			// Warm the connection up, so the only thing that can hold the
			// message is the delay.
			a.tr.send([]raftcore.Message{{Type: raftcore.MsgHeartbeat, From: "a", To: "b", Term: 1}})
			waitMsg(t, b.got, 10*time.Second, "warm-up heartbeat")

			// The delay is long against the few microseconds between the
			// send and the drop that follows it on this goroutine.
			const delay = 1500
			set := func(f Fault) {
				if dir == DirOut {
					a.tr.setFault("b", DirOut, f)
				} else {
					b.tr.setFault("a", DirIn, f)
				}
			}
			set(Fault{DelayMs: delay})
			drops := a.tr.dropped.Load() + b.tr.dropped.Load()
			held := b.tr.delayed.Load()
			a.tr.send([]raftcore.Message{{Type: raftcore.MsgApp, From: "a", To: "b", Term: 1, Index: 7}})
			if dir == DirIn {
				// The receiver starts the delay when the message arrives:
				// wait until it holds it (nothing is delivered meanwhile).
				waitHeld(t, b, held)
			}
			set(Fault{Drop: true, DelayMs: delay})
			if waitDeliveredOrDropped(t, a, b, drops) {
				t.Fatal("a message delayed before the partition was delivered after it began")
			}
		})
	}
}

// waitHeld waits (bounded) until b's transport holds more messages in a
// delay than before.
func waitHeld(t *testing.T, b *testPeer, before uint64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for b.tr.delayed.Load() <= before {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("b did not take the message in within 10 s")
		}
	}
}

// DuplicatePercent 100 delivers every message twice.
func TestPeerDuplicate(t *testing.T) {
	ps := startPeers(t, []string{"a", "b"}, nil)
	a, b := ps["a"], ps["b"]
	a.tr.setFault("b", DirOut, Fault{DuplicatePercent: 100})
	a.tr.send([]raftcore.Message{{Type: raftcore.MsgApp, From: "a", To: "b", Term: 1, Index: 3}})
	m1 := waitMsg(t, b.got, 10*time.Second, "first copy")
	m2 := waitMsg(t, b.got, 10*time.Second, "second copy")
	if m1.Index != 3 || m2.Index != 3 {
		t.Fatalf("copies %+v %+v", m1, m2)
	}
}

func TestEventRingLostAndReset(t *testing.T) {
	var r eventRing
	for range EventRingSize + 10 {
		r.add(EventJSON{Kind: EventState})
	}
	evs, lost, reset, _ := r.since(0, EventRingSize+100)
	if lost != 10 || reset || len(evs) != EventRingSize || evs[0].Seq != 11 || evs[len(evs)-1].Seq != EventRingSize+10 {
		t.Fatalf("since(0): lost %d reset %v, %d events from %d", lost, reset, len(evs), evs[0].Seq)
	}
	evs, lost, _, _ = r.since(EventRingSize+5, 100)
	if lost != 0 || len(evs) != 5 || evs[0].Seq != EventRingSize+6 {
		t.Fatalf("since(last-5): lost %d, %d events", lost, len(evs))
	}
	_, _, reset, _ = r.since(EventRingSize+11, 100)
	if !reset {
		t.Fatal("after beyond the newest is not reported reset")
	}
}

func getJSON(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	code, err := tryJSON(method, url, body, out)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// tryJSON is getJSON for any goroutine: it returns its failure.
func tryJSON(method, url, body string, out any) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, url, err, data)
		}
	}
	return resp.StatusCode, nil
}

// PUT /admin/faults replaces the whole set; an empty set clears it.
func TestAdminPutFaultsReplaces(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	u := tc.adminURL("kv-0") + "/admin/faults"
	var got map[string]map[string]Fault
	if code := getJSON(t, "POST", u, `{"peer":"kv-1","drop":true}`, &got); code != 200 {
		t.Fatalf("POST: %d", code)
	}
	got = nil // Unmarshal would merge into the POST's answer
	code := getJSON(t, "PUT", u, `{"faults":[{"peer":"kv-2","direction":"out","delay_ms":5,"duplicate_percent":10}]}`, &got)
	want := map[string]map[string]Fault{"kv-2": {DirOut: {DelayMs: 5, DuplicatePercent: 10}}}
	if code != 200 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("PUT: %d %v, want %v", code, got, want)
	}
	if code := getJSON(t, "PUT", u, `{"faults":[{"peer":"kv-1","direction":"sideways"}]}`, nil); code != 400 {
		t.Fatalf("bad PUT: %d", code)
	}
	got = nil
	if code := getJSON(t, "PUT", u, `{"faults":[]}`, &got); code != 200 || len(got) != 0 {
		t.Fatalf("empty PUT: %d %v", code, got)
	}
}

// A node started with RAFT_KV_FAULTS has them in force from the start.
func TestInitialFaultsFromEnvironment(t *testing.T) {
	t.Setenv(InitialFaultsEnv, `{"faults":[{"peer":"kv-1","direction":"out","drop":true}]}`)
	tc := newTestCluster(t, 1, nil)
	got := tc.servers["kv-0"].n.tr.faultList()
	if !got["kv-1"][DirOut].Drop || len(got) != 1 {
		t.Fatalf("faults at start: %v", got)
	}
}

// events reads a node's events until one satisfies stop (bounded).
func events(t *testing.T, url string, stop func([]EventJSON) bool) []EventJSON {
	t.Helper()
	var all []EventJSON
	var after uint64
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var res EventsJSON
		if code := getJSON(t, "GET", fmt.Sprintf("%s/admin/events?after=%d&wait_ms=500", url, after), "", &res); code != 200 {
			t.Fatalf("events: HTTP %d", code)
		}
		if res.Lost != 0 || res.Reset {
			t.Fatalf("events: lost %d reset %v", res.Lost, res.Reset)
		}
		all = append(all, res.Events...)
		after = res.Next
		if stop(all) {
			return all
		}
	}
	t.Fatalf("events: condition not met within 20 s; got %+v", all)
	return nil
}

// The leader's events show a joint change whole, in order: the joint
// configuration entering (appended, not committed), committed, then the
// new configuration leaving and none, with each configuration applied and
// chained to the one before. A status poll sees entering only by luck.
func TestAdminEventsShowJointChange(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	u := tc.adminURL(lead)
	idx := tc.configIndex(lead)
	if code, out, _ := do(t, "POST", u+"/admin/enter-joint", enterJointBody(tc, lead, idx), nil); code != 200 {
		t.Fatalf("enter-joint: %d %v", code, out)
	}
	events(t, u, func(evs []EventJSON) bool {
		for _, e := range evs {
			if e.Kind == EventState && e.JointState == "committed" {
				return true
			}
		}
		return false
	})
	idx = tc.configIndex(lead)
	code, out, _ := do(t, "POST", u+"/admin/leave-joint", fmt.Sprintf(`{"expect_config_index":%d}`, idx), nil)
	if code != 200 {
		t.Fatalf("leave-joint: %d %v", code, out)
	}
	newIdx := uint64(out["config_index"].(float64))
	all := events(t, u, func(evs []EventJSON) bool {
		for _, e := range evs {
			if e.Kind == EventState && e.ConfigIndex == newIdx && e.JointState == "none" {
				return true
			}
		}
		return false
	})
	var joints []string
	prev := map[uint64]uint64{}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		switch e.Kind {
		case EventState:
			if len(joints) == 0 || joints[len(joints)-1] != e.JointState {
				joints = append(joints, e.JointState)
			}
		case EventConfigApplied:
			prev[e.Index] = e.PrevConfigIndex
		}
	}
	if got := strings.Join(joints, ","); got != "none,entering,committed,leaving,none" {
		t.Fatalf("joint states %s, want none,entering,committed,leaving,none (events %+v)", got, all)
	}
	if prev[1] != 0 || prev[idx] != 1 || prev[newIdx] != idx {
		t.Fatalf("configuration chain %v (joint at %d)", prev, idx)
	}
}

// A long poll waits for an event and answers as soon as one comes: it is
// seen waiting in the server, has not answered before the event is
// triggered, and answers with that event after.
func TestAdminEventsLongPoll(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	u := tc.adminURL(lead)
	srv := tc.servers[lead]
	var res EventsJSON
	getJSON(t, "GET", u+"/admin/events", "", &res)
	type answer struct {
		code int
		r    EventsJSON
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		a.code, a.err = tryJSON("GET", fmt.Sprintf("%s/admin/events?after=%d&wait_ms=60000", u, res.Next), "", &a.r)
		done <- a
	}()
	// The poll is in flight: the server holds it, waiting for an event.
	deadline := time.Now().Add(10 * time.Second)
	for srv.eventPolls.Load() == 0 {
		select {
		case a := <-done:
			t.Fatalf("the long poll answered before any event: %+v", a)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the long poll is not waiting in the server within 10 s")
		}
	}
	select {
	case a := <-done:
		t.Fatalf("the long poll answered before the event: %+v", a)
	default:
	}
	idx := tc.configIndex(lead)
	if code, out, _ := do(t, "POST", u+"/admin/enter-joint", enterJointBody(tc, lead, idx), nil); code != 200 {
		t.Fatalf("enter-joint: %d %v", code, out)
	}
	select {
	case a := <-done:
		if a.err != nil || a.code != 200 {
			t.Fatalf("long poll: HTTP %d, %v", a.code, a.err)
		}
		if len(a.r.Events) == 0 || a.r.Events[0].Seq != res.Next+1 {
			t.Fatalf("long poll answered %+v", a.r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll did not answer the event within 30 s")
	}
}

// enterJointBody drops one follower from the voters (never the leader).
func enterJointBody(tc *testCluster, lead string, idx uint64) string {
	var voters []string
	dropped := false
	for _, id := range []string{"kv-0", "kv-1", "kv-2"} {
		if id != lead && !dropped {
			dropped = true
			continue
		}
		voters = append(voters, `"`+id+`"`)
	}
	return fmt.Sprintf(`{"voters":[%s],"expect_config_index":%d}`, strings.Join(voters, ","), idx)
}

// A node given a malformed RAFT_KV_FAULTS does not start (it would start
// unpartitioned): Start fails naming the variable and the problem, before
// it writes to its data directory.
func TestInitialFaultsMalformedRefusesStart(t *testing.T) {
	addrs := freeAddrs(t, 3)
	dir := t.TempDir() + "/kv-0"
	cfg := Config{
		ID: "kv-0", Peers: map[string]string{"kv-0": addrs[0], "kv-1": "127.0.0.1:1"}, DataDir: dir,
		ClientAddr: addrs[1], AdminAddr: addrs[2],
		ElectionTimeout: 200 * time.Millisecond, Heartbeat: 20 * time.Millisecond,
		SnapshotEntries: DefaultSnapshotEntries, SnapshotKeep: 10, Mode: reconfig.Safe,
		MaxKeyBytes: 16, MaxValueBytes: 64, RequestTimeout: 2 * time.Second,
	}
	for _, tc := range []struct{ value, problem string }{
		{`{"faults":[{"peer":"kv-1","drop":true}]`, "unexpected EOF"},
		{`{"faults":[{"peer":"kv-1","drpo":true}]}`, `unknown field "drpo"`},
		{`{"fault":[{"peer":"kv-1","drop":true}]}`, `unknown field "fault"`},
		{`{"faults":[]} {}`, "trailing data"},
		{`{"faults":[{"peer":"kv-1","direction":"sideways"}]}`, "direction must be"},
		{`{"faults":[{"peer":"kv-1","loss_percent":150}]}`, "loss_percent"},
	} {
		t.Setenv(InitialFaultsEnv, tc.value)
		s, err := Start(cfg)
		if err == nil {
			s.shutdown()
			t.Fatalf("%s=%s: the node started", InitialFaultsEnv, tc.value)
		}
		if msg := err.Error(); !strings.Contains(msg, InitialFaultsEnv) || !strings.Contains(msg, tc.problem) {
			t.Fatalf("%s=%s: error %q does not name the variable and %q", InitialFaultsEnv, tc.value, msg, tc.problem)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%s=%s: the data directory was opened: %v", InitialFaultsEnv, tc.value, ents)
		}
	}
}

// A snapshot dropped when it is sent (a cut link, or loss) is reported
// failed, as one dropped at the end of a delay is: raftcore would wait for
// it otherwise, not sending it again.
func TestPeerSnapshotDroppedAtSendReportedFailed(t *testing.T) {
	ps := startPeers(t, []string{"a", "b"}, nil)
	a := ps["a"]
	for _, f := range []Fault{{Drop: true}, {LossPercent: 100}} {
		a.tr.setFault("b", DirOut, f)
		a.tr.send([]raftcore.Message{snapMsg("a", "b", 100)})
		if r := waitReport(t, a.snaps, 10*time.Second); r != (snapReport{"b", false}) {
			t.Fatalf("fault %+v: snapshot report %+v, want b failed", f, r)
		}
	}
	if got := a.tr.snapsFailed.Load(); got != 2 {
		t.Fatalf("snapshots failed %d, want 2", got)
	}
}

// mayChangeState, the gate of the per-Ready state events, says yes for
// every kind of Ready that changes what a state event reports, no for a
// plain replication Ready, and allocates nothing.
func TestMayChangeState(t *testing.T) {
	n := &node{lastEv: EventJSON{Kind: EventState, Role: "leader", Term: 3, Leader: "a", ConfigIndex: 10, JointState: "entering"}}
	plain := raftcore.Ready{Entries: []raftcore.Entry{{Index: 12, Term: 3}}}
	if n.mayChangeState(&plain) {
		t.Fatal("a plain append may change the state")
	}
	if a := testing.AllocsPerRun(100, func() { n.mayChangeState(&plain) }); a != 0 {
		t.Fatalf("mayChangeState allocates %v times", a)
	}
	for name, rd := range map[string]raftcore.Ready{
		"role or leader":      {SoftState: &raftcore.SoftState{Lead: "b"}},
		"term":                {HardState: raftcore.HardState{Term: 4, Commit: 9}},
		"entering, committed": {HardState: raftcore.HardState{Term: 3, Commit: 10}},
		"config appended":     {Entries: []raftcore.Entry{{Index: 12, Term: 3, Type: raftcore.EntryConfig}}},
		"config truncated":    {Entries: []raftcore.Entry{{Index: 10, Term: 4}}},
		"snapshot":            {Snapshot: raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: 20, Term: 3}}},
	} {
		if !n.mayChangeState(&rd) {
			t.Errorf("%s: the gate says no change", name)
		}
	}
	n.lastEv.JointState = "none"
	if rd := (raftcore.Ready{HardState: raftcore.HardState{Term: 3, Commit: 11}}); n.mayChangeState(&rd) {
		t.Error("a commit outside a joint change may change the state")
	}
}
