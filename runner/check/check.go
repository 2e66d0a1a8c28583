// Package check decides whether a run's history is linearizable, with
// porcupine and a key-value model partitioned by key, and whether its
// configuration history kept the reconfiguration invariants.
//
// Outcomes (docs/BUGS.md, "What the checker must see"): an acknowledged
// operation has its call and return times; a write whose outcome is unknown
// may take effect at any time after its call, so it is checked with an
// infinite return time; a failed write certainly did not apply and is left
// out, as is a read that got no answer (it constrains nothing).
package check

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one operation of a history, as the checker needs it.
type Op struct {
	Client int
	Kind   string // "put", "get" or "delete"
	Key    string
	Value  string // put: the value written; get: the value read
	Found  bool   // get: the key had a value
	// Call and Return in nanoseconds since the start.
	Call, Return int64
	Outcome      string // ok, failed, unknown
}

type input struct {
	put   bool
	del   bool // a delete: the key is absent after it
	key   string
	value string
}

type output struct {
	value string
	found bool
}

// kvState is one key's value; "" with set=false is absent.
type kvState struct {
	value string
	set   bool
}

// Model is the single-register-per-key model, partitioned by key.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, in, out any) (bool, any) {
		st, i := state.(kvState), in.(input)
		if i.del {
			return true, kvState{}
		}
		if i.put {
			return true, kvState{value: i.value, set: true}
		}
		o := out.(output)
		return o.found == st.set && (!o.found || o.value == st.value), st
	},
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		if i.del {
			return fmt.Sprintf("delete(%s)", i.key)
		}
		if i.put {
			return fmt.Sprintf("put(%s, %s)", i.key, short(i.value))
		}
		o := out.(output)
		if !o.found {
			return fmt.Sprintf("get(%s) -> not found", i.key)
		}
		return fmt.Sprintf("get(%s) -> %s", i.key, short(o.value))
	},
	DescribeState: func(state any) string {
		st := state.(kvState)
		if !st.set {
			return "absent"
		}
		return short(st.value)
	},
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// Verdicts.
const (
	Ok      = "ok"
	Illegal = "illegal"
	Unknown = "unknown"
)

// Result is a linearizability check's answer.
type Result struct {
	Verdict         string
	Operations      int // operations checked
	UnknownOutcomes int
	CheckMs         int64
	info            porcupine.LinearizationInfo
	hasInfo         bool
}

// Annotation marks a step on the visualization.
type Annotation struct {
	Start, End int64 // ns since the start
	Label      string
}

// Linearizable checks a history within timeout: a timeout gives Unknown,
// never Ok. A delete is a write that leaves the key absent (kvserver has
// DELETE; the runner's workload and steps issue none yet, but a history
// that has them is checked, not refused). An operation kind the model does
// not know (anything but put, get and delete) is an error and the verdict
// Unknown: leaving it out could hide an acknowledged write.
func Linearizable(history []Op, timeout time.Duration) (Result, error) {
	var ops []porcupine.Operation
	res := Result{}
	for i, h := range history {
		switch {
		case h.Kind != "put" && h.Kind != "get" && h.Kind != "delete":
			return Result{Verdict: Unknown}, fmt.Errorf("check: operation %d (client %d, key %q, outcome %s) has kind %q; the checker knows put, get and delete only", i, h.Client, h.Key, h.Outcome, h.Kind)
		case h.Kind == "delete" && h.Outcome == "ok":
			ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: input{del: true, key: h.Key}, Call: h.Call, Return: h.Return})
		case h.Kind == "delete" && h.Outcome == "unknown":
			res.UnknownOutcomes++
			ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: input{del: true, key: h.Key}, Call: h.Call, Return: math.MaxInt64})
		case h.Kind == "put" && h.Outcome == "ok":
			ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: input{put: true, key: h.Key, value: h.Value}, Call: h.Call, Return: h.Return})
		case h.Kind == "put" && h.Outcome == "unknown":
			res.UnknownOutcomes++
			ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: input{put: true, key: h.Key, value: h.Value}, Call: h.Call, Return: math.MaxInt64})
		case h.Kind == "get" && h.Outcome == "ok":
			ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: input{key: h.Key}, Output: output{value: h.Value, found: h.Found}, Call: h.Call, Return: h.Return})
		case h.Outcome == "unknown":
			res.UnknownOutcomes++
		}
	}
	res.Operations = len(ops)
	start := time.Now()
	r, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	res.CheckMs = time.Since(start).Milliseconds()
	res.info, res.hasInfo = info, true
	switch r {
	case porcupine.Ok:
		res.Verdict = Ok
	case porcupine.Illegal:
		res.Verdict = Illegal
	default:
		res.Verdict = Unknown
	}
	return res, nil
}

// Visualize writes porcupine's HTML visualization, with the steps as
// annotations on a "steps" row.
func (r Result) Visualize(w io.Writer, steps []Annotation) error {
	if !r.hasInfo {
		return fmt.Errorf("check: no linearization info")
	}
	var anns []porcupine.Annotation
	for _, s := range steps {
		anns = append(anns, porcupine.Annotation{Tag: "steps", Start: s.Start, End: s.End, Description: s.Label, BackgroundColor: "#ffe9a8"})
	}
	r.info.AddAnnotations(anns)
	return porcupine.Visualize(Model, r.info, w)
}

// Config is one committed configuration.
type Config struct {
	Index    uint64
	Voters   []string
	Outgoing []string
	Learners []string
}

func (c Config) String() string {
	s := "voters=(" + strings.Join(c.Voters, " ") + ")"
	if len(c.Outgoing) > 0 {
		s += " outgoing=(" + strings.Join(c.Outgoing, " ") + ")"
	}
	if len(c.Learners) > 0 {
		s += " learners=(" + strings.Join(c.Learners, " ") + ")"
	}
	return fmt.Sprintf("%s@%d", s, c.Index)
}

// Invariant names, as reconfig names them.
const (
	InvLearnersNeverVote = "learners-never-vote"
	InvJointConsensus    = "joint-consensus"
	InvConfigIndex       = "config-index-increases"
)

// Configurations checks a committed configuration history, in index
// order: indexes strictly increase; each change either keeps every
// majority of the old voters intersecting every majority of the new, or
// goes through a joint configuration (enter: the outgoing set is the old
// voters; leave: the voters stay those of the joint configuration).
func Configurations(cfgs []Config) []string {
	var out []string
	for i := 1; i < len(cfgs); i++ {
		a, b := cfgs[i-1], cfgs[i]
		if b.Index <= a.Index {
			out = append(out, fmt.Sprintf("%s: configuration %s follows %s", InvConfigIndex, b, a))
			continue
		}
		switch {
		case len(b.Outgoing) > 0:
			if !sameSet(b.Outgoing, currentVoters(a)) {
				out = append(out, fmt.Sprintf("%s: joint configuration %s does not start from %s", InvJointConsensus, b, a))
			}
		case len(a.Outgoing) > 0:
			if !sameSet(b.Voters, a.Voters) {
				out = append(out, fmt.Sprintf("%s: %s leaves joint %s for other voters", InvJointConsensus, b, a))
			}
		default:
			if disjointMajorities(a.Voters, b.Voters) {
				out = append(out, fmt.Sprintf("%s: %s -> %s in one step: a majority of each can be disjoint", InvJointConsensus, a, b))
			}
		}
	}
	return out
}

func currentVoters(c Config) []string { return c.Voters }

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// disjointMajorities reports whether some majority of a and some majority
// of b share no member.
func disjointMajorities(a, b []string) bool {
	inB := map[string]bool{}
	for _, x := range b {
		inB[x] = true
	}
	both, onlyA := 0, 0
	for _, x := range a {
		if inB[x] {
			both++
		} else {
			onlyA++
		}
	}
	onlyB := len(b) - both
	qa, qb := len(a)/2+1, len(b)/2+1
	return max(0, qa-onlyA)+max(0, qb-onlyB) <= both
}
