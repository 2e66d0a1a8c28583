package kvserver_test

// Integration tests with real raft-kv processes on loopback ports (skipped
// with -short). Every wait is on a condition with a deadline; none depends
// on the machine's speed beyond generous bounds.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/client"
	"github.com/raftlab/raftlab/kvserver/localcluster"
	"github.com/raftlab/raftlab/reconfig"
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

// electionMs is the clusters' election timeout; "a few election timeouts"
// below are multiples of it.
const electionMs = 300

func startCluster(t *testing.T, n int, args ...string) *localcluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	dir := t.TempDir()
	c, err := localcluster.Start(localcluster.Options{Bin: raftKVBin, Dir: dir, N: n, ElectionTimeoutMs: electionMs,
		Args: append([]string{"--request-timeout", "1500ms"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for _, id := range c.IDs() {
				b, _ := os.ReadFile(c.Node(id).LogPath)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- %s log (tail) ---\n%s", id, b)
			}
		}
	})
	waitLeader(t, c)
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitLeader(t *testing.T, c *localcluster.Cluster, ids ...string) string {
	t.Helper()
	lead, err := c.WaitLeader(ctxFor(t, 20*time.Second), ids...)
	if err != nil {
		t.Fatal(err)
	}
	return lead
}

func newClient(t *testing.T, urls []string) *client.Client {
	t.Helper()
	cl, err := client.New(urls, client.Options{AttemptTimeout: 3 * time.Second, MaxAttempts: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// writer writes keys w-0, w-1, ... until stopped, and remembers which
// writes were acknowledged.
type writer struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	acked   map[string]string
	unknown int
}

func startWriter(t *testing.T, urls []string, prefix string) *writer {
	cl := newClient(t, urls)
	w := &writer{stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]string{}}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			k, v := fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("v%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := cl.Put(ctx, k, []byte(v))
			cancel()
			w.mu.Lock()
			switch client.OutcomeOf(err) {
			case client.OK:
				w.acked[k] = v
			case client.Unknown:
				w.unknown++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitAcked waits until n more writes than now were acknowledged.
func (w *writer) waitMore(t *testing.T, n int) {
	t.Helper()
	want := w.count() + n
	if err := localcluster.WaitFor(ctxFor(t, 30*time.Second), fmt.Sprintf("%d acknowledged writes", want),
		func() (bool, error) { return w.count() >= want, nil }); err != nil {
		t.Fatal(err)
	}
}

func (w *writer) finish() map[string]string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// checkAll reads every acknowledged write through each of urls.
func checkAll(t *testing.T, urls []string, acked map[string]string) {
	t.Helper()
	for _, u := range urls {
		cl := newClient(t, []string{u})
		for k, v := range acked {
			got, found, err := cl.Get(ctxFor(t, 20*time.Second), k)
			if err != nil || !found || string(got) != v {
				t.Fatalf("acknowledged write %s=%s read through %s: found=%v value=%q err=%v", k, v, u, found, got, err)
			}
		}
	}
}

func TestProcessWritesAndLinearizableReads(t *testing.T) {
	c := startCluster(t, 3)
	cl := newClient(t, c.ClientURLs("kv-0"))
	for i := 0; i < 20; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		if _, err := cl.Put(ctxFor(t, 10*time.Second), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		// Once acknowledged, every node must serve it at once: each read
		// goes through ReadIndex, so no node answers from a stale state.
		for _, u := range c.ClientURLs() {
			one := newClient(t, []string{u})
			got, found, err := one.Get(ctxFor(t, 10*time.Second), k)
			if err != nil || !found || string(got) != v {
				t.Fatalf("read %s through %s right after its write: %q found=%v err=%v", k, u, got, found, err)
			}
		}
	}
	// Delete, then the key is gone everywhere.
	if res, err := cl.Delete(ctxFor(t, 10*time.Second), "k0"); err != nil || !res.Existed {
		t.Fatalf("delete k0: %+v %v", res, err)
	}
	for _, u := range c.ClientURLs() {
		if _, found, err := newClient(t, []string{u}).Get(ctxFor(t, 10*time.Second), "k0"); err != nil || found {
			t.Fatalf("k0 after delete through %s: found=%v err=%v", u, found, err)
		}
	}
}

func TestProcessKillLeaderLosesNoAcknowledgedWrite(t *testing.T) {
	c := startCluster(t, 3)
	w := startWriter(t, c.ClientURLs(), "w")
	w.waitMore(t, 50)
	lead := waitLeader(t, c)
	if err := c.Kill(lead); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var rest []string
	for _, id := range c.IDs() {
		if id != lead {
			rest = append(rest, id)
		}
	}
	newLead := waitLeader(t, c, rest...)
	took := time.Since(killed)
	// The randomized timeout is in [1, 2) election timeouts, PreVote adds a
	// round: a few timeouts is ample; a generous bound keeps CI stable.
	if took > 10*electionMs*time.Millisecond {
		t.Errorf("new leader %s after %v, more than 10 election timeouts", newLead, took)
	}
	t.Logf("leader %s killed; %s leads after %v", lead, newLead, took)
	w.waitMore(t, 50)
	acked := w.finish()
	checkAll(t, c.ClientURLs(rest...), acked)
	// The killed node comes back from its disk and catches up.
	if err := c.Restart(lead); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, c)
	checkAll(t, c.ClientURLs(lead), acked)
}

func TestProcessRestartEveryNodeFromDisk(t *testing.T) {
	c := startCluster(t, 3)
	w := startWriter(t, c.ClientURLs(), "r")
	w.waitMore(t, 100)
	acked := w.finish()
	for _, id := range c.IDs() {
		if err := c.Kill(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.IDs() {
		if err := c.Restart(id); err != nil {
			t.Fatal(err)
		}
	}
	waitLeader(t, c)
	checkAll(t, c.ClientURLs(), acked)
}

func TestProcessFollowerRestoredFromSnapshot(t *testing.T) {
	c := startCluster(t, 3, "--snapshot-entries", "200", "--snapshot-keep-entries", "20")
	lead := waitLeader(t, c)
	var follower string
	for _, id := range c.IDs() {
		if id != lead {
			follower = id
			break
		}
	}
	if err := c.Stop(follower); err != nil {
		t.Fatal(err)
	}
	w := startWriter(t, c.ClientURLs(lead), "s")
	w.waitMore(t, 600) // three snapshots' worth; the log keeps 20 entries behind each
	acked := w.finish()
	st, err := c.Status(ctxFor(t, 5*time.Second), lead)
	if err != nil {
		t.Fatal(err)
	}
	if st.SnapshotIndex == 0 || st.FirstIndex <= 2 {
		t.Fatalf("leader did not snapshot and compact: %+v", st)
	}
	if err := c.Restart(follower); err != nil {
		t.Fatal(err)
	}
	// The follower's log ends before the leader's first index: only a
	// snapshot can bring it back.
	if err := localcluster.WaitFor(ctxFor(t, 20*time.Second), follower+" restored from a snapshot", func() (bool, error) {
		fs, err := c.Status(ctxFor(t, 5*time.Second), follower)
		return err == nil && fs.SnapshotIndex >= st.SnapshotIndex && fs.Applied >= st.Commit, err
	}); err != nil {
		t.Fatal(err)
	}
	// Read the follower's own state: isolate it from clients' forwarding
	// by checking through it alone (ReadIndex still asks the leader, but
	// the value comes from the follower's restored state machine).
	checkAll(t, c.ClientURLs(follower), acked)
}

func TestProcessDuplicateRequestsAppliedOnce(t *testing.T) {
	c := startCluster(t, 3)
	put := func(url, seq, value string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPut, url+"/kv/dup", strings.NewReader(`{"value":"`+value+`"}`))
		req.Header.Set(kvserver.HeaderClientID, "client-A")
		req.Header.Set(kvserver.HeaderSeq, seq)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	urls := c.ClientURLs()
	code, first := put(urls[0], "1", "one")
	if code != 200 || first["duplicate"] == true {
		t.Fatalf("first put: %d %v", code, first)
	}
	// The same request again, through another node: answered with the
	// first result (existed: false, though "dup" exists now), not applied
	// again. Either the retry's own entry is applied as a duplicate, or,
	// if that node had not yet applied the first entry, the first entry
	// itself answers the retry.
	code, again := put(urls[1], "1", "one")
	if code != 200 || again["existed"] != false || (again["duplicate"] != true && again["index"] != first["index"]) {
		t.Fatalf("retry of seq 1: %d %v (first %v)", code, again, first)
	}
	if code, out := put(urls[2], "2", "two"); code != 200 || out["existed"] != true {
		t.Fatalf("seq 2: %d %v", code, out)
	}
	// A late copy of seq 1 after seq 2: not applied again, answered with
	// seq 1's first result; "two" stays.
	if code, out := put(urls[0], "1", "one"); code != 200 || out["duplicate"] != true || out["existed"] != false {
		t.Fatalf("late seq 1: %d %v", code, out)
	}
	// Seq 3 never sent; after seq 4, a copy of it is definitely not
	// applied.
	if code, out := put(urls[1], "4", "two"); code != 200 || out["existed"] != true {
		t.Fatalf("seq 4: %d %v", code, out)
	}
	if code, out := put(urls[0], "3", "three"); code != http.StatusConflict || out["code"] != "stale_request" || out["outcome"] != "failed" {
		t.Fatalf("late seq 3, never applied: %d %v", code, out)
	}
	got, found, err := newClient(t, urls).Get(ctxFor(t, 5*time.Second), "dup")
	if err != nil || !found || string(got) != "two" {
		t.Fatalf("dup = %q found=%v err=%v; want two", got, found, err)
	}
}

func adminOK(t *testing.T, c *localcluster.Cluster, id, path string, body, out any) {
	t.Helper()
	var raw json.RawMessage
	code, err := c.Admin(ctxFor(t, 15*time.Second), id, http.MethodPost, path, body, &raw)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST %s on %s: HTTP %d %v: %s", path, id, code, err, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProcessPartitionedMinorityServesNothing(t *testing.T) {
	c := startCluster(t, 3)
	lead := waitLeader(t, c)
	cl := newClient(t, c.ClientURLs(lead))
	if _, err := cl.Put(ctxFor(t, 5*time.Second), "p", []byte("before")); err != nil {
		t.Fatal(err)
	}
	// Cut the leader off from both peers, both directions, on its side.
	adminOK(t, c, lead, "/admin/faults", map[string]any{"peer": "*", "drop": true}, nil)
	var majority []string
	for _, id := range c.IDs() {
		if id != lead {
			majority = append(majority, id)
		}
	}
	newLead := waitLeader(t, c, majority...)
	// The majority serves.
	mcl := newClient(t, c.ClientURLs(majority...))
	if _, err := mcl.Put(ctxFor(t, 10*time.Second), "p", []byte("after")); err != nil {
		t.Fatal(err)
	}
	// The old leader, alone, serves neither reads nor writes: a write is
	// never acknowledged (unknown or failed), a read is refused.
	minority, err := client.New(c.ClientURLs(lead), client.Options{AttemptTimeout: 3 * time.Second, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer minority.Close()
	if _, err := minority.Put(ctxFor(t, 15*time.Second), "p", []byte("minority")); client.OutcomeOf(err) == client.OK {
		t.Fatalf("the isolated old leader %s acknowledged a write", lead)
	}
	if v, _, err := minority.Get(ctxFor(t, 15*time.Second), "p"); err == nil {
		t.Fatalf("the isolated old leader %s served a read: %q", lead, v)
	}
	// Heal: everyone agrees on the majority's value.
	adminOK(t, c, lead, "/admin/faults", map[string]any{"peer": "*"}, nil) // zero fault clears
	if code, _ := c.Admin(ctxFor(t, 5*time.Second), lead, http.MethodDelete, "/admin/faults", nil, nil); code != 200 {
		t.Fatalf("clear faults: HTTP %d", code)
	}
	waitLeader(t, c)
	got, _, err := newClient(t, c.ClientURLs(lead)).Get(ctxFor(t, 10*time.Second), "p")
	if err != nil || string(got) != "after" {
		t.Fatalf("after heal p = %q (%v), want the majority's write; new leader was %s", got, err, newLead)
	}
}

func TestProcessSIGTERMTransfersLeadership(t *testing.T) {
	c := startCluster(t, 3, "--election-timeout-ms", "3000", "--heartbeat-ms", "100")
	lead := waitLeader(t, c)
	start := time.Now()
	if err := c.Stop(lead); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(lead).ExitErr(); err != nil {
		t.Fatalf("%s exited with %v after SIGTERM, want 0", lead, err)
	}
	var rest []string
	for _, id := range c.IDs() {
		if id != lead {
			rest = append(rest, id)
		}
	}
	newLead := waitLeader(t, c, rest...)
	// With a 3 s election timeout, a leader within 3 s of SIGTERM can only
	// come from the transfer (TimeoutNow), not from an election timeout.
	if took := time.Since(start); took >= 3*time.Second {
		t.Fatalf("leadership moved to %s only after %v: not transferred", newLead, took)
	}
}

func TestProcessMembership3To5To3UnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	w := startWriter(t, c.ClientURLs(), "m")
	w.waitMore(t, 30)
	ctx := ctxFor(t, 60*time.Second)
	status := func(id string) kvserver.StatusJSON {
		st, err := c.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	committed := func(on string) {
		if err := localcluster.WaitFor(ctx, "the configuration committed", func() (bool, error) {
			st := status(on)
			return st.ConfigCommitted && st.JointState == "none", nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	lead := waitLeader(t, c)
	for _, id := range []string{"kv-3", "kv-4"} {
		n, err := c.AddNode(id)
		if err != nil {
			t.Fatal(err)
		}
		st := status(lead)
		adminOK(t, c, lead, "/admin/add-learner", map[string]any{"id": id, "address": n.PeerAddr, "expect_config_index": st.ConfigIndex}, nil)
		committed(lead)
	}
	// A stale configuration index is refused.
	var aerr kvserver.AdminError
	code, _ := c.Admin(ctx, lead, http.MethodPost, "/admin/leave-joint", map[string]any{"expect_config_index": 1}, &aerr)
	if code != http.StatusConflict || aerr.Code != "config_moved" {
		t.Fatalf("stale expect_config_index: HTTP %d %+v", code, aerr)
	}
	for _, id := range []string{"kv-3", "kv-4"} {
		if err := localcluster.WaitFor(ctx, id+" caught up", func() (bool, error) {
			var cu kvserver.CaughtUpJSON
			code, err := c.Admin(ctx, lead, http.MethodGet, "/admin/caught-up?id="+id+"&max_lag=50", nil, &cu)
			return err == nil && code == 200 && cu.CaughtUp && cu.Durable, err
		}); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"}
	joint := func(on string, voters []string) {
		var resp kvserver.MembershipResponse
		adminOK(t, c, on, "/admin/enter-joint", map[string]any{"voters": voters, "expect_config_index": status(on).ConfigIndex}, &resp)
		adminOK(t, c, on, "/admin/commit-new", map[string]any{"expect_config_index": resp.ConfigIndex, "wait_ms": 10000}, nil)
		adminOK(t, c, on, "/admin/leave-joint", map[string]any{"expect_config_index": resp.ConfigIndex}, &resp)
		committed(on)
	}
	joint(lead, all)
	if st := status(lead); !slices.Equal(st.Config.Voters, all) || len(st.Config.Learners) != 0 {
		t.Fatalf("after 3->5: %s", st.ConfigText)
	}
	w.waitMore(t, 30)
	// 5 -> 3: the new members and one old follower stay; the leader goes,
	// last, after handing leadership over.
	var keep []string
	for _, id := range []string{"kv-0", "kv-1", "kv-2"} {
		if id != lead && len(keep) == 0 {
			keep = append(keep, id)
		}
	}
	keep = append(keep, "kv-3", "kv-4")
	slices.Sort(keep)
	adminOK(t, c, lead, "/admin/transfer-leader", map[string]any{"to": "kv-3", "wait_ms": 5000}, nil)
	newLead := waitLeader(t, c)
	if newLead != "kv-3" {
		t.Fatalf("transfer to kv-3: %s leads", newLead)
	}
	joint(newLead, keep)
	st := status(newLead)
	if !slices.Equal(st.Config.Voters, keep) {
		t.Fatalf("after 5->3: %s, want voters %v", st.ConfigText, keep)
	}
	w.waitMore(t, 30)
	acked := w.finish()
	t.Logf("%d writes acknowledged during 3->5->3, %d unknown", len(acked), w.unknown)
	checkAll(t, c.ClientURLs(keep...), acked)
}

func TestProcessBadConfigExitsTwo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary; skipped with -short")
	}
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=127.0.0.1:1,kv-0=127.0.0.1:2", "--data-dir", dir}, `duplicate id "kv-0"`},
		{[]string{"--id", "kv-9", "--peers", "kv-0=127.0.0.1:1", "--data-dir", dir}, "--id kv-9 is not in --peers (kv-0)"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=127.0.0.1:1", "--data-dir", filepath.Join(blocker, "sub")}, "cannot be made"},
	} {
		cmd := exec.Command(raftKVBin, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit code 2", tc.args, err)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: stderr %q, want one line with %q", tc.args, stderr.String(), tc.want)
		}
	}
	_ = io.Discard
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// TestProcessReconfigDriverOverHTTP: reconfig's safe driver, through the
// HTTP admin plane, takes a loaded cluster from 3 to 5 voters and then to a
// 3-voter set without the original leader; every acknowledged write stays.
func TestProcessReconfigDriverOverHTTP(t *testing.T) {
	c := startCluster(t, 3)
	w := startWriter(t, c.ClientURLs(), "d")
	w.waitMore(t, 30)
	admin := &client.Admin{Nodes: map[string]string{}, PeerAddrs: map[string]string{}}
	for _, id := range c.IDs() {
		admin.Nodes[id] = c.AdminURL(id)
	}
	for _, id := range []string{"kv-3", "kv-4"} {
		n, err := c.AddNode(id)
		if err != nil {
			t.Fatal(err)
		}
		admin.Nodes[id], admin.PeerAddrs[id] = c.AdminURL(id), n.PeerAddr
	}
	policy := reconfig.DefaultPolicy()
	policy.Stabilization, policy.RateLimit, policy.Retry = 300*time.Millisecond, 0, 50*time.Millisecond
	var steps []string
	drive := func(desired []string) {
		t.Helper()
		d := &reconfig.Driver{Admin: admin, Mode: reconfig.Safe, Policy: policy, Desired: desired, Clock: realClock{},
			OnEvent: func(e reconfig.Event) {
				if e.Kind == reconfig.EventStepDone {
					steps = append(steps, e.Decision.Step.String())
				}
			}}
		if err := d.Run(ctxFor(t, 60*time.Second), 50*time.Millisecond); err != nil {
			t.Fatalf("driver to %v: %v; steps so far %v", desired, err, steps)
		}
	}
	drive([]string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"})
	lead := waitLeader(t, c)
	var target []string
	for _, id := range []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"} {
		if id != lead && len(target) < 3 {
			target = append(target, id)
		}
	}
	drive(target)
	t.Logf("steps: %v", steps)
	st, err := c.Status(ctxFor(t, 5*time.Second), waitLeader(t, c, target...))
	if err != nil || !slices.Equal(st.Config.Voters, target) || st.JointState != "none" {
		t.Fatalf("final configuration %s (%v), want voters %v", st.ConfigText, err, target)
	}
	w.waitMore(t, 20)
	acked := w.finish()
	checkAll(t, c.ClientURLs(target...), acked)
}
