package raftcore

import (
	"fmt"
	"strings"
)

// None is the empty node id: no leader, no vote.
const None = ""

// StateType is a node's role.
type StateType int

// The roles. PreCandidate is the PreVote phase (Raft thesis §9.6).
const (
	StateFollower StateType = iota
	StateCandidate
	StateLeader
	StatePreCandidate
)

var stateNames = [...]string{"follower", "candidate", "leader", "pre-candidate"}

func (s StateType) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// EntryType tells what an entry carries.
type EntryType uint8

const (
	// EntryNormal is application data; an empty one is the leader's no-op.
	EntryNormal EntryType = iota
	// EntryConfig carries a whole Config (see EncodeConfig). Membership lives
	// only in such entries and takes effect when the entry is appended.
	EntryConfig
)

func (t EntryType) String() string {
	if t == EntryConfig {
		return "config"
	}
	return "normal"
}

// Entry is one log entry.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// String is the one text form of an entry: 3/7 "put k=1" or 3/8 config voters=(...).
func (e Entry) String() string {
	switch {
	case e.Type == EntryConfig:
		c, err := DecodeConfig(e.Data)
		if err != nil {
			return fmt.Sprintf("%d/%d config <%v>", e.Term, e.Index, err)
		}
		return fmt.Sprintf("%d/%d config %s", e.Term, e.Index, c)
	case len(e.Data) == 0:
		return fmt.Sprintf("%d/%d no-op", e.Term, e.Index)
	default:
		return fmt.Sprintf("%d/%d %q", e.Term, e.Index, e.Data)
	}
}

// size is the payload size used for flow control.
func (e *Entry) size() int { return len(e.Data) + 24 }

// HardState is what must be durable before a message that depends on it is
// sent (Raft paper, Figure 2, "persistent state on all servers"; Commit is
// persisted too so that a restarted node can apply without waiting).
type HardState struct {
	Term   uint64
	Vote   string
	Commit uint64
}

// IsEmpty reports the zero value.
func (h HardState) IsEmpty() bool { return h == HardState{} }

// SnapshotMeta describes a snapshot: the last index and term it covers and
// the configuration in force at that index.
type SnapshotMeta struct {
	Index  uint64
	Term   uint64
	Config Config
}

// Snapshot is an application snapshot with its metadata.
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// IsEmpty reports a snapshot that covers nothing.
func (s Snapshot) IsEmpty() bool { return s.Meta.Index == 0 }

// MessageType enumerates the messages of the protocol. Local messages (Term 0,
// never sent on the wire) drive a node from its caller.
type MessageType uint8

const (
	MsgHup            MessageType = iota // local: start an election
	MsgBeat                              // local: leader sends heartbeats
	MsgProp                              // propose entries (local, or forwarded to the leader)
	MsgApp                               // AppendEntries
	MsgAppResp                           // AppendEntries response
	MsgVote                              // RequestVote
	MsgVoteResp                          // RequestVote response
	MsgPreVote                           // PreVote request (thesis §9.6)
	MsgPreVoteResp                       // PreVote response
	MsgSnap                              // InstallSnapshot
	MsgHeartbeat                         // heartbeat (AppendEntries without entries), numbered by Round
	MsgHeartbeatResp                     // heartbeat response
	MsgTransferLeader                    // local or forwarded: move leadership to From
	MsgTimeoutNow                        // leader tells a caught-up voter to campaign at once (thesis §3.10)
	MsgReadIndex                         // ReadIndex request (thesis §6.4)
	MsgReadIndexResp                     // ReadIndex response
	MsgSnapStatus                        // local: the caller reports whether a snapshot was delivered
	MsgUnreachable                       // local: the caller reports a peer unreachable
	msgTypeCount
)

var msgNames = [...]string{
	"MsgHup", "MsgBeat", "MsgProp", "MsgApp", "MsgAppResp", "MsgVote", "MsgVoteResp",
	"MsgPreVote", "MsgPreVoteResp", "MsgSnap", "MsgHeartbeat", "MsgHeartbeatResp",
	"MsgTransferLeader", "MsgTimeoutNow", "MsgReadIndex", "MsgReadIndexResp",
	"MsgSnapStatus", "MsgUnreachable",
}

func (t MessageType) String() string {
	if t < msgTypeCount {
		return msgNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", int(t))
}

// IsForwarded reports the requests a follower passes on to its leader with
// their originator (or, for a transfer, its target) as From: a transport
// that checks From against the connection's peer must let these through.
func (t MessageType) IsForwarded() bool {
	return t == MsgProp || t == MsgReadIndex || t == MsgTransferLeader
}

// isLocal reports messages that only the caller may feed to Step.
func (t MessageType) isLocal() bool {
	return t == MsgHup || t == MsgBeat || t == MsgSnapStatus || t == MsgUnreachable
}

// Message is the one message struct of the protocol; which fields matter
// depends on Type. It is plain data so that transports can copy or encode it.
type Message struct {
	Type    MessageType
	From    string
	To      string
	Term    uint64
	LogTerm uint64 // MsgApp: term of Index; votes: term of the candidate's last entry; rejections: hint term
	Index   uint64 // MsgApp: index before Entries; MsgAppResp: last matching index or rejected index
	Entries []Entry
	Commit  uint64
	// Reject and RejectHint: a follower that cannot append says so, and gives
	// the index (with LogTerm) from which the leader should search back.
	Reject     bool
	RejectHint uint64
	Snapshot   *Snapshot
	// Context carries a ReadIndex request id on MsgReadIndex and
	// MsgReadIndexResp, and the "transfer" flag on votes of a leader
	// transfer. The core never matches on it: it is the caller's.
	Context []byte
	// Round numbers a leader's heartbeats within its term; a MsgHeartbeatResp
	// echoes the round it answers. A read is released once a quorum has
	// acknowledged a round sent after the read arrived (thesis §6.4).
	Round uint64
}

// String is the text form used in logs and golden test files.
func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s %s Term:%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgApp:
		fmt.Fprintf(&b, " Log:%d/%d Commit:%d", m.LogTerm, m.Index, m.Commit)
	case MsgAppResp:
		fmt.Fprintf(&b, " Index:%d", m.Index)
		if m.Reject {
			fmt.Fprintf(&b, " Rejected (Hint: %d/%d)", m.LogTerm, m.RejectHint)
		}
	case MsgVote, MsgPreVote:
		fmt.Fprintf(&b, " Log:%d/%d", m.LogTerm, m.Index)
	case MsgVoteResp, MsgPreVoteResp:
		if m.Reject {
			b.WriteString(" Rejected")
		}
	case MsgHeartbeat:
		fmt.Fprintf(&b, " Commit:%d Round:%d", m.Commit, m.Round)
	case MsgHeartbeatResp:
		fmt.Fprintf(&b, " Round:%d", m.Round)
	case MsgSnap:
		if m.Snapshot != nil {
			fmt.Fprintf(&b, " Snapshot: Index:%d Term:%d Config:%s", m.Snapshot.Meta.Index, m.Snapshot.Meta.Term, m.Snapshot.Meta.Config)
		}
	case MsgReadIndexResp:
		fmt.Fprintf(&b, " Index:%d", m.Index)
	}
	if len(m.Context) > 0 {
		fmt.Fprintf(&b, " Context:%q", m.Context)
	}
	if len(m.Entries) > 0 {
		b.WriteString(" Entries:[")
		for i, e := range m.Entries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.String())
		}
		b.WriteString("]")
	}
	return b.String()
}
