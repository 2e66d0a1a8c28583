package quorum

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveCommitted finds the largest index that a majority of c acknowledged by
// trying every candidate index: slow and obviously right.
func naiveCommitted(c MajorityConfig, acks map[string]uint64) uint64 {
	if len(c) == 0 {
		return ^uint64(0)
	}
	var best uint64
	for _, cand := range acks {
		n := 0
		for _, id := range c {
			if acks[id] >= cand {
				n++
			}
		}
		if n > len(c)/2 && cand > best {
			best = cand
		}
	}
	return best
}

// TestCommittedIndexMatchesNaive checks the fast path against the naive one on
// random inputs (in the manner of etcd-io/raft quorum/quick_test.go).
func TestCommittedIndexMatchesNaive(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for iter := 0; iter < 20000; iter++ {
		ids := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		inc := MajorityConfig(slices.Clone(ids[:rng.IntN(9)]))
		rest := ids[rng.IntN(9):]
		out := MajorityConfig(slices.Clone(rest[:rng.IntN(len(rest)+1)]))
		acks := map[string]uint64{}
		for _, id := range ids {
			if rng.IntN(4) > 0 {
				acks[id] = uint64(rng.IntN(10))
			}
		}
		for _, id := range ids {
			if _, ok := acks[id]; !ok {
				acks[id] = 0
			}
		}
		got := JointConfig{inc, out}.CommittedIndex(MapAckIndexer(acks))
		want := min(naiveCommitted(inc, acks), naiveCommitted(out, acks))
		if got != want {
			t.Fatalf("seed %d: config %v acks %v: got %d want %d", seed, JointConfig{inc, out}, acks, got, want)
		}
	}
}

func TestVoteResult(t *testing.T) {
	c := JointConfig{{"a", "b", "c"}, {"a", "d"}}
	cases := []struct {
		votes map[string]bool
		want  VoteResult
	}{
		{map[string]bool{}, VotePending},
		{map[string]bool{"a": true, "b": true}, VotePending}, // outgoing needs d too
		{map[string]bool{"a": true, "b": true, "d": true}, VoteWon},
		{map[string]bool{"a": true, "b": true, "d": false}, VoteLost},
		{map[string]bool{"b": false, "c": false}, VoteLost},
		// A learner's vote is never passed in a config, so it cannot count.
		{map[string]bool{"x": true, "y": true, "a": true}, VotePending},
	}
	for i, tc := range cases {
		if got := c.VoteResult(tc.votes); got != tc.want {
			t.Errorf("case %d: %v: got %v want %v", i, tc.votes, got, tc.want)
		}
	}
	if got := fmt.Sprint(c); got != "(a b c)&&(a d)" {
		t.Errorf("String() = %q", got)
	}
}
