// Package disk is raftcore's durable storage: a write-ahead log of segment
// files and snapshot files in one data directory, behind raftcore.Storage, so
// that a node can run on it or on raftcore.MemoryStorage unchanged.
//
// # Data directory
//
//	<dir>/VERSION                       "raftlab data directory, format 1"
//	<dir>/wal/<seq>-<first>.wal         WAL segments (16 hex digits each: sequence
//	                                    number, index of the first entry expected)
//	<dir>/snapshots/<term>-<index>.snap snapshot files (16 hex digits each)
//
// VERSION is written last when a directory is created; Open refuses a
// directory whose format is not FormatVersion (ErrVersion), or that holds
// wal/ or snapshots/ files but no VERSION (ErrNotDataDir).
//
// # WAL
//
// A segment is a sequence of records, each framed as a CRC-32C (Castagnoli,
// over the rest of the record), a payload length, a type and the payload
// (see record.go). The first record of a segment is its header (format
// version, sequence number, first index); the next is the hard state at the
// time it was created, so that replay can begin at any segment. Then come, in
// the order they were appended: entries, hard states (term, vote, commit) and
// snapshot markers. An entry whose index is at or below the last one cuts the
// log there (a follower's conflicting suffix, Raft paper §5.3): the WAL is
// append-only and replay applies the cut. A segment is rotated once it
// reaches Options.SegmentSize: the old one is synced first, the new one's
// creation is followed by a sync of wal/.
//
// Group commit: Append encodes records into a buffer and returns a Ticket;
// Sync(ticket) writes everything buffered with one write and makes it durable
// with one fsync, so concurrent writers share fsyncs. Sync returns, and
// DurableIndex advances, only after the fsync returned. Entries are written
// before the hard state of the same Append, so a surviving commit index never
// points past the surviving entries. Messages that depend on an append must
// wait for its Sync (Raft paper, Figure 2: persistent state is updated on
// stable storage before responding to RPCs).
//
// # Snapshots
//
// A snapshot file holds the snapshot's index, term, configuration and data,
// and a CRC-32C over all of it (snapshot.go). It is written to a temporary
// name, synced, renamed and the directory synced; then a marker record in the
// WAL notes it and is synced; then older snapshot files are removed and the
// WAL segments whose entries are all covered by it are dropped, oldest first.
//
// # Recovery
//
// Open loads the newest snapshot and replays every segment. A damaged or
// partial record at the end of the last segment with no intact record after
// it is a torn tail: a crash cut the last write, which was never reported
// durable. It is truncated and recovery goes on (Recovered says where). Any
// other damage stops Open with a *RecoveryError naming the file, the offset,
// what is wrong and what to do: a bad record followed by intact ones or in an
// earlier segment (ErrCorrupt), a gap in the segment sequence or in the
// entries, or a commit index past the last entry (ErrMissingSegment), a
// snapshot that fails its CRC or that the WAL names but that is gone
// (ErrSnapshotCorrupt). Truncating there could drop committed entries, so the
// node refuses to start instead.
//
// # Failures
//
// A failed write or fsync (a full disk, an I/O error) is sticky: the Storage
// stops acknowledging (every later Append, Sync and snapshot call returns the
// *WriteError) and writes nothing more, so what is on disk stays recoverable.
// After an fsync error the page cache can no longer be trusted, so the only
// way on is a restart, which recovers what was synced.
//
// # Testing seam
//
// Every file operation goes through FS. MemFS is an in-memory FS that
// simulates power loss (unsynced writes lost or torn at a random byte,
// unsynced directory changes undone), a full disk and a crash in the middle
// of an operation; the crash tests and the deterministic simulator use it.
package disk
