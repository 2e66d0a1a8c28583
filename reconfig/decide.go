package reconfig

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// Input is everything a decision depends on. Decide is a pure function of it.
type Input struct {
	Obs     Observation
	Desired []string // the desired voters
	Mode    Mode
	Policy  Policy
	Now     time.Time
	// LastChangeEnded is when the last change ended (zero: never).
	LastChangeEnded time.Time
	// LeaderChanges are the times the leader was seen to change.
	LeaderChanges []time.Time
	// CaughtUpSince maps a member to when it was first seen caught up, with
	// no break since (Tracker keeps it).
	CaughtUpSince map[string]time.Time
	// SeenConfigIndex is the highest committed configuration index observed
	// before. (An uncommitted configuration entry may be truncated by a new
	// leader, so the latest index may go back; the committed one never does.)
	SeenConfigIndex uint64
}

// Decide returns the next single step toward the desired membership, or why
// there is none. It checks every invariant on the step it would take; in an
// unsafe mode the invariants that mode breaks on purpose are waived and
// listed.
func Decide(in Input) Decision {
	desired := sorted(in.Desired)
	obs := in.Obs
	p := in.Policy
	if len(desired) == 0 {
		return Decision{Kind: Blocked, Why: "the desired membership has no voter"}
	}
	if obs.Leader == "" {
		return Decision{Kind: Wait, Until: in.Now.Add(p.Retry), Why: "no leader"}
	}
	if p.MaxObservationAge > 0 && in.Now.Sub(obs.At) > p.MaxObservationAge {
		return Decision{Kind: Wait, Until: in.Now, Invariant: ConfigIndexIncreases,
			Why: fmt.Sprintf("the observation is %v old (limit %v): observe again", in.Now.Sub(obs.At), p.MaxObservationAge)}
	}
	if ci := obs.CommittedConfigIndex(); ci < in.SeenConfigIndex {
		return Decision{Kind: Blocked, Invariant: ConfigIndexIncreases,
			Why: fmt.Sprintf("observed committed configuration index %d is older than %d, seen before: a stale observation (a deposed leader?)", ci, in.SeenConfigIndex)}
	}
	if n, oldest := flaps(in); p.FlapThreshold > 0 && n > p.FlapThreshold {
		return Decision{Kind: Wait, Invariant: LeaderStable, Until: oldest.Add(p.FlapWindow),
			Why: fmt.Sprintf("the leader changed %d times within %v (threshold %d): backing off", n, p.FlapWindow, p.FlapThreshold)}
	}
	d := plan(in, desired)
	if d.Kind != Act {
		return d
	}
	for _, v := range Check(in, d.Step) {
		if slices.Contains(d.Waived, v.Invariant) {
			continue
		}
		kind := Blocked
		switch v.Invariant {
		case RateLimit, PromoteOnlyCaughtUp, OneChangeInFlight:
			kind = Wait
		}
		return Decision{Kind: kind, Invariant: v.Invariant, Until: v.Until, Why: fmt.Sprintf("%s: %s", d.Step, v.Why)}
	}
	return d
}

// flaps counts the leader changes within the flap window.
func flaps(in Input) (int, time.Time) {
	n, oldest := 0, time.Time{}
	for _, t := range in.LeaderChanges {
		if in.Now.Sub(t) <= in.Policy.FlapWindow {
			if n == 0 {
				oldest = t
			}
			n++
		}
	}
	return n, oldest
}

// plan picks the step for the mode, before the invariant check.
func plan(in Input, desired []string) Decision {
	obs := in.Obs
	cfg := obs.Config
	voters := sorted(cfg.Voters)
	idx := obs.ConfigIndex
	if !obs.Committed {
		if obs.Joint == raftcore.JointEntering {
			return Decision{Kind: Act, Step: Step{Op: OpCommitNew, ConfigIndex: idx}, Why: "the joint configuration is appended: wait for its commit"}
		}
		return Decision{Kind: Wait, Invariant: OneChangeInFlight, Until: in.Now.Add(in.Policy.Retry),
			Why: fmt.Sprintf("configuration entry %d is not committed yet", idx)}
	}
	if cfg.IsJoint() {
		if !slices.Contains(voters, obs.Leader) {
			to := transferTarget(obs, voters)
			if to == "" {
				return Decision{Kind: Wait, Invariant: TransferBeforeRemoval, Until: in.Now.Add(in.Policy.Retry),
					Why: fmt.Sprintf("leader %s leaves the configuration and no incoming voter is reachable to take over", obs.Leader)}
			}
			return Decision{Kind: Act, Step: Step{Op: OpTransferLeader, Target: to, ConfigIndex: idx},
				Why: fmt.Sprintf("leader %s is not in C_new: transfer leadership to %s before leaving the joint configuration", obs.Leader, to)}
		}
		return Decision{Kind: Act, Step: Step{Op: OpLeaveJoint, ConfigIndex: idx, EndsChange: slices.Equal(voters, desired)},
			Why: "the joint configuration is committed: switch to C_new"}
	}
	if slices.Equal(voters, desired) {
		for _, l := range sorted(cfg.Learners) {
			if !slices.Contains(desired, l) {
				return Decision{Kind: Act, Step: Step{Op: OpRemoveMember, Target: l, ConfigIndex: idx, EndsChange: true},
					Why: fmt.Sprintf("learner %s is not in the desired membership", l)}
			}
		}
		return Decision{Kind: Done, Why: fmt.Sprintf("voters=(%s) as desired", strings.Join(desired, " "))}
	}
	var missing []string
	for _, id := range desired {
		if !slices.Contains(voters, id) {
			missing = append(missing, id)
		}
	}
	switch in.Mode {
	case UnsafeNoJoint:
		return Decision{Kind: Act, Step: Step{Op: OpChangeVoters, Voters: desired, ConfigIndex: idx, StartsChange: true, EndsChange: true},
			Why:    "unsafe-no-joint: one configuration entry from C_old to C_new",
			Waived: []Invariant{JointConsensus, LearnersNeverVote, PromoteOnlyCaughtUp, TransferBeforeRemoval}}
	case UnsafeEarlyVote:
		return Decision{Kind: Act, Step: Step{Op: OpEnterJoint, Voters: desired, ConfigIndex: idx, StartsChange: true},
			Why:    "unsafe-early-vote: new members vote at once, without a learner stage or catch-up",
			Waived: []Invariant{LearnersNeverVote, PromoteOnlyCaughtUp}}
	}
	learnersExist := false
	for _, id := range missing {
		if slices.Contains(cfg.Learners, id) {
			learnersExist = true
		}
	}
	for _, id := range missing {
		if !slices.Contains(cfg.Learners, id) {
			return Decision{Kind: Act, Step: Step{Op: OpAddLearner, Target: id, ConfigIndex: idx, StartsChange: !learnersExist},
				Why: fmt.Sprintf("%s joins as a learner first: it replicates but does not vote", id)}
		}
	}
	return Decision{Kind: Act, Step: Step{Op: OpEnterJoint, Voters: desired, ConfigIndex: idx, StartsChange: len(missing) == 0},
		Why: "enter the joint configuration C_old,new: both majorities decide until C_new commits"}
}

// transferTarget picks the incoming voter to lead: reachable, the highest
// match, then the smallest id.
func transferTarget(obs Observation, voters []string) string {
	best, bestMatch := "", uint64(0)
	for _, id := range voters {
		m, ok := obs.Members[id]
		if !ok || !m.Reachable || id == obs.Leader {
			continue
		}
		if best == "" || m.Match > bestMatch {
			best, bestMatch = id, m.Match
		}
	}
	return best
}

// Violation is an invariant a step would break.
type Violation struct {
	Invariant Invariant
	Why       string
	Until     time.Time // for the time-bound ones: when it stops applying
}

// Check lists the invariants step would break in the situation in, in the
// order of AllInvariants.
func Check(in Input, s Step) []Violation {
	obs := in.Obs
	cfg := obs.Config
	voters := sorted(cfg.Voters)
	var out []Violation
	add := func(inv Invariant, until time.Time, format string, args ...any) {
		out = append(out, Violation{Invariant: inv, Until: until, Why: fmt.Sprintf(format, args...)})
	}
	changesConfig := s.Op != OpCommitNew && s.Op != OpTransferLeader
	var newVoters []string
	for _, v := range s.Voters {
		if !slices.Contains(voters, v) {
			newVoters = append(newVoters, v)
		}
	}
	// learners-never-vote
	for _, v := range newVoters {
		if !slices.Contains(cfg.Learners, v) {
			add(LearnersNeverVote, time.Time{}, "%s would vote without having been a learner", v)
		}
	}
	// one-change-in-flight
	if changesConfig && !obs.Committed {
		add(OneChangeInFlight, in.Now.Add(in.Policy.Retry), "configuration entry %d is not committed", obs.ConfigIndex)
	}
	// promote-only-caught-up-and-durable
	// Members that are not caught up at all come before those that are
	// only stabilizing: they are what the wait is really for.
	var stabilizing []Violation
	for _, v := range newVoters {
		if ok, stab, until, why := caughtUp(in, v); !ok {
			if stab {
				stabilizing = append(stabilizing, Violation{Invariant: PromoteOnlyCaughtUp, Until: until, Why: why})
				continue
			}
			add(PromoteOnlyCaughtUp, until, "%s", why)
		}
	}
	out = append(out, stabilizing...)
	// joint-consensus
	switch s.Op {
	case OpChangeVoters:
		if n := symmetricDiff(voters, s.Voters); n > 1 || cfg.IsJoint() {
			add(JointConsensus, time.Time{}, "one step would change %d voters", n)
		}
	case OpEnterJoint:
		if cfg.IsJoint() {
			add(JointConsensus, time.Time{}, "the configuration is already joint")
		}
	}
	// transfer-before-removal
	switch s.Op {
	case OpLeaveJoint:
		if !slices.Contains(voters, obs.Leader) {
			add(TransferBeforeRemoval, time.Time{}, "leader %s is not in C_new", obs.Leader)
		}
	case OpRemoveMember:
		if s.Target == obs.Leader {
			add(TransferBeforeRemoval, time.Time{}, "%s is the leader", s.Target)
		}
	case OpChangeVoters:
		if !slices.Contains(s.Voters, obs.Leader) {
			add(TransferBeforeRemoval, time.Time{}, "leader %s is not in the new voters", obs.Leader)
		}
	case OpTransferLeader:
		if !slices.Contains(voters, s.Target) {
			add(TransferBeforeRemoval, time.Time{}, "transfer target %s is not an incoming voter", s.Target)
		}
	}
	// config-index-increases
	if s.ConfigIndex < in.SeenConfigIndex || s.ConfigIndex != obs.ConfigIndex {
		add(ConfigIndexIncreases, time.Time{}, "the step expects configuration index %d; observed %d, seen up to %d", s.ConfigIndex, obs.ConfigIndex, in.SeenConfigIndex)
	}
	// rate-limit
	if s.StartsChange && !in.LastChangeEnded.IsZero() && in.Now.Before(in.LastChangeEnded.Add(in.Policy.RateLimit)) {
		until := in.LastChangeEnded.Add(in.Policy.RateLimit)
		add(RateLimit, until, "the last change ended %v ago; the cooldown is %v", in.Now.Sub(in.LastChangeEnded), in.Policy.RateLimit)
	}
	// leader-stable
	if n, oldest := flaps(in); in.Policy.FlapThreshold > 0 && n > in.Policy.FlapThreshold {
		add(LeaderStable, oldest.Add(in.Policy.FlapWindow), "the leader changed %d times within %v", n, in.Policy.FlapWindow)
	}
	return out
}

// caughtUp tells whether id may be promoted: reachable, durable, within
// MaxLag of the leader's last index, and so for the stabilization period.
// stabilizing says it is caught up and only the period is not over.
func caughtUp(in Input, id string) (ok, stabilizing bool, until time.Time, why string) {
	m, found := in.Obs.Members[id]
	retry := in.Now.Add(in.Policy.Retry)
	switch {
	case !found:
		return false, false, retry, fmt.Sprintf("%s: no progress observed", id)
	case !m.Reachable:
		return false, false, retry, fmt.Sprintf("%s is unreachable", id)
	case !m.Durable:
		return false, false, retry, fmt.Sprintf("%s has not made its copy durable", id)
	case in.Obs.LastIndex > m.Match+in.Policy.MaxLag:
		return false, false, retry, fmt.Sprintf("%s lags: match %d, leader's last index %d, max lag %d", id, m.Match, in.Obs.LastIndex, in.Policy.MaxLag)
	}
	since, sampled := in.CaughtUpSince[id]
	if !sampled {
		return false, true, in.Now.Add(in.Policy.Stabilization), fmt.Sprintf("%s just caught up: stabilizing for %v", id, in.Policy.Stabilization)
	}
	if until := since.Add(in.Policy.Stabilization); in.Now.Before(until) {
		return false, true, until, fmt.Sprintf("%s caught up %v ago: stabilizing for %v", id, in.Now.Sub(since), in.Policy.Stabilization)
	}
	return true, false, time.Time{}, ""
}

func symmetricDiff(a, b []string) int {
	n := 0
	for _, x := range a {
		if !slices.Contains(b, x) {
			n++
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			n++
		}
	}
	return n
}

// Tracker remembers since when each member has been caught up, so that
// promotion waits for a stable sample, not a single one. Pure: the time comes
// from the observation.
type Tracker struct {
	since map[string]time.Time
}

// Observe updates the tracker and returns the caught-up-since map for Input.
func (t *Tracker) Observe(obs Observation, p Policy) map[string]time.Time {
	if t.since == nil {
		t.since = map[string]time.Time{}
	}
	for id, m := range obs.Members {
		if obs.Leader != "" && m.Reachable && m.Durable && obs.LastIndex <= m.Match+p.MaxLag {
			if _, ok := t.since[id]; !ok {
				t.since[id] = obs.At
			}
		} else {
			delete(t.since, id)
		}
	}
	for id := range t.since {
		if _, ok := obs.Members[id]; !ok {
			delete(t.since, id)
		}
	}
	out := make(map[string]time.Time, len(t.since))
	for k, v := range t.since {
		out[k] = v
	}
	return out
}
