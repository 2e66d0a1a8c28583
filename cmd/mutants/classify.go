package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Class is what a failing check saw. Only ClassSafety and
// ClassPanicInvariant catch a mutant: they show a broken safety property or
// invariant. The others are reported but catch nothing: a cluster that
// stops making progress, a crash of the code or a hung check says the
// mutant changed something, not that the evidence can tell a broken core
// from a slow or crashing one.
type Class string

const (
	// ClassSafety: a safety property or invariant was violated (the
	// memcluster Checker, durability after a crash, a model of
	// exactly-once answers, the reconfiguration invariants, a
	// linearizability or invariant violation of the runner).
	ClassSafety Class = "safety"
	// ClassPanicInvariant: a panic whose message names an invariant
	// ("invariant", "violat"): the code asserting one of its own.
	ClassPanicInvariant Class = "panic-invariant"
	// ClassLiveness: no progress, reads not answered, a driver that did
	// not act or converge, an experiment's expectations not met.
	ClassLiveness Class = "liveness"
	// ClassPanic: any other panic (a runtime error, a harness panic).
	ClassPanic Class = "panic"
	// ClassTimeout: the check did not finish within -timeout.
	ClassTimeout Class = "timeout"
	// ClassFailure: a non-zero exit the gate cannot attribute to any of
	// the above (a setup error, a failed assertion it does not know).
	ClassFailure Class = "failure"
)

// Catches reports whether c counts as catching a mutant.
func (c Class) Catches() bool { return c == ClassSafety || c == ClassPanicInvariant }

// rank orders the classes from the strongest evidence down, to report the
// strongest when a check saw several.
func (c Class) rank() int {
	switch c {
	case ClassSafety:
		return 0
	case ClassPanicInvariant:
		return 1
	case ClassLiveness:
		return 2
	case ClassPanic:
		return 3
	case ClassTimeout:
		return 4
	}
	return 5
}

// finding is one check's verdict on a failing run: its class, the ordinal
// of the first seed that showed it (0 if unknown) and the line saying so.
type finding struct {
	class  Class
	seed   int
	detail string
}

// classifyFunc classifies the output of a check that failed (non-zero exit
// or timeout) in tree.
type classifyFunc func(tree, out string) finding

var (
	panicRE     = regexp.MustCompile(`(?m)^panic: (.*)$`)
	invariantRE = regexp.MustCompile(`(?i)invariant|violat`)
	// seedLineRE is the "seed N: what" line every randomized test of the
	// project prints for a failing seed.
	seedLineRE = regexp.MustCompile(`(?m)seed (\d+): (.*)$`)
)

// panicFinding classifies a panic in out, if there is one.
func panicFinding(out string) (finding, bool) {
	m := panicRE.FindStringSubmatch(out)
	switch {
	case m == nil:
		return finding{}, false
	case strings.HasPrefix(m[1], "test timed out after"):
		return finding{class: ClassTimeout, detail: truncate(m[0], 200)}, true
	case invariantRE.MatchString(m[1]):
		return finding{class: ClassPanicInvariant, detail: truncate(m[0], 200)}, true
	}
	return finding{class: ClassPanic, detail: truncate(m[0], 200)}, true
}

// seedRules classifies a Go test's output line by line: each "seed N:
// what" line is safety when what matches safety, liveness when it matches
// liveness, a failure otherwise; the strongest wins, with its first seed.
// A panic that no seed line explains is classified as a panic.
func seedRules(safety, liveness *regexp.Regexp) classifyFunc {
	return func(_, out string) finding {
		best := finding{class: ClassFailure}
		found := false
		for _, m := range seedLineRE.FindAllStringSubmatch(out, -1) {
			f := finding{class: ClassFailure, detail: truncate(strings.TrimSpace(m[0]), 200)}
			f.seed, _ = strconv.Atoi(m[1])
			switch {
			case safety.MatchString(m[2]):
				f.class = ClassSafety
			case liveness != nil && liveness.MatchString(m[2]):
				f.class = ClassLiveness
			}
			if !found || f.class.rank() < best.class.rank() {
				best, found = f, true
			}
		}
		if p, ok := panicFinding(out); ok && p.class.rank() < best.class.rank() {
			return p
		}
		if !found {
			best.detail = firstFailure(out)
		}
		return best
	}
}

// modelCheck is for tests every assertion of which is an invariant (a model
// of exactly-once answers, durability after crashes): any failing test is
// a safety finding, unless the binary panicked.
func modelCheck(firstSeed int) classifyFunc {
	return func(_, out string) finding {
		if p, ok := panicFinding(out); ok {
			return p
		}
		f := finding{class: ClassSafety, seed: firstSeed, detail: firstFailure(out)}
		if m := seedLineRE.FindStringSubmatch(out); m != nil {
			f.seed, _ = strconv.Atoi(m[1])
		}
		if !strings.Contains(out, "--- FAIL") {
			f.class = ClassFailure // exited non-zero without a failing test
		}
		return f
	}
}

var (
	// raftcore's randomized tests: the Checker's violations are printed
	// as "step N: [...]", "end: [...]" or "after healing: [...]".
	raftcoreSafety   = regexp.MustCompile(`^(step \d+|end|after healing): \[`)
	raftcoreLiveness = regexp.MustCompile(`^(no progress after healing|reads not answered after healing|no leader for the final reads)`)
	// reconfig's driver tests: the checker's safety properties, the
	// configuration-history and step invariants, and a bug scenario that
	// violates safety in safe mode.
	reconfigSafety   = regexp.MustCompile(`^safety: |promotes \S+ with match|expects configuration index|while the leader \S+ leaves|joint-consensus: |learners-never-vote: |in safe mode violated safety`)
	reconfigLiveness = regexp.MustCompile(`did not converge|did not act`)
)

// runOutcome classifies a runner output directory: the results of apply
// (result.json, anywhere under dir) or sweep (runs.jsonl).
func runnerFindings(dir, out string) finding {
	if p, ok := panicFinding(out); ok && p.class != ClassTimeout {
		return p
	}
	best := finding{class: ClassFailure, detail: firstFailure(out)}
	consider := func(f finding) {
		if f.class.rank() < best.class.rank() || (f.class == best.class && f.seed > 0 && (best.seed == 0 || f.seed < best.seed)) {
			best = f
		}
	}
	if f, err := os.Open(filepath.Join(dir, "runs.jsonl")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r struct {
				Seed       int    `json:"seed"`
				Verdict    string `json:"verdict"`
				Invariants int    `json:"invariantViolations"`
				Met        bool   `json:"met"`
				Error      string `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			switch {
			case r.Verdict == "illegal" || r.Invariants > 0:
				consider(finding{ClassSafety, r.Seed, fmt.Sprintf("seed %d: linearizability %s, %d invariant violations", r.Seed, r.Verdict, r.Invariants)})
			case r.Error != "" && strings.Contains(r.Error, "panic"):
				c := ClassPanic
				if invariantRE.MatchString(r.Error) {
					c = ClassPanicInvariant
				}
				consider(finding{c, r.Seed, truncate(fmt.Sprintf("seed %d: %s", r.Seed, r.Error), 200)})
			case !r.Met:
				consider(finding{ClassLiveness, r.Seed, fmt.Sprintf("seed %d: expectations not met", r.Seed)})
			}
		}
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "result.json" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var r struct {
			Seed            int `json:"seed"`
			Linearizability struct {
				Verdict string `json:"verdict"`
			} `json:"linearizability"`
			InvariantViolations []string `json:"invariantViolations"`
			Expectations        struct {
				Met bool `json:"met"`
			} `json:"expectations"`
		}
		if json.Unmarshal(b, &r) != nil {
			return nil
		}
		switch {
		case len(r.InvariantViolations) > 0:
			consider(finding{ClassSafety, 1, truncate(r.InvariantViolations[0], 200)})
		case r.Linearizability.Verdict == "illegal":
			consider(finding{ClassSafety, 1, "the history is not linearizable"})
		case !r.Expectations.Met:
			consider(finding{ClassLiveness, 1, "expectations not met"})
		}
		return nil
	})
	return best
}

// testsRun lists the top-level tests a -test.v run started.
func testsRun(out string) map[string]bool {
	ran := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(l, "=== RUN   "); ok && !strings.Contains(name, "/") {
			ran[strings.TrimSpace(name)] = true
		}
	}
	return ran
}

// missingTests is the expected tests that did not run.
func missingTests(want []string, out string) []string {
	ran := testsRun(out)
	var missing []string
	for _, t := range want {
		if !ran[t] {
			missing = append(missing, t)
		}
	}
	return missing
}
