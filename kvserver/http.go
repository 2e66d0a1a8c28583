package kvserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/raftlab/raftlab/kvserver/sm"
)

// Headers of the client API.
const (
	// HeaderClientID and HeaderSeq name a write's session: a retry with the
	// same pair is applied at most once and answered with the first result.
	HeaderClientID = "X-Client-Id"
	HeaderSeq      = "X-Request-Seq"
	// HeaderNode and HeaderLeader are on every response: who answered, and
	// the leader it knows (id); HeaderLeaderURL is the leader's client URL.
	HeaderNode      = "X-Raft-Node"
	HeaderLeader    = "X-Raft-Leader"
	HeaderLeaderURL = "X-Raft-Leader-Url"
)

const maxClientIDBytes = 128

// WriteRequest is the body of PUT and POST /kv/{key}.
type WriteRequest struct {
	Value *string `json:"value"`
}

// WriteResponse answers a write.
type WriteResponse struct {
	Outcome string `json:"outcome"`
	// Index is the log index the write was applied at.
	Index uint64 `json:"index"`
	// Existed: the key had a value before.
	Existed bool `json:"existed"`
	// Duplicate: this (client id, seq) was applied before (also when a late
	// copy arrives after newer requests of the client); this is the first
	// result, and Index the entry that answered (the copy's or the first's).
	Duplicate bool `json:"duplicate,omitempty"`
}

// ReadResponse answers a GET.
type ReadResponse struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Index is the applied index the read was served at.
	Index uint64 `json:"index"`
}

// ErrorResponse is every error's body.
type ErrorResponse struct {
	Error string `json:"error"`
	// Outcome: failed (definitely not applied) or unknown (may be applied),
	// of the request (client id and seq), not only of this attempt: a
	// session_expired answer, for one, applied nothing for this attempt but
	// is unknown since an earlier attempt may have been applied.
	Outcome string `json:"outcome"`
	// Code is a stable name for the error (not_found, key_too_large, ...).
	Code      string `json:"code"`
	Leader    string `json:"leader,omitempty"`
	LeaderURL string `json:"leader_url,omitempty"`
}

func (s *Server) clientHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/kv/{key...}", s.handleKV)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, OutcomeFailed, "no_such_path",
			fmt.Sprintf("no %s; the client API is /kv/{key} (GET, PUT, POST, DELETE)", r.URL.Path))
	})
	s.mountHealth(mux)
	return mux
}

func (s *Server) mountHealth(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.n.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.n.donec:
			http.Error(w, "stopped", http.StatusServiceUnavailable)
		default:
			_, _ = io.WriteString(w, "ok\n")
		}
	})
	// Ready: a leader is known and this node applied up to the commit index
	// it learned from that leader.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		lead := *s.n.stats.lead.Load()
		commit, applied := s.n.stats.commit.Load(), s.n.stats.applied.Load()
		switch {
		case lead == "":
			http.Error(w, "not ready: no known leader", http.StatusServiceUnavailable)
		case applied < commit:
			http.Error(w, fmt.Sprintf("not ready: applied %d of commit %d", applied, commit), http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "ready: leader %s, applied %d\n", lead, applied)
		}
	})
}

func (s *Server) leaderHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set(HeaderNode, s.cfg.ID)
	if lead := *s.n.stats.lead.Load(); lead != "" {
		h.Set(HeaderLeader, lead)
		if a := s.n.tr.clientAddr(lead); a != "" {
			h.Set(HeaderLeaderURL, "http://"+a)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, code int, outcome, name, msg string) {
	s.leaderHeaders(w)
	e := ErrorResponse{Error: msg, Outcome: outcome, Code: name, Leader: w.Header().Get(HeaderLeader), LeaderURL: w.Header().Get(HeaderLeaderURL)}
	writeJSON(w, code, e)
}

func (s *Server) handleKV(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	op := map[string]string{http.MethodGet: "get", http.MethodPut: "put", http.MethodPost: "put", http.MethodDelete: "delete"}[r.Method]
	if op == "" {
		w.Header().Set("Allow", "GET, PUT, POST, DELETE")
		s.fail(w, http.StatusMethodNotAllowed, OutcomeFailed, "method_not_allowed", r.Method+" is not allowed on /kv/{key}; use GET, PUT, POST or DELETE")
		return
	}
	outcome := s.serveKV(w, r, op, key)
	s.n.m.requests.WithLabelValues(op, outcome).Inc()
}

func (s *Server) serveKV(w http.ResponseWriter, r *http.Request, op, key string) string {
	if key == "" {
		s.fail(w, http.StatusBadRequest, OutcomeFailed, "missing_key", "missing key: use /kv/{key}")
		return "rejected"
	}
	if len(key) > s.cfg.MaxKeyBytes {
		s.fail(w, http.StatusRequestURITooLong, OutcomeFailed, "key_too_large",
			fmt.Sprintf("key is %d bytes; the limit is %d (--max-key-bytes)", len(key), s.cfg.MaxKeyBytes))
		return "rejected"
	}
	if op == "get" {
		return s.serveRead(w, r, key)
	}
	cmd := sm.Command{Key: key, Op: sm.OpDelete}
	if op == "put" {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBodyBytes)))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			s.fail(w, http.StatusRequestEntityTooLarge, OutcomeFailed, "body_too_large",
				fmt.Sprintf("request body exceeds the limit of %d bytes (--max-body-bytes)", s.cfg.MaxBodyBytes))
			return "rejected"
		case err != nil:
			s.fail(w, http.StatusBadRequest, OutcomeFailed, "bad_body", "reading the body: "+err.Error())
			return "rejected"
		}
		var req WriteRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Value == nil {
			s.fail(w, http.StatusBadRequest, OutcomeFailed, "bad_body", `the body must be JSON {"value": "..."}`)
			return "rejected"
		}
		if len(*req.Value) > s.cfg.MaxValueBytes {
			s.fail(w, http.StatusRequestEntityTooLarge, OutcomeFailed, "value_too_large",
				fmt.Sprintf("value is %d bytes; the limit is %d (--max-value-bytes)", len(*req.Value), s.cfg.MaxValueBytes))
			return "rejected"
		}
		cmd.Op, cmd.Value = sm.OpPut, []byte(*req.Value)
	}
	cmd.ClientID = r.Header.Get(HeaderClientID)
	if cmd.ClientID != "" {
		seq, err := strconv.ParseUint(r.Header.Get(HeaderSeq), 10, 64)
		if err != nil || seq == 0 {
			s.fail(w, http.StatusBadRequest, OutcomeFailed, "bad_seq", HeaderClientID+" needs "+HeaderSeq+", a positive integer")
			return "rejected"
		}
		if len(cmd.ClientID) > maxClientIDBytes || cmd.ClientID[0] == '~' {
			s.fail(w, http.StatusBadRequest, OutcomeFailed, "bad_client_id",
				fmt.Sprintf("%s must be 1-%d bytes and not start with '~'", HeaderClientID, maxClientIDBytes))
			return "rejected"
		}
		cmd.Seq = seq
	} else {
		// No session: a unique id names the waiter; nothing is recorded.
		s.anonM.Lock()
		s.anon++
		cmd.ClientID = "~" + s.cfg.ID + "." + s.boot + "." + strconv.FormatUint(s.anon, 36)
		s.anonM.Unlock()
	}
	res := s.propose(r, cmd)
	s.leaderHeaders(w)
	switch {
	case res.outcome == OutcomeOK:
		writeJSON(w, http.StatusOK, WriteResponse{Outcome: OutcomeOK, Index: res.index, Existed: res.res.Existed, Duplicate: res.res.Duplicate})
	case res.res.SessionExpired:
		s.fail(w, http.StatusConflict, res.outcome, "session_expired", res.err.Error())
	case res.res.Stale:
		s.fail(w, http.StatusConflict, res.outcome, "stale_request", res.err.Error())
	case res.outcome == OutcomeFailed:
		s.fail(w, http.StatusServiceUnavailable, OutcomeFailed, "no_leader", "not proposed: "+res.err.Error())
	default:
		s.fail(w, http.StatusGatewayTimeout, OutcomeUnknown, "unknown_outcome", "outcome unknown: "+res.err.Error())
	}
	return res.outcome
}

// propose hands a write to the loop and waits for its result.
func (s *Server) propose(r *http.Request, cmd sm.Command) writeResult {
	p := &proposal{key: waitKey{cmd.ClientID, cmd.Seq}, data: cmd.Encode(), done: make(chan writeResult, 1),
		deadline: time.Now().Add(s.cfg.RequestTimeout)}
	timer := time.NewTimer(s.cfg.RequestTimeout + s.cfg.Heartbeat)
	defer timer.Stop()
	select {
	case s.n.propc <- p:
	case <-s.n.donec:
		return writeResult{outcome: OutcomeFailed, err: errors.New("the node is stopping")}
	case <-timer.C:
		return writeResult{outcome: OutcomeFailed, err: errors.New("the node is overloaded (proposal queue full)")}
	}
	select {
	case res := <-p.done:
		return res
	case <-s.n.donec:
		return writeResult{outcome: OutcomeUnknown, err: errors.New("the node stopped")}
	case <-timer.C:
		return writeResult{outcome: OutcomeUnknown, err: errors.New("timed out waiting for commit")}
	case <-r.Context().Done():
		return writeResult{outcome: OutcomeUnknown, err: r.Context().Err()}
	}
}

func (s *Server) serveRead(w http.ResponseWriter, r *http.Request, key string) string {
	rr := &readReq{key: key, done: make(chan readResult, 1), deadline: time.Now().Add(s.cfg.RequestTimeout)}
	timer := time.NewTimer(s.cfg.RequestTimeout + s.cfg.Heartbeat)
	defer timer.Stop()
	var res readResult
	select {
	case s.n.readc <- rr:
		select {
		case res = <-rr.done:
		case <-s.n.donec:
			res.failed = errors.New("the node stopped")
		case <-timer.C:
			res.failed = errors.New("timed out waiting for a read point")
		case <-r.Context().Done():
			res.failed = r.Context().Err()
		}
	case <-s.n.donec:
		res.failed = errors.New("the node is stopping")
	case <-timer.C:
		res.failed = errors.New("the node is overloaded (read queue full)")
	}
	switch {
	case res.failed != nil:
		s.fail(w, http.StatusServiceUnavailable, OutcomeFailed, "no_read_point", "read not served: "+res.failed.Error())
		return OutcomeFailed
	case !res.found:
		s.fail(w, http.StatusNotFound, OutcomeOK, "not_found", fmt.Sprintf("key %q not found", key))
		return "notfound"
	}
	s.leaderHeaders(w)
	writeJSON(w, http.StatusOK, ReadResponse{Key: key, Value: string(res.value), Index: res.index})
	return OutcomeOK
}
