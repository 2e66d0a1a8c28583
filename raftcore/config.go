package raftcore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/raftlab/raftlab/raftcore/quorum"
)

// Config is a cluster membership. Voters is the incoming (or only) voter set;
// OutgoingVoters is non-empty only during joint consensus (Raft paper §6),
// when elections and commitment need a majority of both. Learners replicate
// but never vote, are never counted in a quorum and never campaign. A node may
// be in OutgoingVoters and Learners at once (a voter being demoted); it is a
// voter until the joint phase ends. Slices are kept sorted.
type Config struct {
	Voters         []string
	OutgoingVoters []string
	Learners       []string
}

// JointState is where a node's configuration stands in a joint change.
type JointState int

const (
	// JointNone: no joint configuration in the log tail.
	JointNone JointState = iota
	// JointEntering: C_old,new is appended but not committed.
	JointEntering
	// JointCommitted: C_old,new is committed; C_new may be appended.
	JointCommitted
	// JointLeaving: C_new is appended after C_old,new but not committed.
	JointLeaving
)

var jointNames = [...]string{"none", "entering", "committed", "leaving"}

func (j JointState) String() string {
	if int(j) < len(jointNames) {
		return jointNames[j]
	}
	return fmt.Sprintf("joint(%d)", int(j))
}

// NewConfig builds a simple (non-joint) configuration, sorted and deduplicated.
func NewConfig(voters []string, learners ...string) Config {
	return Config{Voters: sortedSet(voters), Learners: sortedSet(learners)}.normalized()
}

func sortedSet(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}

func (c Config) normalized() Config {
	return Config{Voters: sortedSet(c.Voters), OutgoingVoters: sortedSet(c.OutgoingVoters), Learners: sortedSet(c.Learners)}
}

// IsJoint reports whether this is a joint configuration C_old,new.
func (c Config) IsJoint() bool { return len(c.OutgoingVoters) > 0 }

// IsEmpty reports a configuration with no members at all.
func (c Config) IsEmpty() bool {
	return len(c.Voters) == 0 && len(c.OutgoingVoters) == 0 && len(c.Learners) == 0
}

// IsVoter reports whether id votes in this configuration (in either half).
func (c Config) IsVoter(id string) bool {
	return slices.Contains(c.Voters, id) || slices.Contains(c.OutgoingVoters, id)
}

// IsLearner reports whether id is a learner and not a voter in either half.
func (c Config) IsLearner(id string) bool {
	return slices.Contains(c.Learners, id) && !c.IsVoter(id)
}

// IsMember reports whether id is a voter or a learner.
func (c Config) IsMember(id string) bool {
	return c.IsVoter(id) || slices.Contains(c.Learners, id)
}

// Members returns every voter and learner, sorted.
func (c Config) Members() []string {
	all := slices.Concat(c.Voters, c.OutgoingVoters, c.Learners)
	slices.Sort(all)
	return slices.Compact(all)
}

// Quorum is the voter arithmetic of this configuration. Learners are not in
// it, so no quorum can ever count them.
func (c Config) Quorum() quorum.JointConfig {
	return quorum.JointConfig{c.Voters, c.OutgoingVoters}
}

// Equal compares two configurations as sets.
func (c Config) Equal(o Config) bool {
	a, b := c.normalized(), o.normalized()
	return slices.Equal(a.Voters, b.Voters) && slices.Equal(a.OutgoingVoters, b.OutgoingVoters) &&
		slices.Equal(a.Learners, b.Learners)
}

// Clone returns a deep copy.
func (c Config) Clone() Config {
	return Config{Voters: slices.Clone(c.Voters), OutgoingVoters: slices.Clone(c.OutgoingVoters), Learners: slices.Clone(c.Learners)}
}

// String is the one text form of a configuration, used by logs, golden files,
// status and results: voters=(kv-0 kv-1 kv-2)&&(kv-0 kv-1) learners=(kv-3).
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("voters=")
	b.WriteString(c.Quorum().String())
	if len(c.Learners) > 0 {
		b.WriteString(" learners=")
		b.WriteString(quorum.MajorityConfig(c.Learners).String())
	}
	return b.String()
}

// Validate checks the structural rules of a configuration.
func (c Config) Validate() error {
	if len(c.Voters) == 0 {
		return fmt.Errorf("%w: %s has no voters", ErrInvalidConfig, c)
	}
	for _, l := range c.Learners {
		if slices.Contains(c.Voters, l) {
			return fmt.Errorf("%w: %s is both a voter and a learner in %s", ErrInvalidConfig, l, c)
		}
	}
	for _, id := range c.Members() {
		if id == None {
			return fmt.Errorf("%w: empty node id in %s", ErrInvalidConfig, c)
		}
	}
	return nil
}

// voterChanges counts the voters added plus the voters removed between two
// simple configurations: a one-step change is safe only when this is at most
// one (Raft thesis §4.1).
func voterChanges(from, to []string) int {
	n := 0
	for _, v := range to {
		if !slices.Contains(from, v) {
			n++
		}
	}
	for _, v := range from {
		if !slices.Contains(to, v) {
			n++
		}
	}
	return n
}

const configEncodingVersion = 1

// EncodeConfig is the data of an EntryConfig entry: a version byte, then the
// three sets, each a uvarint count followed by uvarint-length-prefixed ids.
func EncodeConfig(c Config) []byte {
	c = c.normalized()
	buf := []byte{configEncodingVersion}
	for _, set := range [][]string{c.Voters, c.OutgoingVoters, c.Learners} {
		buf = binary.AppendUvarint(buf, uint64(len(set)))
		for _, id := range set {
			buf = binary.AppendUvarint(buf, uint64(len(id)))
			buf = append(buf, id...)
		}
	}
	return buf
}

var errBadConfigEncoding = errors.New("raftcore: malformed configuration entry")

// DecodeConfig is the inverse of EncodeConfig; it never panics on bad input.
func DecodeConfig(data []byte) (Config, error) {
	if len(data) == 0 || data[0] != configEncodingVersion {
		return Config{}, fmt.Errorf("%w: unknown version", errBadConfigEncoding)
	}
	data = data[1:]
	var sets [3][]string
	for i := range sets {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)) {
			return Config{}, fmt.Errorf("%w: bad count", errBadConfigEncoding)
		}
		data = data[k:]
		for j := uint64(0); j < n; j++ {
			l, k := binary.Uvarint(data)
			if k <= 0 || l > uint64(len(data)-k) {
				return Config{}, fmt.Errorf("%w: bad id length", errBadConfigEncoding)
			}
			sets[i] = append(sets[i], string(data[k:k+int(l)]))
			data = data[k+int(l):]
		}
	}
	if len(data) != 0 {
		return Config{}, fmt.Errorf("%w: %d trailing bytes", errBadConfigEncoding, len(data))
	}
	return Config{Voters: sets[0], OutgoingVoters: sets[1], Learners: sets[2]}.normalized(), nil
}
