package kvserver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

var confChangeErrs = []error{
	raftcore.ErrNotLeader, raftcore.ErrProposalDropped, raftcore.ErrConfigIndexMismatch, raftcore.ErrChangeInFlight,
	raftcore.ErrNoCommitInTerm, raftcore.ErrAlreadyJoint, raftcore.ErrNotJoint, raftcore.ErrMultiVoterOneStep, raftcore.ErrInvalidConfig,
}

func kindOf(err error) string {
	if err == nil {
		return "accepted"
	}
	for _, e := range confChangeErrs {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "untyped: " + err.Error()
}

// mirror runs, in one step of s's loop, first before (if any), then for
// each change checkChange and then raftcore's ProposeConfChange, and fails
// unless both accept or both refuse with the same typed error. A change
// with ExpectConfigIndex 0 gets the current index.
func mirror(t *testing.T, s *Server, before func(*raftcore.RawNode), want []string, ccs ...raftcore.ConfChange) {
	t.Helper()
	var got, pre []string
	if !s.n.call(func() {
		if before != nil {
			before(s.n.rn)
		}
		for _, cc := range ccs {
			bs := s.n.rn.BasicStatus()
			if cc.ExpectConfigIndex == 0 {
				cc.ExpectConfigIndex = bs.ConfigIndex
			}
			pre = append(pre, kindOf(s.checkChange(bs, cc)))
			got = append(got, kindOf(s.n.rn.ProposeConfChange(cc)))
		}
	}) {
		t.Fatal("node stopped")
	}
	if !slices.Equal(pre, got) {
		t.Fatalf("%+v:\ncheckChange: %q\n   raftcore: %q", ccs, pre, got)
	}
	if want != nil && !slices.Equal(got, want) {
		t.Fatalf("%+v: %q, want %q", ccs, got, want)
	}
}

func waitConfigCommitted(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := s.status()
		if st.ConfigCommitted && st.Commit >= st.ConfigIndex {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("configuration at %d not committed: %s", st.ConfigIndex, st.ConfigText)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkChange refuses exactly what raftcore refuses, with the same typed
// error: the membership calls rely on it to refuse before proposing
// anything (issue 14, defect 1).
func TestAdminCheckMatchesRaftcore(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.ElectionTimeout = time.Second })
	lead := tc.leader()
	tc.writeEverywhere(lead, "first")
	s := tc.servers[lead]
	fs := followersOf(tc, lead)
	inv, multi := raftcore.ErrInvalidConfig.Error(), raftcore.ErrMultiVoterOneStep.Error()
	all := []string{"kv-0", "kv-1", "kv-2"}
	for _, c := range []struct {
		cc   raftcore.ConfChange
		want string
	}{
		{raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9", ExpectConfigIndex: 77}, raftcore.ErrConfigIndexMismatch.Error()},
		{raftcore.ConfChange{Op: raftcore.OpAddLearner}, inv},
		{raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: fs[0]}, inv},
		{raftcore.ConfChange{Op: raftcore.OpRemove, ID: "kv-9"}, inv},
		{raftcore.ConfChange{Op: raftcore.OpLeaveJoint}, raftcore.ErrNotJoint.Error()},
		{raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: []string{"kv-2", "kv-1", "kv-0", "kv-1"}}, inv},
		{raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: []string{"kv-0", ""}}, inv},
		{raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: []string{"kv-0", "kv-1"}, Learners: []string{""}}, inv},
		{raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig(append(all, "kv-8", "kv-9"))}, multi},
		{raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig([]string{"kv-7", "kv-8", "kv-9"})}, multi},
		{raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.Config{Voters: all, OutgoingVoters: all[:2]}}, inv},
		{raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig(all, "kv-0")}, inv},
		{raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig(all, "")}, inv},
		{raftcore.ConfChange{Op: raftcore.ConfChangeOp(99)}, inv},
	} {
		mirror(t, s, nil, []string{c.want}, c.cc)
	}
	// Accepted, then a change in flight.
	mirror(t, s, nil, []string{"accepted", raftcore.ErrChangeInFlight.Error()},
		raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"}, raftcore.ConfChange{Op: raftcore.OpRemove, ID: "kv-9"})
	waitConfigCommitted(t, s)
	mirror(t, s, nil, []string{inv}, raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"}) // now a learner
	mirror(t, s, nil, []string{"accepted"}, raftcore.ConfChange{Op: raftcore.OpRemove, ID: "kv-9"})
	waitConfigCommitted(t, s)
	// A joint configuration: everything but leave-joint is refused.
	keep := []string{lead, fs[0]}
	mirror(t, s, nil, []string{"accepted"}, raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: keep, Learners: []string{fs[1]}})
	waitConfigCommitted(t, s)
	aj := raftcore.ErrAlreadyJoint.Error()
	mirror(t, s, nil, []string{aj, aj, aj, aj},
		raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"}, raftcore.ConfChange{Op: raftcore.OpRemove, ID: fs[1]},
		raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: all}, raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig(keep)})
	mirror(t, s, nil, []string{"accepted"}, raftcore.ConfChange{Op: raftcore.OpLeaveJoint})
	waitConfigCommitted(t, s)
	// Back to three voters in one step (one voter added).
	mirror(t, s, nil, []string{"accepted"}, raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig(all)})
	waitConfigCommitted(t, s)
	tc.writeEverywhere(lead, "three")
	// On a follower.
	mirror(t, tc.servers[fs[0]], nil, []string{raftcore.ErrNotLeader.Error()}, raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"})
	// During a leadership transfer.
	mirror(t, s, func(rn *raftcore.RawNode) {
		if err := rn.TransferLeader(fs[0]); err != nil {
			t.Error(err)
		}
	}, []string{raftcore.ErrProposalDropped.Error()}, raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"})
	// A new leader before its first entry commits: its outbound messages
	// are delayed, so the window lasts a few hundred milliseconds.
	next := fs[1]
	if code, out, _ := do(t, "POST", tc.adminURL(next)+"/admin/faults", `{"peer":"*","direction":"out","delay_ms":300}`, nil); code != 200 {
		t.Fatalf("delay %s: %d %v", next, code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !tc.servers[next].n.stats.isLeader.Load() {
		if tc.servers[lead].n.stats.isLeader.Load() || tc.servers[fs[0]].n.stats.isLeader.Load() {
			// The transfer to fs[0] may have ended; hand over to next.
			do(t, "POST", tc.adminURL(lead)+"/admin/transfer-leader", `{"to":"`+next+`"}`, nil)
			do(t, "POST", tc.adminURL(fs[0])+"/admin/transfer-leader", `{"to":"`+next+`"}`, nil)
			time.Sleep(20 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become leader", next)
		}
		time.Sleep(time.Millisecond)
	}
	var res string
	mirror(t, tc.servers[next], func(rn *raftcore.RawNode) {
		res = kindOf(tc.servers[next].checkChange(rn.BasicStatus(), raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"}))
	},
		nil, raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "kv-9"})
	if res != raftcore.ErrNoCommitInTerm.Error() {
		t.Logf("the new leader was past its first commit already (%s): the no-commit-in-term case was not reached", res)
	}
}

// The usual way in: add-learner with its address, catch up, promote (the
// Go client's bodies, with the addresses of every voter). The leader
// reaches the learner once the address record is applied.
func TestAdminAddLearnerAndPromote(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	tc.writeEverywhere(lead, "first")
	addrs := freeAddrs(t, 3)
	cfg := tc.cfgs["kv-0"]
	cfg.ID, cfg.Join, cfg.DataDir = "kv-3", true, t.TempDir()+"/kv-3"
	cfg.PeerAddr, cfg.AdvertisePeer, cfg.AdvertiseClient, cfg.ClientAddr, cfg.AdminAddr = addrs[0], "", "", addrs[1], addrs[2]
	tc.cfgs["kv-3"] = cfg
	tc.start("kv-3")
	idx := tc.configIndex(lead)
	code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/add-learner", fmt.Sprintf(`{"id":"kv-3","address":%q,"expect_config_index":%d}`, addrs[0], idx), nil)
	if code != 200 {
		t.Fatalf("add-learner kv-3: %d %v", code, out)
	}
	waitConfigCommitted(t, tc.servers[lead])
	tc.writeEverywhere(lead, "second") // kv-3 applies it too
	for id, s := range tc.servers {
		if a := s.n.tr.addrBook()["kv-3"]; a != addrs[0] {
			t.Errorf("%s has kv-3 at %q, want %s", id, a, addrs[0])
		}
	}
	// Promote in one step (one voter added), passing every voter's address
	// as the Go client does; a member's own address is accepted.
	book := tc.servers[lead].n.tr.addrBook()
	body := fmt.Sprintf(`{"voters":["kv-0","kv-1","kv-2","kv-3"],"addresses":{"kv-0":%q,"kv-1":%q,"kv-2":%q,"kv-3":%q},"expect_config_index":%d}`,
		book["kv-0"], book["kv-1"], book["kv-2"], book["kv-3"], tc.configIndex(lead))
	if code, out, _ := do(t, "POST", tc.adminURL(lead)+"/admin/change-voters", body, nil); code != 200 {
		t.Fatalf("change-voters: %d %v", code, out)
	}
	waitConfigCommitted(t, tc.servers[lead])
	tc.writeEverywhere(lead, "third")
	st, _ := tc.servers[lead].status()
	if !slices.Equal(st.Config.Voters, []string{"kv-0", "kv-1", "kv-2", "kv-3"}) {
		t.Fatalf("after the promotion: %s", st.ConfigText)
	}
	// add-learner of the new voter is refused, and says how to move it.
	code, out, _ = do(t, "POST", tc.adminURL(lead)+"/admin/add-learner", fmt.Sprintf(`{"id":"kv-3","address":"127.0.0.1:1","expect_config_index":%d}`, st.ConfigIndex), nil)
	if code != http.StatusConflict || !strings.Contains(fmt.Sprint(out["error"]), "remove-member") {
		t.Fatalf("add-learner of voter kv-3: %d %v", code, out)
	}
	tc.writeEverywhere(lead, "fourth")
}
