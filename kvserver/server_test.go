package kvserver

// In-process tests: several Servers in one process on loopback, so that the
// race detector sees the loop, the transport and the HTTP handlers
// together (make test runs them with -race -short).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver/sm"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/reconfig"
)

func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range lns {
		_ = l.Close()
	}
	return out
}

type testCluster struct {
	t       *testing.T
	cfgs    map[string]Config
	servers map[string]*Server
}

func newTestCluster(t *testing.T, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	addrs := freeAddrs(t, 3*n)
	peers := map[string]string{}
	for i := 0; i < n; i++ {
		peers[fmt.Sprintf("kv-%d", i)] = addrs[3*i]
	}
	tc := &testCluster{t: t, cfgs: map[string]Config{}, servers: map[string]*Server{}}
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("kv-%d", i)
		cfg := Config{
			ID: id, Peers: peers, DataDir: dir + "/" + id,
			ClientAddr: addrs[3*i+1], AdminAddr: addrs[3*i+2],
			ElectionTimeout: 200 * time.Millisecond, Heartbeat: 20 * time.Millisecond,
			SnapshotEntries: DefaultSnapshotEntries, SnapshotKeep: 10, Mode: reconfig.Safe,
			MaxKeyBytes: 16, MaxValueBytes: 64, RequestTimeout: 2 * time.Second,
		}
		if tweak != nil {
			tweak(&cfg)
		}
		tc.cfgs[id] = cfg
		tc.start(id)
	}
	t.Cleanup(func() {
		for _, s := range tc.servers {
			s.shutdown()
		}
	})
	return tc
}

func (tc *testCluster) start(id string) {
	s, err := Start(tc.cfgs[id])
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.servers[id] = s
}

// leader waits until every server knows the same leader.
func (tc *testCluster) leader() string {
	tc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		lead := ""
		agreed := true
		for _, s := range tc.servers {
			l := *s.n.stats.lead.Load()
			if l == "" || (lead != "" && l != lead) {
				agreed = false
			}
			lead = l
		}
		if agreed && lead != "" && tc.servers[lead] != nil && tc.servers[lead].n.stats.isLeader.Load() {
			return lead
		}
		time.Sleep(10 * time.Millisecond)
	}
	tc.t.Fatal("no agreed leader within 15 s")
	return ""
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	if out == nil {
		out = map[string]any{"raw": string(data)}
	}
	return resp.StatusCode, out, resp.Header
}

func TestServerForwardsAndReadsThroughFollowers(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	var follower string
	for id := range tc.servers {
		if id != lead {
			follower = id
		}
	}
	fURL := "http://" + tc.servers[follower].ClientAddr()
	code, out, hdr := do(t, http.MethodPost, fURL+"/kv/a", `{"value":"1"}`, nil)
	if code != 200 || out["outcome"] != "ok" {
		t.Fatalf("write through follower %s: %d %v", follower, code, out)
	}
	if hdr.Get(HeaderNode) != follower || hdr.Get(HeaderLeader) != lead || hdr.Get(HeaderLeaderURL) != "http://"+tc.servers[lead].ClientAddr() {
		t.Fatalf("headers %v; want node %s, leader %s at %s", hdr, follower, lead, tc.servers[lead].ClientAddr())
	}
	for id, s := range tc.servers {
		code, out, _ := do(t, http.MethodGet, "http://"+s.ClientAddr()+"/kv/a", "", nil)
		if code != 200 || out["value"] != "1" {
			t.Fatalf("read through %s: %d %v", id, code, out)
		}
	}
	code, out, _ = do(t, http.MethodGet, fURL+"/kv/absent", "", nil)
	if code != 404 || out["code"] != "not_found" || out["outcome"] != "ok" {
		t.Fatalf("absent key: %d %v", code, out)
	}
}

// A follower forwards POST /admin/transfer-leader to the leader, which hands
// leadership to the member that was named, not to the follower that passed
// the request on (issue 12, defect 3), and the peer transport accepts the
// forwarded request whose From is the originator.
func TestServerTransferLeaderAskedOfAFollower(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	var followers []string
	for _, id := range []string{"kv-0", "kv-1", "kv-2"} {
		if id != lead {
			followers = append(followers, id)
		}
	}
	asked, target := followers[0], followers[1]
	admin := "http://" + tc.servers[asked].AdminAddr()
	code, out, _ := do(t, http.MethodPost, admin+"/admin/transfer-leader", `{"to":"`+target+`","wait_ms":5000}`, nil)
	if code != 200 || out["leader"] != target {
		t.Fatalf("transfer to %s asked of %s (leader %s): %d %v", target, asked, lead, code, out)
	}
	if got := tc.leader(); got != target {
		t.Fatalf("after the transfer %s leads, want %s", got, target)
	}
}

func TestServerLimitsAndBadRequests(t *testing.T) {
	tc := newTestCluster(t, 1, func(c *Config) { c.MaxBodyBytes = 200 })
	tc.leader()
	u := "http://" + tc.servers["kv-0"].ClientAddr()
	for _, tt := range []struct {
		method, path, body string
		hdr                map[string]string
		code               int
		errCode, mention   string
	}{
		{"PUT", "/kv/" + strings.Repeat("k", 17), `{"value":"v"}`, nil, 414, "key_too_large", "--max-key-bytes"},
		{"PUT", "/kv/k", `{"value":"` + strings.Repeat("v", 65) + `"}`, nil, 413, "value_too_large", "--max-value-bytes"},
		{"PUT", "/kv/k", `{"value":"` + strings.Repeat("v", 300) + `"}`, nil, 413, "body_too_large", "--max-body-bytes"},
		{"PUT", "/kv/k", `value=v`, nil, 400, "bad_body", `{"value": "..."}`},
		{"PUT", "/kv/k", `{}`, nil, 400, "bad_body", `{"value": "..."}`},
		{"PUT", "/kv/", `{"value":"v"}`, nil, 400, "missing_key", "/kv/{key}"},
		{"PATCH", "/kv/k", ``, nil, 405, "method_not_allowed", "GET, PUT, POST or DELETE"},
		{"PUT", "/kv/k", `{"value":"v"}`, map[string]string{HeaderClientID: "c"}, 400, "bad_seq", HeaderSeq},
		{"PUT", "/kv/k", `{"value":"v"}`, map[string]string{HeaderClientID: "~c", HeaderSeq: "1"}, 400, "bad_client_id", "'~'"},
		{"GET", "/nope", ``, nil, 404, "no_such_path", "/kv/{key}"},
	} {
		code, out, _ := do(t, tt.method, u+tt.path, tt.body, tt.hdr)
		if code != tt.code || out["code"] != tt.errCode || out["outcome"] != "failed" || !strings.Contains(fmt.Sprint(out["error"]), tt.mention) {
			t.Errorf("%s %s: %d %v; want %d %s mentioning %q", tt.method, tt.path, code, out, tt.code, tt.errCode, tt.mention)
		}
	}
	// Nothing of the refused requests was applied.
	if code, _, _ := do(t, "GET", u+"/kv/k", "", nil); code != 404 {
		t.Fatalf("k exists after refused writes: %d", code)
	}
}

func TestServerAdminTokenStatusMetricsReady(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.AdminToken = "s3cret" })
	lead := tc.leader()
	admin := "http://" + tc.servers[lead].AdminAddr()
	if code, out, _ := do(t, "GET", admin+"/admin/status", "", nil); code != 401 || out["code"] != "unauthorized" {
		t.Fatalf("status without token: %d %v", code, out)
	}
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	code, out, _ := do(t, "GET", admin+"/admin/status", "", auth)
	if code != 200 || out["state"] != "leader" || out["config_text"] != "voters=(kv-0 kv-1 kv-2)" || out["joint_state"] != "none" {
		t.Fatalf("status: %d %v", code, out)
	}
	if p, ok := out["progress"].(map[string]any); !ok || len(p) != 3 {
		t.Fatalf("leader status has no progress of 3 members: %v", out["progress"])
	}
	// Membership calls require the expected configuration index.
	code, out, _ = do(t, "POST", admin+"/admin/add-learner", `{"id":"kv-9","address":"127.0.0.1:1"}`, auth)
	if code != 400 || !strings.Contains(fmt.Sprint(out["error"]), "expect_config_index") {
		t.Fatalf("add-learner without index: %d %v", code, out)
	}
	code, out, _ = do(t, "POST", admin+"/admin/add-learner", `{"id":"kv-9","address":"127.0.0.1:1","expect_config_index":99}`, auth)
	if code != 409 || out["code"] != "config_moved" {
		t.Fatalf("add-learner with a wrong index: %d %v", code, out)
	}
	var follower string
	for id := range tc.servers {
		if id != lead {
			follower = id
		}
	}
	code, out, _ = do(t, "POST", "http://"+tc.servers[follower].AdminAddr()+"/admin/add-learner", `{"id":"kv-9","address":"127.0.0.1:1","expect_config_index":1}`, auth)
	if code != 421 || out["code"] != "not_leader" || out["leader"] != lead {
		t.Fatalf("add-learner on a follower: %d %v", code, out)
	}
	// Text status, metrics, health.
	req, _ := http.NewRequest("GET", admin+"/admin/status?format=text", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !bytes.HasPrefix(text, []byte(lead+" leader term=")) || !bytes.Contains(text, []byte("joint=none@1")) {
		t.Fatalf("text status:\n%s", text)
	}
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if path == "/metrics" {
			for _, m := range []string{"raftkv_term ", "raftkv_is_leader 1", "raftkv_commit_index ", "raftkv_fsync_seconds_bucket", "raftkv_apply_lag_entries ", "raftkv_snapshots_total ", "raftkv_leader_changes_total "} {
				if !bytes.Contains(body, []byte(m)) {
					t.Errorf("/metrics lacks %q", m)
				}
			}
		}
	}
}

func TestServerSnapshotAndRestartInProcess(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	u := "http://" + tc.servers[lead].ClientAddr()
	for i := 0; i < 30; i++ {
		if code, out, _ := do(t, "PUT", fmt.Sprintf("%s/kv/k%d", u, i), fmt.Sprintf(`{"value":"v%d"}`, i), nil); code != 200 {
			t.Fatalf("put %d: %d %v", i, code, out)
		}
	}
	for id, s := range tc.servers {
		if code, out, _ := do(t, "POST", "http://"+s.AdminAddr()+"/admin/snapshot", "", nil); code != 200 || out["snapshot_index"].(float64) < 30 {
			t.Fatalf("snapshot on %s: %d %v", id, code, out)
		}
	}
	for id, s := range tc.servers {
		s.Stop(context.Background())
		<-s.Done()
		if s.Err() != nil {
			t.Fatalf("%s stopped with %v", id, s.Err())
		}
	}
	for id := range tc.servers {
		tc.start(id)
	}
	lead = tc.leader()
	for i := 0; i < 30; i++ {
		code, out, _ := do(t, "GET", fmt.Sprintf("http://%s/kv/k%d", tc.servers[lead].ClientAddr(), i), "", nil)
		if code != 200 || out["value"] != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%d after restart from snapshots: %d %v", i, code, out)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("snapshot"), snapChunk/4) // two chunks
	msgs := []raftcore.Message{
		{Type: raftcore.MsgApp, From: "kv-0", To: "kv-1", Term: 3, LogTerm: 2, Index: 7, Commit: 6,
			Entries: []raftcore.Entry{{Term: 2, Index: 8, Data: []byte("x")}, {Term: 3, Index: 9, Type: raftcore.EntryConfig, Data: raftcore.EncodeConfig(raftcore.NewConfig([]string{"kv-0"}))}}},
		{Type: raftcore.MsgAppResp, From: "kv-1", To: "kv-0", Term: 3, Index: 5, Reject: true, RejectHint: 4, LogTerm: 1},
		{Type: raftcore.MsgHeartbeat, From: "kv-0", To: "kv-1", Term: 3, Commit: 9, Round: 1 << 33},
		{Type: raftcore.MsgReadIndex, From: "kv-2", To: "kv-1", Context: []byte{1, 2}},
		{Type: raftcore.MsgSnap, From: "kv-0", To: "kv-2", Term: 4, Snapshot: &raftcore.Snapshot{
			Meta: raftcore.SnapshotMeta{Index: 100, Term: 4, Config: raftcore.NewConfig([]string{"kv-0", "kv-1"}, "kv-2")}, Data: data}},
	}
	var fw frameWriter
	fw.writeHello("kv-0", "127.0.0.1:7000", "127.0.0.1:8080")
	for i := range msgs {
		fw.writeMessage(&msgs[i])
	}
	r := bytes.NewReader(fw.buf)
	kind, payload, err := readFrame(r, nil)
	if err != nil || kind != frameHello {
		t.Fatal(kind, err)
	}
	if id, pa, ca, err := decodeHello(payload); err != nil || id != "kv-0" || pa != "127.0.0.1:7000" || ca != "127.0.0.1:8080" {
		t.Fatal(id, pa, ca, err)
	}
	var got []raftcore.Message
	var snap snapAssembler
	chunks := 0
	for r.Len() > 0 {
		kind, payload, err := readFrame(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case frameMsg:
			m, _, err := decodeMessage(payload)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m)
		case frameSnapHeader:
			m, n, err := decodeMessage(payload)
			if err != nil {
				t.Fatal(err)
			}
			if _, done := snap.header(m, n); done {
				t.Fatal("snapshot complete before its chunks")
			}
		case frameSnapChunk:
			chunks++
			m, done, err := snap.chunk(payload)
			if err != nil {
				t.Fatal(err)
			}
			if done {
				got = append(got, *m)
			}
		}
	}
	if chunks != 2 {
		t.Errorf("snapshot of %d bytes sent in %d chunks, want 2", len(data), chunks)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, msgs)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	var fw frameWriter
	m := raftcore.Message{Type: raftcore.MsgApp, From: "a", To: "b", Term: 1, Entries: []raftcore.Entry{{Term: 1, Index: 1, Data: []byte("x")}}}
	fw.writeMessage(&m)
	f.Add(fw.buf[5:])
	f.Add([]byte{1, 9, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := decodeMessage(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to a message that decodes the same.
		m2, _, err := decodeMessage(appendMessage(nil, &m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode: %v\n%v\n%v", err, m, m2)
		}
	})
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"POD_NAME": "kv-1", "RAFT_KV_PEERS": "kv-0=a:1,kv-1=b:2", "RAFT_KV_DATA_DIR": dir, "RAFT_KV_ELECTION_TIMEOUT_MS": "500"}
	c, err := ParseFlags([]string{"--heartbeat-ms", "100"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "kv-1" || c.PeerAddr != "b:2" || c.ElectionTimeout != 500*time.Millisecond || c.Heartbeat != 100*time.Millisecond || c.Mode != reconfig.Safe {
		t.Fatalf("%+v", c)
	}
	// A flag wins over the environment.
	if c, err := ParseFlags([]string{"--id", "kv-0"}, func(k string) string { return env[k] }); err != nil || c.ID != "kv-0" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=a:1,kv-0=b:2", "--data-dir", dir}, `duplicate id "kv-0"`},
		{[]string{"--id", "kv-0", "--peers", "kv-0=a:1,kv-1=a:1", "--data-dir", dir}, "share the address"},
		{[]string{"--id", "kv-0", "--peers", "kv-0", "--data-dir", dir}, "want id=host:port"},
		{[]string{"--id", "kv-2", "--peers", "kv-0=a:1", "--data-dir", dir}, "--id kv-2 is not in --peers (kv-0)"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=a:1"}, "--data-dir is required"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=a:1", "--data-dir", dir, "--mode", "yolo"}, "--mode"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=a:1", "--data-dir", dir, "--heartbeat-ms", "200"}, "at most half"},
		{[]string{"--id", "kv-0", "--peers", "kv-0=a:1", "--data-dir", dir, "extra"}, `unexpected argument "extra"`},
	} {
		_, err := ParseFlags(tt.args, func(string) string { return "" })
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v; want a one-line usage error with %q", tt.args, err, tt.want)
		}
	}
	// A bad environment value names the variable.
	_, err = ParseFlags(nil, func(k string) string {
		if k == "RAFT_KV_HEARTBEAT_MS" {
			return "fast"
		}
		return env[k]
	})
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "RAFT_KV_HEARTBEAT_MS") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestSnapshotEnvelopeAndAddrRecord(t *testing.T) {
	m := sm.New()
	m.Apply(1, sm.Command{Op: sm.OpPut, Key: "k", Value: []byte("v"), ClientID: "c", Seq: 1}.Encode())
	b := encodeSnapshot(map[string]string{"kv-3": "h:3", "kv-0": "h:0"}, m.Snapshot())
	addrs, machine, err := decodeSnapshot(b)
	if err != nil || !reflect.DeepEqual(addrs, map[string]string{"kv-3": "h:3", "kv-0": "h:0"}) || !bytes.Equal(machine, m.Snapshot()) {
		t.Fatalf("%v %v", addrs, err)
	}
	if _, _, err := decodeSnapshot([]byte{9}); err == nil {
		t.Fatal("unknown envelope version accepted")
	}
	if id, addr, ok := decodeAddrRecord(encodeAddrRecord("kv-3", "h:3")); !ok || id != "kv-3" || addr != "h:3" {
		t.Fatal(id, addr, ok)
	}
	// A command never looks like an address record.
	if _, _, ok := decodeAddrRecord(sm.Command{Op: sm.OpPut, Key: "k"}.Encode()); ok {
		t.Fatal("a command decoded as an address record")
	}
}
