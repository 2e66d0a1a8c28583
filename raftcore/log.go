package raftcore

import (
	"fmt"
)

// unstable holds what the core has accepted but the caller has not yet
// persisted: an incoming snapshot and/or entries after it.
type unstable struct {
	snapshot *Snapshot
	entries  []Entry
	offset   uint64 // index of entries[0]
}

func (u *unstable) maybeFirstIndex() (uint64, bool) {
	if u.snapshot != nil {
		return u.snapshot.Meta.Index + 1, true
	}
	return 0, false
}

func (u *unstable) maybeLastIndex() (uint64, bool) {
	if l := len(u.entries); l != 0 {
		return u.offset + uint64(l) - 1, true
	}
	if u.snapshot != nil {
		return u.snapshot.Meta.Index, true
	}
	return 0, false
}

func (u *unstable) maybeTerm(i uint64) (uint64, bool) {
	if i < u.offset {
		if u.snapshot != nil && u.snapshot.Meta.Index == i {
			return u.snapshot.Meta.Term, true
		}
		return 0, false
	}
	last, ok := u.maybeLastIndex()
	if !ok || i > last {
		return 0, false
	}
	return u.entries[i-u.offset].Term, true
}

// stableTo marks entries up to i (of term t) persisted.
func (u *unstable) stableTo(i, t uint64) {
	gt, ok := u.maybeTerm(i)
	if !ok || gt != t || i < u.offset {
		return // stale: the entries were replaced meanwhile
	}
	n := int(i + 1 - u.offset)
	u.entries = append([]Entry(nil), u.entries[n:]...)
	u.offset = i + 1
}

func (u *unstable) stableSnapTo(i uint64) {
	if u.snapshot != nil && u.snapshot.Meta.Index == i {
		u.snapshot = nil
	}
}

func (u *unstable) restore(s Snapshot) {
	u.offset = s.Meta.Index + 1
	u.entries = nil
	u.snapshot = &s
}

func (u *unstable) truncateAndAppend(ents []Entry) {
	after := ents[0].Index
	switch {
	case after == u.offset+uint64(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case after <= u.offset:
		// Replace the whole unstable tail.
		u.offset = after
		u.entries = append([]Entry(nil), ents...)
	default:
		keep := u.entries[:after-u.offset]
		u.entries = append(append(make([]Entry, 0, len(keep)+len(ents)), keep...), ents...)
	}
}

func (u *unstable) slice(lo, hi uint64) []Entry {
	return u.entries[lo-u.offset : hi-u.offset]
}

// confPoint is a configuration entry in the log (or the snapshot's base).
type confPoint struct {
	index uint64
	cfg   Config
}

// raftLog is the log as the core sees it: persisted storage plus the
// unstable tail, with the commit and apply positions, and the history of
// configuration entries so that "takes effect on append" survives a
// truncation (the configuration reverts to the last one still in the log).
type raftLog struct {
	storage   Storage
	unstable  unstable
	committed uint64
	applied   uint64
	// confs[0] is the base: the snapshot's configuration (index = snapshot
	// index), or the empty configuration at 0.
	confs   []confPoint
	confGen uint64 // incremented on every change of confs
}

func newLog(storage Storage) (*raftLog, error) {
	first, err := storage.FirstIndex()
	if err != nil {
		return nil, err
	}
	last, err := storage.LastIndex()
	if err != nil {
		return nil, err
	}
	snap, err := storage.Snapshot()
	if err != nil {
		return nil, err
	}
	l := &raftLog{storage: storage}
	l.unstable.offset = last + 1
	l.committed = first - 1
	l.applied = first - 1
	l.confs = []confPoint{{index: snap.Meta.Index, cfg: snap.Meta.Config.Clone()}}
	// Rebuild the configuration history from the persisted log.
	for lo := first; lo <= last; {
		ents, err := storage.Entries(lo, last+1, 1<<24)
		if err != nil {
			return nil, fmt.Errorf("raftcore: reading log [%d, %d] at start-up: %w", lo, last, err)
		}
		l.noteConfigs(ents)
		lo += uint64(len(ents))
	}
	return l, nil
}

// noteConfigs records the configuration entries among ents, which were just
// appended (after any truncation).
func (l *raftLog) noteConfigs(ents []Entry) {
	for i := range ents {
		if ents[i].Type != EntryConfig {
			continue
		}
		c, err := DecodeConfig(ents[i].Data)
		if err != nil {
			// Entries are validated before they are appended; a stored one
			// that does not decode is corruption, reported by the caller's
			// storage checks. Keep the previous configuration.
			continue
		}
		l.confs = append(l.confs, confPoint{index: ents[i].Index, cfg: c})
		l.confGen++
	}
}

// truncateConfigs forgets configuration entries at or after index from.
func (l *raftLog) truncateConfigs(from uint64) {
	n := len(l.confs)
	for n > 1 && l.confs[n-1].index >= from {
		n--
	}
	if n != len(l.confs) {
		l.confs = l.confs[:n]
		l.confGen++
	}
}

func (l *raftLog) lastConf() confPoint { return l.confs[len(l.confs)-1] }

// prevConf is the configuration before the last one, if the log knows it.
func (l *raftLog) prevConf() (confPoint, bool) {
	if len(l.confs) < 2 {
		return confPoint{}, false
	}
	return l.confs[len(l.confs)-2], true
}

func (l *raftLog) firstIndex() uint64 {
	if i, ok := l.unstable.maybeFirstIndex(); ok {
		return i
	}
	i, err := l.storage.FirstIndex()
	if err != nil {
		panic(err) // storage failure: the caller's storage broke its contract
	}
	return i
}

func (l *raftLog) lastIndex() uint64 {
	if i, ok := l.unstable.maybeLastIndex(); ok {
		return i
	}
	i, err := l.storage.LastIndex()
	if err != nil {
		panic(err)
	}
	return i
}

func (l *raftLog) lastTerm() uint64 {
	t, err := l.term(l.lastIndex())
	if err != nil {
		panic(fmt.Sprintf("raftcore: term of last index: %v", err))
	}
	return t
}

// term returns the term of entry i, or an error if it is compacted or beyond.
func (l *raftLog) term(i uint64) (uint64, error) {
	dummy := l.firstIndex() - 1
	if i < dummy || i > l.lastIndex() {
		return 0, ErrCompacted
	}
	if t, ok := l.unstable.maybeTerm(i); ok {
		return t, nil
	}
	t, err := l.storage.Term(i)
	if err == nil {
		return t, nil
	}
	if err == ErrCompacted || err == ErrUnavailable {
		return 0, err
	}
	panic(err)
}

func (l *raftLog) zeroTermOnErr(t uint64, err error) uint64 {
	if err != nil {
		return 0
	}
	return t
}

func (l *raftLog) matchTerm(i, t uint64) bool {
	tt, err := l.term(i)
	return err == nil && tt == t
}

// isUpToDate is the election restriction (Raft paper §5.4.1): a candidate's
// log is at least as up to date as ours if its last term is higher, or equal
// with an index at least ours.
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	myTerm := l.lastTerm()
	return lastTerm > myTerm || (lastTerm == myTerm && lastIndex >= l.lastIndex())
}

// findConflict returns the index of the first entry of ents whose term
// differs from ours, or the first new entry, or 0 when all match.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for _, e := range ents {
		if !l.matchTerm(e.Index, e.Term) {
			return e.Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= index whose term is <= term
// (or the first index whose term is unknown because it is compacted): the
// follower's hint, and the leader's skip over a whole term of mismatches.
func (l *raftLog) findConflictByTerm(index, term uint64) (uint64, uint64) {
	for ; index > 0; index-- {
		t, err := l.term(index)
		if err != nil {
			return index, 0
		}
		if t <= term {
			return index, t
		}
	}
	return 0, 0
}

// maybeAppend appends ents after (index, logTerm) if that entry matches, and
// commits up to min(committed, last new index). It returns the last new
// index and whether it appended.
func (l *raftLog) maybeAppend(index, logTerm, committed uint64, ents []Entry) (uint64, bool) {
	if !l.matchTerm(index, logTerm) {
		return 0, false
	}
	lastNew := index + uint64(len(ents))
	ci := l.findConflict(ents)
	switch {
	case ci == 0:
	case ci <= l.committed:
		// A conflict with a committed entry means a leader broke Log
		// Matching; refusing to truncate keeps what is committed.
		return 0, false
	default:
		l.append(ents[ci-(index+1):]...)
	}
	l.commitTo(min(committed, lastNew))
	return lastNew, true
}

// append adds entries, truncating a conflicting suffix; returns the last index.
func (l *raftLog) append(ents ...Entry) uint64 {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	l.truncateConfigs(ents[0].Index)
	l.unstable.truncateAndAppend(ents)
	l.noteConfigs(ents)
	return l.lastIndex()
}

func (l *raftLog) unstableEntries() []Entry {
	if len(l.unstable.entries) == 0 {
		return nil
	}
	return l.unstable.entries
}

// nextCommittedEnts returns the committed entries not yet applied.
func (l *raftLog) nextCommittedEnts() []Entry {
	off := max(l.applied+1, l.firstIndex())
	if l.committed+1 > off {
		ents, err := l.slice(off, l.committed+1, ^uint64(0))
		if err != nil {
			panic(fmt.Sprintf("raftcore: committed entries [%d, %d]: %v", off, l.committed, err))
		}
		return ents
	}
	return nil
}

func (l *raftLog) hasNextCommittedEnts() bool {
	return l.committed+1 > max(l.applied+1, l.firstIndex())
}

func (l *raftLog) snapshot() (Snapshot, error) {
	if l.unstable.snapshot != nil {
		return *l.unstable.snapshot, nil
	}
	return l.storage.Snapshot()
}

func (l *raftLog) commitTo(c uint64) {
	if c > l.committed {
		l.committed = min(c, l.lastIndex())
	}
}

func (l *raftLog) appliedTo(i uint64) {
	if i != 0 && i > l.applied && i <= l.committed {
		l.applied = i
	}
}

func (l *raftLog) stableTo(i, t uint64) { l.unstable.stableTo(i, t) }

func (l *raftLog) stableSnapTo(i uint64) { l.unstable.stableSnapTo(i) }

// entries returns the entries from i on, at most maxSize bytes.
func (l *raftLog) entries(i, maxSize uint64) ([]Entry, error) {
	if i > l.lastIndex() {
		return nil, nil
	}
	return l.slice(i, l.lastIndex()+1, maxSize)
}

// slice returns entries [lo, hi) from storage and/or unstable.
func (l *raftLog) slice(lo, hi, maxSize uint64) ([]Entry, error) {
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	if lo == hi {
		return nil, nil
	}
	var ents []Entry
	if lo < l.unstable.offset {
		stored, err := l.storage.Entries(lo, min(hi, l.unstable.offset), maxSize)
		if err != nil {
			return nil, err
		}
		if uint64(len(stored)) < min(hi, l.unstable.offset)-lo {
			return stored, nil // size limit reached
		}
		ents = stored
	}
	if hi > l.unstable.offset {
		u := l.unstable.slice(max(lo, l.unstable.offset), hi)
		if len(ents) > 0 {
			ents = append(append(make([]Entry, 0, len(ents)+len(u)), ents...), u...)
		} else {
			ents = u
		}
	}
	return limitSize(ents, maxSize), nil
}

func (l *raftLog) restore(s Snapshot) {
	l.committed = s.Meta.Index
	l.unstable.restore(s)
	l.confs = []confPoint{{index: s.Meta.Index, cfg: s.Meta.Config.Clone()}}
	l.confGen++
}
