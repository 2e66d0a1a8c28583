package check

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

func put(client int, key, v string, call, ret int64, outcome string) Op {
	return Op{Client: client, Kind: "put", Key: key, Value: v, Call: call, Return: ret, Outcome: outcome}
}

func get(client int, key, v string, found bool, call, ret int64) Op {
	return Op{Client: client, Kind: "get", Key: key, Value: v, Found: found, Call: call, Return: ret, Outcome: "ok"}
}

// The fixtures: histories that must pass and histories that must fail.
func TestLinearizableFixtures(t *testing.T) {
	cases := []struct {
		name    string
		history []Op
		want    string
	}{
		{"sequential", []Op{put(0, "k", "a", 0, 10, "ok"), get(1, "k", "a", true, 20, 30)}, Ok},
		{"concurrent read may see either", []Op{put(0, "k", "a", 0, 10, "ok"), put(0, "k", "b", 20, 40, "ok"), get(1, "k", "a", true, 25, 30)}, Ok},
		{"stale read after an acknowledged write", []Op{put(0, "k", "a", 0, 10, "ok"), put(0, "k", "b", 20, 30, "ok"), get(1, "k", "a", true, 40, 50)}, Illegal},
		{"lost acknowledged write (docs/BUGS.md bug 1)", []Op{put(0, "k", "1", 0, 10, "ok"), get(1, "k", "", false, 20, 30)}, Illegal},
		{"unknown write may apply later", []Op{put(0, "k", "a", 0, 10, "unknown"), get(1, "k", "", false, 20, 30), get(1, "k", "a", true, 40, 50)}, Ok},
		{"unknown write cannot apply before its call", []Op{get(1, "k", "a", true, 0, 10), put(0, "k", "a", 20, 30, "unknown")}, Illegal},
		{"failed write never applies", []Op{put(0, "k", "a", 0, 10, "failed"), get(1, "k", "a", true, 20, 30)}, Illegal},
		{"two sides disagree (docs/BUGS.md bug 2)", []Op{put(0, "k", "a", 0, 10, "ok"), put(1, "k", "b", 5, 15, "ok"), get(0, "k", "a", true, 20, 25), get(1, "k", "b", true, 30, 35)}, Illegal},
		{"keys are independent", []Op{put(0, "x", "1", 0, 10, "ok"), get(1, "y", "", false, 20, 30)}, Ok},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Linearizable(c.history, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != c.want {
				t.Fatalf("verdict %s, want %s", got.Verdict, c.want)
			}
		})
	}
}

func TestVisualizationAnnotatesSteps(t *testing.T) {
	res, err := Linearizable([]Op{put(0, "k", "1", 0, 10, "ok"), get(1, "k", "", false, 20, 30)}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := res.Visualize(&b, []Annotation{{Start: 5, End: 25, Label: "partition [kv-0 kv-1] | [kv-2]"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "partition [kv-0 kv-1] | [kv-2]") {
		t.Fatal("the visualization does not carry the step annotation")
	}
}

func TestConfigurations(t *testing.T) {
	c := func(idx uint64, voters, outgoing []string) Config {
		return Config{Index: idx, Voters: voters, Outgoing: outgoing}
	}
	abc, abd := []string{"a", "b", "c"}, []string{"a", "b", "d"}
	if v := Configurations([]Config{c(1, abc, nil), c(5, abd, abc), c(7, abd, nil)}); len(v) != 0 {
		t.Fatalf("a joint change was flagged: %v", v)
	}
	if v := Configurations([]Config{c(1, abc, nil), c(5, []string{"a", "b", "c", "d"}, nil)}); len(v) != 0 {
		t.Fatalf("a one-voter change was flagged: %v", v)
	}
	v := Configurations([]Config{c(1, abc, nil), c(5, abd, nil)})
	if len(v) != 1 || !strings.HasPrefix(v[0], InvJointConsensus) {
		t.Fatalf("a one-step replacement was not flagged: %v", v)
	}
	if v := Configurations([]Config{c(5, abc, nil), c(5, abc, nil)}); len(v) != 1 || !strings.HasPrefix(v[0], InvConfigIndex) {
		t.Fatalf("a repeated index was not flagged: %v", v)
	}
}

// history100k is a linearizable history of n operations over keys keys by
// 16 clients: each operation takes effect at a random point of its
// interval, applied in that order to a real map.
func history100k(n, keys int, seed uint64) []Op {
	rng := rand.New(rand.NewPCG(seed, 1))
	ops := make([]Op, n)
	at := make([]int64, n)
	clientFree := make([]int64, 16)
	for i := range ops {
		c := i % 16
		call := clientFree[c] + int64(rng.IntN(5))
		ret := call + 1 + int64(rng.IntN(20))
		clientFree[c] = ret + 1
		k := fmt.Sprintf("k%d", rng.IntN(keys))
		if rng.IntN(2) == 0 {
			ops[i] = put(c, k, fmt.Sprintf("v%d", i), call, ret, "ok")
		} else {
			ops[i] = Op{Client: c, Kind: "get", Key: k, Call: call, Return: ret, Outcome: "ok"}
		}
		at[i] = call + rng.Int64N(ret-call+1)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return at[order[a]] < at[order[b]] })
	state := map[string]string{}
	for _, i := range order {
		o := &ops[i]
		if o.Kind == "put" {
			state[o.Key] = o.Value
		} else {
			o.Value, o.Found = state[o.Key]
		}
	}
	return ops
}

func TestCheck100kOps(t *testing.T) {
	if testing.Short() {
		t.Skip("the 100,000-operation check runs without -short")
	}
	ops := history100k(100_000, 1000, 1)
	start := time.Now()
	res, err := Linearizable(ops, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100,000 operations over 1,000 keys: verdict %s in %v", res.Verdict, time.Since(start))
	if res.Verdict != Ok {
		t.Fatalf("verdict %s, want ok", res.Verdict)
	}
}
