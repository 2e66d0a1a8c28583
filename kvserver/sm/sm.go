// Package sm is raft-kv's state machine: the same pure code in the server
// and in the runner's simulator. It applies committed log entries (put and
// delete commands), answers reads from its map, and keeps a session table so
// that a write retried by a client (same client id, sequence number and
// command) is applied once and answered with its first result (Raft thesis
// §6.3). The session table is part of snapshots.
//
// # Sessions
//
// A command with a client id and a sequence number (Seq > 0) belongs to that
// client's session, which its first command opens implicitly. For each
// session the table keeps the newest sequence number applied, which of the
// 64 sequence numbers up to it were applied, with what result and for which
// command (its Digest), and its last activity: the log index of the
// session's last command entry (applied, duplicate or refused).
//
// A command whose sequence number the session applied before, for the same
// command, is a Duplicate: not applied again, answered with the first
// result. For another command it is a Mismatch: the client reused the
// sequence number (a restarted client under the same id, say); nothing is
// applied, and this command never will be under that sequence number. One
// older than the newest that the window shows was never applied is Stale:
// never applied, and never will be, since every later copy is stale too.
// One older than the window is Stale and Forgotten: not applied by this
// entry, and whether an earlier copy was is no longer known.
//
// A snapshot of version 1 (no last activities) is refused: a replica
// restored from it would expire sessions unlike one that replays the log.
// Sessions restored from a snapshot of version 2 have no digests for
// the results they remember then: a copy of one of those sequence numbers
// is answered Duplicate whatever its command, as before version 3. Results
// recorded since have digests.
//
// # Expiry
//
// Sessions expire by the log, never by a clock, so that every replica
// expires the same sessions at the same index and replicas at one index have
// identical tables and snapshots. When the command entry at index i is
// applied, before the command itself:
//
//   - every session whose last activity is more than Limits.MaxIdle indexes
//     before i expires (DefaultMaxIdle: 2^20 entries);
//   - if the command opens a session and the table already holds
//     Limits.MaxSessions sessions (DefaultMaxSessions: 2^17), the least
//     recently active ones are evicted first (smallest last activity; ties
//     by client id), but never one active within Limits.MinIdleToEvict
//     entries (DefaultMinIdleToEvict: 2^18): if no session may go, the
//     command is refused with TableFull (not applied; retry later), so that
//     a burst of new ids cannot evict the session of a request still being
//     retried.
//
// Entries without a command (Skip) expire nothing. Last activities, the
// windows and the count of sessions ever expired are in the snapshot, so a
// replica restored from one expires exactly as one that applied the log.
// The limits are configuration, not state: every replica must use the same.
// raft-kv uses the defaults and deliberately has no flag for them, since
// replicas started with different values would diverge.
//
// # A client that returns after its session expired
//
// The table cannot tell an expired session from one never opened. Once any
// session has expired, a command with Seq > 1 for a client id the table
// does not hold is refused with SessionExpired: not applied, and no later
// copy of it under that id will be. An earlier copy of the same request,
// applied before the session expired, may have been: the request's outcome
// is unknown, unless the client knows it never sent it before (the Go
// client does, and then retries it under a new id). A client must go on
// under a new client id starting at Seq 1. Before any session expired, an
// id the table does not hold is new whatever its first Seq (the simulator's
// clients number their reads too, so a first write may have Seq > 1).
//
// A command with Seq 1 always opens a session, so a copy of a session's
// first command that reaches the log after the session expired (more than
// MaxIdle entries, or MaxSessions newer sessions, after it) would be applied
// again. Clients must not reuse an id after its session expired, and the
// limits must be far beyond how far a retry can lag. Explicit session
// registration (thesis §6.3) would close this gap; the API has none.
package sm

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
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

// Digest identifies a command's operation, key and value: the first 8
// bytes of their SHA-256 (never 0, which a session uses for "unknown").
// The session table keeps it for each result it remembers, so that a
// command reusing a (client id, sequence number) is told from a retry.
func (c Command) Digest() uint64 {
	h := sha256.New()
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = byte(c.Op)
	k := 1 + binary.PutUvarint(hdr[1:], uint64(len(c.Key)))
	h.Write(hdr[:k])
	h.Write([]byte(c.Key))
	if c.Op == OpPut {
		h.Write(c.Value)
	}
	var sum [sha256.Size]byte
	if d := binary.BigEndian.Uint64(h.Sum(sum[:0])); d != 0 {
		return d
	}
	return 1
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
	// Stale: the client has already moved past seq; nothing was applied
	// by this entry. Alone it also means that seq was never applied by any
	// entry (and no later copy will be): definitely not applied.
	Stale bool
	// Forgotten, with Stale: seq is older than the results the session
	// keeps, so whether an earlier copy of it was applied is unknown.
	Forgotten bool
	// Mismatch: the session applied seq for another command (another
	// operation, key or value). Nothing was applied by this entry, and this
	// command never will be under this (client, seq): definitely not
	// applied. The client reused the sequence number; it must go on under
	// a new id at seq 1.
	Mismatch bool
	// SessionExpired: there is no session for the client id and seq is
	// above 1, after sessions have started expiring. Nothing was applied by
	// this entry (nor will be by a later copy under this id); an earlier
	// copy applied before the session expired may have been. The client
	// must start over under a new id at seq 1.
	SessionExpired bool
	// TableFull: the command would open a session, but the table holds
	// MaxSessions sessions and every one was active within the last
	// MinIdleToEvict entries, so none may be evicted. Nothing was applied;
	// the client may retry later.
	TableFull bool
	// Err: the entry was not a valid command (applied as a no-op).
	Err error
}

// window is how many sequence numbers, up to the newest, a session
// remembers the fate of (one bit each).
const window = 64

type session struct {
	id  string
	seq uint64 // newest sequence number applied
	// last is the log index of the session's last command entry.
	last uint64
	// applied and existed: bit k is seq-k's, applied (always set for k = 0)
	// and its result's Existed.
	applied, existed uint64
	// digests: the Digest of each applied sequence number's command, one
	// for each bit set in applied, oldest first (the last is seq's); 0 for
	// one restored from a snapshot before version 3 (unknown).
	digests []uint64
	// from: the fate of sequence numbers below from is unknown (sessions
	// restored from a version 1 snapshot, which kept only the newest).
	from       uint64
	prev, next *session // the activity list, least recent first
}

// lookup answers a command (of the given digest) whose seq is not above the
// newest.
func (s *session) lookup(seq, digest uint64) Result {
	d := s.seq - seq
	switch {
	case d >= window || seq < s.from:
		return Result{Stale: true, Forgotten: true}
	case s.applied>>d&1 == 1:
		if known := s.digestAt(d); known != 0 && known != digest {
			return Result{Mismatch: true}
		}
		return Result{Duplicate: true, Existed: s.existed>>d&1 == 1}
	}
	return Result{Stale: true}
}

// digestAt is the digest of seq-d, whose applied bit is set: digests has
// one entry per bit set, the newest last.
func (s *session) digestAt(d uint64) uint64 {
	newer := bits.OnesCount64(s.applied & (1<<d - 1))
	return s.digests[len(s.digests)-1-newer]
}

// record notes that seq, above the newest, was applied with r for the
// command of the given digest.
func (s *session) record(seq uint64, r Result, digest uint64) {
	if d := seq - s.seq; d >= window {
		s.applied, s.existed = 0, 0
		s.digests = s.digests[:0]
	} else {
		// The bits shifted out of the window take the oldest digests.
		lost := bits.OnesCount64(s.applied >> (window - d))
		s.digests = append(s.digests[:0], s.digests[lost:]...)
		s.applied <<= d
		s.existed <<= d
	}
	s.applied |= 1
	if r.Existed {
		s.existed |= 1
	}
	s.digests = append(s.digests, digest)
	s.seq = seq
}

// Limits bound the session table (see the package doc: Expiry). Every
// replica must use the same limits.
type Limits struct {
	// MaxIdle: a session whose last command entry is more than MaxIdle
	// indexes before the command being applied expires. 0: never.
	MaxIdle uint64
	// MaxSessions: a new session evicts the least recently active ones to
	// keep the table at most this big. 0: no cap.
	MaxSessions int
	// MinIdleToEvict: a session active within the last MinIdleToEvict
	// entries is never evicted to make room; a new session is refused
	// (TableFull) instead. It keeps a burst of new client ids from evicting
	// the session of a request still being retried, whose next copy would
	// then be applied twice.
	MinIdleToEvict uint64
}

// The default limits: a session idle for a million entries expires, and the
// table holds at most 131072 sessions. In the snapshot a session takes its
// id, at most 41 bytes of numbers and 8 bytes per remembered result (up to
// 64: 512 bytes for a session with a full window, as a client's that sent
// 64 requests has): a few MiB for a full table of sessions used once, about
// 70 MiB for a full table of busy ones with ids like the Go client's; memory
// is of the same order.
const (
	DefaultMaxIdle        = 1 << 20
	DefaultMaxSessions    = 1 << 17
	DefaultMinIdleToEvict = 1 << 18
)

// DefaultLimits are the limits New uses.
func DefaultLimits() Limits {
	return Limits{MaxIdle: DefaultMaxIdle, MaxSessions: DefaultMaxSessions, MinIdleToEvict: DefaultMinIdleToEvict}
}

// Machine is the KV map and the session table. Not safe for concurrent use:
// the server applies from one goroutine and reads under its own lock.
type Machine struct {
	data     map[string][]byte
	sessions map[string]*session
	// oldest and newest end the activity list: sessions by last activity.
	oldest, newest *session
	applied        uint64
	// expired counts the sessions ever expired or evicted.
	expired uint64
	limits  Limits
}

// New returns an empty machine with the default limits.
func New() *Machine { return NewWithLimits(DefaultLimits()) }

// NewWithLimits returns an empty machine with the given limits.
func NewWithLimits(l Limits) *Machine {
	return &Machine{data: map[string][]byte{}, sessions: map[string]*session{}, limits: l}
}

// Applied is the index of the last applied entry.
func (m *Machine) Applied() uint64 { return m.applied }

// Len is the number of keys.
func (m *Machine) Len() int { return len(m.data) }

// Sessions is the number of sessions in the table.
func (m *Machine) Sessions() int { return len(m.sessions) }

// Expired is the number of sessions ever expired or evicted.
func (m *Machine) Expired() uint64 { return m.expired }

// Limits are the machine's limits.
func (m *Machine) Limits() Limits { return m.limits }

// Get reads a key.
func (m *Machine) Get(key string) ([]byte, bool) {
	v, ok := m.data[key]
	return v, ok
}

// Skip records that the entry at index carried no command (a no-op or a
// configuration entry). It expires nothing.
func (m *Machine) Skip(index uint64) { m.applied = index }

// Apply applies the entry at index. Entries must come in index order.
func (m *Machine) Apply(index uint64, payload []byte) Result {
	m.applied = index
	m.expireIdle(index)
	c, err := Decode(payload)
	if err != nil {
		return Result{Err: err}
	}
	var s *session
	var digest uint64
	if c.Seq > 0 {
		digest = c.Digest()
		s = m.sessions[c.ClientID]
		switch {
		case s != nil:
			m.touch(s, index)
			if c.Seq <= s.seq {
				return s.lookup(c.Seq, digest)
			}
		case c.Seq > 1 && m.expired > 0:
			return Result{SessionExpired: true}
		}
	}
	if c.Seq > 0 && s == nil && !m.makeRoom(index) {
		return Result{TableFull: true}
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
		if s == nil {
			s = m.open(c.ClientID, index)
		}
		s.record(c.Seq, r, digest)
	}
	return r
}

// expireIdle drops the sessions idle for more than MaxIdle indexes before
// index: they are at the old end of the activity list.
func (m *Machine) expireIdle(index uint64) {
	if m.limits.MaxIdle == 0 {
		return
	}
	for s := m.oldest; s != nil && index > s.last && index-s.last > m.limits.MaxIdle; s = m.oldest {
		m.drop(s)
	}
}

// makeRoom evicts the least recently active sessions until a new one fits,
// but never one active within MinIdleToEvict entries of index; false if the
// table stays full.
func (m *Machine) makeRoom(index uint64) bool {
	limit := m.limits.MaxSessions
	if limit <= 0 {
		return true
	}
	for len(m.sessions) >= limit && m.oldest != nil {
		if index > m.oldest.last && index-m.oldest.last < m.limits.MinIdleToEvict {
			return false
		}
		m.drop(m.oldest)
	}
	return len(m.sessions) < limit
}

// open adds a session for id; makeRoom has made room for it.
func (m *Machine) open(id string, index uint64) *session {
	s := &session{id: id, last: index, from: 1}
	m.sessions[id] = s
	m.pushNewest(s)
	return s
}

func (m *Machine) drop(s *session) {
	m.unlink(s)
	delete(m.sessions, s.id)
	m.expired++
}

// touch makes index the session's last activity.
func (m *Machine) touch(s *session, index uint64) {
	s.last = index
	if m.newest != s {
		m.unlink(s)
		m.pushNewest(s)
	}
}

func (m *Machine) pushNewest(s *session) {
	s.prev, s.next = m.newest, nil
	if m.newest != nil {
		m.newest.next = s
	} else {
		m.oldest = s
	}
	m.newest = s
}

func (m *Machine) unlink(s *session) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		m.oldest = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		m.newest = s.prev
	}
	s.prev, s.next = nil, nil
}

// Version 2 adds the count of expired sessions and, per session, its last
// activity, its window and from; version 3, per session, the digest of
// each result in the window (8 bytes, big-endian, oldest first, one per bit
// set in the window). Restore reads version 2 and refuses version 1.
const (
	snapVersion1 = 1
	snapVersion2 = 2
	snapVersion  = 3
)

// Snapshot encodes the map and the session table, deterministically (sorted
// keys), so that two replicas at the same index give the same bytes.
func (m *Machine) Snapshot() []byte {
	b := []byte{snapVersion}
	b = binary.AppendUvarint(b, m.applied)
	b = binary.AppendUvarint(b, m.expired)
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
		b = binary.AppendUvarint(b, s.last)
		b = binary.AppendUvarint(b, s.applied)
		b = binary.AppendUvarint(b, s.existed)
		b = binary.AppendUvarint(b, s.from)
		for _, d := range s.digests {
			b = binary.BigEndian.AppendUint64(b, d)
		}
	}
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrBadSnapshot: snapshot data that does not decode.
var ErrBadSnapshot = errors.New("sm: malformed snapshot")

// Restore replaces the machine's state with a snapshot's. The machine keeps
// its limits.
func (m *Machine) Restore(b []byte) error {
	if len(b) == 0 {
		*m = *NewWithLimits(m.limits)
		return nil
	}
	version := b[0]
	if version == snapVersion1 {
		// Version 1 kept no last activity: a replica restored from it would
		// expire sessions at other indexes than one that replays the log,
		// and the two would answer (and apply) differently.
		return fmt.Errorf("%w: version 1, written by a build from before session expiry, cannot be restored: "+
			"replicas restored from it would expire sessions unlike replicas that replay the log; "+
			"start this member with an empty data directory and let it catch up from a leader running this build", ErrBadSnapshot)
	}
	if version != snapVersion && version != snapVersion2 {
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
	var expired uint64
	if version >= snapVersion2 {
		if expired, ok = num(); !ok {
			return ErrBadSnapshot
		}
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
	sessions := make(map[string]*session, n)
	list := make([]*session, 0, n)
	for i := uint64(0); i < n; i++ {
		id, ok1 := bytes()
		seq, ok2 := num()
		if !ok1 || !ok2 || seq == 0 {
			return ErrBadSnapshot
		}
		s := &session{id: string(id), seq: seq}
		if version == snapVersion1 {
			// Only the newest result was kept, and no activity: every
			// session counts as active at the snapshot's index.
			if len(b) < 1 || b[0] > 1 {
				return ErrBadSnapshot
			}
			s.last, s.applied, s.existed, s.from = applied, 1, uint64(b[0]), seq
			s.digests = []uint64{0}
			b = b[1:]
		} else {
			var ok3, ok4, ok5, ok6 bool
			s.last, ok3 = num()
			s.applied, ok4 = num()
			s.existed, ok5 = num()
			s.from, ok6 = num()
			if !ok3 || !ok4 || !ok5 || !ok6 || s.last > applied || s.applied&1 == 0 ||
				s.existed&^s.applied != 0 || s.from == 0 || s.from > seq {
				return ErrBadSnapshot
			}
			s.digests = make([]uint64, bits.OnesCount64(s.applied))
			if version == snapVersion {
				if len(b) < 8*len(s.digests) {
					return ErrBadSnapshot
				}
				for j := range s.digests {
					s.digests[j] = binary.BigEndian.Uint64(b)
					b = b[8:]
				}
			} // else: unknown (0)
		}
		if _, dup := sessions[s.id]; dup {
			return ErrBadSnapshot
		}
		sessions[s.id] = s
		list = append(list, s)
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(b))
	}
	*m = Machine{data: data, sessions: sessions, applied: applied, expired: expired, limits: m.limits}
	slices.SortFunc(list, func(x, y *session) int {
		if x.last != y.last {
			return cmp.Compare(x.last, y.last)
		}
		return strings.Compare(x.id, y.id)
	})
	for _, s := range list {
		m.pushNewest(s)
	}
	return nil
}
