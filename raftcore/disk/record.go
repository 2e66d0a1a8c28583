package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/raftlab/raftlab/raftcore"
)

// A WAL record on disk:
//
//	offset 0  crc     uint32  CRC-32C (Castagnoli) of bytes 4.. of the record
//	offset 4  length  uint32  payload length
//	offset 8  type    uint8   recordType
//	offset 9  payload [length]byte
//
// All integers are little-endian. The CRC covers the length and the type, so
// a damaged length is caught whenever the record it claims fits in the file.
const (
	recordHeaderSize = 9
	// maxRecordSize bounds a payload so that a damaged length cannot make the
	// reader allocate or skip gigabytes.
	maxRecordSize = 64 << 20
)

// recordType says what a record's payload is.
type recordType uint8

const (
	recInvalid   recordType = iota // zero bytes (a pre-allocated or zero-filled tail) are never a record
	recHeader                      // first record of every segment: format version, sequence, first index
	recEntry                       // one log entry
	recHardState                   // term, vote, commit
	recSnapshot                    // a snapshot became the log's base (see snapshotMarker)
	recTypeCount
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// errShortRecord: the bytes end before the record does.
	errShortRecord = errors.New("record runs past the end of the file")
	errBadCRC      = errors.New("record CRC mismatch")
	errBadType     = errors.New("unknown record type")
	errTooLarge    = errors.New("record length beyond the maximum")
)

// beginRecord reserves a record header at the end of buf; the caller appends
// the payload and calls finishRecord, which fills the header in place, so
// encoding into a reused buffer allocates nothing.
func beginRecord(buf []byte) ([]byte, int) {
	start := len(buf)
	return append(buf, make([]byte, recordHeaderSize)...), start
}

func finishRecord(buf []byte, start int, t recordType) []byte {
	rec := buf[start:]
	binary.LittleEndian.PutUint32(rec[4:], uint32(len(rec)-recordHeaderSize))
	rec[8] = byte(t)
	binary.LittleEndian.PutUint32(rec[0:], crc32.Checksum(rec[4:], castagnoli))
	return buf
}

// decodeRecord reads the record at the start of b. It returns the type, the
// payload (aliasing b) and the record's total size.
func decodeRecord(b []byte) (recordType, []byte, int, error) {
	if len(b) < recordHeaderSize {
		return 0, nil, 0, errShortRecord
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > maxRecordSize {
		return 0, nil, 0, errTooLarge
	}
	size := recordHeaderSize + int(n)
	if len(b) < size {
		return 0, nil, 0, errShortRecord
	}
	// The type is checked before the CRC: scanning a zero-filled region
	// (the preallocated rest of a segment) then costs no checksum.
	t := recordType(b[8])
	if t == recInvalid || t >= recTypeCount {
		return 0, nil, 0, errBadType
	}
	if crc32.Checksum(b[4:size], castagnoli) != binary.LittleEndian.Uint32(b) {
		return 0, nil, 0, errBadCRC
	}
	return t, b[recordHeaderSize:size], size, nil
}

// validRecordAfter reports whether any intact record starts in b after
// offset from. Recovery uses it to tell a torn tail (nothing intact follows
// the bad record: a crash cut the last write) from damage in the middle of
// the log (intact records follow: refuse to start rather than drop them).
func validRecordAfter(b []byte, from int) bool {
	for off := from + 1; off+recordHeaderSize <= len(b); off++ {
		if t := b[off+8]; t == byte(recInvalid) || t >= byte(recTypeCount) {
			continue
		}
		if _, _, _, err := decodeRecord(b[off:]); err == nil {
			return true
		}
	}
	return false
}

// segmentHeader is the payload of recHeader.
type segmentHeader struct {
	Version    uint32
	Seq        uint64
	FirstIndex uint64
}

func appendHeader(buf []byte, h segmentHeader) []byte {
	buf, start := beginRecord(buf)
	buf = binary.LittleEndian.AppendUint32(buf, h.Version)
	buf = binary.LittleEndian.AppendUint64(buf, h.Seq)
	buf = binary.LittleEndian.AppendUint64(buf, h.FirstIndex)
	return finishRecord(buf, start, recHeader)
}

func decodeHeader(p []byte) (segmentHeader, error) {
	if len(p) != 20 {
		return segmentHeader{}, fmt.Errorf("segment header of %d bytes, want 20", len(p))
	}
	return segmentHeader{
		Version:    binary.LittleEndian.Uint32(p),
		Seq:        binary.LittleEndian.Uint64(p[4:]),
		FirstIndex: binary.LittleEndian.Uint64(p[12:]),
	}, nil
}

// Entry payload: term uint64, index uint64, type uint8, data.
func appendEntry(buf []byte, e *raftcore.Entry) []byte {
	buf, start := beginRecord(buf)
	buf = binary.LittleEndian.AppendUint64(buf, e.Term)
	buf = binary.LittleEndian.AppendUint64(buf, e.Index)
	buf = append(buf, byte(e.Type))
	buf = append(buf, e.Data...)
	return finishRecord(buf, start, recEntry)
}

func decodeEntry(p []byte) (raftcore.Entry, error) {
	if len(p) < 17 {
		return raftcore.Entry{}, fmt.Errorf("entry record of %d bytes, want at least 17", len(p))
	}
	e := raftcore.Entry{
		Term:  binary.LittleEndian.Uint64(p),
		Index: binary.LittleEndian.Uint64(p[8:]),
		Type:  raftcore.EntryType(p[16]),
	}
	if e.Type > raftcore.EntryConfig {
		return raftcore.Entry{}, fmt.Errorf("entry %d has unknown type %d", e.Index, p[16])
	}
	if len(p) > 17 {
		e.Data = append([]byte(nil), p[17:]...)
	}
	return e, nil
}

// Hard state payload: term uint64, commit uint64, vote (the rest).
func appendHardState(buf []byte, hs raftcore.HardState) []byte {
	buf, start := beginRecord(buf)
	buf = binary.LittleEndian.AppendUint64(buf, hs.Term)
	buf = binary.LittleEndian.AppendUint64(buf, hs.Commit)
	buf = append(buf, hs.Vote...)
	return finishRecord(buf, start, recHardState)
}

func decodeHardState(p []byte) (raftcore.HardState, error) {
	if len(p) < 16 {
		return raftcore.HardState{}, fmt.Errorf("hard state record of %d bytes, want at least 16", len(p))
	}
	return raftcore.HardState{
		Term:   binary.LittleEndian.Uint64(p),
		Commit: binary.LittleEndian.Uint64(p[8:]),
		Vote:   string(p[16:]),
	}, nil
}

// snapshotMarker is the payload of recSnapshot: from here on the log's base
// is the snapshot (Index, Term). Replaces says the snapshot came from the
// leader and replaces the whole log (raftcore.MemoryStorage.ApplySnapshot);
// otherwise it compacts a log that contains (Index, Term).
type snapshotMarker struct {
	Index, Term uint64
	Replaces    bool
}

func appendMarker(buf []byte, m snapshotMarker) []byte {
	buf, start := beginRecord(buf)
	buf = binary.LittleEndian.AppendUint64(buf, m.Index)
	buf = binary.LittleEndian.AppendUint64(buf, m.Term)
	var r byte
	if m.Replaces {
		r = 1
	}
	buf = append(buf, r)
	return finishRecord(buf, start, recSnapshot)
}

func decodeMarker(p []byte) (snapshotMarker, error) {
	if len(p) != 17 || p[16] > 1 {
		return snapshotMarker{}, fmt.Errorf("snapshot marker of %d bytes, want 17", len(p))
	}
	return snapshotMarker{
		Index:    binary.LittleEndian.Uint64(p),
		Term:     binary.LittleEndian.Uint64(p[8:]),
		Replaces: p[16] == 1,
	}, nil
}

// allZero reports whether b holds only zero bytes: the unused, preallocated
// rest of a segment.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
