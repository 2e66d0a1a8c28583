package kvserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// ConfigJSON is a configuration as JSON.
type ConfigJSON struct {
	Voters         []string `json:"voters"`
	OutgoingVoters []string `json:"outgoing_voters,omitempty"`
	Learners       []string `json:"learners,omitempty"`
}

func configJSON(c raftcore.Config) ConfigJSON {
	return ConfigJSON{Voters: c.Voters, OutgoingVoters: c.OutgoingVoters, Learners: c.Learners}
}

// Config converts back.
func (c ConfigJSON) Config() raftcore.Config {
	return raftcore.Config{Voters: c.Voters, OutgoingVoters: c.OutgoingVoters, Learners: c.Learners}
}

// ProgressJSON is the leader's view of one member.
type ProgressJSON struct {
	Match        uint64 `json:"match"`
	Next         uint64 `json:"next"`
	State        string `json:"state"`
	Learner      bool   `json:"learner"`
	RecentActive bool   `json:"recent_active"`
	// Durable: Match counts only entries the member acknowledged, and a
	// member acknowledges only after its fsync, so its copy up to Match is
	// on stable storage.
	Durable bool `json:"durable"`
}

// StatusJSON is GET /admin/status.
type StatusJSON struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Term       uint64 `json:"term"`
	Leader     string `json:"leader"`
	LeaderURL  string `json:"leader_url,omitempty"`
	Commit     uint64 `json:"commit"`
	Applied    uint64 `json:"applied"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	// ConfigText is the configuration in its one text form.
	ConfigText      string     `json:"config_text"`
	Config          ConfigJSON `json:"config"`
	ConfigIndex     uint64     `json:"config_index"`
	ConfigCommitted bool       `json:"config_committed"`
	JointState      string     `json:"joint_state"`
	// CommittedConfig is the newest applied (hence committed)
	// configuration, at CommittedConfigIndex.
	CommittedConfig      ConfigJSON                  `json:"committed_config"`
	CommittedConfigIndex uint64                      `json:"committed_config_index"`
	LeadTransferee       string                      `json:"lead_transferee,omitempty"`
	Progress             map[string]ProgressJSON     `json:"progress,omitempty"`
	DurableIndex         uint64                      `json:"durable_index"`
	SnapshotIndex        uint64                      `json:"snapshot_index"`
	Peers                map[string]string           `json:"peers"`
	Faults               map[string]map[string]Fault `json:"faults,omitempty"`
	Mode                 string                      `json:"mode"`
}

// status reads the node's status in the loop.
func (s *Server) status() (StatusJSON, bool) {
	var out StatusJSON
	ok := s.n.call(func() {
		st := s.n.rn.Status()
		out = StatusJSON{
			ID: st.ID, State: st.State.String(), Term: st.Term, Leader: st.Lead,
			Commit: st.Commit, Applied: s.n.sm.Applied(), FirstIndex: st.FirstIndex, LastIndex: st.LastIndex,
			ConfigText: st.Config.String(), Config: configJSON(st.Config), ConfigIndex: st.ConfigIndex,
			ConfigCommitted: st.ConfigIndex <= st.Commit, JointState: st.JointState.String(),
			CommittedConfig: configJSON(s.n.committedCfg), CommittedConfigIndex: s.n.committedIdx,
			LeadTransferee: st.LeadTransferee, DurableIndex: s.n.st.DurableIndex(), SnapshotIndex: s.n.lastSnapIdx,
			Peers: s.n.tr.addrBook(), Faults: s.n.tr.faultList(), Mode: string(s.cfg.Mode),
		}
		if st.Progress != nil {
			out.Progress = map[string]ProgressJSON{}
			for id, pr := range st.Progress {
				out.Progress[id] = ProgressJSON{Match: pr.Match, Next: pr.Next, State: pr.State.String(),
					Learner: pr.IsLearner, RecentActive: pr.RecentActive || id == st.ID, Durable: true}
			}
		}
	})
	if out.Leader != "" {
		if a := s.n.tr.clientAddr(out.Leader); a != "" {
			out.LeaderURL = "http://" + a
		}
	}
	return out, ok
}

// Text is the status in its text form: the Status line, then one line per
// member's progress.
func (st StatusJSON) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s term=%d lead=%s commit=%d applied=%d last=%d %s joint=%s@%d committed=%v\n",
		st.ID, st.State, st.Term, orDash(st.Leader), st.Commit, st.Applied, st.LastIndex, st.ConfigText,
		st.JointState, st.ConfigIndex, st.ConfigCommitted)
	ids := make([]string, 0, len(st.Progress))
	for id := range st.Progress {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := st.Progress[id]
		role := "voter"
		if p.Learner {
			role = "learner"
		}
		fmt.Fprintf(&b, "  %s %s match=%d next=%d %s active=%v\n", id, role, p.Match, p.Next, p.State, p.RecentActive)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// MembershipRequest is the body of the membership calls. ExpectConfigIndex
// is required: the call fails with 409 config_moved if the configuration
// index is no longer it.
//
// A membership call checks everything before it does anything: the request
// (400), the leadership (421), the configuration index (409 config_moved),
// every rule raftcore applies to the change and the addresses (409
// refused). Only a call that passed them all writes its address records and
// its configuration entry, in one step of the loop, the records first. A
// refused call changes nothing: no address is recorded or taken into use.
type MembershipRequest struct {
	ID string `json:"id,omitempty"`
	// Address is add-learner's peer address of the new member. It is
	// written to the log just before the configuration entry, and every
	// node (the leader too) takes it into use when it applies that record.
	// A member is never re-addressed: add-learner of a member is refused.
	// No call changes a member's address in place; to move one, remove it
	// (remove-member) and add it again with its new address.
	Address           string   `json:"address,omitempty"`
	Voters            []string `json:"voters,omitempty"`
	ExpectConfigIndex *uint64  `json:"expect_config_index"`
	// WaitMs: how long commit-new waits for the joint entry's commit, and
	// transfer-leader for the new leader (default 0: report at once). At
	// most MaxWaitMs; larger or negative values are refused with 400.
	WaitMs int `json:"wait_ms,omitempty"`
	// To is transfer-leader's target.
	To string `json:"to,omitempty"`
	// Addresses gives enter-joint and change-voters the peer addresses of
	// new voters that were never learners (the unsafe modes skip the
	// learner stage), keyed by id; every id must be one of Voters. The
	// address of a current member must be the one in use (or left out).
	// A new voter's address is written to the log before the configuration
	// entry, as add-learner does; the other nodes take it into use when
	// they apply the record, the leader as soon as it appended the change
	// (the new voter may be needed in the quorum that commits its record).
	// A new voter without an address known or given is refused.
	Addresses map[string]string `json:"addresses,omitempty"`
}

// MaxWaitMs is the largest wait_ms an admin call accepts (one minute). A
// larger value is refused with 400 bad_request, not clamped.
const MaxWaitMs = 60000

// MembershipResponse answers a membership call.
type MembershipResponse struct {
	// ConfigIndex is the configuration index after the call (the new
	// entry's index when one was appended).
	ConfigIndex uint64     `json:"config_index"`
	Config      ConfigJSON `json:"config"`
	Committed   bool       `json:"committed"`
	Leader      string     `json:"leader,omitempty"`
}

// AdminError is the body of every admin error. Codes: unauthorized,
// bad_request, not_leader, config_moved, refused, pending, not_found,
// unavailable.
type AdminError struct {
	Error       string `json:"error"`
	Code        string `json:"code"`
	Leader      string `json:"leader,omitempty"`
	ConfigIndex uint64 `json:"config_index,omitempty"`
}

// FaultRequest is the body of POST /admin/faults.
type FaultRequest struct {
	// Peer is a peer id, or "*" for every known peer.
	Peer string `json:"peer"`
	// Direction: "out" (to the peer), "in" (from it) or "both" (default).
	Direction string `json:"direction,omitempty"`
	Fault
}

// CaughtUpJSON is GET /admin/caught-up?id=ID.
type CaughtUpJSON struct {
	ID          string `json:"id"`
	Match       uint64 `json:"match"`
	LeaderIndex uint64 `json:"leader_index"`
	Lag         uint64 `json:"lag"`
	Durable     bool   `json:"durable"`
	Reachable   bool   `json:"reachable"`
	// CaughtUp: Lag <= max_lag (query parameter, default 0) and reachable.
	CaughtUp bool `json:"caught_up"`
}

func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	s.mountHealth(mux)
	auth := func(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.cfg.AdminToken != "" && !tokenOK(r.Header.Get("Authorization"), s.cfg.AdminToken) {
				writeJSON(w, http.StatusUnauthorized, AdminError{Error: `the admin plane needs the header "Authorization: Bearer <token>" (exactly: "Bearer", one space, the --admin-token value)`, Code: "unauthorized"})
				return
			}
			w.Header().Set(HeaderNode, s.cfg.ID)
			h(w, r)
		}
	}
	mux.HandleFunc("GET /admin/status", auth(s.adminStatus))
	mux.HandleFunc("GET /admin/caught-up", auth(s.adminCaughtUp))
	mux.HandleFunc("POST /admin/add-learner", auth(s.membership("add-learner")))
	mux.HandleFunc("POST /admin/enter-joint", auth(s.membership("enter-joint")))
	mux.HandleFunc("POST /admin/commit-new", auth(s.adminCommitNew))
	mux.HandleFunc("POST /admin/leave-joint", auth(s.membership("leave-joint")))
	mux.HandleFunc("POST /admin/remove-member", auth(s.membership("remove-member")))
	mux.HandleFunc("POST /admin/change-voters", auth(s.membership("change-voters")))
	mux.HandleFunc("POST /admin/transfer-leader", auth(s.adminTransfer))
	mux.HandleFunc("POST /admin/snapshot", auth(s.adminSnapshot))
	mux.HandleFunc("GET /admin/faults", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.n.tr.faultList())
	}))
	mux.HandleFunc("POST /admin/faults", auth(s.adminSetFault))
	mux.HandleFunc("DELETE /admin/faults", auth(func(w http.ResponseWriter, r *http.Request) {
		s.n.tr.clearFaults()
		writeJSON(w, http.StatusOK, s.n.tr.faultList())
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, AdminError{Error: "no admin call " + r.Method + " " + r.URL.Path + "; see the kvserver package documentation", Code: "not_found"})
	})
	return mux
}

// tokenOK reports whether an Authorization header is exactly "Bearer "
// followed by token. The compare takes the same time whatever the header
// (both sides are hashed first, so not even the length shows).
func tokenOK(header, token string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && ok
}

func (s *Server) adminStatus(w http.ResponseWriter, r *http.Request) {
	st, ok := s.status()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
		return
	}
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(st.Text()))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) adminCaughtUp(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	maxLag, err := strconv.ParseUint(r.URL.Query().Get("max_lag"), 10, 64)
	if r.URL.Query().Get("max_lag") == "" {
		maxLag, err = 0, nil
	}
	if id == "" || err != nil {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "usage: GET /admin/caught-up?id=ID[&max_lag=N]", Code: "bad_request"})
		return
	}
	st, ok := s.status()
	switch {
	case !ok:
		writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
		return
	case st.Progress == nil:
		writeJSON(w, http.StatusMisdirectedRequest, AdminError{Error: s.cfg.ID + " is not the leader; ask " + orDash(st.Leader), Code: "not_leader", Leader: st.Leader})
		return
	}
	pr, found := st.Progress[id]
	if !found {
		writeJSON(w, http.StatusNotFound, AdminError{Error: id + " is not a member of " + st.ConfigText, Code: "not_found"})
		return
	}
	out := CaughtUpJSON{ID: id, Match: pr.Match, LeaderIndex: st.LastIndex, Durable: pr.Durable, Reachable: pr.RecentActive}
	if st.LastIndex > pr.Match {
		out.Lag = st.LastIndex - pr.Match
	}
	out.CaughtUp = out.Lag <= maxLag && out.Reachable
	writeJSON(w, http.StatusOK, out)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "bad JSON body: " + err.Error(), Code: "bad_request"})
		return false
	}
	return true
}

// decodeMembership decodes the body of a membership call and checks its
// wait_ms bound.
func decodeMembership(w http.ResponseWriter, r *http.Request, req *MembershipRequest) bool {
	if !decodeBody(w, r, req) {
		return false
	}
	if req.WaitMs < 0 || req.WaitMs > MaxWaitMs {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: fmt.Sprintf("wait_ms must be between 0 and %d (one minute); it is %d", MaxWaitMs, req.WaitMs), Code: "bad_request"})
		return false
	}
	return true
}

// membershipErr answers a refused change.
func (s *Server) membershipErr(w http.ResponseWriter, err error, lead string, cfgIndex uint64) {
	switch {
	case errors.Is(err, raftcore.ErrNotLeader):
		writeJSON(w, http.StatusMisdirectedRequest, AdminError{Error: err.Error(), Code: "not_leader", Leader: lead})
	case errors.Is(err, raftcore.ErrConfigIndexMismatch):
		writeJSON(w, http.StatusConflict, AdminError{Error: err.Error(), Code: "config_moved", ConfigIndex: cfgIndex})
	default:
		writeJSON(w, http.StatusConflict, AdminError{Error: err.Error(), Code: "refused", ConfigIndex: cfgIndex})
	}
}

func (s *Server) membership(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req MembershipRequest
		if !decodeMembership(w, r, &req) {
			return
		}
		bad := func(msg string) {
			writeJSON(w, http.StatusBadRequest, AdminError{Error: msg, Code: "bad_request"})
		}
		if req.ExpectConfigIndex == nil {
			bad("expect_config_index is required (the configuration index from /admin/status)")
			return
		}
		expect := *req.ExpectConfigIndex
		if expect == 0 {
			// Zero would switch the compare-and-set off in raftcore; no
			// configuration lives at index 0 once a cluster exists.
			bad("expect_config_index must be the current configuration index (not 0)")
			return
		}
		var cc raftcore.ConfChange
		switch op {
		case "add-learner", "remove-member":
			if req.ID == "" {
				bad(op + " needs an id")
				return
			}
			cc = raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: req.ID}
			if op == "remove-member" {
				cc.Op = raftcore.OpRemove
			}
		case "enter-joint", "change-voters":
			if len(req.Voters) == 0 {
				bad(op + " needs voters")
				return
			}
			cc = raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: req.Voters}
		case "leave-joint":
			cc = raftcore.ConfChange{Op: raftcore.OpLeaveJoint}
		}
		cc.ExpectConfigIndex = expect
		if req.Address != "" {
			if op != "add-learner" {
				bad(`"address" is add-learner's; enter-joint and change-voters take "addresses" {"id": "host:port"}`)
				return
			}
			if err := checkAddr(req.ID, req.Address); err != nil {
				bad(err.Error())
				return
			}
		}
		if len(req.Addresses) > 0 && op != "enter-joint" && op != "change-voters" {
			bad(`"addresses" is for enter-joint and change-voters; add-learner takes "address"`)
			return
		}
		for _, id := range slices.Sorted(maps.Keys(req.Addresses)) {
			if !slices.Contains(req.Voters, id) {
				bad(fmt.Sprintf("addresses names %s, which is not one of the voters %v", id, req.Voters))
				return
			}
			if err := checkAddr(id, req.Addresses[id]); err != nil {
				bad(err.Error())
				return
			}
		}
		var (
			resp MembershipResponse
			err  error
			lead string
			cur  uint64
		)
		ok := s.n.call(func() {
			rn := s.n.rn
			bs := rn.BasicStatus()
			lead, cur = bs.Lead, bs.ConfigIndex
			if op == "change-voters" {
				var learners []string
				for _, l := range bs.Config.Learners {
					if !slices.Contains(req.Voters, l) {
						learners = append(learners, l)
					}
				}
				cc = raftcore.ConfChange{Op: raftcore.OpOneStep, Target: raftcore.NewConfig(req.Voters, learners...), ExpectConfigIndex: expect}
			}
			// Every refusal first: nothing is proposed or taken into use
			// for a call that is refused.
			if err = s.checkChange(bs, cc); err != nil {
				return
			}
			var records map[string]string
			if records, err = s.addressRecords(op, req, bs.Config); err != nil {
				return
			}
			// The records go in the log just before the configuration
			// entry, in the same step: every node that has the entry has
			// them, and applies them before it.
			for _, id := range slices.Sorted(maps.Keys(records)) {
				if err = rn.Propose(encodeAddrRecord(id, records[id])); err != nil {
					s.n.logf("admin %s: address record of %s not proposed after the checks passed: %v", op, id, err)
					return
				}
			}
			if err = rn.ProposeConfChange(cc); err != nil {
				if len(records) > 0 {
					// checkChange is out of step with raftcore. The records
					// name only non-members, and no record re-addresses a
					// member when applied (node.apply).
					s.n.logf("admin %s: refused by raftcore after its checks passed, with address records %v proposed: %v", op, records, err)
				}
				return
			}
			if op != "add-learner" {
				// A new voter may be needed to commit the change and its own
				// record (the leader and it may be a quorum of C_new), so
				// the leader reaches it at once. Only non-members are in
				// records: no member is re-addressed.
				for id, a := range records {
					s.n.tr.setAddr(id, a)
				}
			}
			after := rn.BasicStatus()
			resp = MembershipResponse{ConfigIndex: after.ConfigIndex, Config: configJSON(after.Config), Committed: after.ConfigIndex <= after.Commit, Leader: after.Lead}
		})
		switch {
		case !ok:
			writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
		case err != nil:
			s.membershipErr(w, err, lead, cur)
		default:
			writeJSON(w, http.StatusOK, resp)
		}
	}
}

// checkAddr checks a peer address given for id.
func checkAddr(id, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("address %q of %s: %v (want host:port)", addr, id, err)
	}
	return nil
}

// errNoInPlaceMove ends the refusals that would re-address a member.
const errNoInPlaceMove = "no call changes a member's address in place: to move it, remove it (remove-member) and add it again with the new address (add-learner)"

// addressRecords returns the address records a membership call writes
// before its configuration entry, or why the call is refused: it never
// re-addresses a member, and never adds a member no address is known for.
// cur is the current configuration. Loop only.
func (s *Server) addressRecords(op string, req MembershipRequest, cur raftcore.Config) (map[string]string, error) {
	book := s.n.tr.addrBook()
	records := map[string]string{}
	switch op {
	case "add-learner":
		// checkChange refused a member already.
		switch {
		case req.Address != "":
			records[req.ID] = req.Address
		case book[req.ID] == "":
			return nil, fmt.Errorf("%w: no address known for %s: pass \"address\"", raftcore.ErrInvalidConfig, req.ID)
		}
	case "enter-joint", "change-voters":
		for _, id := range slices.Sorted(maps.Keys(req.Addresses)) {
			a := req.Addresses[id]
			if !cur.IsMember(id) {
				records[id] = a
				continue
			}
			if book[id] != a {
				return nil, fmt.Errorf("%w: %s is already a member of %s, at %q, not %q; %s does not change a member's address (%s)",
					raftcore.ErrInvalidConfig, id, cur, book[id], a, op, errNoInPlaceMove)
			}
		}
		for _, id := range req.Voters {
			if !cur.IsMember(id) && records[id] == "" && book[id] == "" {
				return nil, fmt.Errorf("%w: no address known for the new voter %s: pass it in \"addresses\"", raftcore.ErrInvalidConfig, id)
			}
		}
	}
	return records, nil
}

// checkChange refuses, without changing anything, every change that
// raftcore's ProposeConfChange would refuse (it asks raftcore's own check),
// with a more helpful message where a user tripped. bs is the leader's
// BasicStatus. Loop only.
func (s *Server) checkChange(bs raftcore.Status, cc raftcore.ConfChange) error {
	_, err := s.n.rn.CheckConfChange(cc)
	if errors.Is(err, raftcore.ErrInvalidConfig) && cc.Op == raftcore.OpAddLearner && cc.ID != "" && bs.Config.IsMember(cc.ID) {
		role := "voter"
		if bs.Config.IsLearner(cc.ID) {
			role = "learner"
		}
		at := s.n.tr.addrBook()[cc.ID]
		return fmt.Errorf("%w: %s is already a member (%s, at %q) of %s; add-learner adds a new member and never changes a member's address (%s)",
			raftcore.ErrInvalidConfig, cc.ID, role, at, bs.Config, errNoInPlaceMove)
	}
	return err
}

// adminCommitNew reports (waiting up to wait_ms) whether the joint entry at
// expect_config_index is committed: 200 committed, 202 pending, 409 if the
// configuration moved.
func (s *Server) adminCommitNew(w http.ResponseWriter, r *http.Request) {
	var req MembershipRequest
	if !decodeMembership(w, r, &req) {
		return
	}
	if req.ExpectConfigIndex == nil {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "expect_config_index (the joint entry's index) is required", Code: "bad_request"})
		return
	}
	expect := *req.ExpectConfigIndex
	deadline := time.Now().Add(time.Duration(req.WaitMs) * time.Millisecond)
	for {
		var bs raftcore.Status
		if !s.n.call(func() { bs = s.n.rn.BasicStatus() }) {
			writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
			return
		}
		switch {
		case bs.State != raftcore.StateLeader:
			writeJSON(w, http.StatusMisdirectedRequest, AdminError{Error: s.cfg.ID + " is not the leader", Code: "not_leader", Leader: bs.Lead})
			return
		case bs.ConfigIndex != expect:
			writeJSON(w, http.StatusConflict, AdminError{Error: fmt.Sprintf("joint entry expected at %d, configuration index is %d", expect, bs.ConfigIndex), Code: "config_moved", ConfigIndex: bs.ConfigIndex})
			return
		case bs.Commit >= expect:
			writeJSON(w, http.StatusOK, MembershipResponse{ConfigIndex: bs.ConfigIndex, Config: configJSON(bs.Config), Committed: true, Leader: bs.Lead})
			return
		case !time.Now().Before(deadline):
			writeJSON(w, http.StatusAccepted, AdminError{Error: fmt.Sprintf("the entry at %d is not committed yet (commit %d)", expect, bs.Commit), Code: "pending", ConfigIndex: bs.ConfigIndex})
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *Server) adminTransfer(w http.ResponseWriter, r *http.Request) {
	var req MembershipRequest
	if !decodeMembership(w, r, &req) {
		return
	}
	if req.To == "" {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "transfer-leader needs \"to\"", Code: "bad_request"})
		return
	}
	var err error
	var lead string
	if !s.n.call(func() {
		lead = s.n.rn.BasicStatus().Lead
		if lead == req.To {
			return
		}
		err = s.n.rn.TransferLeader(req.To)
	}) {
		writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusConflict, AdminError{Error: err.Error(), Code: "refused", Leader: lead})
		return
	}
	if req.WaitMs > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(req.WaitMs)*time.Millisecond)
		defer cancel()
		if err := s.waitFor(ctx, func() bool { return *s.n.stats.lead.Load() == req.To }); err != nil {
			writeJSON(w, http.StatusAccepted, AdminError{Error: "transfer requested; " + req.To + " does not lead yet", Code: "pending", Leader: *s.n.stats.lead.Load()})
			return
		}
	}
	writeJSON(w, http.StatusOK, MembershipResponse{Leader: *s.n.stats.lead.Load()})
}

func (s *Server) adminSnapshot(w http.ResponseWriter, r *http.Request) {
	var err error
	var idx uint64
	if !s.n.call(func() { err = s.n.snapshot(); idx = s.n.lastSnapIdx }) {
		writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, AdminError{Error: err.Error(), Code: "refused"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"snapshot_index": idx})
}

func (s *Server) adminSetFault(w http.ResponseWriter, r *http.Request) {
	var req FaultRequest
	if !decodeBody(w, r, &req) {
		return
	}
	dirs := []string{DirIn, DirOut}
	switch req.Direction {
	case "", "both":
	case DirIn, DirOut:
		dirs = []string{req.Direction}
	default:
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "direction must be in, out or both", Code: "bad_request"})
		return
	}
	if req.Peer == "" || req.DelayMs < 0 || req.JitterMs < 0 || req.LossPercent < 0 || req.LossPercent > 100 {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "a fault needs a peer (id or *), delays >= 0 and loss_percent in [0, 100]", Code: "bad_request"})
		return
	}
	peers := []string{req.Peer}
	if req.Peer == "*" {
		peers = peers[:0]
		for id := range s.n.tr.addrBook() {
			if id != s.cfg.ID {
				peers = append(peers, id)
			}
		}
	}
	for _, p := range peers {
		for _, d := range dirs {
			s.n.tr.setFault(p, d, req.Fault)
		}
	}
	writeJSON(w, http.StatusOK, s.n.tr.faultList())
}
