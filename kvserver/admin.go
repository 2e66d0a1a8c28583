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
	"sync"
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
	// LeaderHistory is the leaders this node saw take over since it
	// started, newest last (at most 64).
	LeaderHistory []LeaderChangeJSON `json:"leader_history,omitempty"`
}

// LeaderChangeJSON is one leader taking over, as a member saw it: the term,
// the leader and this member's wall clock when it learnt of it.
type LeaderChangeJSON struct {
	Term   uint64    `json:"term"`
	Leader string    `json:"leader"`
	At     time.Time `json:"at"`
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
			LeaderHistory: slices.Clone(s.n.leaderHistory),
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

// FaultSet is the body of PUT /admin/faults: the whole set of faults in
// force, replacing every fault set before in one step. It is also the form
// of the initial faults a node takes from the environment variable
// RAFT_KV_FAULTS at start (InitialFaultsEnv).
type FaultSet struct {
	Faults []FaultRequest `json:"faults"`
}

// InitialFaultsEnv names the environment variable that holds a node's
// faults at start, as a FaultSet in JSON: they are in force before the
// node sends or receives its first peer message, so a node restarted into
// a partition never talks across it (a later admin call could come too
// late). A malformed value (bad JSON, an unknown field, an invalid fault)
// makes the node refuse to start: Start returns an error naming the
// variable and the problem, and raft-kv exits 1.
const InitialFaultsEnv = "RAFT_KV_FAULTS"

// faultKeys expands one fault request into the link directions it names;
// "*" is every peer in book (this node excluded).
func (r FaultRequest) faultKeys(self string, book map[string]string) ([]faultKey, error) {
	dirs := []string{DirIn, DirOut}
	switch r.Direction {
	case "", "both":
	case DirIn, DirOut:
		dirs = []string{r.Direction}
	default:
		return nil, errors.New("direction must be in, out or both")
	}
	if r.Peer == "" || r.DelayMs < 0 || r.JitterMs < 0 || r.LossPercent < 0 || r.LossPercent > 100 || r.DuplicatePercent < 0 || r.DuplicatePercent > 100 {
		return nil, errors.New("a fault needs a peer (id or *), delays >= 0, loss_percent and duplicate_percent in [0, 100]")
	}
	peers := []string{r.Peer}
	if r.Peer == "*" {
		peers = peers[:0]
		for id := range book {
			if id != self {
				peers = append(peers, id)
			}
		}
	}
	var out []faultKey
	for _, p := range peers {
		for _, d := range dirs {
			out = append(out, faultKey{p, d})
		}
	}
	return out, nil
}

// faultMap is a FaultSet as the transport keeps it; a later request for
// the same link direction replaces an earlier one.
func (fs FaultSet) faultMap(self string, book map[string]string) (map[faultKey]Fault, error) {
	out := map[faultKey]Fault{}
	for i, r := range fs.Faults {
		keys, err := r.faultKeys(self, book)
		if err != nil {
			return nil, fmt.Errorf("fault %d: %w", i, err)
		}
		for _, k := range keys {
			out[k] = r.Fault
		}
	}
	return out, nil
}

// Event kinds of GET /admin/events.
const (
	// EventState: the node's role, term, leader, configuration or joint
	// state changed (Changed says which); the event carries all of them.
	EventState = "state"
	// EventConfigApplied: the configuration entry at Index was applied,
	// hence committed.
	EventConfigApplied = "config-applied"
	// EventSnapshotRestored: the state machine was replaced by the
	// snapshot at Index, whose configuration is Config; configuration
	// entries up to Index are not applied one by one on this node.
	EventSnapshotRestored = "snapshot-restored"
)

// EventJSON is one event of GET /admin/events. Events are numbered from 1
// in the order the node's loop saw them; the numbering restarts with the
// process (EventsJSON.Boot).
type EventJSON struct {
	Seq uint64 `json:"seq"`
	// AtUnixMicro is the node's wall clock when the loop recorded it.
	AtUnixMicro int64  `json:"at_unix_us"`
	Kind        string `json:"kind"`
	// Changed (state events): what changed since the previous state event,
	// among role, term, leader, config (index or content) and joint; the
	// first event of a process says start.
	Changed []string `json:"changed,omitempty"`
	// Role, Term, Leader, ConfigIndex, JointState (none, entering,
	// committed, leaving) and Commit: the node's state after the change
	// (state events).
	Role        string `json:"role,omitempty"`
	Term        uint64 `json:"term,omitempty"`
	Leader      string `json:"leader,omitempty"`
	ConfigIndex uint64 `json:"config_index,omitempty"`
	JointState  string `json:"joint_state,omitempty"`
	Commit      uint64 `json:"commit,omitempty"`
	// Config is the node's latest configuration (state), the applied one
	// (config-applied) or the snapshot's (snapshot-restored).
	Config *ConfigJSON `json:"config,omitempty"`
	// Index: the configuration entry's (config-applied) or the snapshot's
	// (snapshot-restored) index.
	Index uint64 `json:"index,omitempty"`
	// PrevConfigIndex (config-applied) is the index of the configuration
	// entry this one replaced on this node (0: none, the bootstrap entry
	// is the first), unless PrevUnknown: the previous configuration came
	// from a snapshot, whose configuration entry's index the node does not
	// know.
	PrevConfigIndex uint64 `json:"prev_config_index,omitempty"`
	PrevUnknown     bool   `json:"prev_unknown,omitempty"`
}

// EventsJSON answers GET /admin/events.
type EventsJSON struct {
	// Boot identifies the process: a new value means a restart, and the
	// numbering started again at 1.
	Boot   string      `json:"boot"`
	Events []EventJSON `json:"events"`
	// Next is the after of the next call (the last Seq returned, or the
	// after given when nothing new came).
	Next uint64 `json:"next"`
	// Lost counts events after `after` that are no longer held (the ring
	// keeps the newest EventRingSize): the caller fell behind and missed
	// them. Events then starts at the oldest held.
	Lost uint64 `json:"lost"`
	// Reset: after was beyond the newest event (a number from an earlier
	// process of this node), so the answer is from the start, as after=0.
	Reset bool `json:"reset,omitempty"`
}

// EventRingSize is how many events a node keeps for GET /admin/events.
const EventRingSize = 4096

// maxEventsPerAnswer bounds one answer; the caller asks again from Next.
const maxEventsPerAnswer = 1024

// eventRing is the node's bounded list of numbered events: the loop adds,
// admin calls read and wait. Safe for concurrent use.
// The zero value is ready (the node is built in one literal elsewhere).
type eventRing struct {
	mu   sync.Mutex
	buf  []EventJSON // event seq s is at (s-1) % EventRingSize
	last uint64      // seq of the newest event (0: none yet)
	wake chan struct{}
}

// add numbers and stores e, and wakes every waiting reader.
func (r *eventRing) add(e EventJSON) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last++
	e.Seq = r.last
	e.AtUnixMicro = time.Now().UnixMicro()
	if len(r.buf) < EventRingSize {
		r.buf = append(r.buf, e)
	} else {
		r.buf[(e.Seq-1)%EventRingSize] = e
	}
	if r.wake != nil {
		close(r.wake)
	}
	r.wake = make(chan struct{})
}

// since returns the events after seq `after` (at most max), how many of
// them are no longer held, whether after was reset, and a channel closed
// at the next add.
func (r *eventRing) since(after uint64, limit int) (evs []EventJSON, lost uint64, reset bool, wake <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	if after > r.last {
		after, reset = 0, true
	}
	first := r.last - uint64(len(r.buf)) + 1 // oldest held
	from := after + 1
	if from < first {
		lost, from = first-from, first
	}
	for s := from; s <= r.last && len(evs) < limit; s++ {
		evs = append(evs, r.buf[(s-1)%EventRingSize])
	}
	return evs, lost, reset, r.wake
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
	mux.HandleFunc("POST /admin/hand-off", auth(s.adminHandOff))
	mux.HandleFunc("POST /admin/snapshot", auth(s.adminSnapshot))
	mux.HandleFunc("GET /admin/faults", auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.n.tr.faultList())
	}))
	mux.HandleFunc("POST /admin/faults", auth(s.adminSetFault))
	mux.HandleFunc("PUT /admin/faults", auth(s.adminReplaceFaults))
	mux.HandleFunc("GET /admin/events", auth(s.adminEvents))
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

// HandOffJSON answers POST /admin/hand-off.
type HandOffJSON struct {
	// To is the voter that leads now, empty when this node did not lead.
	To string `json:"to"`
}

// adminHandOff hands leadership away if this node leads (to the reachable
// voter with the highest match, as on SIGTERM) and answers once it no
// longer leads: a pod's preStop hook calls it so that its leadership moves
// while it still serves, before Kubernetes sends SIGTERM.
func (s *Server) adminHandOff(w http.ResponseWriter, r *http.Request) {
	if !s.n.stats.isLeader.Load() {
		writeJSON(w, http.StatusOK, HandOffJSON{})
		return
	}
	to, err := s.transferAway(r.Context())
	if err != nil {
		writeJSON(w, http.StatusConflict, AdminError{Error: "hand-off: " + err.Error(), Code: "refused"})
		return
	}
	writeJSON(w, http.StatusOK, HandOffJSON{To: to})
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
	keys, err := req.faultKeys(s.cfg.ID, s.n.tr.addrBook())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: err.Error(), Code: "bad_request"})
		return
	}
	for _, k := range keys {
		s.n.tr.setFault(k.peer, k.dir, req.Fault)
	}
	writeJSON(w, http.StatusOK, s.n.tr.faultList())
}

// adminReplaceFaults is PUT /admin/faults: the body's set replaces every
// fault in force at once (an empty set clears them, as DELETE does).
func (s *Server) adminReplaceFaults(w http.ResponseWriter, r *http.Request) {
	var req FaultSet
	if !decodeBody(w, r, &req) {
		return
	}
	fs, err := req.faultMap(s.cfg.ID, s.n.tr.addrBook())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: err.Error(), Code: "bad_request"})
		return
	}
	s.n.tr.replaceFaults(fs)
	writeJSON(w, http.StatusOK, s.n.tr.faultList())
}

// adminEvents is GET /admin/events?after=N&wait_ms=M: the events after
// seq N (default 0), waiting up to M ms (default 0, at most MaxWaitMs) for
// one when there is none yet.
func (s *Server) adminEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after uint64
	var waitMs int
	var err error
	if v := q.Get("after"); v != "" {
		after, err = strconv.ParseUint(v, 10, 64)
	}
	if v := q.Get("wait_ms"); v != "" && err == nil {
		waitMs, err = strconv.Atoi(v)
		if err == nil && (waitMs < 0 || waitMs > MaxWaitMs) {
			err = fmt.Errorf("wait_ms must be between 0 and %d", MaxWaitMs)
		}
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, AdminError{Error: "usage: GET /admin/events?after=N&wait_ms=M: " + err.Error(), Code: "bad_request"})
		return
	}
	timer := time.NewTimer(time.Duration(waitMs) * time.Millisecond)
	defer timer.Stop()
	for {
		evs, lost, reset, wake := s.n.events.since(after, maxEventsPerAnswer)
		if len(evs) > 0 || lost > 0 || reset || waitMs == 0 {
			out := EventsJSON{Boot: s.boot, Events: evs, Next: after, Lost: lost, Reset: reset}
			if reset {
				out.Next = 0
			}
			if len(evs) > 0 {
				out.Next = evs[len(evs)-1].Seq
			} else {
				out.Events = []EventJSON{}
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		s.eventPolls.Add(1)
		select {
		case <-wake:
		case <-timer.C:
			waitMs = 0 // answer with what there is (nothing)
		case <-r.Context().Done():
			s.eventPolls.Add(-1)
			return
		case <-s.n.donec:
			s.eventPolls.Add(-1)
			writeJSON(w, http.StatusServiceUnavailable, AdminError{Error: "the node is stopping", Code: "unavailable"})
			return
		}
		s.eventPolls.Add(-1)
	}
}
