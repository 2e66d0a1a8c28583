package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/kvserver/localcluster"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func schema(t *testing.T, def string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	s, err := c.Compile("../../results/schema.json#/$defs/" + def)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateJSON(t *testing.T, s *jsonschema.Schema, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(doc); err != nil {
		t.Fatalf("%s does not match results/schema.json: %v", path, err)
	}
}

func TestApplySimExitCodesAndSchema(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "apply", "../../experiments/bug2.yaml", "--backend", "sim", "-q", "--out", filepath.Join(dir, "unsafe"))
	if code != ExitMet {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errs)
	}
	for _, w := range []string{"expected     linearizable: false", "NOT linearizable", "PASS", "evidence", "linearizability.html", "replay       go run ./cmd/runner apply ../../experiments/bug2.yaml --backend sim --seed 1"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
	validateJSON(t, schema(t, "result"), filepath.Join(dir, "unsafe", "result.json"))
	var res struct {
		Linearizability struct{ Verdict string }
		Files           map[string]string
	}
	b, _ := os.ReadFile(filepath.Join(dir, "unsafe", "result.json"))
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Linearizability.Verdict != "illegal" {
		t.Fatalf("verdict %q", res.Linearizability.Verdict)
	}
	for _, f := range []string{"history.jsonl", "latency-put.hgrm", "latency-get.hgrm", "linearizability.html"} {
		if _, err := os.Stat(filepath.Join(dir, "unsafe", f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}

	// An expectation that does not hold: exit 1, and the summary says which.
	code, out, _ = runCLI(t, "apply", "../../experiments/bug2.yaml", "--backend", "sim", "-q", "--out", filepath.Join(dir, "notmet"), "--set", "expect.linearizable=true")
	if code != ExitNotMet || !strings.Contains(out, "FAIL: linearizable expected true, observed illegal") {
		t.Fatalf("exit %d, want 1 with the reason:\n%s", code, out)
	}
	// Safe mode from the same file.
	code, out, _ = runCLI(t, "apply", "../../experiments/bug2.yaml", "--backend", "sim", "-q", "--out", filepath.Join(dir, "safe"), "--set", "cluster.safetyMode=safe")
	if code != ExitMet || !strings.Contains(out, "seen         linearizable") {
		t.Fatalf("safe: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "safe", "linearizability.html")); err == nil {
		t.Error("a visualization was written for an ok verdict")
	}
}

func TestInvalidInputExits2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: raftlab/v1\nkind: Experiment\nmetadata: {name: x}\ncluster: {replicas: three}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"validate", bad},
		{"apply", bad, "--backend", "sim"},
		{"apply", "../../experiments/bug2.yaml", "--backend", "nope"},
		{"apply", "../../experiments/bug2.yaml", "--backend", "kind"},
		{"apply", "../../experiments/bug2.yaml", "--set", "cluster.nope=1"},
		{"apply", "../../experiments/bug2.yaml", "--no-such-flag"},
		{"apply"},
		{"sweep", "../../experiments/bug2.yaml", "--matrix", "cluster.safetyMode"},
	} {
		code, out, errs := runCLI(t, args...)
		if code != ExitInvalid {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, code, out, errs)
		}
	}
	_, out, _ := runCLI(t, "validate", bad)
	if !strings.Contains(out, "bad.yaml:4:21: replicas: expected an integer") {
		t.Errorf("validate output lacks the position: %s", out)
	}
	code, out, _ := runCLI(t, "validate", "../../experiments/bug1.yaml", "../../experiments/bug2.yaml")
	if code != 0 || strings.Count(out, ": ok") != 2 {
		t.Errorf("validate of good files: exit %d\n%s", code, out)
	}
}

func TestSweepAggregateSchema(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "sweep", "../../experiments/bug2.yaml", "--seeds", "3", "-q", "--matrix", "cluster.safetyMode=safe,unsafe-no-joint", "--out", dir)
	if code != ExitMet {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "cluster.safetyMode=unsafe-no-joint") || !strings.Contains(out, "100.0%") {
		t.Errorf("table:\n%s", out)
	}
	validateJSON(t, schema(t, "aggregate"), filepath.Join(dir, "aggregate.json"))
}

// On real processes: bug1 and bug2 reproduce in their unsafe mode and stay
// linearizable in safe mode; every process started is gone afterwards.
func TestLocalBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes: runs without -short")
	}
	bin := filepath.Join(t.TempDir(), "raft-kv")
	if err := localcluster.BuildRaftKV(context.Background(), bin); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, mode, verdict string
	}{
		{"bug1.yaml", "", "NOT linearizable"},
		{"bug1.yaml", "safe", "seen         linearizable"},
		{"bug2.yaml", "", "NOT linearizable"},
		{"bug2.yaml", "safe", "seen         linearizable"},
	} {
		t.Run(c.file+"/"+c.mode, func(t *testing.T) {
			args := []string{"apply", "../../experiments/" + c.file, "--backend", "local", "--bin", bin, "-q", "--out", t.TempDir(), "--dir", t.TempDir()}
			if c.mode != "" {
				args = append(args, "--set", "cluster.safetyMode="+c.mode)
			}
			code, out, errs := runCLI(t, args...)
			if code != ExitMet || !strings.Contains(out, c.verdict) {
				t.Fatalf("exit %d, want 0 with %q\n%s%s", code, c.verdict, out, errs)
			}
			if procs := processesOf(bin); len(procs) > 0 {
				t.Fatalf("raft-kv processes left running: %v", procs)
			}
		})
	}
}

// processesOf lists the pids whose command line starts with bin.
func processesOf(bin string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.HasPrefix(b, []byte(bin+"\x00")) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
