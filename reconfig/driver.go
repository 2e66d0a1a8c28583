package reconfig

import (
	"context"
	"errors"
	"time"
)

// Clock is the driver's time source: the real clock, or the simulator's.
type Clock interface{ Now() time.Time }

// EventKind names what a driver reports.
type EventKind string

const (
	EventStepStarted EventKind = "step-started"
	EventStepDone    EventKind = "step-done"
	EventStepFailed  EventKind = "step-failed"
	EventWaiting     EventKind = "waiting"
	EventBlocked     EventKind = "blocked"
	EventDone        EventKind = "done"
)

// Event is one line of a driver's timeline: the operator turns them into
// Kubernetes events, the runner into its timeline.
type Event struct {
	At       time.Time
	Kind     EventKind
	Decision Decision
	Err      error
	// Obs is the observation the decision was made on.
	Obs Observation
}

// Driver loops observe, decide, act. It keeps what a decision needs from
// the past (caught-up tracking, leader changes, the highest configuration
// index seen, the end of the last change, the retry backoff); a new Driver
// (an operator restart) starts from observations alone, which is safe
// because every step carries the configuration index it expects.
type Driver struct {
	Admin   Admin
	Mode    Mode
	Policy  Policy
	Desired []string
	Clock   Clock
	// OnEvent, if set, receives every event.
	OnEvent func(Event)
	// LastChangeEnded is when the last change ended; an operator restores
	// it from its status (lastReconfigAt) so that the rate limit holds across
	// restarts.
	LastChangeEnded time.Time

	tracker       Tracker
	seen          uint64
	lastLeader    string
	leaderChanges []time.Time
	failures      int
	retryAt       time.Time
}

// Step runs one round: observe, decide, and carry out at most one step. It
// returns the decision (Wait with Until says when to call again).
func (d *Driver) Step(ctx context.Context) Decision {
	now := d.Clock.Now()
	if now.Before(d.retryAt) {
		return Decision{Kind: Wait, Until: d.retryAt, Why: "backing off after a failed step"}
	}
	obs, err := d.Admin.Observe(ctx)
	if err != nil {
		dec := Decision{Kind: Wait, Until: now.Add(d.Policy.Retry), Why: "observe: " + err.Error()}
		d.emit(Event{At: now, Kind: EventWaiting, Decision: dec, Err: err})
		return dec
	}
	if obs.Leader != "" && obs.Leader != d.lastLeader {
		if d.lastLeader != "" {
			d.leaderChanges = append(d.leaderChanges, obs.At)
		}
		d.lastLeader = obs.Leader
	}
	// Forget leader changes older than the window.
	for len(d.leaderChanges) > 0 && now.Sub(d.leaderChanges[0]) > d.Policy.FlapWindow {
		d.leaderChanges = d.leaderChanges[1:]
	}
	changes := d.leaderChanges
	if obs.LeaderChanges != nil {
		changes = obs.LeaderChanges
	}
	in := Input{Obs: obs, Desired: d.Desired, Mode: d.Mode, Policy: d.Policy, Now: now,
		LastChangeEnded: d.LastChangeEnded, LeaderChanges: changes,
		CaughtUpSince: d.tracker.Observe(obs, d.Policy), SeenConfigIndex: d.seen}
	dec := Decide(in)
	if ci := obs.CommittedConfigIndex(); obs.Leader != "" && ci > d.seen {
		d.seen = ci
	}
	switch dec.Kind {
	case Wait:
		d.emit(Event{At: now, Kind: EventWaiting, Decision: dec, Obs: obs})
		return dec
	case Blocked:
		d.emit(Event{At: now, Kind: EventBlocked, Decision: dec, Obs: obs})
		return dec
	case Done:
		d.emit(Event{At: now, Kind: EventDone, Decision: dec, Obs: obs})
		return dec
	}
	d.emit(Event{At: now, Kind: EventStepStarted, Decision: dec, Obs: obs})
	err = Do(ctx, d.Admin, dec.Step)
	now = d.Clock.Now()
	switch {
	case err == nil:
		d.failures = 0
		if dec.Step.EndsChange {
			d.LastChangeEnded = now
		}
		d.emit(Event{At: now, Kind: EventStepDone, Decision: dec, Obs: obs})
	case errors.Is(err, ErrPending):
		d.failures = 0
		wait := Decision{Kind: Wait, Until: now.Add(d.Policy.Retry), Why: dec.Step.String() + ": not yet"}
		d.emit(Event{At: now, Kind: EventWaiting, Decision: wait, Obs: obs})
		return wait
	case errors.Is(err, ErrUnknownOutcome), errors.Is(err, ErrConfigMoved):
		// Never repeat blindly: the next round observes first, and the
		// step's expected configuration index guards the repeat.
		d.emit(Event{At: now, Kind: EventStepFailed, Decision: dec, Err: err, Obs: obs})
	default:
		d.failures++
		backoff := d.Policy.Retry << min(d.failures-1, 16)
		if d.Policy.MaxRetry > 0 && backoff > d.Policy.MaxRetry {
			backoff = d.Policy.MaxRetry
		}
		d.retryAt = now.Add(backoff)
		d.emit(Event{At: now, Kind: EventStepFailed, Decision: dec, Err: err, Obs: obs})
	}
	return dec
}

// Run calls Step until the desired membership is reached or ctx ends,
// sleeping between rounds on the real clock. (The simulator calls Step
// itself, between ticks of its virtual clock.)
func (d *Driver) Run(ctx context.Context, poll time.Duration) error {
	for {
		dec := d.Step(ctx)
		if dec.Kind == Done {
			return nil
		}
		wait := poll
		if dec.Kind == Wait && !dec.Until.IsZero() {
			if w := dec.Until.Sub(d.Clock.Now()); w > 0 && w < wait {
				wait = w
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (d *Driver) emit(e Event) {
	if d.OnEvent != nil {
		d.OnEvent(e)
	}
}
