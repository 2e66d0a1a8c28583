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
// partition/delay/loss -> heal); reconfigure and transferLeader are not
// undone. Choices come from the run's seeded source.
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
		undo, label := r.randomFault(kind, maxN)
		if label != "" {
			r.mu.Lock()
			r.steps = append(r.steps, StepRecord{Index: 0, Action: "random", Label: label, StartMs: now.Milliseconds(), EndMs: (now + hold).Milliseconds(), OK: true})
			r.phase = "random faults"
			r.mu.Unlock()
			r.logf("random: %s", label)
		}
		if undo != nil {
			r.c.After(now+hold, func() {
				if err := undo(); err != nil {
					r.note("random: undo %s: %v", label, err)
				}
			})
		}
		r.c.After(now+spec.Every.D()+jitter, turn)
	}
	r.c.After(r.c.Now(), turn)
}

func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *run) pickOne(ids []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ids[r.rng.IntN(len(ids))]
}

// randomFault applies one fault and returns how to undo it.
func (r *run) randomFault(kind string, maxN int) (func() error, string) {
	v := r.c.Observe(r.ctx)
	var up []string
	for _, n := range v.Nodes {
		if n.Up && !n.Paused {
			up = append(up, n.ID)
		}
	}
	if len(up) == 0 {
		return nil, ""
	}
	et := r.exp.Cluster.ElectionTimeoutMs
	switch kind {
	case "partition":
		groups, err := r.partitionGroups(experiment.Partition{Shape: "majority-minority"})
		if err != nil {
			return nil, ""
		}
		if err := r.blockGroups(groups); err != nil {
			r.note("random partition: %v", err)
		}
		return r.heal, "partition " + groupsText(groups)
	case "kill":
		id := r.pickOne(up)
		if err := r.c.Kill(id); err != nil {
			return nil, ""
		}
		return func() error { return r.restart(id) }, "kill " + id
	case "pause":
		id := r.pickOne(up)
		if err := r.c.Pause(id); err != nil {
			return nil, ""
		}
		r.mu.Lock()
		r.paused[id] = true
		r.mu.Unlock()
		return func() error {
			r.mu.Lock()
			delete(r.paused, id)
			r.mu.Unlock()
			return r.c.Resume(id)
		}, "pause " + id
	case "delay":
		if err := r.c.SetFault("", "", backend.Fault{DelayMs: et / 3, JitterMs: et / 3}); err != nil {
			return nil, ""
		}
		return r.heal, fmt.Sprintf("delay all links %dms +- %dms", et/3, et/3)
	case "loss":
		id := r.pickOne(up)
		_ = r.c.SetFault(id, "", backend.Fault{LossPercent: 20})
		_ = r.c.SetFault("", id, backend.Fault{LossPercent: 20})
		return r.heal, "loss 20% at " + id
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
			return nil, ""
		}
		return nil, fmt.Sprintf("reconfigure to %v", voters)
	case "transferLeader":
		id := r.pickOne(up)
		r.mu.Lock()
		r.transferAt = r.c.Now()
		r.mu.Unlock()
		_ = r.c.TransferLeader(id)
		return nil, "transfer leadership to " + id
	}
	return nil, ""
}

func (r *run) heal() error {
	r.mu.Lock()
	r.blocked = map[[2]string]bool{}
	r.mu.Unlock()
	return r.c.Heal()
}
