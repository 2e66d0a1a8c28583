package raftcore_test

import (
	"fmt"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// Example builds a 3-node in-memory cluster, writes, and moves it from 3 to
// 5 voters the safe way: the new members join as learners, catch up, and are
// promoted through joint consensus (C_old,new, then C_new).
func Example() {
	c, err := memcluster.New(memcluster.Options{ElectionTick: 10, HeartbeatTick: 1, PreVote: true, CheckQuorum: true, Seed: 1},
		"kv-0", "kv-1", "kv-2")
	if err != nil {
		panic(err)
	}
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(c.ElectLeader("kv-0"))
	leader, _ := c.RN("kv-0")
	must(leader.Propose([]byte("x=1")))
	must(c.Stabilize())
	fmt.Println("kv-2 reads x =", c.Node("kv-2").KV["x"])

	// 1. Start the new members empty and add them as learners.
	for _, id := range []string{"kv-3", "kv-4"} {
		must(c.AddNode(id, nil))
		must(leader.AddLearner(id))
		must(c.Stabilize())
	}
	fmt.Println(leader.BasicStatus().Config)

	// 2. Wait until the learners hold the whole log.
	last := leader.BasicStatus().LastIndex
	must(c.WaitApplied(last, 100, "kv-3", "kv-4"))

	// 3. Enter the joint configuration; commits now need both majorities.
	must(leader.EnterJoint([]string{"kv-0", "kv-1", "kv-2", "kv-3", "kv-4"}))
	fmt.Println(leader.BasicStatus().Config, leader.BasicStatus().JointState)
	must(c.Stabilize())
	fmt.Println("joint state:", leader.BasicStatus().JointState)

	// 4. Leave it: C_new alone.
	must(leader.LeaveJoint())
	must(c.Stabilize())
	s := leader.BasicStatus()
	fmt.Println(s.Config, s.JointState)
	fmt.Println("kv-4 reads x =", c.Node("kv-4").KV["x"])
	_ = raftcore.None
	// Output:
	// kv-2 reads x = 1
	// voters=(kv-0 kv-1 kv-2) learners=(kv-3 kv-4)
	// voters=(kv-0 kv-1 kv-2 kv-3 kv-4)&&(kv-0 kv-1 kv-2) entering
	// joint state: committed
	// voters=(kv-0 kv-1 kv-2 kv-3 kv-4) none
	// kv-4 reads x = 1
}
