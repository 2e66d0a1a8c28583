package kvserver

import (
	"net/http"
	"testing"
)

// Issue 14, defect 2: a different command under a (client id, sequence
// number) already applied is refused with 409 request_mismatch (failed),
// never answered "ok, duplicate" without being applied. A true retry is
// still a duplicate.
func TestServerRequestMismatch(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	tc.leader()
	u := "http://" + tc.servers["kv-0"].ClientAddr()
	hdr := func(seq string) map[string]string { return map[string]string{HeaderClientID: "c", HeaderSeq: seq} }
	if code, out, _ := do(t, http.MethodPut, u+"/kv/k", `{"value":"a"}`, hdr("1")); code != 200 || out["duplicate"] == true {
		t.Fatalf("c/1 k=a: %d %v", code, out)
	}
	if code, out, _ := do(t, http.MethodPut, u+"/kv/k", `{"value":"a"}`, hdr("1")); code != 200 || out["duplicate"] != true {
		t.Fatalf("retry of c/1 k=a: %d %v, want a duplicate", code, out)
	}
	for _, tt := range []struct{ method, path, body string }{
		{http.MethodPut, "/kv/k", `{"value":"b"}`}, // another value
		{http.MethodPut, "/kv/x", `{"value":"a"}`}, // another key
		{http.MethodDelete, "/kv/k", ``},           // another operation
	} {
		code, out, _ := do(t, tt.method, u+tt.path, tt.body, hdr("1"))
		if code != http.StatusConflict || out["code"] != "request_mismatch" || out["outcome"] != "failed" {
			t.Errorf("%s %s %s under c/1 (applied as PUT k=a): %d %v, want 409 request_mismatch, failed", tt.method, tt.path, tt.body, code, out)
		}
	}
	// Also for an older sequence number the session remembers.
	if code, out, _ := do(t, http.MethodPut, u+"/kv/k", `{"value":"c2"}`, hdr("2")); code != 200 {
		t.Fatalf("c/2: %d %v", code, out)
	}
	if code, out, _ := do(t, http.MethodPut, u+"/kv/k", `{"value":"other"}`, hdr("1")); code != http.StatusConflict || out["code"] != "request_mismatch" {
		t.Errorf("another command under c/1 after c/2: %d %v, want 409 request_mismatch", code, out)
	}
	if code, out, _ := do(t, http.MethodGet, u+"/kv/k", "", nil); code != 200 || out["value"] != "c2" {
		t.Fatalf("k = %v (%d), want c2", out, code)
	}
	if code, _, _ := do(t, http.MethodGet, u+"/kv/x", "", nil); code != 404 {
		t.Fatalf("x exists: a mismatched command was applied")
	}
}

// StartOneNode, for the tests of package kvserver_test, starts a one-node
// cluster (tweak, if set, adjusts its configuration) and waits for it to
// lead.
func StartOneNode(t *testing.T, tweak func(*Config)) *Server {
	tc := newTestCluster(t, 1, tweak)
	tc.leader()
	return tc.servers["kv-0"]
}
