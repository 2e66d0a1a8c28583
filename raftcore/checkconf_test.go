package raftcore_test

import (
	"errors"
	"testing"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// CheckConfChange refuses exactly what ProposeConfChange refuses, returns
// the configuration it would make, and appends nothing.
func TestCheckConfChangeAppendsNothing(t *testing.T) {
	c, err := memcluster.New(memcluster.Options{ElectionTick: 10, HeartbeatTick: 1}, "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ElectLeader("a"); err != nil {
		t.Fatal(err)
	}
	rn, _ := c.RN("a")
	last := rn.BasicStatus().LastIndex
	next, err := rn.CheckConfChange(raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "d"})
	if err != nil || next.String() != "voters=(a b c) learners=(d)" {
		t.Fatalf("CheckConfChange(add d) = %s, %v", next, err)
	}
	if _, err := rn.CheckConfChange(raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "b"}); !errors.Is(err, raftcore.ErrInvalidConfig) {
		t.Fatalf("add-learner of a voter: %v, want ErrInvalidConfig", err)
	}
	if err := rn.ProposeConfChange(raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "b"}); !errors.Is(err, raftcore.ErrInvalidConfig) {
		t.Fatalf("ProposeConfChange disagrees with CheckConfChange: %v", err)
	}
	if s := rn.BasicStatus(); s.LastIndex != last || s.Config.String() != "voters=(a b c)" {
		t.Fatalf("a check changed the node: %s", s)
	}
	b, _ := c.RN("b")
	if _, err := b.CheckConfChange(raftcore.ConfChange{Op: raftcore.OpAddLearner, ID: "d"}); !errors.Is(err, raftcore.ErrNotLeader) {
		t.Fatalf("on a follower: %v, want ErrNotLeader", err)
	}
}
