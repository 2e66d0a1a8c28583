package kvserver

// Admin plane tests of issue 14: a refused membership call changes nothing
// (no address taken into use, no address record written), the token needs
// its Bearer scheme, and wait_ms is bounded.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/reconfig"
)

// adminURL is the base URL of a node's admin plane.
func (tc *testCluster) adminURL(id string) string { return "http://" + tc.servers[id].AdminAddr() }

// configIndex is the leader's configuration index.
func (tc *testCluster) configIndex(lead string) uint64 {
	tc.t.Helper()
	st, ok := tc.servers[lead].status()
	if !ok {
		tc.t.Fatalf("%s stopped", lead)
	}
	return st.ConfigIndex
}

// peerAddrs is every node's address book (transport) without itself.
func (tc *testCluster) peerAddrs() map[string]map[string]string {
	out := map[string]map[string]string{}
	for id, s := range tc.servers {
		book := s.n.tr.addrBook()
		delete(book, id)
		out[id] = book
	}
	return out
}

// recordBook is every node's address book from applied address records.
func (tc *testCluster) recordBook() map[string]map[string]string {
	tc.t.Helper()
	out := map[string]map[string]string{}
	for id, s := range tc.servers {
		var book map[string]string
		if !s.n.call(func() { book = maps.Clone(s.n.addrs) }) {
			tc.t.Fatalf("%s stopped", id)
		}
		out[id] = book
	}
	return out
}

// writeEverywhere writes through the leader and waits until every node
// applied the write: everything proposed before it is applied everywhere.
func (tc *testCluster) writeEverywhere(lead, key string) {
	tc.t.Helper()
	code, out, _ := do(tc.t, "PUT", "http://"+tc.servers[lead].ClientAddr()+"/kv/"+key, `{"value":"v"}`, nil)
	if code != 200 {
		tc.t.Fatalf("write %s through %s: %d %v", key, lead, code, out)
	}
	idx := uint64(out["index"].(float64))
	deadline := time.Now().Add(5 * time.Second)
	for id, s := range tc.servers {
		for s.n.stats.applied.Load() < idx {
			if time.Now().After(deadline) {
				tc.t.Fatalf("%s applied %d, not the write at %d, within 5 s: it gets no traffic", id, s.n.stats.applied.Load(), idx)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func followersOf(tc *testCluster, lead string) []string {
	var out []string
	for _, id := range []string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"} {
		if tc.servers[id] != nil && id != lead {
			out = append(out, id)
		}
	}
	return out
}

// Issue 14, defect 1: add-learner of an existing voter with a bogus address
// is refused, and refused before anything happened: no node sends the
// voter's traffic anywhere else, no address record is written, and the
// voter goes on replicating.
func TestAdminAddLearnerOfAMemberChangesNothing(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	voter := followersOf(tc, lead)[0]
	before := tc.peerAddrs()
	idx := tc.configIndex(lead)
	code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/add-learner",
		fmt.Sprintf(`{"id":%q,"address":"127.0.0.1:1","expect_config_index":%d}`, voter, idx), nil)
	if code != http.StatusConflict || out["code"] != "refused" {
		t.Fatalf("add-learner of voter %s: %d %v, want 409 refused", voter, code, out)
	}
	if msg := fmt.Sprint(out["error"]); !strings.Contains(msg, "already a member") || !strings.Contains(msg, "remove-member") {
		t.Errorf("the refusal does not say that %s is a member and how to move it: %q", voter, msg)
	}
	if got := tc.peerAddrs(); !maps.EqualFunc(got, before, maps.Equal) {
		t.Fatalf("a refused add-learner changed the address books:\n got %v\nwant %v", got, before)
	}
	// Everything proposed before this write is applied everywhere, and the
	// voter applies it too: it still receives the leader's traffic.
	tc.writeEverywhere(lead, "after")
	if got := tc.peerAddrs(); !maps.EqualFunc(got, before, maps.Equal) {
		t.Fatalf("after the next commit the address books changed:\n got %v\nwant %v", got, before)
	}
	for id, book := range tc.recordBook() {
		if len(book) != 0 {
			t.Errorf("%s applied address records of a refused call: %v", id, book)
		}
	}
	if got := tc.configIndex(lead); got != idx {
		t.Errorf("configuration index %d after a refused call, want %d", got, idx)
	}
}

// Issue 14, defect 1, for the calls after add-learner: the addresses of
// enter-joint and change-voters are not recorded nor used when the change
// is refused, and an existing member is never re-addressed.
func TestAdminRefusedVoterChangeWritesNoAddress(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	before := tc.peerAddrs()
	idx := tc.configIndex(lead)
	voter := followersOf(tc, lead)[0]
	for _, c := range []struct {
		path, body, code, mention string
	}{
		// Two new voters in one step: refused by raftcore in safe mode.
		{"/admin/change-voters", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-8","kv-9"],"addresses":{"kv-8":"127.0.0.1:1","kv-9":"127.0.0.1:2"},"expect_config_index":%d}`, idx),
			"refused", "voters"},
		// A change that raftcore would accept, but with another address
		// for a current member.
		{"/admin/enter-joint", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-9"],"addresses":{"kv-9":"127.0.0.1:2",%q:"127.0.0.1:3"},"expect_config_index":%d}`, voter, idx),
			"refused", "already a member"},
		{"/admin/change-voters", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-9"],"addresses":{"kv-9":"127.0.0.1:2",%q:"127.0.0.1:3"},"expect_config_index":%d}`, voter, idx),
			"refused", "already a member"},
		// A stale configuration index, with an address for a new voter.
		{"/admin/enter-joint", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-9"],"addresses":{"kv-9":"127.0.0.1:2"},"expect_config_index":%d}`, idx+7),
			"config_moved", "expected"},
		// Bad requests.
		{"/admin/enter-joint", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-9"],"addresses":{"kv-9":"nonsense"},"expect_config_index":%d}`, idx),
			"bad_request", "kv-9"},
		{"/admin/enter-joint", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-9"],"addresses":{"kv-9":"127.0.0.1:2","kv-7":"127.0.0.1:4"},"expect_config_index":%d}`, idx),
			"bad_request", "kv-7"},
		{"/admin/enter-joint", fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-9"],"expect_config_index":%d}`, idx),
			"refused", "no address"},
	} {
		code, out, _ := do(t, "POST", tc.adminURL(lead)+c.path, c.body, nil)
		want := map[string]int{"refused": 409, "config_moved": 409, "bad_request": 400}[c.code]
		if code != want || out["code"] != c.code || !strings.Contains(fmt.Sprint(out["error"]), c.mention) {
			t.Errorf("%s %s: %d %v; want %d %s mentioning %q", c.path, c.body, code, out, want, c.code, c.mention)
		}
		if got := tc.peerAddrs(); !maps.EqualFunc(got, before, maps.Equal) {
			t.Fatalf("%s %s changed the address books:\n got %v\nwant %v", c.path, c.body, got, before)
		}
	}
	tc.writeEverywhere(lead, "after")
	if got := tc.peerAddrs(); !maps.EqualFunc(got, before, maps.Equal) {
		t.Fatalf("after the next commit the address books changed:\n got %v\nwant %v", got, before)
	}
	for id, book := range tc.recordBook() {
		if len(book) != 0 {
			t.Errorf("%s applied address records of refused calls: %v", id, book)
		}
	}
	if got := tc.configIndex(lead); got != idx {
		t.Errorf("configuration index %d after refused calls, want %d", got, idx)
	}
}

// The learner's address is taken into use when its record is applied, not
// when add-learner appends it: a leader that cannot commit does not use it.
// Once applied, every node uses it, and the learner replicates.
func TestAdminAddLearnerAddressUsedOnceApplied(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	tc.writeEverywhere(lead, "first")
	idx := tc.configIndex(lead)
	// Isolate the leader, and add a learner at once (before CheckQuorum
	// makes it step down): the entries are appended, not committed.
	if code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/faults", `{"peer":"*","drop":true}`, nil); code != 200 {
		t.Fatalf("isolate %s: %d %v", lead, code, out)
	}
	code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/add-learner", fmt.Sprintf(`{"id":"kv-9","address":"127.0.0.1:9","expect_config_index":%d}`, idx), nil)
	if code != 200 {
		t.Fatalf("add-learner kv-9 on the isolated leader: %d %v", code, out)
	}
	if a := tc.servers[lead].n.tr.addr("kv-9"); a != "" {
		t.Fatalf("the leader uses kv-9's address %s before its record is committed", a)
	}
	var commit, last uint64
	tc.servers[lead].n.call(func() { bs := tc.servers[lead].n.rn.BasicStatus(); commit, last = bs.Commit, bs.LastIndex })
	if commit >= last {
		t.Fatalf("the isolated leader committed up to %d (last %d)", commit, last)
	}
	if code, out, _ := do(t, "DELETE", tc.adminURL(lead)+"/admin/faults", "", nil); code != 200 {
		t.Fatalf("heal %s: %d %v", lead, code, out)
	}
	// Whoever leads now: the record and the learner are either in every
	// log or in none, and a node uses kv-9's address exactly when it
	// applied the record.
	lead = tc.leader()
	tc.writeEverywhere(lead, "second")
	st, _ := tc.servers[lead].status()
	added := slices.Contains(st.Config.Learners, "kv-9")
	for id, s := range tc.servers {
		want := ""
		if added {
			want = "127.0.0.1:9"
		}
		if a := s.n.tr.addr("kv-9"); a != want {
			t.Errorf("%s: kv-9 at %q, want %q (learner added: %v)", id, a, want, added)
		}
	}
}

// An address record in the log never re-addresses a member of the
// configuration applied before it, whoever wrote it (a leader of an older
// version wrote one for a refused add-learner).
func TestAddrRecordNeverReaddressesAMember(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	voter := followersOf(tc, lead)[0]
	tc.writeEverywhere(lead, "first")
	before := tc.peerAddrs()
	var err error
	tc.servers[lead].n.call(func() { err = tc.servers[lead].n.rn.Propose(encodeAddrRecord(voter, "127.0.0.1:1")) })
	if err != nil {
		t.Fatal(err)
	}
	tc.writeEverywhere(lead, "after")
	if got := tc.peerAddrs(); !maps.EqualFunc(got, before, maps.Equal) {
		t.Fatalf("an address record re-addressed member %s:\n got %v\nwant %v", voter, got, before)
	}
	for id, book := range tc.recordBook() {
		if len(book) != 0 {
			t.Errorf("%s keeps an address record for member %s: %v", id, voter, book)
		}
	}
}

// Issue 14, defect 2: the token is accepted only as "Bearer <token>".
func TestAdminTokenNeedsBearerScheme(t *testing.T) {
	tc := newTestCluster(t, 1, func(c *Config) { c.AdminToken = "s3cret" })
	tc.leader()
	u := tc.adminURL("kv-0") + "/admin/status"
	for _, h := range []string{"", "s3cret", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cretX", "Bearer  s3cret", "bearer s3cret", "Basic s3cret", "Token s3cret"} {
		hdr := map[string]string{}
		if h != "" {
			hdr["Authorization"] = h
		}
		code, out, _ := do(t, "GET", u, "", hdr)
		if code != 401 || out["code"] != "unauthorized" || !strings.Contains(fmt.Sprint(out["error"]), "Authorization: Bearer <token>") {
			t.Errorf("Authorization %q: %d %v; want 401 unauthorized naming the expected form", h, code, out)
		}
	}
	if code, out, _ := do(t, "GET", u, "", map[string]string{"Authorization": "Bearer s3cret"}); code != 200 {
		t.Fatalf("Authorization Bearer s3cret: %d %v", code, out)
	}
}

// Issue 14, defect 3: wait_ms is bounded; a larger (or negative) value is
// refused with 400 naming the limit, on every call that takes the body.
func TestAdminWaitMsBounded(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	lead := tc.leader()
	idx := tc.configIndex(lead)
	a := tc.adminURL(lead)
	for _, c := range []struct{ path, body string }{
		{"/admin/commit-new", fmt.Sprintf(`{"expect_config_index":%d,"wait_ms":%d}`, idx, MaxWaitMs+1)},
		{"/admin/commit-new", fmt.Sprintf(`{"expect_config_index":%d,"wait_ms":-1}`, idx)},
		{"/admin/commit-new", fmt.Sprintf(`{"expect_config_index":%d,"wait_ms":100000000000000}`, idx)},
		{"/admin/transfer-leader", fmt.Sprintf(`{"to":%q,"wait_ms":%d}`, lead, MaxWaitMs+1)},
		{"/admin/add-learner", fmt.Sprintf(`{"id":"kv-9","address":"127.0.0.1:9","expect_config_index":%d,"wait_ms":%d}`, idx, MaxWaitMs+1)},
		{"/admin/leave-joint", fmt.Sprintf(`{"expect_config_index":%d,"wait_ms":%d}`, idx, MaxWaitMs+1)},
	} {
		code, out, _ := do(t, "POST", a+c.path, c.body, nil)
		if code != 400 || out["code"] != "bad_request" || !strings.Contains(fmt.Sprint(out["error"]), fmt.Sprint(MaxWaitMs)) {
			t.Errorf("%s %s: %d %v; want 400 bad_request naming %d", c.path, c.body, code, out, MaxWaitMs)
		}
	}
	if got := tc.configIndex(lead); got != idx {
		t.Fatalf("configuration index %d after refused calls, want %d", got, idx)
	}
	// The limit itself is accepted.
	if code, out, _ := do(t, "POST", a+"/admin/commit-new", fmt.Sprintf(`{"expect_config_index":%d,"wait_ms":%d}`, idx, MaxWaitMs), nil); code != 200 {
		t.Fatalf("commit-new with wait_ms %d: %d %v", MaxWaitMs, code, out)
	}
	if code, out, _ := do(t, "POST", a+"/admin/transfer-leader", fmt.Sprintf(`{"to":%q,"wait_ms":%d}`, lead, MaxWaitMs), nil); code != 200 {
		t.Fatalf("transfer-leader with wait_ms %d: %d %v", MaxWaitMs, code, out)
	}
}

// Every member records the leaders it saw take over, one entry per term, and
// reports them in /admin/status: a leadership transfer adds the new term's
// leader to every member's record.
func TestAdminStatusReportsLeaderHistory(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	to := followersOf(tc, lead)[0]
	if code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/transfer-leader", `{"to":"`+to+`"}`, nil); code != 200 {
		t.Fatalf("transfer-leader to %s: %d %v", to, code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for id := range tc.servers {
		for {
			var st StatusJSON
			resp, err := http.Get(tc.adminURL(id) + "/admin/status")
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			h := st.LeaderHistory
			if n := len(h); n >= 1 && h[n-1].Leader == to && h[n-1].Term == st.Term && !h[n-1].At.IsZero() {
				for i := 1; i < n; i++ {
					if h[i].Term <= h[i-1].Term {
						t.Fatalf("%s: leader history %v: terms not increasing", id, h)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: leader history %v (term %d), want %s's term last", id, h, st.Term, to)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// POST /admin/hand-off moves leadership away from the leader and answers
// once it no longer leads; on a follower it does nothing.
func TestAdminHandOff(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	f := followersOf(tc, lead)[0]
	if code, out, _ := do(t, "POST", tc.adminURL(f)+"/admin/hand-off", "", nil); code != 200 || out["to"] != "" {
		t.Fatalf("hand-off on follower %s: %d %v, want 200 and no transfer", f, code, out)
	}
	code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/hand-off", "", nil)
	if code != 200 || out["to"] == "" || out["to"] == lead {
		t.Fatalf("hand-off on leader %s: %d %v", lead, code, out)
	}
	if tc.servers[lead].n.stats.isLeader.Load() {
		t.Fatalf("%s still leads after its hand-off answered", lead)
	}
}

// /readyz is 503 on a node outside its configuration (a joiner not added
// yet, a removed member): a Kubernetes Service must not send it clients and
// a PDB must not count it. A member is ready.
func TestReadyzOnlyForMembers(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	lead := tc.leader()
	get := func(base string) (int, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + tc.servers[lead].ClientAddr()); code != 200 {
		t.Fatalf("member %s: /readyz %d %s", lead, code, body)
	}
	addrs := freeAddrs(t, 3)
	j, err := Start(Config{ID: "kv-9", Join: true, PeerAddr: addrs[0], ClientAddr: addrs[1], AdminAddr: addrs[2], DataDir: t.TempDir(),
		ElectionTimeout: 200 * time.Millisecond, Heartbeat: 20 * time.Millisecond, Mode: reconfig.Safe, RequestTimeout: time.Second,
		MaxKeyBytes: 16, MaxValueBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer j.shutdown()
	if code, body := get("http://" + j.ClientAddr()); code != 503 || !strings.Contains(body, "not a member") {
		t.Fatalf("joiner not added: /readyz %d %q, want 503 not a member", code, body)
	}
}
