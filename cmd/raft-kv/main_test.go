package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/clitest"
	"github.com/raftlab/raftlab/kvserver"
)

func TestMain(m *testing.M) { clitest.Main(m, main) }

func TestHelpExitsZeroAndListsFlags(t *testing.T) {
	var want strings.Builder
	kvserver.Usage(&want)
	for _, arg := range []string{"--help", "-h", "-help"} {
		stdout, stderr, code := clitest.Run(t, arg)
		if code != 0 {
			t.Errorf("raft-kv %s: exit %d, want 0; stderr %q", arg, code, stderr)
		}
		if stderr != "" {
			t.Errorf("raft-kv %s: stderr %q, want none", arg, stderr)
		}
		if stdout != want.String() {
			t.Errorf("raft-kv %s printed\n%s\nwant kvserver.Usage:\n%s", arg, stdout, want.String())
		}
		for _, s := range []string{"raft-kv is raftlab's replicated key-value server", "client plane", "admin plane",
			"peer plane", "Usage:", "--peer-addr address", "env: RAFT_KV_PEER_ADDR", "env: RAFT_KV_ID, then POD_NAME",
			"default: 127.0.0.1:8080; env: RAFT_KV_CLIENT_ADDR", "default: 300; env: RAFT_KV_ELECTION_TIMEOUT_MS"} {
			if !strings.Contains(stdout, s) {
				t.Errorf("raft-kv %s: output lacks %q", arg, s)
			}
		}
	}
	// Every flag of the flag set, with its default and environment variable.
	stdout, _, _ := clitest.Run(t, "--help")
	_, list, _ := strings.Cut(stdout, "\nFlags:\n")
	for _, name := range flagNames(t) {
		if !strings.Contains(list, "  --"+name+" ") && !strings.Contains(list, "  --"+name+"\n") {
			t.Errorf("--help lacks --%s", name)
		}
		if !strings.Contains(list, "env: "+envOf(name)) {
			t.Errorf("--help lacks the environment variable of --%s", name)
		}
	}
}

// flagNames are raft-kv's flags, as ParseFlags names them in its errors.
func flagNames(t *testing.T) []string {
	t.Helper()
	var b strings.Builder
	kvserver.Usage(&b)
	var names []string
	for _, line := range strings.Split(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ := strings.Cut(rest, " ")
			names = append(names, name)
		}
	}
	if len(names) < 20 {
		t.Fatalf("only %d flags in Usage", len(names))
	}
	return names
}

func envOf(name string) string {
	return "RAFT_KV_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func TestBadFlagExitsTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"--heartbeat-ms", "x"}, {"stray"}} {
		stdout, stderr, code := clitest.Run(t, args...)
		if code != 2 {
			t.Errorf("raft-kv %v: exit %d, want 2", args, code)
		}
		if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "raft-kv: ") ||
			!strings.Contains(stderr, "(see raft-kv -h)") {
			t.Errorf("raft-kv %v: stdout %q stderr %q, want one line on stderr", args, stdout, stderr)
		}
	}
}

func TestConfigureHelpInProcess(t *testing.T) {
	var o, e bytes.Buffer
	_, code, done := configure([]string{"-h"}, func(string) string { return "" }, &o, &e)
	if !done || code != 0 || e.Len() != 0 || !strings.Contains(o.String(), kvserver.Description) {
		t.Errorf("configure(-h) = code %d done %v, stdout %q, stderr %q", code, done, o.String(), e.String())
	}
}

// raft-kv hand-off calls POST /admin/hand-off on the admin address of the
// environment, with the token, on loopback when the node listens on every
// address; a refusal exits 1 with the server's answer.
func TestHandOff(t *testing.T) {
	var gotAuth, gotPath string
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.Method+" "+r.URL.Path
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"to":"kv-1"}`))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	env := map[string]string{"RAFT_KV_ADMIN_ADDR": ":" + port, "RAFT_KV_ADMIN_TOKEN": "s3cret", "RAFT_KV_ELECTION_TIMEOUT_MS": "300"}
	var out, errb bytes.Buffer
	if code := handOff(func(k string) string { return env[k] }, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if gotAuth != "Bearer s3cret" || gotPath != "POST /admin/hand-off" || !strings.Contains(out.String(), `"to":"kv-1"`) {
		t.Fatalf("auth %q path %q out %q", gotAuth, gotPath, out.String())
	}
	status = 409
	out.Reset()
	if code := handOff(func(k string) string { return env[k] }, &out, &errb); code != 1 || !strings.Contains(errb.String(), "HTTP 409") {
		t.Fatalf("refused hand-off: exit %d, stderr %q", code, errb.String())
	}
}
