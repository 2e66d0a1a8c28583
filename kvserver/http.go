package kvserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/raftlab/raftlab/kvserver/sm"
)

// Headers of the client API.
const (
	// HeaderClientID and HeaderSeq name a write's session: a retry with the
	// same pair (and the same command) is applied at most once and answered
	// with the first result; another command under a pair already applied
	// is refused (409 request_mismatch).
	HeaderClientID = "X-Client-Id"
	HeaderSeq      = "X-Request-Seq"
	// HeaderNode and HeaderLeader are on every response: who answered, and
	// the leader it knows (id); HeaderLeaderURL is the leader's client URL.
	HeaderNode      = "X-Raft-Node"
	HeaderLeader    = "X-Raft-Leader"
	HeaderLeaderURL = "X-Raft-Leader-Url"
)

const maxClientIDBytes = 128

// WriteRequest is the body of PUT and POST /kv/{key}. A value is bytes; the
// body gives it in exactly one of two ways.
type WriteRequest struct {
	// Value is the value as text, stored as its UTF-8 bytes. JSON text is
	// UTF-8, so a body with bytes that are not (or a string with a \u
	// escape of a lone surrogate, such as "\ud800") is refused, never
	// stored with U+FFFD in their place: a value that is not UTF-8 text
	// goes as ValueB64.
	Value *string `json:"value,omitempty"`
	// ValueB64 is the value in standard base64 (RFC 4648 §4, with
	// padding): any bytes.
	ValueB64 *string `json:"value_b64,omitempty"`
}

// WriteResponse answers a write.
type WriteResponse struct {
	Outcome string `json:"outcome"`
	// Index is the log index the write was applied at.
	Index uint64 `json:"index"`
	// Existed: the key had a value before.
	Existed bool `json:"existed"`
	// Duplicate: this request (client id, seq, and the same command) was
	// applied before (also when a late copy arrives after newer requests of
	// the client); this is the first result, and Index the entry that
	// answered (the copy's or the first's).
	Duplicate bool `json:"duplicate,omitempty"`
}

// ReadResponse answers a GET. Exactly one of Value and ValueB64 is set.
type ReadResponse struct {
	// Key is the key as text (bytes of it that are not UTF-8 show as
	// U+FFFD).
	Key string `json:"key"`
	// Value is the value, when its bytes are valid UTF-8 (text).
	Value *string `json:"value,omitempty"`
	// ValueB64 is the value in standard base64, when its bytes are not
	// valid UTF-8.
	ValueB64 *string `json:"value_b64,omitempty"`
	// Index is the applied index the read was served at.
	Index uint64 `json:"index"`
}

// decodeValue takes the value out of a write's body; a message says why
// the body is refused.
func decodeValue(body []byte) (value []byte, refusal string) {
	if !utf8.Valid(body) || hasLoneSurrogate(body) {
		return nil, `the body is not UTF-8 text (bytes that are not UTF-8, or a \u escape of a lone surrogate such as "\ud800"): ` +
			`a "value" is text; send a value that is not UTF-8 text as "value_b64" (standard base64)`
	}
	var req WriteRequest
	if err := json.Unmarshal(body, &req); err != nil || (req.Value == nil && req.ValueB64 == nil) {
		return nil, `the body must be JSON {"value": "..."} (UTF-8 text) or {"value_b64": "..."} (standard base64, any bytes)`
	}
	switch {
	case req.Value != nil && req.ValueB64 != nil:
		return nil, `give "value" or "value_b64", not both`
	case req.Value != nil:
		return []byte(*req.Value), ""
	}
	v, err := base64.StdEncoding.DecodeString(*req.ValueB64)
	if err != nil {
		return nil, `"value_b64" is not standard base64 (RFC 4648 §4, with padding): ` + err.Error()
	}
	return v, ""
}

// hasLoneSurrogate reports whether JSON text has a \u escape of a surrogate
// that is not the high half of a pair followed by the low half, which
// encoding/json would decode as U+FFFD. In valid JSON a backslash occurs
// only in a string, starting an escape, so a scan from the start sees
// every escape as one.
func hasLoneSurrogate(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] != 'u' {
			i++ // a two-byte escape, such as \\
			continue
		}
		r, ok := hex4(b[i+2:])
		if !ok {
			return false // not JSON: Unmarshal refuses it
		}
		i += 5 // the escape's last byte
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if len(b) < i+7 || b[i+1] != '\\' || b[i+2] != 'u' {
				return true
			}
			if lo, ok := hex4(b[i+3:]); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// ErrorResponse is every error's body.
type ErrorResponse struct {
	Error string `json:"error"`
	// Outcome: failed (definitely not applied) or unknown (may be applied).
	// The state machine's answers (stale_request, request_mismatch,
	// session_expired) are of the request (client id and seq), not only of
	// this attempt: a session_expired answer, for one, applied nothing for
	// this attempt but is unknown since an earlier attempt may have been
	// applied. no_leader's failed is of this attempt (not proposed); see
	// the package doc.
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
		case !s.n.stats.member.Load():
			// Removed, retired, or not added yet: it serves no client (a
			// forwarded write would never be applied here), and a
			// Kubernetes Service or PDB must not count it.
			http.Error(w, "not ready: not a member of the configuration (removed, or not added yet)", http.StatusServiceUnavailable)
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
		value, refusal := decodeValue(body)
		if refusal != "" {
			s.fail(w, http.StatusBadRequest, OutcomeFailed, "bad_body", refusal)
			return "rejected"
		}
		if len(value) > s.cfg.MaxValueBytes {
			s.fail(w, http.StatusRequestEntityTooLarge, OutcomeFailed, "value_too_large",
				fmt.Sprintf("value is %d bytes; the limit is %d (--max-value-bytes)", len(value), s.cfg.MaxValueBytes))
			return "rejected"
		}
		cmd.Op, cmd.Value = sm.OpPut, value
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
	case res.res.TableFull:
		s.fail(w, http.StatusServiceUnavailable, res.outcome, "sessions_full", res.err.Error())
	case res.res.Mismatch:
		s.fail(w, http.StatusConflict, res.outcome, "request_mismatch", res.err.Error())
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
	p := newProposal(waitKey{cmd.ClientID, cmd.Seq}, cmd.Encode(), time.Now().Add(s.cfg.RequestTimeout))
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
	rr := newReadReq(key, time.Now().Add(s.cfg.RequestTimeout))
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
	out := ReadResponse{Key: key, Index: res.index}
	if utf8.Valid(res.value) {
		v := string(res.value)
		out.Value = &v
	} else {
		v := base64.StdEncoding.EncodeToString(res.value)
		out.ValueB64 = &v
	}
	writeJSON(w, http.StatusOK, out)
	return OutcomeOK
}
