package runner

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// PrintSummary writes the short summary of apply: what was expected, what
// was seen, and where the evidence is.
func (run *Run) PrintSummary(w io.Writer, dir string) {
	res := run.Result
	fmt.Fprintf(w, "experiment   %s (%s) on %s, seed %d, safetyMode %s\n", res.Experiment, res.File, res.Backend, res.Seed, res.SafetyMode)
	var exp []string
	for _, it := range res.Expectations.Items {
		exp = append(exp, fmt.Sprintf("%s: %v", it.Name, it.Expected))
	}
	if len(exp) == 0 {
		exp = []string{"nothing (no expect: in the file)"}
	}
	fmt.Fprintf(w, "expected     %s\n", strings.Join(exp, ", "))
	l := res.Linearizability
	switch l.Verdict {
	case "ok":
		fmt.Fprintf(w, "seen         linearizable: porcupine found a linearization of %d operations (%d with unknown outcome) in %d ms\n", l.Operations, l.UnknownOutcomes, l.CheckMs)
	case "illegal":
		fmt.Fprintf(w, "seen         NOT linearizable: porcupine found no order of %d operations (%d with unknown outcome) that explains the answers\n", l.Operations, l.UnknownOutcomes)
	default:
		fmt.Fprintf(w, "seen         linearizability unknown: the check did not finish in time (%d ms); this is not a pass\n", l.CheckMs)
	}
	if len(res.Invariants) == 0 {
		fmt.Fprintf(w, "             reconfiguration invariants held (%d configurations committed, history %s)\n", len(res.Configurations), res.ConfigHistory)
	} else {
		fmt.Fprintf(w, "             %d invariant violation(s), first: %s\n", len(res.Invariants), res.Invariants[0])
	}
	o := res.Operations
	fmt.Fprintf(w, "operations   %d: %d ok, %d failed, %d unknown; %.0f ok/s", o.Total, o.OK, o.Failed, o.Unknown, res.Throughput.OpsPerSec)
	for _, op := range slices.Sorted(maps.Keys(res.Latency)) {
		a := res.Latency[op].All
		fmt.Fprintf(w, "; %s p50 %.1f ms p99 %.1f ms", op, a.P50, a.P99)
	}
	fmt.Fprintln(w)
	if len(res.Failovers) > 0 {
		var ds []string
		for _, f := range res.Failovers {
			if f.DowntimeMs >= 0 {
				ds = append(ds, fmt.Sprintf("%s->%s %d ms", f.From, dash(f.To), f.DowntimeMs))
			} else {
				ds = append(ds, fmt.Sprintf("%s->%s no write acknowledged after", f.From, dash(f.To)))
			}
		}
		fmt.Fprintf(w, "failovers    %d (%s)\n", len(res.Failovers), strings.Join(ds, ", "))
	}
	for _, rc := range res.Reconfigs {
		state := "not done when the run ended"
		if rc.Done {
			state = fmt.Sprintf("done in %d ms", rc.EndMs-rc.StartMs)
		}
		fmt.Fprintf(w, "reconfig     %s -> %s: %s\n", strings.Join(rc.From, " "), strings.Join(rc.To, " "), state)
	}
	if cv := res.Coverage; cv.Changes > 0 || cv.Faults > 0 {
		fmt.Fprintf(w, "coverage     %d membership changes (%d done, %d no-ops), %d under a fault (%d of %d driver steps, %d joint entries); %d random faults (%d triggered by membership states, at most %d at once)\n",
			cv.Changes, cv.ChangesDone, cv.NoOpChanges, cv.ChangesUnderFault, cv.StepsUnderFault, cv.MembershipSteps, cv.EnterJointUnderFault, cv.Faults, cv.TriggeredFaults, cv.MaxConcurrentFaults)
	}
	if n := len(res.Notes); n > 0 {
		fmt.Fprintf(w, "notes        %d, first: %s\n", n, res.Notes[0])
		for _, s := range res.Notes[1:min(n, 5)] {
			fmt.Fprintf(w, "             %s\n", s)
		}
		if n > 5 {
			fmt.Fprintf(w, "             (%d more in result.json)\n", n-5)
		}
	}
	verdict := "PASS: every expectation met (exit 0)"
	if !res.Expectations.Met {
		var bad []string
		for _, it := range res.Expectations.Items {
			if !it.Met {
				bad = append(bad, fmt.Sprintf("%s expected %v, observed %v", it.Name, it.Expected, it.Observed))
			}
		}
		verdict = "FAIL: " + strings.Join(bad, "; ") + " (exit 1)"
	}
	fmt.Fprintf(w, "result       %s\n", verdict)
	if dir != "" {
		files := []string{"result.json", "history.jsonl"}
		if f, ok := res.Files["visualization"]; ok {
			files = append(files, f+" (open in a browser)")
		}
		fmt.Fprintf(w, "evidence     %s/ (%s)\n", dir, strings.Join(files, ", "))
	}
	if res.BackendDir != "" {
		fmt.Fprintf(w, "node files   %s\n", res.BackendDir)
	}
	fmt.Fprintf(w, "replay       %s\n", res.Replay)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
