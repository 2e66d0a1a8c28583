package disk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"sort"
	"strings"

	"github.com/raftlab/raftlab/raftcore"
)

// A snapshot file, snapshots/<term>-<index>.snap (16 hex digits each):
//
//	magic    [8]byte "RLSNAP\x00\x01"
//	version  uint32  FormatVersion
//	flags    uint8   bit 0: the snapshot replaces the log (received from a leader)
//	index    uint64
//	term     uint64
//	cfglen   uint32, then the configuration (raftcore.EncodeConfig)
//	datalen  uint64, then the application's data
//	crc      uint32  CRC-32C of everything before it
const snapMagic = "RLSNAP\x00\x01"

const snapFlagReplaces = 1

func snapName(term, index uint64) string { return fmt.Sprintf("%016x-%016x.snap", term, index) }

func parseSnapName(name string) (term, index uint64, ok bool) {
	if len(name) != 38 || !strings.HasSuffix(name, ".snap") || name[16] != '-' {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x.snap", &term, &index); err != nil {
		return 0, 0, false
	}
	return term, index, true
}

func encodeSnapshot(s raftcore.Snapshot, replaces bool) []byte {
	cfg := raftcore.EncodeConfig(s.Meta.Config)
	buf := make([]byte, 0, len(snapMagic)+4+1+16+4+len(cfg)+8+len(s.Data)+4)
	buf = append(buf, snapMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, FormatVersion)
	var flags byte
	if replaces {
		flags |= snapFlagReplaces
	}
	buf = append(buf, flags)
	buf = binary.LittleEndian.AppendUint64(buf, s.Meta.Index)
	buf = binary.LittleEndian.AppendUint64(buf, s.Meta.Term)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(cfg)))
	buf = append(buf, cfg...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(s.Data)))
	buf = append(buf, s.Data...)
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// decodeSnapshot checks and decodes a snapshot file. On failure it returns
// the offset of the problem and what it is.
func decodeSnapshot(b []byte) (snap raftcore.Snapshot, replaces bool, off int64, what string) {
	const fixed = len(snapMagic) + 4 + 1 + 16 + 4
	if len(b) < fixed+8+4 {
		return snap, false, int64(len(b)), fmt.Sprintf("file is %d bytes, shorter than the smallest snapshot", len(b))
	}
	if string(b[:len(snapMagic)]) != snapMagic {
		return snap, false, 0, "not a raftlab snapshot (bad magic)"
	}
	end := len(b) - 4
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return snap, false, int64(end), fmt.Sprintf("CRC-32C mismatch (stored %08x, computed %08x)", want, got)
	}
	p := len(snapMagic)
	if v := binary.LittleEndian.Uint32(b[p:]); v != FormatVersion {
		return snap, false, int64(p), fmt.Sprintf("format version %d, this build reads %d", v, FormatVersion)
	}
	p += 4
	replaces = b[p]&snapFlagReplaces != 0
	p++
	snap.Meta.Index = binary.LittleEndian.Uint64(b[p:])
	snap.Meta.Term = binary.LittleEndian.Uint64(b[p+8:])
	p += 16
	cfgLen := int(binary.LittleEndian.Uint32(b[p:]))
	p += 4
	if cfgLen > end-p-8 {
		return snap, false, int64(p - 4), "configuration length runs past the end"
	}
	cfg, err := raftcore.DecodeConfig(b[p : p+cfgLen])
	if err != nil {
		return snap, false, int64(p), fmt.Sprintf("configuration does not decode: %v", err)
	}
	snap.Meta.Config = cfg
	p += cfgLen
	dataLen := binary.LittleEndian.Uint64(b[p:])
	p += 8
	if dataLen != uint64(end-p) {
		return snap, false, int64(p - 8), fmt.Sprintf("data length %d, but %d bytes follow", dataLen, end-p)
	}
	snap.Data = append([]byte(nil), b[p:end]...)
	return snap, replaces, -1, ""
}

// snapFile is a snapshot file found in snapshots/.
type snapFile struct {
	name        string
	term, index uint64
}

func (s *Storage) snapPath(name string) string { return filepath.Join(s.dir, snapDir, name) }

func sortSnaps(s []snapFile) {
	sort.Slice(s, func(i, j int) bool { return s[i].index < s[j].index })
}
