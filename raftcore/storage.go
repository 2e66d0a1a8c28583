package raftcore

// Storage is the read side of a node's durable state that the core needs:
// its log, its hard state and its newest snapshot. The caller writes to it
// while handling a Ready (entries, hard state, snapshot) and compacts it; the
// core only reads. MemoryStorage implements it in memory; raftcore's WAL
// implements it on disk. Implementations must be safe for one writer and the
// core reading from the same goroutine; MemoryStorage also allows concurrent
// readers.
type Storage interface {
	// InitialState returns the persisted hard state.
	InitialState() (HardState, error)
	// Entries returns entries [lo, hi), at most maxSize bytes of payload but
	// at least one entry if any is in range. ErrCompacted if lo is before the
	// first index; ErrUnavailable if hi-1 is after the last.
	Entries(lo, hi, maxSize uint64) ([]Entry, error)
	// Term returns the term of entry i, which must be in [FirstIndex()-1,
	// LastIndex()]; the entry before FirstIndex is the snapshot's.
	Term(i uint64) (uint64, error)
	// LastIndex returns the index of the last entry.
	LastIndex() (uint64, error)
	// FirstIndex returns the index of the first entry that is still
	// available (the snapshot index + 1).
	FirstIndex() (uint64, error)
	// Snapshot returns the newest snapshot.
	Snapshot() (Snapshot, error)
}

// limitSize trims ents to at most maxSize bytes of payload, keeping at least
// one entry.
func limitSize(ents []Entry, maxSize uint64) []Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(ents[0].size())
	n := 1
	for ; n < len(ents); n++ {
		size += uint64(ents[n].size())
		if size > maxSize {
			break
		}
	}
	return ents[:n]
}
