package experiment

import (
	"path/filepath"
	"strings"
	"testing"
)

const good = `apiVersion: raftlab/v1
kind: Experiment
metadata:
  name: t
cluster:
  replicas: 3
  safetyMode: unsafe-no-joint
workload:
  clients: 2
  duration: 2s
steps:
  - transferLeader: kv-0
  - start: [kv-3]
  - partition: [[kv-0, kv-3], [kv-1, kv-2]]
  - reconfigure: {voters: [kv-0, kv-1, kv-3]}
  - await: {leaderIn: [kv-1, kv-2], timeout: 5s}
  - heal: {}
expect:
  linearizable: false
  ifSafe: {linearizable: true}
`

func TestParseGood(t *testing.T) {
	e, err := Parse("good.yaml", []byte(good), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Cluster.ElectionTimeoutMs != 300 || e.Workload.Keys != 8 || e.Seed != 1 {
		t.Fatalf("defaults not applied: %+v", e)
	}
	if len(e.Steps) != 6 || e.Steps[2].Partition == nil || len(e.Steps[2].Partition.Groups) != 2 {
		t.Fatalf("steps: %+v", e.Steps)
	}
	if e.Steps[1].Pos.Line != 13 {
		t.Fatalf("step 2 at line %d, want 13", e.Steps[1].Pos.Line)
	}
	if l := e.Expect.For("safe").Linearizable; l == nil || !*l {
		t.Fatal("ifSafe not applied in safe mode")
	}
	if l := e.Expect.For("unsafe-no-joint").Linearizable; l == nil || *l {
		t.Fatal("the file's expectation not kept in unsafe mode")
	}
}

func TestSet(t *testing.T) {
	e, err := Parse("good.yaml", []byte(good), []string{"cluster.safetyMode=safe", "workload.rate=50", "cluster.snapshotEntries=100"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Cluster.SafetyMode != "safe" || e.Workload.Rate != 50 || e.Cluster.SnapshotEntries != 100 {
		t.Fatalf("sets not applied: %+v %+v", e.Cluster, e.Workload)
	}
	for set, want := range map[string]string{
		"cluster.nope=1":               `cluster has no field "nope"`,
		"cluster.replicas":             "expected path=value",
		"cluster.replicas=many":        "replicas: expected an integer",
		"cluster.safetyMode=x":         "cluster.safetyMode must be safe",
		"workload.readContexts=shared": "workload.readContexts must be unique or per-node",
	} {
		_, err := Parse("good.yaml", []byte(good), []string{set})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--set %s: error %v, want it to contain %q", set, err, want)
		}
	}
}

// Read contexts of the simulator are unique unless the file asks for
// raft-kv's per-node numbering.
func TestReadContexts(t *testing.T) {
	for set, want := range map[string]string{"": ReadContextsUnique, "workload.readContexts=per-node": ReadContextsPerNode} {
		var sets []string
		if set != "" {
			sets = []string{set}
		}
		e, err := Parse("good.yaml", []byte(good), sets)
		if err != nil || e.Workload.ReadContexts != want {
			t.Errorf("--set %q: readContexts %q (%v), want %q", set, e.Workload.ReadContexts, err, want)
		}
	}
}

// Every error names the file, the line and the column, and what was
// expected.
func TestParseErrors(t *testing.T) {
	cases := []struct{ name, edit, want string }{
		{"unknown key", "  replicas: 3\n", "  replicas: 3\n  replicaz: 4\n"},
		{"wrong type", "  clients: 2\n", "  clients: two\n"},
		{"duration without unit", "  duration: 2s\n", "  duration: 2\n"},
		{"unknown node", "  - transferLeader: kv-0\n", "  - transferLeader: kv-7\n"},
		{"two actions", "  - heal: {}\n", "  - {heal: {}, sleep: 1s}\n"},
		{"await without timeout", "timeout: 5s}", "timeout: 0s}"},
		{"bad mode", "unsafe-no-joint", "unsafe-yolo"},
		{"bad shape", "[[kv-0, kv-3], [kv-1, kv-2]]", "triangle"},
		{"syntax", "  clients: 2\n", "  clients: [2\n"},
	}
	wants := map[string][]string{
		"unknown key":           {"bad.yaml:7:3:", `unknown key "replicaz" in cluster`, "expected one of: replicas, safetyMode"},
		"wrong type":            {"bad.yaml:9:12:", "clients: expected an integer", `"two"`},
		"duration without unit": {"bad.yaml:10:13:", "has no unit", "2ms or 2s"},
		"unknown node":          {"bad.yaml:12:5:", "step 1 (transferLeader)", "kv-7 does not exist"},
		"two actions":           {"bad.yaml:17:5:", "2 actions in one step"},
		"await without timeout": {"bad.yaml:16:5:", "await needs a timeout"},
		"bad mode":              {"bad.yaml:7:15:", "cluster.safetyMode must be"},
		"bad shape":             {"bad.yaml:14:16:", `unknown partition shape "triangle"`, "isolate-leader"},
		"syntax":                {"bad.yaml:", "YAML syntax"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(good, c.edit, c.want, 1)
			if src == good {
				t.Fatalf("edit %q not applied", c.edit)
			}
			_, err := Parse("bad.yaml", []byte(src), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range wants[c.name] {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The experiment library validates.
func TestExperimentsValidate(t *testing.T) {
	files, _ := filepath.Glob("../../experiments/*.yaml")
	if len(files) < 8 {
		t.Fatalf("found %d experiment files, want the 8 of the library", len(files))
	}
	for _, f := range files {
		if _, err := Load(f, nil); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// The random step's options: the old ones still parse, the new ones are
// checked, and an unknown kind or trigger names the accepted ones.
func TestRandomOptions(t *testing.T) {
	base := strings.Replace(good, "  - heal: {}\n", "  - heal: {}\n  - random: RANDOM\n", 1)
	for _, c := range []struct{ random, want string }{
		{"{every: 1s, hold: 600ms, kinds: [partition, kill, reconfigure]}", ""},
		{"{every: 700ms, hold: 1s, maxActive: 3, changeEvery: 1200ms, on: [entering, joint, leaving, learner], kinds: [oneWay, killForever, crashRecovery, partitionVoters]}", ""},
		{"{every: 1s, hold: 1s, kinds: [meteor]}", `unknown random kind "meteor"`},
		{"{every: 1s, hold: 1s, on: [snapshot]}", `unknown random trigger "snapshot"`},
		{"{every: 1s, hold: 1s, maxActive: -1}", "maxActive must be >= 0"},
	} {
		_, err := Parse("r.yaml", []byte(strings.Replace(base, "RANDOM", c.random, 1)), nil)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.random, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.random, err, c.want)
		}
	}
	if _, err := Parse("o.yaml", []byte(strings.Replace(good, "  duration: 2s\n", "  duration: 2s\n  outstanding: 65\n", 1)), nil); err == nil || !strings.Contains(err.Error(), "workload.outstanding") {
		t.Errorf("outstanding: 65 accepted (%v)", err)
	}
}
