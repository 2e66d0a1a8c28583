package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/reconfig"
)

// Admin is reconfig.Admin over raft-kv's admin plane: the operator's and
// the runner's local backend's way to carry membership steps out. It finds
// the leader by asking every node it knows for its status.
type Admin struct {
	// Nodes maps member ids to admin URLs (http://host:port). A member to
	// be added must be in it, and in PeerAddrs.
	Nodes map[string]string
	// PeerAddrs maps ids to peer addresses, sent with AddLearner so that the
	// cluster can reach the new member.
	PeerAddrs map[string]string
	// Token is the admin bearer token, if the nodes require one.
	Token string
	// HTTP is the client (default: 5 s timeout per call).
	HTTP *http.Client

	mu     sync.Mutex
	leader string
}

var _ reconfig.Admin = (*Admin)(nil)

var jointStates = map[string]raftcore.JointState{
	"none": raftcore.JointNone, "entering": raftcore.JointEntering,
	"committed": raftcore.JointCommitted, "leaving": raftcore.JointLeaving,
}

func (a *Admin) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// call does one admin request; out receives a 2xx answer, and the error of
// a non-2xx one is mapped to reconfig's errors.
func (a *Admin) call(ctx context.Context, id, method, path string, body, out any) (int, error) {
	base, ok := a.Nodes[id]
	if !ok {
		return 0, fmt.Errorf("client: no admin URL for %s", id)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return 0, err
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := a.client().Do(req)
	if err != nil {
		// The request may have reached the leader: observe before anything.
		return 0, fmt.Errorf("%w: %s %s on %s: %v", reconfig.ErrUnknownOutcome, method, path, id, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %s %s on %s: %v", reconfig.ErrUnknownOutcome, method, path, id, err)
	}
	if resp.StatusCode == http.StatusOK {
		if out != nil {
			return resp.StatusCode, json.Unmarshal(data, out)
		}
		return resp.StatusCode, nil
	}
	var ae kvserver.AdminError
	_ = json.Unmarshal(data, &ae)
	msg := fmt.Sprintf("%s %s on %s: HTTP %d: %s", method, path, id, resp.StatusCode, ae.Error)
	switch ae.Code {
	case "config_moved":
		return resp.StatusCode, fmt.Errorf("%w: %s", reconfig.ErrConfigMoved, msg)
	case "not_leader":
		a.setLeader("")
		return resp.StatusCode, fmt.Errorf("%w: %s", reconfig.ErrNoLeader, msg)
	case "pending":
		return resp.StatusCode, fmt.Errorf("%w: %s", reconfig.ErrPending, msg)
	}
	return resp.StatusCode, errors.New(msg)
}

func (a *Admin) setLeader(id string) {
	a.mu.Lock()
	a.leader = id
	a.mu.Unlock()
}

// Observe implements reconfig.Admin: the status of the leader with the
// highest term among the nodes that answer.
func (a *Admin) Observe(ctx context.Context) (reconfig.Observation, error) {
	obs := reconfig.Observation{At: time.Now()}
	ids := make([]string, 0, len(a.Nodes))
	for id := range a.Nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	type answer struct {
		st  kvserver.StatusJSON
		err error
	}
	answers := make([]answer, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, answers[i].err = a.call(ctx, id, http.MethodGet, "/admin/status", nil, &answers[i].st)
		}()
	}
	wg.Wait()
	var best *kvserver.StatusJSON
	answered := 0
	var histories [][]kvserver.LeaderChangeJSON
	for i := range answers {
		if answers[i].err != nil {
			continue
		}
		answered++
		histories = append(histories, answers[i].st.LeaderHistory)
		if st := &answers[i].st; st.State == "leader" && (best == nil || st.Term > best.Term) {
			best = st
		}
	}
	if answered == 0 {
		return obs, fmt.Errorf("client: no node answered status: %v", answers[0].err)
	}
	if best != nil {
		// A member in a higher term than the leader's means the leader is
		// deposed (or being deposed) and does not know it yet: its answer
		// is stale, and a step sent to it would be truncated later.
		for i := range answers {
			if answers[i].err == nil && answers[i].st.Term > best.Term {
				best = nil
				break
			}
		}
	}
	if best == nil {
		a.setLeader("")
		return obs, nil // no leader: reconfig waits
	}
	a.setLeader(best.ID)
	obs.Leader, obs.Term, obs.LastIndex = best.ID, best.Term, best.LastIndex
	obs.Config, obs.ConfigIndex, obs.Committed = best.Config.Config(), best.ConfigIndex, best.ConfigCommitted
	obs.CommittedConfig, obs.CommittedIndex = best.CommittedConfig.Config(), best.CommittedConfigIndex
	obs.Joint = jointStates[best.JointState]
	obs.LeaderChanges = LeaderChanges(histories)
	obs.Members = map[string]reconfig.MemberObs{}
	for id, p := range best.Progress {
		obs.Members[id] = reconfig.MemberObs{Match: p.Match, Durable: p.Durable, Reachable: p.RecentActive}
	}
	return obs, nil
}

// onLeader runs a membership call on the leader (observing first if it is
// not known).
func (a *Admin) onLeader(ctx context.Context, path string, body any) error {
	a.mu.Lock()
	lead := a.leader
	a.mu.Unlock()
	if lead == "" {
		obs, err := a.Observe(ctx)
		if err != nil {
			return err
		}
		if lead = obs.Leader; lead == "" {
			return reconfig.ErrNoLeader
		}
	}
	_, err := a.call(ctx, lead, http.MethodPost, path, body, nil)
	return err
}

// AddLearner implements reconfig.Admin.
func (a *Admin) AddLearner(ctx context.Context, id string, idx uint64) error {
	return a.onLeader(ctx, "/admin/add-learner", kvserver.MembershipRequest{ID: id, Address: a.PeerAddrs[id], ExpectConfigIndex: &idx})
}

// EnterJoint implements reconfig.Admin.
func (a *Admin) EnterJoint(ctx context.Context, voters []string, idx uint64) error {
	return a.onLeader(ctx, "/admin/enter-joint", kvserver.MembershipRequest{Voters: voters, ExpectConfigIndex: &idx, Addresses: a.addrsOf(voters)})
}

// CommitNew implements reconfig.Admin: nil once the joint entry at idx is
// committed, reconfig.ErrPending before.
func (a *Admin) CommitNew(ctx context.Context, idx uint64) error {
	return a.onLeader(ctx, "/admin/commit-new", kvserver.MembershipRequest{ExpectConfigIndex: &idx})
}

// LeaveJoint implements reconfig.Admin.
func (a *Admin) LeaveJoint(ctx context.Context, idx uint64) error {
	return a.onLeader(ctx, "/admin/leave-joint", kvserver.MembershipRequest{ExpectConfigIndex: &idx})
}

// TransferLeader implements reconfig.Admin.
func (a *Admin) TransferLeader(ctx context.Context, to string) error {
	return a.onLeader(ctx, "/admin/transfer-leader", kvserver.MembershipRequest{To: to})
}

// RemoveMember implements reconfig.Admin.
func (a *Admin) RemoveMember(ctx context.Context, id string, idx uint64) error {
	return a.onLeader(ctx, "/admin/remove-member", kvserver.MembershipRequest{ID: id, ExpectConfigIndex: &idx})
}

// ChangeVoters implements reconfig.Admin.
func (a *Admin) ChangeVoters(ctx context.Context, voters []string, idx uint64) error {
	return a.onLeader(ctx, "/admin/change-voters", kvserver.MembershipRequest{Voters: voters, ExpectConfigIndex: &idx, Addresses: a.addrsOf(voters)})
}

// addrsOf gives the leader the peer addresses of voters, so that a voter
// added without a learner stage (unsafe modes) can be reached.
func (a *Admin) addrsOf(voters []string) map[string]string {
	out := map[string]string{}
	for _, id := range voters {
		if addr := a.PeerAddrs[id]; addr != "" {
			out[id] = addr
		}
	}
	return out
}

// LeaderChanges merges the members' leader histories into the cluster's
// record of leader changes: one per term, at the earliest time a member saw
// that term's leader, oldest first. The lowest term known is the baseline
// leader, not a change. Each member's record starts when it started, so the
// union over the members that answered is what the cluster remembers; it
// is never nil (raft-kv keeps a record), so reconfig uses it instead of
// counting only what its caller observed.
func LeaderChanges(histories [][]kvserver.LeaderChangeJSON) []time.Time {
	first := map[uint64]time.Time{}
	for _, h := range histories {
		for _, c := range h {
			if t, ok := first[c.Term]; !ok || c.At.Before(t) {
				first[c.Term] = c.At
			}
		}
	}
	terms := make([]uint64, 0, len(first))
	for t := range first {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	out := []time.Time{}
	for i, term := range terms {
		if i == 0 {
			continue
		}
		out = append(out, first[term])
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}
