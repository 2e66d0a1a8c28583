// Package client is the Go client of raft-kv's HTTP API.
//
// A Client is given the client URLs of some or all nodes. It sends to the
// leader it last heard of (every response names it), follows the leader as
// it changes, and retries a write on another node with the same session id
// and sequence number, so that the write is applied at most once however
// many times it is sent (Raft thesis §6.3).
//
// Every call ends in one of three outcomes, which OutcomeOf tells apart:
//   - OK: done (a Get that finds nothing is OK with found == false);
//   - Failed: definitely not applied (refused, invalid, or no node could
//     take it);
//   - Unknown: may or may not have been applied (a timeout or a lost
//     connection after the request was sent, and no later attempt settled
//     it). A linearizability checker must treat it as possibly applied at
//     any time after the call.
//
// A Client is safe for concurrent use. Each call in flight uses its own
// session (a session never has two requests outstanding, which the server's
// session table needs), so N concurrent callers use N sessions. Sessions
// are reused by later calls; one the server expired (idle for long, or
// evicted from a full table) is answered session_expired, and the call goes
// on under a new session starting at sequence number 1, unless an earlier
// attempt of the call may have been applied (then the call is Unknown). The
// same holds for request_mismatch, which only a session id used by someone
// else can cause.
//
// Session ids are Options.ClientID, a random nonce drawn by New, and a
// counter: two Clients, in one process or in two, or one process before
// and after a restart, never share a session, whatever their ClientID.
//
// Values are bytes: Put sends a value that is UTF-8 text as "value" and any
// other as "value_b64" (base64), and Get decodes whichever the server
// sends, so every value round-trips exactly.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Outcome is how a call ended.
type Outcome int

const (
	OK Outcome = iota
	Failed
	Unknown
)

func (o Outcome) String() string {
	return [...]string{"ok", "failed", "unknown"}[o]
}

// Error is a call that did not end OK.
type Error struct {
	Op      string
	Key     string
	Outcome Outcome
	// Code is the server's error code (value_too_large, no_leader, ...) or
	// "transport" / "timeout" for errors on the client side.
	Code string
	// Msg is the last attempt's message.
	Msg      string
	Attempts int
}

func (e *Error) Error() string {
	return fmt.Sprintf("raft-kv %s %q: %s (%s after %d attempt(s)): %s", e.Op, e.Key, e.Outcome, e.Code, e.Attempts, e.Msg)
}

// OutcomeOf classifies a call's error: nil is OK, an *Error says, anything
// else (a context error before any attempt) is Failed.
func OutcomeOf(err error) Outcome {
	var e *Error
	switch {
	case err == nil:
		return OK
	case errors.As(err, &e):
		return e.Outcome
	}
	return Failed
}

// Options tunes a Client.
type Options struct {
	// AttemptTimeout bounds one HTTP attempt (default 6 s: a little more
	// than the server's default request timeout, so that the server answers
	// "unknown" itself).
	AttemptTimeout time.Duration
	// MaxAttempts bounds the attempts of one call (default 8); the call's
	// context bounds it too.
	MaxAttempts int
	// Backoff is the pause before a retry, doubled each time up to 1 s
	// (default 20 ms).
	Backoff time.Duration
	// HTTP is the HTTP client (default: one with enough idle connections
	// per node for many concurrent callers).
	HTTP *http.Client
	// ClientID is a readable prefix of the session ids, which are
	// ClientID-NONCE-N: NONCE is random for each Client (New draws it), so
	// that two processes, or one before and after a restart, never share a
	// session even with the same ClientID. At most MaxClientIDBytes bytes,
	// not starting with '~'. Default: none (NONCE-N).
	ClientID string
}

// MaxClientIDBytes bounds Options.ClientID, so that session ids stay within
// the server's limit of 128 bytes.
const MaxClientIDBytes = 96

// Client talks to a raft-kv cluster.
type Client struct {
	endpoints []string
	opts      Options
	http      *http.Client

	// prefix of every session id: ClientID-NONCE- (or NONCE-).
	prefix string

	mu      sync.Mutex
	leader  string // preferred base URL
	next    int    // round robin when no leader is known
	free    []*session
	created int
}

type session struct {
	id  string
	seq uint64
}

// New returns a client for the given node URLs (http://host:port).
func New(endpoints []string, opts Options) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("client: no endpoints")
	}
	var eps []string
	for _, e := range endpoints {
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		u, err := url.Parse(e)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("client: endpoint %q is not a URL like http://127.0.0.1:8080", e)
		}
		eps = append(eps, strings.TrimRight(e, "/"))
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 6 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 20 * time.Millisecond
	}
	if len(opts.ClientID) > MaxClientIDBytes || strings.HasPrefix(opts.ClientID, "~") {
		return nil, fmt.Errorf("client: ClientID %q: at most %d bytes, not starting with '~'", opts.ClientID, MaxClientIDBytes)
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	prefix := hex.EncodeToString(nonce[:]) + "-"
	if opts.ClientID != "" {
		prefix = opts.ClientID + "-" + prefix
	}
	hc := opts.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 1024
		tr.MaxIdleConnsPerHost = 512
		hc = &http.Client{Transport: tr}
	}
	return &Client{endpoints: eps, opts: opts, http: hc, prefix: prefix}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) takeSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		return s
	}
	return c.newSessionLocked()
}

// newSession is a session never used, its first request numbered 1.
func (c *Client) newSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newSessionLocked()
}

func (c *Client) newSessionLocked() *session {
	c.created++
	return &session{id: c.prefix + strconv.Itoa(c.created)}
}

func (c *Client) putSession(s *session) {
	c.mu.Lock()
	c.free = append(c.free, s)
	c.mu.Unlock()
}

// target is the URL to try next: the known leader, else the next endpoint.
func (c *Client) target() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != "" {
		return c.leader
	}
	t := c.endpoints[c.next%len(c.endpoints)]
	c.next++
	return t
}

func (c *Client) noteLeader(tried string, h http.Header, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch u := h.Get("X-Raft-Leader-Url"); {
	case u != "" && u != tried:
		c.leader = u
	case u != "" && !failed:
		c.leader = u
	case failed && c.leader == tried:
		c.leader = "" // the leader we knew could not serve: look around
	}
}

// PutResult is what a successful write reports.
type PutResult struct {
	// Index is the log index the write was applied at.
	Index uint64 `json:"index"`
	// Existed: the key had a value before.
	Existed bool `json:"existed"`
	// Duplicate: a retry found the write already applied.
	Duplicate bool `json:"duplicate"`
}

// Put writes key = value, any bytes: UTF-8 text goes as "value", anything
// else as "value_b64".
func (c *Client) Put(ctx context.Context, key string, value []byte) (PutResult, error) {
	var body []byte
	if utf8.Valid(value) {
		body, _ = json.Marshal(map[string]string{"value": string(value)})
	} else {
		body, _ = json.Marshal(map[string]string{"value_b64": base64.StdEncoding.EncodeToString(value)})
	}
	return c.write(ctx, http.MethodPut, key, body)
}

// Delete removes key; Existed in the result says whether it was there.
func (c *Client) Delete(ctx context.Context, key string) (PutResult, error) {
	return c.write(ctx, http.MethodDelete, key, nil)
}

func (c *Client) write(ctx context.Context, method, key string, body []byte) (PutResult, error) {
	s := c.takeSession()
	defer func() { c.putSession(s) }() // s may be replaced below
	s.seq++
	var res PutResult
	e := &Error{Op: strings.ToLower(method), Key: key, Outcome: Failed}
	err := c.retry(ctx, e, true, func() (Outcome, string, string, bool) {
		out, code, msg, again := c.do(ctx, method, key, body, func(h http.Header) {
			h.Set("X-Client-Id", s.id)
			h.Set("X-Request-Seq", strconv.FormatUint(s.seq, 10))
		}, &res)
		if code == "session_expired" || code == "request_mismatch" {
			// The server has no session for s.id any more, or its session
			// applied s.seq for another command (someone else used s.id):
			// this attempt was not applied, and s is of no more use, so it
			// is dropped for a new session. If every earlier attempt of
			// this call was definitely not applied, the call was not: it
			// starts over as the new session's first request. Otherwise
			// an earlier attempt may have been applied (before the session
			// expired), and the call is unknown.
			s = c.newSession()
			if e.Outcome == Unknown {
				return Unknown, code, msg, false
			}
			s.seq = 1
			return Failed, code, msg, ctx.Err() == nil
		}
		return out, code, msg, again
	})
	if err != nil {
		return PutResult{}, err
	}
	return res, nil
}

// Get reads key through the cluster's ReadIndex (linearizable). found is
// false when the key is absent. The value is the bytes Put stored, exactly.
func (c *Client) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	var res struct {
		Value    *string `json:"value"`
		ValueB64 *string `json:"value_b64"`
	}
	// A read changes nothing: whatever happened to an attempt, a call that
	// did not succeed did not take effect.
	e := &Error{Op: "get", Key: key, Outcome: Failed}
	err = c.retry(ctx, e, false, func() (Outcome, string, string, bool) {
		out, code, msg, again := c.do(ctx, http.MethodGet, key, nil, nil, &res)
		found = out == OK && code != "not_found"
		return out, code, msg, again
	})
	if err != nil || !found {
		return nil, false, err
	}
	switch {
	case res.ValueB64 != nil:
		if value, err = base64.StdEncoding.DecodeString(*res.ValueB64); err == nil {
			return value, true, nil
		}
		e.Msg = "value_b64: " + err.Error()
	case res.Value != nil:
		return []byte(*res.Value), true, nil
	default:
		e.Msg = `the response has neither "value" nor "value_b64"`
	}
	e.Code = "bad_response"
	return nil, false, e
}

// retry runs attempt until it succeeds, cannot usefully be retried, or the
// attempts or ctx run out, backing off between attempts. e keeps the last
// failure; with mayApply (a write), one unknown attempt makes the whole
// call unknown, since that attempt may still be applied.
func (c *Client) retry(ctx context.Context, e *Error, mayApply bool, attempt func() (out Outcome, code, msg string, again bool)) error {
	backoff := c.opts.Backoff
	for e.Attempts < c.opts.MaxAttempts {
		if e.Attempts > 0 {
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, time.Second)
		}
		e.Attempts++
		out, code, msg, again := attempt()
		if out == OK {
			return nil
		}
		if out == Unknown && mayApply {
			e.Outcome = Unknown
		}
		e.Code, e.Msg = code, msg
		if !again {
			break
		}
	}
	if ctx.Err() != nil && e.Code == "" {
		e.Code, e.Msg = "timeout", ctx.Err().Error()
	}
	return e
}

// do runs one attempt. It returns the attempt's outcome, the error code and
// message, and whether a retry may help.
func (c *Client) do(ctx context.Context, method, key string, body []byte, hdr func(http.Header), into any) (out Outcome, code, msg string, retry bool) {
	base := c.target()
	actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, base+"/kv/"+url.PathEscape(key), rd)
	if err != nil {
		return Failed, "bad_request", err.Error(), false
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if hdr != nil {
		hdr(req.Header)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.noteLeader(base, http.Header{}, true)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// Nothing listens there: the request was never sent.
			return Failed, "transport", err.Error(), ctx.Err() == nil
		}
		return Unknown, "transport", err.Error(), ctx.Err() == nil
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		c.noteLeader(base, resp.Header, true)
		return Unknown, "transport", err.Error(), ctx.Err() == nil
	}
	if resp.StatusCode == http.StatusOK {
		c.noteLeader(base, resp.Header, false)
		if err := json.Unmarshal(data, into); err != nil {
			return Unknown, "bad_response", err.Error(), false
		}
		return OK, "", "", false
	}
	var er struct {
		Error   string `json:"error"`
		Outcome string `json:"outcome"`
		Code    string `json:"code"`
	}
	if err := json.Unmarshal(data, &er); err != nil {
		c.noteLeader(base, resp.Header, true)
		return Unknown, "bad_response", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data)), ctx.Err() == nil
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && er.Code == "not_found":
		c.noteLeader(base, resp.Header, false)
		return OK, er.Code, er.Error, false
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && er.Outcome == "unknown":
		// Refused, but an earlier copy may have been applied (a stale
		// request the server no longer remembers, an expired session).
		return Unknown, er.Code, er.Error, false
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		// Invalid or refused for good: retrying cannot help.
		return Failed, er.Code, er.Error, false
	case er.Outcome == "failed":
		c.noteLeader(base, resp.Header, true)
		return Failed, er.Code, er.Error, ctx.Err() == nil
	default:
		c.noteLeader(base, resp.Header, true)
		return Unknown, er.Code, er.Error, ctx.Err() == nil
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
