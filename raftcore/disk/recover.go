package disk

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/raftlab/raftlab/raftcore"
)

// replay is the state rebuilt from the WAL records, in order.
type replay struct {
	ents []raftcore.Entry // contiguous
	// base is the snapshot the log continues from, once a marker tied it
	// down. Before that (replay starting at a segment whose predecessors were
	// dropped) the log is "unanchored": its first entry may be anywhere.
	base       snapshotMarker
	anchored   bool
	hs         raftcore.HardState
	lastMarker *snapshotMarker
	markerFile string
}

func (r *replay) last() uint64 {
	if len(r.ents) == 0 {
		if r.anchored {
			return r.base.Index
		}
		return 0
	}
	return r.ents[len(r.ents)-1].Index
}

// entry applies one entry record. It returns what is wrong, if anything.
func (r *replay) entry(e raftcore.Entry) string {
	if len(r.ents) == 0 {
		switch {
		case !r.anchored:
			r.ents = append(r.ents, e)
		case e.Index <= r.base.Index:
			// Covered by the snapshot (written before it was taken).
		case e.Index == r.base.Index+1:
			r.ents = append(r.ents, e)
		default:
			return fmt.Sprintf("entry %d follows the snapshot at %d: entries are missing", e.Index, r.base.Index)
		}
		return ""
	}
	first, last := r.ents[0].Index, r.last()
	switch {
	case e.Index == last+1:
		r.ents = append(r.ents, e)
	case e.Index > last+1:
		return fmt.Sprintf("entry %d follows entry %d: entries are missing", e.Index, last)
	case e.Index >= first:
		// The log was cut here (a follower's conflicting suffix) and
		// rewritten.
		r.ents = append(r.ents[:e.Index-first], e)
	case r.anchored && e.Index <= r.base.Index:
		// Covered by the snapshot.
	default:
		// Unanchored: the cut reaches before the first entry we have; the
		// entries before it live in dropped segments, covered by the
		// snapshot that allowed dropping them.
		r.ents = append(r.ents[:0], e)
	}
	return ""
}

// marker applies a snapshot marker (or the newest snapshot file, when the
// crash came between the file and its marker).
func (r *replay) marker(m snapshotMarker) string {
	first := uint64(0)
	if len(r.ents) > 0 {
		first = r.ents[0].Index
	}
	switch {
	case m.Replaces:
		r.ents = r.ents[:0]
	case len(r.ents) > 0 && m.Index >= first && m.Index <= r.last():
		if t := r.ents[m.Index-first].Term; t != m.Term {
			return fmt.Sprintf("snapshot at %d has term %d but the log's entry %d has term %d", m.Index, m.Term, m.Index, t)
		}
		r.ents = append(r.ents[:0], r.ents[m.Index-first+1:]...)
	case !r.anchored:
		// Replay began at a segment whose predecessors were dropped, and
		// this older snapshot does not tie down the log we hold (entries
		// after it may have been in a dropped segment): it anchors nothing.
		// The newest snapshot is checked against the log at the end.
		return ""
	case len(r.ents) == 0 || m.Index > r.last():
		r.ents = r.ents[:0]
	default:
		// Anchored, and the log starts after m.Index: it continues the
		// snapshot (m.Index == base) or an older one was noted again.
		return ""
	}
	r.base, r.anchored = m, true
	return ""
}

func (s *Storage) recover() error {
	snapFiles, err := s.listSnapshots()
	if err != nil {
		return err
	}
	segs, temps, err := s.listSegments()
	if err != nil {
		return err
	}
	// Recovery reads everything and checks it before it changes anything:
	// these are the changes to make once every check has passed.
	var tailOff int64        // where the records of the last segment end
	tornAt := int64(-1)      // where to cut the last segment's torn tail
	var dropped *segmentInfo // an unfinished last segment, to remove
	var r replay
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		path := s.walPath(seg.name)
		data, err := s.fs.ReadFile(path)
		if err != nil {
			return fmt.Errorf("raftcore/disk: reading %s: %w", path, err)
		}
		isLast := i == len(segs)-1
		if isLast && !holdsRecord(data) {
			// Not one intact record, not even the header: empty, zeros or
			// a torn header, left by a crash while a build older than the
			// temporary-name scheme (startSegment) created the segment
			// under its own name. Nothing in it was reported durable: it
			// came into use only once its header was synced. The segment
			// before it was synced and cut to its records before this one
			// was created, and was read above as whole (not as a last
			// segment, whose tail may be torn): it stays exactly as it is,
			// and a new segment takes the place of this one.
			dropped = &seg
			segs = segs[:i]
			break
		}
		off := 0
		for off < len(data) {
			t, p, n, derr := decodeRecord(data[off:])
			if derr == nil && off == 0 && t != recHeader {
				derr = errors.New("the first record is not a segment header")
			}
			if derr != nil && isLast && off > 0 && allZero(data[off:]) {
				// The preallocated rest of the last segment: a clean end.
				break
			}
			if derr != nil {
				// At offset 0 of a segment that holds an intact record
				// (checked above), a bad header is damage, not a crash
				// during creation.
				if !isLast || off == 0 || validRecordAfter(data, off) {
					intact := "intact records follow it"
					if !isLast {
						intact = "in a segment that is not the last one"
					} else if off == 0 {
						intact = "at the start of a segment that holds intact records"
					}
					return &RecoveryError{Kind: ErrCorrupt, File: path, Offset: int64(off),
						What: fmt.Sprintf("damaged record (%v), %s", derr, intact), Fix: fixRestoreOrRejoin}
				}
				// A torn tail: the crash cut the last write. Nothing after
				// it was ever synced (a sync covers a whole prefix). The
				// header before it stays.
				end := len(data)
				for end > off && data[end-1] == 0 {
					end-- // the preallocated zeros after it are no part of it
				}
				s.recovered.TornFile, s.recovered.TornOffset, s.recovered.TornBytes = path, int64(off), int64(end-off)
				tornAt = int64(off)
				break
			}
			if what := s.apply(&r, seg, t, p, path); what != "" {
				kind := ErrCorrupt
				if t == recHeader {
					if h, err := decodeHeader(p); err == nil && h.Version != FormatVersion {
						kind = ErrVersion
					}
				}
				return &RecoveryError{Kind: kind, File: path, Offset: int64(off), What: what, Fix: fixRestoreOrRejoin}
			}
			off += n
		}
		tailOff = int64(off)
	}
	s.recovered.Segments = len(segs)

	// The newest snapshot file is the log's base. Older ones are left from
	// a crash before pruning.
	var snap raftcore.Snapshot
	var missingMarker *snapshotMarker
	if len(snapFiles) > 0 {
		newest := snapFiles[len(snapFiles)-1]
		path := s.snapPath(newest.name)
		b, err := s.fs.ReadFile(path)
		if err != nil {
			return fmt.Errorf("raftcore/disk: reading %s: %w", path, err)
		}
		decoded, replaces, off, what := decodeSnapshot(b)
		if what == "" && (decoded.Meta.Index != newest.index || decoded.Meta.Term != newest.term) {
			off, what = -1, fmt.Sprintf("holds the snapshot at %d (term %d), not the one its name says", decoded.Meta.Index, decoded.Meta.Term)
		}
		if what != "" {
			return &RecoveryError{Kind: ErrSnapshotCorrupt, File: path, Offset: off, What: what,
				Fix: "the WAL before this snapshot may already be gone; restore the data directory from a backup, or remove it and add the node back to the cluster as a new member"}
		}
		snap = decoded
		if r.lastMarker == nil || r.lastMarker.Index < snap.Meta.Index {
			// The crash came after the file was durable, before the WAL
			// noted it: apply it now, as the marker would have.
			m := snapshotMarker{Index: snap.Meta.Index, Term: snap.Meta.Term, Replaces: replaces}
			if what := r.marker(m); what != "" {
				return &RecoveryError{Kind: ErrCorrupt, File: path, Offset: -1, What: what, Fix: fixRestoreOrRejoin}
			}
			missingMarker = &m
		}
	}
	if m := r.lastMarker; m != nil && (snap.Meta.Index < m.Index || (snap.Meta.Index == m.Index && snap.Meta.Term != m.Term)) {
		return &RecoveryError{Kind: ErrSnapshotCorrupt, File: s.snapPath(snapName(m.Term, m.Index)), Offset: -1,
			What: fmt.Sprintf("the WAL (%s) records this snapshot, but the file is missing", filepath.Base(r.markerFile)),
			Fix:  "put the snapshot file back from a backup, or remove the data directory and add the node back as a new member"}
	}
	if len(segs) == 0 && !snap.IsEmpty() {
		return &RecoveryError{Kind: ErrMissingSegment, File: filepath.Join(s.dir, walDir), Offset: -1,
			What: fmt.Sprintf("no WAL segment, but a snapshot at %d: the term and vote are lost", snap.Meta.Index), Fix: fixRestoreOrRejoin}
	}
	// The log must continue the snapshot (or start at 1) with no hole.
	if len(r.ents) > 0 {
		if first := r.ents[0].Index; first > snap.Meta.Index+1 {
			return &RecoveryError{Kind: ErrMissingSegment, File: s.walPath(segs[0].name), Offset: -1,
				What: fmt.Sprintf("the log starts at entry %d but the snapshot ends at %d: entries %d-%d are in no segment (a segment was removed)", first, snap.Meta.Index, snap.Meta.Index+1, first-1),
				Fix:  fixRestoreOrRejoin}
		}
		for len(r.ents) > 0 && r.ents[0].Index <= snap.Meta.Index {
			r.ents = r.ents[1:]
		}
	}
	last := snap.Meta.Index
	if len(r.ents) > 0 {
		last = r.ents[len(r.ents)-1].Index
	}
	// A snapshot holds only committed entries (Raft §7), so its index is
	// committed even when the hard state that said so was not synced yet:
	// ApplySnapshot makes a leader's snapshot durable at once, while the
	// Ready's hard state (commit = the snapshot's index) waits for the next
	// sync. Without this a crash between the two leaves commit below the
	// log's first index, and the core refuses to start from it.
	if !snap.IsEmpty() && r.hs.Commit < snap.Meta.Index {
		r.hs.Commit = snap.Meta.Index
	}
	if r.hs.Commit > last {
		return &RecoveryError{Kind: ErrMissingSegment, File: s.walPath(segs[len(segs)-1].name), Offset: -1,
			What: fmt.Sprintf("the hard state says entry %d is committed but the log ends at %d: committed entries are missing", r.hs.Commit, last),
			Fix:  fixRestoreOrRejoin}
	}

	// Every check passed: make the changes. A crash in the middle of them
	// leaves a directory that this recovery accepts again.
	if err := s.removeLeftovers(temps, dropped); err != nil {
		return err
	}
	if tornAt >= 0 {
		path := s.walPath(segs[len(segs)-1].name)
		if err := s.fs.Truncate(path, tornAt); err != nil {
			return fmt.Errorf("raftcore/disk: truncating torn tail of %s at %d: %w", path, tornAt, err)
		}
	}

	s.mem = raftcore.NewMemoryStorage()
	if !snap.IsEmpty() {
		if err := s.mem.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	if err := s.mem.Append(r.ents); err != nil {
		return err
	}
	s.mem.SetHardState(r.hs)
	s.hs, s.lastIndex = r.hs, last
	s.recovered.Entries, s.recovered.SnapshotIndex = len(r.ents), snap.Meta.Index

	// Reopen the last segment for appending, or start a new one. The tail
	// read above may sit only in the page cache if the previous process
	// died without the machine crashing: sync it before claiming it durable.
	switch {
	case dropped != nil:
		// Finish the rotation the crash interrupted. Never reopen the
		// segment before the dropped one: it is whole, and the WAL must not
		// write into it again (not even zeros past its end).
		s.segs = segs
		if err := s.startSegment(dropped.seq, last+1); err != nil {
			return err
		}
	case len(segs) == 0:
		if err := s.startSegment(1, last+1); err != nil {
			return err
		}
	default:
		tail := segs[len(segs)-1]
		path := s.walPath(tail.name)
		f, err := s.fs.OpenFile(path)
		if err != nil {
			return fmt.Errorf("raftcore/disk: opening %s: %w", path, err)
		}
		// Zero-fill up to the segment size again (a torn tail was cut
		// off, or the segment size grew).
		if err := preallocate(f, tailOff, s.segSize); err != nil {
			f.Close()
			return &WriteError{Op: "preallocate", File: path, Err: err}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return &WriteError{Op: "sync", File: path, Err: err}
		}
		s.segs, s.cur, s.curSize, s.curOff = segs, f, tailOff, tailOff
	}
	if missingMarker != nil {
		// Write the marker the crash prevented, so that entries appended
		// from now on replay after the snapshot, not after the old log.
		s.pending = appendMarker(s.pending, *missingMarker)
		if err := s.syncCurrent(); err != nil {
			return err
		}
	}
	s.durable.Store(last)
	if err := s.pruneSnapshots(snap.Meta.Index); err != nil {
		return err
	}
	return nil
}

// apply replays one record into r; it returns what is wrong, if anything.
func (s *Storage) apply(r *replay, seg segmentInfo, t recordType, p []byte, path string) string {
	switch t {
	case recHeader:
		h, err := decodeHeader(p)
		if err != nil {
			return err.Error()
		}
		if h.Version != FormatVersion {
			return fmt.Sprintf("segment in format %d, this build reads format %d", h.Version, FormatVersion)
		}
		if h.Seq != seg.seq {
			return fmt.Sprintf("header says segment %d, the file name says %d", h.Seq, seg.seq)
		}
	case recEntry:
		e, err := decodeEntry(p)
		if err != nil {
			return err.Error()
		}
		return r.entry(e)
	case recHardState:
		hs, err := decodeHardState(p)
		if err != nil {
			return err.Error()
		}
		r.hs = hs
	case recSnapshot:
		m, err := decodeMarker(p)
		if err != nil {
			return err.Error()
		}
		if what := r.marker(m); what != "" {
			return what
		}
		r.lastMarker, r.markerFile = &m, path
	}
	return ""
}

// listSnapshots returns the snapshot files by index, oldest first.
func (s *Storage) listSnapshots() ([]snapFile, error) {
	dir := filepath.Join(s.dir, snapDir)
	names, err := s.fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("raftcore/disk: listing %s: %w", dir, err)
	}
	var out []snapFile
	for _, n := range names {
		if term, index, ok := parseSnapName(n); ok {
			out = append(out, snapFile{name: n, term: term, index: index})
		}
	}
	// Names sort by term first; order by index.
	sortSnaps(out)
	for i := 1; i < len(out); i++ {
		if out[i].index == out[i-1].index {
			return nil, &RecoveryError{Kind: ErrSnapshotCorrupt, File: filepath.Join(dir, out[i].name), Offset: -1,
				What: fmt.Sprintf("two snapshots at index %d with different terms (%s)", out[i].index, out[i-1].name), Fix: fixRestoreOrRejoin}
		}
	}
	return out, nil
}

// listSegments returns the WAL segments in sequence order, checking that
// none is missing in between, and the base names of the temporary files of
// segments whose creation a crash interrupted (see startSegment).
func (s *Storage) listSegments() (segs []segmentInfo, temps []string, err error) {
	dir := filepath.Join(s.dir, walDir)
	names, err := s.fs.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("raftcore/disk: listing %s: %w", dir, err)
	}
	for _, n := range names {
		if seq, first, ok := parseSegName(n); ok {
			segs = append(segs, segmentInfo{seq: seq, first: first, name: n})
		} else if _, _, ok := parseSegName(strings.TrimSuffix(n, tmpSuffix)); ok && strings.HasSuffix(n, tmpSuffix) {
			temps = append(temps, n)
		}
	}
	sortSegs(segs)
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, nil, &RecoveryError{Kind: ErrMissingSegment, File: filepath.Join(dir, segs[i].name), Offset: -1,
				What: fmt.Sprintf("segment %d comes after %s: segments %d-%d are missing", segs[i].seq, segs[i-1].name, segs[i-1].seq+1, segs[i].seq-1),
				Fix:  "put the missing segments back from a backup, or remove the data directory and add the node back to the cluster as a new member"}
		}
	}
	return segs, temps, nil
}

// holdsRecord reports whether an intact record starts anywhere in a segment.
// A segment that holds none was never in use (see recover).
func holdsRecord(data []byte) bool {
	if _, _, _, err := decodeRecord(data); err == nil {
		return true
	}
	return validRecordAfter(data, 0)
}

// removeLeftovers removes, durably, the temporary files of segments whose
// creation was interrupted (their names never held a segment in use) and an
// unfinished last segment.
func (s *Storage) removeLeftovers(temps []string, dropped *segmentInfo) error {
	paths := make([]string, 0, len(temps)+1)
	for _, n := range temps {
		paths = append(paths, s.walPath(n))
	}
	if dropped != nil {
		paths = append(paths, s.walPath(dropped.name))
		s.recovered.DroppedSegment = s.walPath(dropped.name)
	}
	if len(paths) == 0 {
		return nil
	}
	for _, p := range paths {
		if err := s.fs.Remove(p); err != nil {
			return fmt.Errorf("raftcore/disk: removing the unfinished segment %s: %w", p, err)
		}
	}
	dir := filepath.Join(s.dir, walDir)
	if err := s.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("raftcore/disk: syncing %s: %w", dir, err)
	}
	return nil
}
