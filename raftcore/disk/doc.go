// Package disk is raftcore's durable storage: a write-ahead log of segment
// files and snapshot files in one data directory, behind raftcore.Storage, so
// that a node can run on it or on raftcore.MemoryStorage unchanged.
//
// # Data directory
//
//	<dir>/VERSION                       "raftlab data directory, format 1"
//	<dir>/wal/<seq>-<first>.wal         WAL segments (16 hex digits each: sequence
//	                                    number, index of the first entry expected)
//	<dir>/wal/<seq>-<first>.wal.tmp     a segment being created (see below)
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
// reaches Options.SegmentSize: the old one is synced and cut to its records
// (only the last segment may end in preallocated zeros), then the new one is
// created.
//
// # Segment creation
//
// Invariant: a segment name never exists without a durable header. A crash
// between creating a file and syncing it can leave the name with no bytes,
// or as long as what was written but all zeros (the file system made the
// size durable before the data), or with a torn header; and the name can
// reach the disk before any fsync asks for it. Under the segment's own name,
// that would be a segment whose records were lost, and recovery cannot tell
// the two apart. So a segment is written under <name>.tmp (its header, the
// current hard state, zeros up to Options.SegmentSize), synced, renamed to
// <name>, and wal/ is synced, before anything is appended to it. A crash
// before the rename leaves a temporary file (nothing in it was ever in use);
// a crash after it leaves <name> with a whole header, or no <name> if the
// rename was not yet durable, and the old segment as it was.
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
// Open loads the newest snapshot and replays every segment. It reads and
// checks everything before it changes anything; then:
//
//   - Temporary segment files are removed: a crash interrupted their
//     creation, and their names never held a segment in use.
//   - A last segment with no intact record at all (empty, zeros, a torn
//     header) is removed (Recovered().DroppedSegment): a build older than
//     the temporary-name scheme was creating it under its own name when the
//     crash came. Nothing in it was reported durable, since a segment comes
//     into use only after its header is synced. The segment before it was
//     synced and cut to its records before it was created, so it is read as
//     a whole segment, not as a last one that may be torn, and it is left
//     exactly as it is: a new segment, created as above, takes the dropped
//     one's place. (Reopening the previous segment at the dropped file's
//     offset, 0, would wipe its entries and hard state.)
//   - A damaged or partial record at the end of the last segment, after its
//     header, with no intact record after it is a torn tail: a crash cut the
//     last write, which was never reported durable. It is truncated and
//     recovery goes on (Recovered says where).
//
// Any other damage stops Open with a *RecoveryError naming the file, the
// offset, what is wrong and what to do, and nothing is changed: a bad record
// followed by intact ones or in an earlier segment, or a bad header in a
// segment that holds intact records (ErrCorrupt), a gap in the segment
// sequence or in the entries, or a commit index past the last entry
// (ErrMissingSegment), a snapshot that fails its CRC or that the WAL names
// but that is gone (ErrSnapshotCorrupt). Truncating there could drop
// committed entries, so the node refuses to start instead. So recovery never
// returns less than was reported durable: every synced entry and hard state
// (term, vote, commit).
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
// simulates power loss (unsynced writes lost, torn at a random byte, or
// reduced to the new size filled with zeros; directory changes not covered
// by a directory sync kept or undone, in the order they were made), a full
// disk and a crash in the middle of an operation; the crash tests and the
// deterministic simulator use it.
package disk
