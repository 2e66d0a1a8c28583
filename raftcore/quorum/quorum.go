package quorum

import (
	"slices"
	"strings"
)

// VoteResult is the outcome of counting votes.
type VoteResult int

const (
	// VotePending means the outcome is not decided yet: more votes may win.
	VotePending VoteResult = iota + 1
	// VoteLost means enough voters rejected that the election cannot be won.
	VoteLost
	// VoteWon means a quorum granted.
	VoteWon
)

func (v VoteResult) String() string {
	switch v {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return "unknown"
}

// MajorityConfig is a set of voters. The empty set is a special case: it has
// no opinion, so it wins every vote and commits every index, which makes a
// JointConfig with an empty outgoing half behave like its incoming half.
type MajorityConfig []string

// String prints the sorted ids in parentheses: (kv-0 kv-1 kv-2).
func (c MajorityConfig) String() string {
	s := slices.Clone([]string(c))
	slices.Sort(s)
	return "(" + strings.Join(s, " ") + ")"
}

// Contains reports whether id is one of the voters.
func (c MajorityConfig) Contains(id string) bool { return slices.Contains(c, id) }

// AckedIndexer gives the acknowledged (match) index of a voter, and false when
// the voter is unknown to the caller.
type AckedIndexer interface {
	AckedIndex(id string) (uint64, bool)
}

// MapAckIndexer is an AckedIndexer over a map.
type MapAckIndexer map[string]uint64

// AckedIndex implements AckedIndexer.
func (m MapAckIndexer) AckedIndex(id string) (uint64, bool) {
	idx, ok := m[id]
	return idx, ok
}

// CommittedIndex returns the largest index acknowledged by a majority of the
// voters. Unknown voters count as having acknowledged index 0.
func (c MajorityConfig) CommittedIndex(l AckedIndexer) uint64 {
	n := len(c)
	if n == 0 {
		return ^uint64(0) // no opinion: see the type comment
	}
	// Small configurations are the norm: sort on the stack.
	var stack [7]uint64
	var srt []uint64
	if n <= len(stack) {
		srt = stack[:n]
	} else {
		srt = make([]uint64, n)
	}
	for i, id := range c {
		idx, _ := l.AckedIndex(id)
		srt[i] = idx
	}
	// Insertion sort, descending: n is tiny and this allocates nothing.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && srt[j-1] < srt[j]; j-- {
			srt[j-1], srt[j] = srt[j], srt[j-1]
		}
	}
	// With n voters, the (n/2+1)-th largest index is held by a majority.
	return srt[n/2]
}

// VoteResult counts votes: votes[id] is true for a grant, false for a
// rejection, absent when the voter has not answered.
func (c MajorityConfig) VoteResult(votes map[string]bool) VoteResult {
	if len(c) == 0 {
		return VoteWon
	}
	granted, missing := 0, 0
	for _, id := range c {
		v, ok := votes[id]
		switch {
		case !ok:
			missing++
		case v:
			granted++
		}
	}
	q := len(c)/2 + 1
	if granted >= q {
		return VoteWon
	}
	if granted+missing >= q {
		return VotePending
	}
	return VoteLost
}

// JointConfig is an incoming and an outgoing voter set. Outside of joint
// consensus the outgoing set is empty.
type JointConfig [2]MajorityConfig

// String prints (incoming)&&(outgoing), or just (incoming) when not joint.
func (c JointConfig) String() string {
	if len(c[1]) > 0 {
		return c[0].String() + "&&" + c[1].String()
	}
	return c[0].String()
}

// CommittedIndex is the largest index committed in both halves.
func (c JointConfig) CommittedIndex(l AckedIndexer) uint64 {
	return min(c[0].CommittedIndex(l), c[1].CommittedIndex(l))
}

// VoteResult wins only if both halves win and loses if either loses.
func (c JointConfig) VoteResult(votes map[string]bool) VoteResult {
	r0, r1 := c[0].VoteResult(votes), c[1].VoteResult(votes)
	if r0 == r1 {
		return r0
	}
	if r0 == VoteLost || r1 == VoteLost {
		return VoteLost
	}
	return VotePending
}
