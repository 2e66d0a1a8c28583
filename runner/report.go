package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/check"
	"github.com/raftlab/raftlab/runner/experiment"
)

// SchemaVersion is result.json's format version (results/schema.json).
const SchemaVersion = 1

// Run is one finished run: its result, history and checker output.
type Run struct {
	Result  *Result
	History []HistoryEntry
	lin     check.Result
}

func (r *run) result(stats backend.Stats, start time.Duration, wall time.Time) *Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	exp := r.exp
	hist := slices.Clone(r.hist)
	sort.SliceStable(hist, func(i, j int) bool {
		if hist[i].CallNs != hist[j].CallNs {
			return hist[i].CallNs < hist[j].CallNs
		}
		return hist[i].Client < hist[j].Client
	})
	res := &Result{SchemaVersion: SchemaVersion, Experiment: exp.Metadata.Name, File: exp.File,
		Backend: r.opts.Backend.Name(), Seed: r.seed, SafetyMode: exp.Cluster.SafetyMode, Sets: nonNil(r.opts.Sets),
		VirtualTime: r.opts.Backend.Name() == "sim", DurationMs: r.c.Now().Milliseconds(),
		WallMs: time.Since(wall).Milliseconds(), BackendDir: stats.Dir,
		Latency: map[string]LatencyGroup{}, Files: map[string]string{}}
	res.Replay = replayCommand(exp.File, res.Backend, r.seed, r.opts.Sets)

	// Linearizability.
	var ops []check.Op
	clientIdx := map[string]int{}
	for _, h := range hist {
		id, ok := clientIdx[h.Client]
		if !ok {
			id = len(clientIdx)
			clientIdx[h.Client] = id
		}
		o := check.Op{Client: id, Kind: h.Op, Key: h.Key, Value: h.Value, Call: h.CallNs, Return: h.ReturnNs, Outcome: h.Outcome}
		if h.Found != nil {
			o.Found = *h.Found
		}
		ops = append(ops, o)
		res.Operations.Total++
		switch h.Outcome {
		case "ok":
			res.Operations.OK++
		case "failed":
			res.Operations.Failed++
		default:
			res.Operations.Unknown++
		}
	}
	lin, linErr := check.Linearizable(ops, r.opts.CheckTimeout)
	res.Linearizability = Linearizability{Verdict: lin.Verdict, Operations: lin.Operations, UnknownOutcomes: lin.UnknownOutcomes, CheckMs: lin.CheckMs}

	// Invariants: the backend's direct observations, elections counted
	// with non-members, and the committed configuration history.
	res.Invariants = append(nonNil(nil), stats.Violations...)
	for _, e := range stats.Elections {
		res.Elections = append(res.Elections, ElectionRecord{AtMs: e.AtMs - start.Milliseconds(), Leader: e.Leader, Term: e.Term,
			Granted: e.Granted, Counted: e.Counted, LogConfig: e.LogConfig, NonMembers: e.NonMembers})
		if len(e.NonMembers) > 0 {
			res.Invariants = append(res.Invariants, fmt.Sprintf("%s: %s won term %d with votes of %s, not voters of the configuration in its log (%s); it counted in %s",
				check.InvLearnersNeverVote, e.Leader, e.Term, strings.Join(e.NonMembers, ", "), e.LogConfig, e.Counted))
		}
	}
	cfgs := make([]check.Config, 0, len(stats.Configs))
	for _, c := range stats.Configs {
		cfgs = append(cfgs, check.Config{Index: c.Index, Voters: c.Voters, Outgoing: c.Outgoing, Learners: c.Learners})
	}
	sort.Slice(cfgs, func(i, j int) bool { return cfgs[i].Index < cfgs[j].Index })
	for _, c := range cfgs {
		res.Configurations = append(res.Configurations, c.String())
	}
	res.Configurations = nonNil(res.Configurations)
	res.ConfigHistory = "complete"
	if stats.ConfigsSampled {
		res.ConfigHistory = "sampled"
	} else {
		res.Invariants = append(res.Invariants, check.Configurations(cfgs)...)
	}

	// Latency per operation type, overall and per phase.
	type key struct{ op, phase string }
	hists := map[key]*hdrhistogram.Histogram{}
	get := func(k key) *hdrhistogram.Histogram {
		if h := hists[k]; h != nil {
			return h
		}
		h := hdrhistogram.New(1, 120_000_000, 3)
		hists[k] = h
		return h
	}
	interval := int64(time.Second)
	var series []int
	for _, h := range hist {
		if h.Outcome != "ok" || strings.HasPrefix(h.Client, stepClientPrefix) {
			continue
		}
		us := max((h.ReturnNs-h.IntendedNs)/1000, 1)
		_ = get(key{h.Op, ""}).RecordValue(us)
		_ = get(key{h.Op, h.Phase}).RecordValue(us)
		b := int((h.ReturnNs - int64(start)) / interval)
		if b >= 0 {
			for len(series) <= b {
				series = append(series, 0)
			}
			series[b]++
		}
	}
	for k, h := range hists {
		g := res.Latency[k.op]
		if g.Phases == nil {
			g.Phases = map[string]Latency{}
		}
		if k.phase == "" {
			g.All = summarize(h)
		} else {
			g.Phases[k.phase] = summarize(h)
		}
		res.Latency[k.op] = g
	}
	run := exp.Workload.Duration.D().Seconds()
	res.Throughput = Throughput{IntervalMs: interval / 1e6, Series: nonNilInts(series)}
	if run > 0 {
		res.Throughput.OpsPerSec = float64(res.Operations.OK) / run
	}

	// Failovers: leader changes not asked for, and the first write
	// acknowledged after each.
	res.Failovers = []Failover{}
	for _, ch := range r.changes {
		if ch.transfer {
			continue
		}
		f := Failover{From: ch.from, To: ch.to, LostAtMs: (ch.at - start).Milliseconds(), FirstAckMs: -1, DowntimeMs: -1}
		for _, h := range hist {
			if h.Op == "put" && h.Outcome == "ok" && h.ReturnNs > int64(ch.at) {
				if f.FirstAckMs < 0 || (h.ReturnNs-int64(start))/1e6 < f.FirstAckMs {
					f.FirstAckMs = (h.ReturnNs - int64(start)) / 1e6
				}
			}
		}
		if f.FirstAckMs >= 0 {
			f.DowntimeMs = f.FirstAckMs - f.LostAtMs
		}
		res.Failovers = append(res.Failovers, f)
	}

	// Reconfigurations: phases from the driver's events.
	res.Reconfigs = []Reconfiguration{}
	for _, rr := range r.reconfigs {
		rec := rr.rec
		rec.StartMs -= start.Milliseconds()
		if rec.EndMs >= 0 {
			rec.EndMs -= start.Milliseconds()
		}
		rec.PhasesMs = phases(rr, r.c.Now())
		rec.Steps = nonNil(rec.Steps)
		res.Reconfigs = append(res.Reconfigs, rec)
	}

	// Steps, relative to the start.
	res.Steps = []StepRecord{}
	for _, s := range r.steps {
		s.StartMs -= start.Milliseconds()
		s.EndMs -= start.Milliseconds()
		res.Steps = append(res.Steps, s)
	}
	sort.SliceStable(res.Steps, func(i, j int) bool { return res.Steps[i].StartMs < res.Steps[j].StartMs })
	res.Elections = nonNilE(res.Elections)
	res.Notes = append([]string{}, r.notes...)
	res.Coverage = r.coverageLocked()
	res.Expectations = expectations(exp.Expect.For(exp.Cluster.SafetyMode), res)
	// Failures that are not the file's expectations but still fail the
	// run: a history the checker refused, a when: step that never ran.
	if linErr != nil {
		res.Notes = append(res.Notes, linErr.Error())
		res.Expectations.Items = append(res.Expectations.Items, Expectation{Name: "history checked", Expected: true, Observed: linErr.Error()})
		res.Expectations.Met = false
	}
	for _, m := range r.whenMissed {
		res.Expectations.Items = append(res.Expectations.Items, m)
		res.Expectations.Met = false
	}
	return &Run{Result: res, History: hist, lin: lin}
}

// phases splits a reconfiguration by the driver's first AddLearner,
// EnterJoint (or ChangeVoters) and LeaveJoint starts.
func phases(rr *reconfigRun, now time.Duration) map[string]int64 {
	first := map[string]time.Time{}
	var end time.Time
	for _, e := range rr.events {
		if e.Kind == "step-started" {
			op := string(e.Decision.Step.Op)
			if _, ok := first[op]; !ok {
				first[op] = e.At
			}
		}
		if e.Kind == "done" {
			end = e.At
		}
	}
	out := map[string]int64{}
	mark := func(name string, from, to time.Time) {
		if !from.IsZero() && !to.IsZero() && !to.Before(from) {
			out[name] = to.Sub(from).Milliseconds()
		}
	}
	enter := first["EnterJoint"]
	if enter.IsZero() {
		enter = first["ChangeVoters"]
	}
	mark("learnerCatchUp", first["AddLearner"], enter)
	mark("joint", first["EnterJoint"], first["LeaveJoint"])
	mark("leave", first["LeaveJoint"], end)
	if s := rr.events; len(s) > 0 {
		mark("total", s[0].At, end)
	}
	return out
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(v int64) float64 { return float64(v) / 1000 }
	l := Latency{Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
	if b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
		l.HDR = string(b)
	}
	return l
}

// expectations compares the file's expect: (for the run's mode) with what
// was observed. A verdict of unknown meets neither linearizable: true nor
// false.
func expectations(e experiment.Expect, res *Result) Expectations {
	out := Expectations{Met: true, Items: []Expectation{}}
	add := func(name string, expected, observed any, met bool) {
		out.Items = append(out.Items, Expectation{Name: name, Expected: expected, Observed: observed, Met: met})
		out.Met = out.Met && met
	}
	if e.Linearizable != nil {
		v := res.Linearizability.Verdict
		add("linearizable", *e.Linearizable, v, (*e.Linearizable && v == check.Ok) || (!*e.Linearizable && v == check.Illegal))
	}
	if e.Invariants != nil {
		held := len(res.Invariants) == 0
		add("invariants", *e.Invariants, held, held == *e.Invariants)
	}
	if e.MinOkOps != nil {
		add("minOkOps", *e.MinOkOps, res.Operations.OK, res.Operations.OK >= *e.MinOkOps)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

func nonNilE(s []ElectionRecord) []ElectionRecord {
	if s == nil {
		return []ElectionRecord{}
	}
	return s
}

func replayCommand(file, backendName string, seed uint64, sets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "go run ./cmd/runner apply %s --backend %s --seed %d", file, backendName, seed)
	for _, s := range sets {
		fmt.Fprintf(&b, " --set %s", s)
	}
	return b.String()
}

// Write puts a run's files in dir: result.json, history.jsonl, one
// latency-<op>.hgrm per operation type and, when the verdict is not ok,
// linearizability.html.
func (run *Run) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	res := run.Result
	var hb bytes.Buffer
	enc := json.NewEncoder(&hb)
	for _, h := range run.History {
		if err := enc.Encode(h); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "history.jsonl"), hb.Bytes(), 0o644); err != nil {
		return err
	}
	res.Files["history"] = "history.jsonl"
	for _, op := range slices.Sorted(maps.Keys(res.Latency)) {
		h, err := hdrhistogram.Decode([]byte(res.Latency[op].All.HDR))
		if err != nil {
			continue
		}
		var b bytes.Buffer
		if _, err := h.PercentilesPrint(&b, 5, 1000); err != nil {
			return err
		}
		name := "latency-" + op + ".hgrm"
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
		res.Files["latency-"+op] = name
	}
	if res.Linearizability.Verdict != check.Ok {
		var anns []check.Annotation
		for _, s := range res.Steps {
			anns = append(anns, check.Annotation{Start: s.StartMs * 1e6, End: s.EndMs * 1e6, Label: s.Label})
		}
		var b bytes.Buffer
		if err := run.lin.Visualize(&b, anns); err == nil {
			if err := os.WriteFile(filepath.Join(dir, "linearizability.html"), b.Bytes(), 0o644); err != nil {
				return err
			}
			res.Files["visualization"] = "linearizability.html"
		}
	}
	res.Files["result"] = "result.json"
	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "result.json"), append(out, '\n'), 0o644)
}

// coverageLocked sums the membership changes' coverage (under mu), by
// the strict definition of coverage.go.
func (r *run) coverageLocked() Coverage {
	return r.coverageAt(r.c.Now())
}

// coverageAt is coverageLocked with the run ending at end.
func (r *run) coverageAt(end time.Duration) Coverage {
	c := r.cov
	for _, rr := range r.reconfigs {
		c.Changes++
		if rr.rec.Done {
			c.ChangesDone++
		}
		if rr.noOp {
			c.NoOpChanges++
		}
		r.coverageOf(&c, rr, end)
	}
	return c
}
