package reconfig

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// stubAdmin answers Observe with obs and fails every step with err.
type stubAdmin struct {
	obs   Observation
	err   error
	calls int
}

func (a *stubAdmin) Observe(context.Context) (Observation, error) { return a.obs, nil }
func (a *stubAdmin) step() error                                  { a.calls++; return a.err }
func (a *stubAdmin) AddLearner(context.Context, string, uint64) error {
	return a.step()
}
func (a *stubAdmin) EnterJoint(context.Context, []string, uint64) error { return a.step() }
func (a *stubAdmin) CommitNew(context.Context, uint64) error            { return a.step() }
func (a *stubAdmin) LeaveJoint(context.Context, uint64) error           { return a.step() }
func (a *stubAdmin) TransferLeader(context.Context, string) error       { return a.step() }
func (a *stubAdmin) RemoveMember(context.Context, string, uint64) error { return a.step() }
func (a *stubAdmin) ChangeVoters(context.Context, []string, uint64) error {
	return a.step()
}

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

func threeVoters(clock *fixedClock) Observation {
	return Observation{At: clock.t, Leader: "kv-0", LastIndex: 10, Config: raftcore.NewConfig([]string{"kv-0", "kv-1", "kv-2"}),
		ConfigIndex: 1, Committed: true}
}

// A failed step is retried after an exponential backoff, not at once; an
// unknown outcome is re-observed at once, never backed off blindly.
func TestDriverBacksOffAfterFailure(t *testing.T) {
	clock := &fixedClock{t: t0}
	admin := &stubAdmin{obs: threeVoters(clock), err: errors.New("connection refused")}
	p := testPolicy
	d := &Driver{Admin: admin, Mode: Safe, Policy: p, Desired: []string{"kv-0", "kv-1", "kv-2", "kv-3"}, Clock: clock}
	ctx := context.Background()
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		d.Step(ctx) // acts and fails
		if admin.calls != i+1 {
			t.Fatalf("round %d: %d admin calls, want %d", i, admin.calls, i+1)
		}
		dec := d.Step(ctx) // within the backoff: no call
		if dec.Kind != Wait || !dec.Until.Equal(clock.t.Add(want)) || admin.calls != i+1 {
			t.Fatalf("round %d: %v after %d calls, want a wait of %v and no call", i, dec, admin.calls, want)
		}
		clock.t = dec.Until
		admin.obs.At = clock.t
	}
	admin.err = ErrUnknownOutcome
	d.Step(ctx)
	calls := admin.calls
	if dec := d.Step(ctx); dec.Kind != Act || admin.calls != calls+1 {
		t.Fatalf("after an unknown outcome: %v, %d calls; want an immediate re-observe and act", dec, admin.calls-calls)
	}
}

// Run returns once the membership is reached, and ctx's error when it ends
// first.
func TestDriverRun(t *testing.T) {
	clock := &fixedClock{t: t0}
	admin := &stubAdmin{obs: threeVoters(clock)}
	d := &Driver{Admin: admin, Mode: Safe, Policy: testPolicy, Desired: []string{"kv-2", "kv-1", "kv-0"}, Clock: clock}
	if err := d.Run(context.Background(), time.Hour); err != nil {
		t.Fatalf("Run at the desired membership: %v", err)
	}
	admin.obs.Leader = ""
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with an ended context: %v, want context.Canceled", err)
	}
}

// Leadership flapping is judged from the cluster's own record: six leader
// changes in 1.8 s just before a scale-out make a driver that has just
// started (it saw none of them) wait, with LeaderStable, until the window
// has passed them.
func TestDriverJudgesFlappingFromTheClusterRecord(t *testing.T) {
	clock := &fixedClock{t: t0}
	obs := threeVoters(clock)
	for i := range 6 {
		obs.LeaderChanges = append(obs.LeaderChanges, clock.t.Add(-1800*time.Millisecond+time.Duration(i)*300*time.Millisecond))
	}
	admin := &stubAdmin{obs: obs}
	p := testPolicy
	d := &Driver{Admin: admin, Mode: Safe, Policy: p, Desired: []string{"kv-0", "kv-1", "kv-2", "kv-3"}, Clock: clock}
	dec := d.Step(context.Background())
	if dec.Kind != Wait || dec.Invariant != LeaderStable || admin.calls != 0 {
		t.Fatalf("after 6 leader changes in 1.8 s: %v with %d admin calls, want a LeaderStable wait and no call", dec, admin.calls)
	}
	if want := obs.LeaderChanges[0].Add(p.FlapWindow); !dec.Until.Equal(want) {
		t.Fatalf("wait until %v, want %v (the oldest change leaves the window)", dec.Until, want)
	}
	// Without the record, the same fresh driver would have acted.
	admin.obs.LeaderChanges = nil
	d2 := &Driver{Admin: admin, Mode: Safe, Policy: p, Desired: []string{"kv-0", "kv-1", "kv-2", "kv-3"}, Clock: clock}
	if dec := d2.Step(context.Background()); dec.Kind != Act {
		t.Fatalf("without a record: %v, want the AddLearner it could not know to hold back", dec)
	}
}
