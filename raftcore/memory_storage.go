package raftcore

import (
	"fmt"
	"sync"
)

// MemoryStorage is a Storage held in memory: for tests, the simulator and
// users who want a volatile node. What has been written to it counts as
// durable (a simulated crash keeps it). Safe for concurrent use.
type MemoryStorage struct {
	mu        sync.Mutex
	hardState HardState
	snapshot  Snapshot
	// ents[0] is a dummy that stands for the snapshot: its Index and Term are
	// the snapshot's, so Term(FirstIndex()-1) always answers.
	ents []Entry
}

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{ents: make([]Entry, 1)}
}

// Bootstrap writes the initial configuration of a new cluster: a config entry
// at index 1, term 1, committed. Every founding member must be bootstrapped
// with the same configuration; a node that joins later starts empty and
// learns the membership from the log.
func Bootstrap(s *MemoryStorage, c Config) error {
	c = c.normalized()
	if err := c.Validate(); err != nil {
		return err
	}
	if c.IsJoint() {
		return fmt.Errorf("%w: cannot bootstrap a joint configuration", ErrInvalidConfig)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ents) > 1 || s.snapshot.Meta.Index > 0 || !s.hardState.IsEmpty() {
		return fmt.Errorf("raftcore: bootstrap of a storage that is not empty")
	}
	s.ents = append(s.ents, Entry{Term: 1, Index: 1, Type: EntryConfig, Data: EncodeConfig(c)})
	s.hardState = HardState{Term: 1, Commit: 1}
	return nil
}

// InitialState implements Storage.
func (s *MemoryStorage) InitialState() (HardState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hardState, nil
}

// SetHardState persists the hard state.
func (s *MemoryStorage) SetHardState(h HardState) {
	s.mu.Lock()
	s.hardState = h
	s.mu.Unlock()
}

func (s *MemoryStorage) offset() uint64 { return s.ents[0].Index }
func (s *MemoryStorage) lastIndex() uint64 {
	return s.ents[0].Index + uint64(len(s.ents)) - 1
}

// Entries implements Storage.
func (s *MemoryStorage) Entries(lo, hi, maxSize uint64) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.offset()
	if lo <= off {
		return nil, ErrCompacted
	}
	if hi > s.lastIndex()+1 {
		return nil, fmt.Errorf("%w: entries [%d, %d) beyond last index %d", ErrUnavailable, lo, hi, s.lastIndex())
	}
	if lo >= hi {
		return nil, nil
	}
	ents := limitSize(s.ents[lo-off:hi-off], maxSize)
	// Hand out a copy of the slice header range so callers' appends do not
	// clobber our array.
	return ents[:len(ents):len(ents)], nil
}

// Term implements Storage.
func (s *MemoryStorage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.offset()
	if i < off {
		return 0, ErrCompacted
	}
	if i-off >= uint64(len(s.ents)) {
		return 0, ErrUnavailable
	}
	return s.ents[i-off].Term, nil
}

// LastIndex implements Storage.
func (s *MemoryStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex(), nil
}

// FirstIndex implements Storage.
func (s *MemoryStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offset() + 1, nil
}

// Snapshot implements Storage.
func (s *MemoryStorage) Snapshot() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot, nil
}

// ApplySnapshot replaces the storage's contents with a snapshot received from
// the leader (Ready.Snapshot).
func (s *MemoryStorage) ApplySnapshot(snap Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snapshot.Meta.Index >= snap.Meta.Index {
		return ErrSnapOutOfDate
	}
	s.snapshot = snap
	s.ents = []Entry{{Term: snap.Meta.Term, Index: snap.Meta.Index}}
	return nil
}

// CreateSnapshot records a snapshot of the application state at index i,
// which must be applied (and so committed). cfg is the configuration in force
// at i. It does not compact; call Compact for that.
func (s *MemoryStorage) CreateSnapshot(i uint64, cfg Config, data []byte) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.snapshot.Meta.Index {
		return Snapshot{}, ErrSnapOutOfDate
	}
	if i > s.lastIndex() {
		return Snapshot{}, fmt.Errorf("%w: snapshot index %d beyond last index %d", ErrUnavailable, i, s.lastIndex())
	}
	s.snapshot = Snapshot{Meta: SnapshotMeta{Index: i, Term: s.ents[i-s.offset()].Term, Config: cfg.Clone()}, Data: data}
	return s.snapshot, nil
}

// Compact discards the entries before compactIndex; compactIndex itself
// becomes the dummy entry. It must not be beyond the last index.
func (s *MemoryStorage) Compact(compactIndex uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.offset()
	if compactIndex <= off {
		return ErrCompacted
	}
	if compactIndex > s.lastIndex() {
		return fmt.Errorf("%w: compact %d beyond last index %d", ErrUnavailable, compactIndex, s.lastIndex())
	}
	i := compactIndex - off
	ents := make([]Entry, 1, uint64(len(s.ents))-i)
	ents[0] = Entry{Index: s.ents[i].Index, Term: s.ents[i].Term}
	s.ents = append(ents, s.ents[i+1:]...)
	return nil
}

// Append persists entries, truncating any conflicting suffix first: entries
// at or after ents[0].Index are replaced.
func (s *MemoryStorage) Append(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.offset() + 1
	last := ents[len(ents)-1].Index
	if last < first {
		return nil // all compacted already
	}
	if first > ents[0].Index {
		ents = ents[first-ents[0].Index:]
	}
	off := ents[0].Index - s.offset()
	switch {
	case uint64(len(s.ents)) > off:
		s.ents = append(s.ents[:off:off], ents...)
	case uint64(len(s.ents)) == off:
		s.ents = append(s.ents, ents...)
	default:
		return fmt.Errorf("raftcore: missing log entries [last: %d, append at: %d]", s.lastIndex(), ents[0].Index)
	}
	return nil
}
