package disk

import (
	"errors"
	"fmt"
)

// The kinds of failure Open reports, for errors.Is. Every recovery failure is
// a *RecoveryError that names the file, the offset and what to do.
var (
	// ErrCorrupt: a WAL record is damaged before the tail (intact records
	// follow it), or the records contradict each other. Truncating it could
	// drop committed entries, so the node refuses to start.
	ErrCorrupt = errors.New("WAL corrupt")
	// ErrMissingSegment: a WAL segment is missing from the sequence, or
	// entries that no snapshot covers are gone.
	ErrMissingSegment = errors.New("WAL segment missing")
	// ErrSnapshotCorrupt: a snapshot file fails its CRC or does not decode,
	// or the WAL names a snapshot that is not there.
	ErrSnapshotCorrupt = errors.New("snapshot corrupt")
	// ErrVersion: the directory was written in another format version.
	ErrVersion = errors.New("data directory format version mismatch")
	// ErrNotDataDir: the directory holds something that is not a raftlab
	// data directory.
	ErrNotDataDir = errors.New("not a raftlab data directory")
	// ErrClosed: the storage was closed.
	ErrClosed = errors.New("disk: storage closed")
)

// RecoveryError is why Open refused a data directory.
type RecoveryError struct {
	Kind   error  // one of the Err* values above
	File   string // the path of the file at fault
	Offset int64  // byte offset in File, -1 when not about one place
	What   string // what is wrong
	Fix    string // what the operator can do
}

func (e *RecoveryError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at offset %d", e.Offset)
	}
	return fmt.Sprintf("raftcore/disk: %v: %s%s: %s; %s", e.Kind, e.File, at, e.What, e.Fix)
}

// Unwrap lets errors.Is match Kind.
func (e *RecoveryError) Unwrap() error { return e.Kind }

// WriteError is the sticky error of a storage that failed to write or sync:
// from then on it acknowledges nothing (Append, Sync and the snapshot calls
// return it). What is on disk stays recoverable: a partial record at the end
// of the last segment is a torn tail that Open truncates.
type WriteError struct {
	Op   string // "write", "sync", "create segment", ...
	File string
	Err  error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("raftcore/disk: %s %s failed: %v; the storage stopped acknowledging writes: fix the disk (space, permissions, hardware) and restart the node, which recovers what was synced", e.Op, e.File, e.Err)
}

// Unwrap returns the file system's error (syscall.ENOSPC on a full disk).
func (e *WriteError) Unwrap() error { return e.Err }

const fixRestoreOrRejoin = "the node cannot tell which entries were committed; restore the data directory from a backup, or remove it and add the node back to the cluster as a new member (it then catches up from the leader)"
