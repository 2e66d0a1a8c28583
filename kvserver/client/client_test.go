package client

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver"
)

// fakeNode answers with scripted responses and records what it was sent.
type fakeNode struct {
	mu      sync.Mutex
	srv     *httptest.Server
	answers []func(w http.ResponseWriter) // one per request, the last repeats
	seen    []string                      // "METHOD client/seq"
	bodies  []string
}

func newFake(t *testing.T, answers ...func(w http.ResponseWriter)) *fakeNode {
	f := &fakeNode{answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.Header.Get("X-Client-Id")+"/"+r.Header.Get("X-Request-Seq"))
		body, _ := io.ReadAll(r.Body)
		f.bodies = append(f.bodies, string(body))
		a := f.answers[min(len(f.seen)-1, len(f.answers)-1)]
		f.mu.Unlock()
		a(w)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func reply(code int, body string, hdr ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func fast(eps ...string) *Client {
	c, _ := New(eps, Options{Backoff: time.Millisecond, MaxAttempts: 4, AttemptTimeout: time.Second, ClientID: "t"})
	return c
}

// plain is what a fake saw, with c's session nonce taken out: "PUT t-1/1"
// for the session t-NONCE-1.
func plain(c *Client, seen []string) string {
	return strings.ReplaceAll(strings.Join(seen, " "), c.prefix, "t-")
}

func TestOutcomes(t *testing.T) {
	ctx := context.Background()
	ok := newFake(t, reply(200, `{"outcome":"ok","index":7,"existed":true}`))
	res, err := fast(ok.srv.URL).Put(ctx, "k", []byte("v"))
	if err != nil || res.Index != 7 || !res.Existed || OutcomeOf(err) != OK {
		t.Fatalf("ok: %+v %v", res, err)
	}
	// A refusal (4xx) is failed at once, without retries.
	bad := newFake(t, reply(413, `{"error":"value is 9 bytes; the limit is 8","outcome":"failed","code":"value_too_large"}`))
	_, err = fast(bad.srv.URL).Put(ctx, "k", []byte("123456789"))
	if OutcomeOf(err) != Failed || !strings.Contains(err.Error(), "value_too_large") || len(bad.seen) != 1 {
		t.Fatalf("413: %v after %d requests", err, len(bad.seen))
	}
	// Timeouts on every attempt: unknown, and every retry carried the same
	// session and sequence number.
	unk := newFake(t, reply(504, `{"error":"timed out","outcome":"unknown","code":"unknown_outcome"}`))
	_, err = fast(unk.srv.URL).Put(ctx, "k", []byte("v"))
	if OutcomeOf(err) != Unknown || len(unk.seen) != 4 {
		t.Fatalf("504: %v after %d requests", err, len(unk.seen))
	}
	for _, s := range unk.seen {
		if s != unk.seen[0] || !strings.HasSuffix(s, "/1") {
			t.Fatalf("retries differ or seq is not 1: %v", unk.seen)
		}
	}
	// Unknown, then definitely failed: still unknown (the first may apply).
	mixed := newFake(t, reply(504, `{"outcome":"unknown","code":"unknown_outcome"}`), reply(503, `{"outcome":"failed","code":"no_leader"}`))
	if _, err = fast(mixed.srv.URL).Put(ctx, "k", []byte("v")); OutcomeOf(err) != Unknown {
		t.Fatalf("unknown then failed: %v", err)
	}
	// Only "no leader" answers: failed.
	none := newFake(t, reply(503, `{"outcome":"failed","code":"no_leader"}`))
	if _, err = fast(none.srv.URL).Delete(ctx, "k"); OutcomeOf(err) != Failed {
		t.Fatalf("no leader: %v", err)
	}
	// Nothing listening: failed (never sent).
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	if _, err = fast(url).Put(ctx, "k", []byte("v")); OutcomeOf(err) != Failed {
		t.Fatalf("connection refused: %v", err)
	}
	// Get: found, not found.
	g := newFake(t, reply(200, `{"key":"k","value":"v","index":3}`), reply(404, `{"outcome":"ok","code":"not_found"}`))
	c := fast(g.srv.URL)
	if v, found, err := c.Get(ctx, "k"); err != nil || !found || string(v) != "v" {
		t.Fatalf("get: %q %v %v", v, found, err)
	}
	if _, found, err := c.Get(ctx, "k"); err != nil || found {
		t.Fatalf("get absent: %v %v", found, err)
	}
}

func TestFollowsTheLeaderAndNumbersRequests(t *testing.T) {
	leader := newFake(t, reply(200, `{"outcome":"ok","index":1}`))
	follower := newFake(t, reply(200, `{"outcome":"ok","index":1}`, "X-Raft-Leader-Url", leader.srv.URL))
	c := fast(follower.srv.URL, leader.srv.URL)
	for i := 0; i < 3; i++ {
		if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// The first went to the follower, which named the leader; the rest
	// went to the leader, each with the next sequence number of the one
	// session (calls were sequential).
	if len(follower.seen) != 1 || len(leader.seen) != 2 {
		t.Fatalf("follower saw %v, leader %v", follower.seen, leader.seen)
	}
	if plain(c, follower.seen) != "PUT t-1/1" || plain(c, leader.seen) != "PUT t-1/2 PUT t-1/3" {
		t.Fatalf("sessions: %v %v", follower.seen, leader.seen)
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("no endpoints accepted")
	}
	if _, err := New([]string{"http://"}, Options{}); err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:8080") {
		t.Fatalf("bad endpoint: %v", err)
	}
}

// A reused session that the server expired: the call goes on under a new
// session at seq 1 (nothing of the first attempt was applied), and later
// calls use the new session. But after an attempt that may have been
// applied, it is unknown, not retried under a new id (that could apply it
// twice).
func TestSessionExpired(t *testing.T) {
	ctx := context.Background()
	expired := reply(409, `{"error":"session expired","outcome":"unknown","code":"session_expired"}`)
	ok := reply(200, `{"outcome":"ok","index":9}`)
	f := newFake(t, ok, expired, ok)
	c := fast(f.srv.URL)
	for i := 0; i < 3; i++ {
		if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if want := "PUT t-1/1 PUT t-1/2 PUT t-2/1 PUT t-2/2"; plain(c, f.seen) != want {
		t.Fatalf("requests %v, want %v", f.seen, want)
	}

	timeout := reply(504, `{"outcome":"unknown","code":"unknown_outcome"}`)
	g := newFake(t, timeout, expired, ok)
	c = fast(g.srv.URL)
	if _, err := c.Put(ctx, "k", []byte("v")); OutcomeOf(err) != Unknown || !strings.Contains(err.Error(), "session_expired") {
		t.Fatalf("timeout then session expired: %v, want unknown", err)
	}
	if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if want := "PUT t-1/1 PUT t-1/1 PUT t-2/1"; plain(c, g.seen) != want {
		t.Fatalf("requests %v, want %v", g.seen, want)
	}

	// A refusal whose outcome is unknown (a stale request the server no
	// longer remembers) is unknown, not failed.
	h := newFake(t, reply(409, `{"outcome":"unknown","code":"stale_request"}`))
	if _, err := fast(h.srv.URL).Put(ctx, "k", []byte("v")); OutcomeOf(err) != Unknown || len(h.seen) != 1 {
		t.Fatalf("unknown stale: %v after %d requests", err, len(h.seen))
	}
}

// Issue 14, defect 2: two Clients with one ClientID (two processes, or a
// process and its restart) never send under the same session id, and the
// ClientID stays a readable prefix of it.
func TestSessionIDsDifferAcrossClientsWithOneClientID(t *testing.T) {
	f := newFake(t, reply(200, `{"outcome":"ok","index":1}`))
	for i := 0; i < 2; i++ {
		c := fast(f.srv.URL)
		if _, err := c.Put(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	a, b := f.seen[0], f.seen[1]
	if a == b {
		t.Fatalf("two Clients with ClientID t sent under one session: %s and %s", a, b)
	}
	for _, s := range []string{a, b} {
		if !strings.HasPrefix(s, "PUT t-") || !strings.HasSuffix(s, "/1") {
			t.Fatalf("session %q: want the prefix t- and seq 1", s)
		}
	}
}

// request_mismatch (the session's seq was applied for another command)
// is handled like session_expired: the session is dropped, and the call
// goes on under a new one unless an earlier attempt may have applied.
func TestRequestMismatch(t *testing.T) {
	ctx := context.Background()
	mismatch := reply(409, `{"error":"request mismatch","outcome":"failed","code":"request_mismatch"}`)
	ok := reply(200, `{"outcome":"ok","index":9}`)
	f := newFake(t, ok, mismatch, ok)
	c := fast(f.srv.URL)
	for i := 0; i < 3; i++ {
		if _, err := c.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if want := "PUT t-1/1 PUT t-1/2 PUT t-2/1 PUT t-2/2"; plain(c, f.seen) != want {
		t.Fatalf("requests %v, want %v", f.seen, want)
	}
	g := newFake(t, reply(504, `{"outcome":"unknown","code":"unknown_outcome"}`), mismatch, ok)
	c = fast(g.srv.URL)
	if _, err := c.Put(ctx, "k", []byte("v")); OutcomeOf(err) != Unknown || !strings.Contains(err.Error(), "request_mismatch") {
		t.Fatalf("timeout then mismatch: %v, want unknown", err)
	}
}

func TestClientIDChecked(t *testing.T) {
	for _, id := range []string{"~x", strings.Repeat("x", MaxClientIDBytes+1)} {
		if _, err := New([]string{"http://127.0.0.1:1"}, Options{ClientID: id}); err == nil {
			t.Errorf("ClientID %q accepted", id)
		}
	}
	c, err := New([]string{"http://127.0.0.1:1"}, Options{ClientID: strings.Repeat("x", MaxClientIDBytes)})
	if err != nil {
		t.Fatal(err)
	}
	if id := c.newSession().id; len(id) > 128 {
		t.Fatalf("session id of %d bytes", len(id))
	}
	d, _ := New([]string{"http://127.0.0.1:1"}, Options{})
	if id := d.newSession().id; len(id) != 16+2 || !strings.HasSuffix(id, "-1") {
		t.Fatalf("default session id %q, want NONCE-1", id)
	}
}

// Put sends UTF-8 text as "value" and other bytes as "value_b64"; Get
// takes either.
func TestValueEncoding(t *testing.T) {
	ctx := context.Background()
	f := newFake(t, reply(200, `{"outcome":"ok","index":1}`))
	c := fast(f.srv.URL)
	for _, v := range [][]byte{[]byte("h\u00e9"), {0xff, 0}, {}} {
		if _, err := c.Put(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
	}
	if want := `{"value":"hé"} {"value_b64":"/wA="} {"value":""}`; strings.Join(f.bodies, " ") != want {
		t.Fatalf("bodies %s, want %s", strings.Join(f.bodies, " "), want)
	}
	g := newFake(t,
		reply(200, `{"key":"k","value_b64":"/wA=","index":3}`),
		reply(200, `{"key":"k","value":"text","index":3}`),
		reply(200, `{"key":"k","value_b64":"!","index":3}`),
		reply(200, `{"key":"k","index":3}`))
	c = fast(g.srv.URL)
	for _, want := range [][]byte{{0xff, 0}, []byte("text")} {
		if v, found, err := c.Get(ctx, "k"); err != nil || !found || !bytes.Equal(v, want) {
			t.Fatalf("get: %q %v %v, want %q", v, found, err, want)
		}
	}
	for i := 0; i < 2; i++ {
		if _, found, err := c.Get(ctx, "k"); found || OutcomeOf(err) != Failed || !strings.Contains(err.Error(), "bad_response") {
			t.Fatalf("a malformed read response: %v %v, want bad_response", found, err)
		}
	}
}

// The members' leader histories merge into one change per term, at the
// earliest time any member saw it; the lowest term is the baseline leader,
// not a change, and a member that restarted (its record starts late) loses
// nothing the others remember.
func TestLeaderChangesMergesTheMembersRecords(t *testing.T) {
	at := func(ms int) time.Time {
		return time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	got := LeaderChanges([][]kvserver.LeaderChangeJSON{
		{{Term: 2, Leader: "kv-0", At: at(0)}, {Term: 3, Leader: "kv-1", At: at(310)}, {Term: 5, Leader: "kv-2", At: at(900)}},
		{{Term: 3, Leader: "kv-1", At: at(300)}, {Term: 4, Leader: "kv-0", At: at(600)}},
		{{Term: 5, Leader: "kv-2", At: at(905)}}, // restarted: knows only the last
		nil,
	})
	want := []time.Time{at(300), at(600), at(900)}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("LeaderChanges = %v, want %v", got, want)
	}
	if got := LeaderChanges(nil); got == nil || len(got) != 0 {
		t.Fatalf("no history: %v, want an empty, non-nil record (raft-kv keeps one)", got)
	}
}

// Observe refuses a leader that a member in a higher term has left behind:
// its answer is stale (a deposed leader that does not know it yet).
func TestObserveIgnoresADeposedLeader(t *testing.T) {
	serve := func(st kvserver.StatusJSON) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(st)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	old := serve(kvserver.StatusJSON{ID: "kv-0", State: "leader", Term: 3, Leader: "kv-0"})
	cand := serve(kvserver.StatusJSON{ID: "kv-1", State: "candidate", Term: 4})
	a := &Admin{Nodes: map[string]string{"kv-0": old.URL, "kv-1": cand.URL}}
	obs, err := a.Observe(context.Background())
	if err != nil || obs.Leader != "" {
		t.Fatalf("Observe = leader %q, %v; want no leader (kv-1 is in term 4)", obs.Leader, err)
	}
	a.Nodes = map[string]string{"kv-0": old.URL}
	if obs, err := a.Observe(context.Background()); err != nil || obs.Leader != "kv-0" {
		t.Fatalf("alone: leader %q, %v", obs.Leader, err)
	}
}
