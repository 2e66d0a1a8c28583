// Package sm is raft-kv's state machine: the same pure code in the server
// and in the runner's simulator. It applies committed log entries (put and
// delete commands), answers reads from its map, and keeps a session table so
// that a write retried by a client (same client id and sequence number) is
// applied once and answered with its first result (Raft thesis §6.3). The
// session table is part of snapshots.
package sm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Op is a command's operation.
type Op uint8

const (
	OpPut Op = iota + 1
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one client write, as it travels in a log entry.
type Command struct {
	ClientID string
	Seq      uint64 // the client's request number; 0: no session (not deduplicated)
	Op       Op
	Key      string
	Value    []byte
}

const cmdVersion = 1

// Encode is the command's log entry payload.
func (c Command) Encode() []byte {
	b := make([]byte, 0, 1+1+10+len(c.ClientID)+10+10+len(c.Key)+10+len(c.Value))
	b = append(b, cmdVersion, byte(c.Op))
	b = binary.AppendUvarint(b, uint64(len(c.ClientID)))
	b = append(b, c.ClientID...)
	b = binary.AppendUvarint(b, c.Seq)
	b = binary.AppendUvarint(b, uint64(len(c.Key)))
	b = append(b, c.Key...)
	b = binary.AppendUvarint(b, uint64(len(c.Value)))
	return append(b, c.Value...)
}

// ErrBadCommand: a log entry that is not a command of this version.
var ErrBadCommand = errors.New("sm: malformed command")

// Decode parses an entry payload.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 || b[0] != cmdVersion || (Op(b[1]) != OpPut && Op(b[1]) != OpDelete) {
		return Command{}, ErrBadCommand
	}
	c := Command{Op: Op(b[1])}
	b = b[2:]
	str := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		s := b[k : k+int(n)]
		b = b[k+int(n):]
		return s, true
	}
	id, ok := str()
	if !ok {
		return Command{}, ErrBadCommand
	}
	seq, k := binary.Uvarint(b)
	if k <= 0 {
		return Command{}, ErrBadCommand
	}
	b = b[k:]
	key, ok := str()
	if !ok {
		return Command{}, ErrBadCommand
	}
	val, ok := str()
	if !ok || len(b) != 0 {
		return Command{}, ErrBadCommand
	}
	c.ClientID, c.Seq, c.Key = string(id), seq, string(key)
	if c.Op == OpPut {
		c.Value = append([]byte{}, val...)
	}
	return c, nil
}

// Result is what applying a command answers.
type Result struct {
	// Existed: the key had a value before (a delete of an absent key is
	// still ok).
	Existed bool
	// Duplicate: this (client, seq) was applied before; the result is the
	// first one's.
	Duplicate bool
	// Stale: the client has already moved past seq; nothing was applied.
	Stale bool
	// Err: the entry was not a valid command (applied as a no-op).
	Err error
}

type session struct {
	seq    uint64
	result Result
}

// Machine is the KV map and the session table. Not safe for concurrent use:
// the server applies from one goroutine and reads under its own lock.
type Machine struct {
	data     map[string][]byte
	sessions map[string]session
	applied  uint64
}

// New returns an empty machine.
func New() *Machine {
	return &Machine{data: map[string][]byte{}, sessions: map[string]session{}}
}

// Applied is the index of the last applied entry.
func (m *Machine) Applied() uint64 { return m.applied }

// Len is the number of keys.
func (m *Machine) Len() int { return len(m.data) }

// Get reads a key.
func (m *Machine) Get(key string) ([]byte, bool) {
	v, ok := m.data[key]
	return v, ok
}

// Skip records that the entry at index carried no command (a no-op or a
// configuration entry).
func (m *Machine) Skip(index uint64) { m.applied = index }

// Apply applies the entry at index. Entries must come in index order.
func (m *Machine) Apply(index uint64, payload []byte) Result {
	m.applied = index
	c, err := Decode(payload)
	if err != nil {
		return Result{Err: err}
	}
	if c.Seq > 0 {
		if s, ok := m.sessions[c.ClientID]; ok {
			switch {
			case c.Seq == s.seq:
				r := s.result
				r.Duplicate = true
				return r
			case c.Seq < s.seq:
				return Result{Stale: true}
			}
		}
	}
	_, existed := m.data[c.Key]
	switch c.Op {
	case OpPut:
		m.data[c.Key] = c.Value
	case OpDelete:
		delete(m.data, c.Key)
	}
	r := Result{Existed: existed}
	if c.Seq > 0 {
		m.sessions[c.ClientID] = session{seq: c.Seq, result: r}
	}
	return r
}

const snapVersion = 1

// Snapshot encodes the map and the session table, deterministically (sorted
// keys), so that two replicas at the same index give the same bytes.
func (m *Machine) Snapshot() []byte {
	b := []byte{snapVersion}
	b = binary.AppendUvarint(b, m.applied)
	keys := slices.Sorted(maps.Keys(m.data))
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, []byte(k))
		b = appendBytes(b, m.data[k])
	}
	ids := slices.Sorted(maps.Keys(m.sessions))
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		s := m.sessions[id]
		b = appendBytes(b, []byte(id))
		b = binary.AppendUvarint(b, s.seq)
		var ex byte
		if s.result.Existed {
			ex = 1
		}
		b = append(b, ex)
	}
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrBadSnapshot: snapshot data that does not decode.
var ErrBadSnapshot = errors.New("sm: malformed snapshot")

// Restore replaces the machine's state with a snapshot's.
func (m *Machine) Restore(b []byte) error {
	if len(b) == 0 {
		*m = *New()
		return nil
	}
	if b[0] != snapVersion {
		return fmt.Errorf("%w: version %d", ErrBadSnapshot, b[0])
	}
	b = b[1:]
	num := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	bytes := func() ([]byte, bool) {
		n, ok := num()
		if !ok || n > uint64(len(b)) {
			return nil, false
		}
		s := b[:n]
		b = b[n:]
		return s, true
	}
	applied, ok := num()
	if !ok {
		return ErrBadSnapshot
	}
	n, ok := num()
	if !ok || n > uint64(len(b)) {
		return ErrBadSnapshot
	}
	data := make(map[string][]byte, n)
	for i := uint64(0); i < n; i++ {
		k, ok1 := bytes()
		v, ok2 := bytes()
		if !ok1 || !ok2 {
			return ErrBadSnapshot
		}
		data[string(k)] = append([]byte{}, v...)
	}
	n, ok = num()
	if !ok || n > uint64(len(b)) {
		return ErrBadSnapshot
	}
	sessions := make(map[string]session, n)
	for i := uint64(0); i < n; i++ {
		id, ok1 := bytes()
		seq, ok2 := num()
		if !ok1 || !ok2 || len(b) < 1 || b[0] > 1 {
			return ErrBadSnapshot
		}
		sessions[string(id)] = session{seq: seq, result: Result{Existed: b[0] == 1}}
		b = b[1:]
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(b))
	}
	m.data, m.sessions, m.applied = data, sessions, applied
	return nil
}
