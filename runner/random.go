package runner

import (
	"fmt"
	"slices"
	"time"

	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// random plays random faults in the background until the workload ends:
// one at a time, each undone after Hold (kill -> restart, pause -> resume,
// partition/delay/loss -> heal); pauseLeader holds the leader for its own
// time, three to four election timeouts, and the next fault waits for its
// resume; reconfigure and transferLeader are not undone. Choices come from
// the run's seeded source.
func (r *run) random(spec experiment.Random) {
	kinds := spec.Kinds
	if len(kinds) == 0 {
		kinds = experiment.RandomKinds
	}
	maxN := spec.MaxReplicas
	if maxN == 0 {
		maxN = min(r.exp.Cluster.Replicas+2, experiment.MaxNodes)
	}
	hold := min(spec.Hold.D(), spec.Every.D())
	var turn func()
	turn = func() {
		now := r.c.Now()
		if now >= r.workloadEnd || r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		kind := kinds[r.rng.IntN(len(kinds))]
		jitter := time.Duration(r.rng.Int64N(int64(spec.Every.D()) + 1))
		r.mu.Unlock()
		f := r.randomFault(kind, maxN)
		held := hold
		if f.hold > 0 {
			held = f.hold
		}
		rec := -1
		if f.label != "" {
			r.mu.Lock()
			rec = len(r.steps)
			r.steps = append(r.steps, StepRecord{Index: 0, Action: "random", Label: f.label, StartMs: now.Milliseconds(), EndMs: (now + held).Milliseconds(), OK: true})
			r.phase = "random faults"
			r.mu.Unlock()
			r.logf("random: %s", f.label)
		}
		if f.undo != nil {
			r.c.After(now+held, func() {
				note, err := f.undo()
				r.mu.Lock()
				defer r.mu.Unlock()
				if rec >= 0 {
					if err != nil {
						r.steps[rec].OK = false
						note = fmt.Sprintf("undo: %v", err)
					}
					r.steps[rec].Note = note
				}
			})
		}
		r.c.After(now+max(spec.Every.D(), held)+jitter, turn)
	}
	r.c.After(r.c.Now(), turn)
}

func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// fault is one random fault applied: its step label, how to undo it (the
// undo may return a note for the step record) and, when it is not the
// random step's hold, how long it lasts.
type fault struct {
	label string
	undo  func() (string, error)
	hold  time.Duration
}

// PauseLeaderLabel begins the label of a random pauseLeader fault in the
// steps of result.json: "pause leader kv-1 (term 3) for 712ms, election
// timeout 300ms"; the step's note says who led when it resumed.
const PauseLeaderLabel = "pause leader "

func undoWith(f func() error) func() (string, error) {
	return func() (string, error) { return "", f() }
}

func (r *run) pickOne(ids []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ids[r.rng.IntN(len(ids))]
}

// randomFault applies one fault and returns how to undo it (a zero fault:
// nothing applied).
func (r *run) randomFault(kind string, maxN int) fault {
	v := r.c.Observe(r.ctx)
	var up []string
	for _, n := range v.Nodes {
		if n.Up && !n.Paused {
			up = append(up, n.ID)
		}
	}
	if len(up) == 0 {
		return fault{}
	}
	et := r.exp.Cluster.ElectionTimeoutMs
	switch kind {
	case "partition":
		groups, err := r.partitionGroups(experiment.Partition{Shape: "majority-minority"})
		if err != nil {
			return fault{}
		}
		if err := r.blockGroups(groups); err != nil {
			r.note("random partition: %v", err)
		}
		return fault{label: "partition " + groupsText(groups), undo: undoWith(r.heal)}
	case "kill":
		id := r.pickOne(up)
		if err := r.c.Kill(id); err != nil {
			return fault{}
		}
		return fault{label: "kill " + id, undo: undoWith(func() error { return r.restart(id) })}
	case "pause":
		id := r.pickOne(up)
		if err := r.c.Pause(id); err != nil {
			return fault{}
		}
		r.mu.Lock()
		r.paused[id] = true
		r.mu.Unlock()
		return fault{label: "pause " + id, undo: undoWith(func() error { return r.resumeNode(id) })}
	case "pauseLeader":
		// Three to four election timeouts, longer than any randomized
		// one (et..2et): the others elect a leader and commit for at
		// least another election timeout while this one sleeps, and it
		// wakes to the heartbeat answers and requests that waited for it.
		lead := v.Leader
		if lead == "" {
			return fault{}
		}
		term := v.Node(lead).Term
		r.mu.Lock()
		d := time.Duration(3*et+r.rng.IntN(et+1)) * time.Millisecond
		r.mu.Unlock()
		if err := r.c.Pause(lead); err != nil {
			return fault{}
		}
		r.mu.Lock()
		r.paused[lead] = true
		r.mu.Unlock()
		return fault{label: fmt.Sprintf("%s%s (term %d) for %dms, election timeout %dms", PauseLeaderLabel, lead, term, d.Milliseconds(), et),
			hold: d, undo: func() (string, error) {
				v := r.c.Observe(r.ctx)
				note := "no other leader at resume"
				if l := v.Leader; l != "" && l != lead {
					note = fmt.Sprintf("%s led term %d at resume", l, v.Node(l).Term)
				}
				return note, r.resumeNode(lead)
			}}
	case "delay":
		if err := r.c.SetFault("", "", backend.Fault{DelayMs: et / 3, JitterMs: et / 3}); err != nil {
			return fault{}
		}
		return fault{label: fmt.Sprintf("delay all links %dms +- %dms", et/3, et/3), undo: undoWith(r.heal)}
	case "loss":
		id := r.pickOne(up)
		_ = r.c.SetFault(id, "", backend.Fault{LossPercent: 20})
		_ = r.c.SetFault("", id, backend.Fault{LossPercent: 20})
		return fault{label: "loss 20% at " + id, undo: undoWith(r.heal)}
	case "reconfigure":
		var pool []string
		for i := 0; i < maxN; i++ {
			pool = append(pool, nodeName(i))
		}
		size := 3
		r.mu.Lock()
		if maxN >= 5 && r.rng.IntN(2) == 0 {
			size = 5
		}
		r.mu.Unlock()
		voters := slices.Sorted(slices.Values(r.shuffled(pool)[:min(size, len(pool))]))
		if err := r.reconfigure(voters); err != nil {
			r.note("random reconfigure: %v", err)
			return fault{}
		}
		return fault{label: fmt.Sprintf("reconfigure to %v", voters)}
	case "transferLeader":
		id := r.pickOne(up)
		r.mu.Lock()
		r.transferAt = r.c.Now()
		r.mu.Unlock()
		_ = r.c.TransferLeader(id)
		return fault{label: "transfer leadership to " + id}
	}
	return fault{}
}

func (r *run) resumeNode(id string) error {
	r.mu.Lock()
	delete(r.paused, id)
	r.mu.Unlock()
	return r.c.Resume(id)
}

func (r *run) heal() error {
	r.mu.Lock()
	r.blocked = map[[2]string]bool{}
	r.mu.Unlock()
	return r.c.Heal()
}
