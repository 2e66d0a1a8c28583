package kvserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/client"
	"github.com/raftlab/raftlab/kvserver/sm"
)

// In process, through HTTP: a client whose session expired is answered 409
// session_expired (outcome unknown) and nothing is applied; the Go client
// goes on under a new session by itself.
func TestServerSessionExpiry(t *testing.T) {
	s := kvserver.StartOneNodeWithSessionLimits(t, sm.Limits{MaxIdle: 3})
	url := "http://" + s.ClientAddr()
	put := func(id string, seq int, key, value string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, url+"/kv/"+key, strings.NewReader(`{"value":"`+value+`"}`))
		req.Header.Set(kvserver.HeaderClientID, id)
		req.Header.Set(kvserver.HeaderSeq, fmt.Sprint(seq))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = decodeJSON(resp, &out)
		return resp.StatusCode, out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New([]string{url}, client.Options{ClientID: "go", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, "g", []byte("1")); err != nil { // session go-1, seq 1
		t.Fatal(err)
	}
	if code, out := put("a", 1, "k", "1"); code != 200 {
		t.Fatalf("a/1: %d %v", code, out)
	}
	for i := 0; i < 5; i++ {
		if code, out := put(fmt.Sprint("other-", i), 1, "o", "v"); code != 200 {
			t.Fatalf("other: %d %v", code, out)
		}
	}
	// a and go-1 have been idle for more than 3 entries.
	code, out := put("a", 2, "k", "2")
	if code != http.StatusConflict || out["code"] != "session_expired" || out["outcome"] != "unknown" {
		t.Fatalf("a/2 after expiry: %d %v", code, out)
	}
	// Seq 1 always opens a session (the documented gap: an id must not be
	// reused after its session expired).
	if code, out := put("a", 1, "k", "again"); code != 200 {
		t.Fatalf("a/1 under the expired id (opens a new session): %d %v", code, out)
	}
	res, err := c.Put(ctx, "g", []byte("2")) // go-1 seq 2: expired, then go-2 seq 1
	if err != nil || !res.Existed || res.Duplicate {
		t.Fatalf("the Go client after its session expired: %+v %v", res, err)
	}
	if v, found, err := c.Get(ctx, "g"); err != nil || !found || string(v) != "2" {
		t.Fatalf("g = %q %v %v", v, found, err)
	}
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
