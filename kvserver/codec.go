package kvserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/raftlab/raftlab/raftcore"
)

// The peer wire format. A connection carries frames, each
//
//	uint32 length (big endian, of kind + payload) | uint8 kind | payload
//
// The first frame of a connection is a hello (the sender's id and
// advertised address). A message is one frame, except MsgSnap: its message
// frame carries the snapshot without data and the data's length, and the
// data follows in chunk frames of at most snapChunk bytes, so that a large
// snapshot never has to fit in one frame.
const (
	frameHello byte = iota + 1
	frameMsg
	frameSnapHeader
	frameSnapChunk
)

const (
	// wireVersion 2 added Message.Round (heartbeat rounds for ReadIndex).
	// A node refuses frames of another version: members of one cluster
	// must run the same wire version (no rolling upgrade from 1 to 2).
	wireVersion = 2
	// maxFrame bounds a frame; a larger length is a corrupt or hostile
	// stream and closes the connection.
	maxFrame = 64 << 20
	// snapChunk is the size of a snapshot data chunk.
	snapChunk = 1 << 20
	// maxSnapshot bounds a snapshot received from a peer.
	maxSnapshot = 4 << 30
)

var errBadFrame = errors.New("kvserver: malformed peer frame")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendMessage encodes m without its snapshot data.
func appendMessage(b []byte, m *raftcore.Message) []byte {
	b = append(b, wireVersion, byte(m.Type))
	b = appendString(b, m.From)
	b = appendString(b, m.To)
	b = binary.AppendUvarint(b, m.Term)
	b = binary.AppendUvarint(b, m.LogTerm)
	b = binary.AppendUvarint(b, m.Index)
	b = binary.AppendUvarint(b, m.Commit)
	var flags byte
	if m.Reject {
		flags |= 1
	}
	if m.Snapshot != nil {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.RejectHint)
	b = binary.AppendUvarint(b, m.Round)
	b = appendBytes(b, m.Context)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		b = binary.AppendUvarint(b, e.Term)
		b = binary.AppendUvarint(b, e.Index)
		b = append(b, byte(e.Type))
		b = appendBytes(b, e.Data)
	}
	if m.Snapshot != nil {
		b = binary.AppendUvarint(b, m.Snapshot.Meta.Index)
		b = binary.AppendUvarint(b, m.Snapshot.Meta.Term)
		b = appendBytes(b, raftcore.EncodeConfig(m.Snapshot.Meta.Config))
		b = binary.AppendUvarint(b, uint64(len(m.Snapshot.Data)))
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadFrame
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errBadFrame
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errBadFrame
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// decodeMessage decodes a message; snapLen is the length of the snapshot
// data that follows in chunks (the snapshot's Data is nil).
func decodeMessage(b []byte) (m raftcore.Message, snapLen uint64, err error) {
	d := decoder{b: b}
	if d.byte() != wireVersion {
		return m, 0, fmt.Errorf("%w: wire version", errBadFrame)
	}
	m.Type = raftcore.MessageType(d.byte())
	m.From = string(d.bytes())
	m.To = string(d.bytes())
	m.Term = d.uvarint()
	m.LogTerm = d.uvarint()
	m.Index = d.uvarint()
	m.Commit = d.uvarint()
	flags := d.byte()
	m.Reject = flags&1 != 0
	m.RejectHint = d.uvarint()
	m.Round = d.uvarint()
	if c := d.bytes(); len(c) > 0 {
		m.Context = c
	}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		return m, 0, errBadFrame
	}
	if n > 0 {
		m.Entries = make([]raftcore.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Term = d.uvarint()
			e.Index = d.uvarint()
			e.Type = raftcore.EntryType(d.byte())
			if data := d.bytes(); len(data) > 0 {
				e.Data = data
			}
		}
	}
	if flags&2 != 0 {
		s := &raftcore.Snapshot{}
		s.Meta.Index = d.uvarint()
		s.Meta.Term = d.uvarint()
		cfg := d.bytes()
		snapLen = d.uvarint()
		if d.err == nil {
			if s.Meta.Config, err = raftcore.DecodeConfig(cfg); err != nil {
				return m, 0, fmt.Errorf("%w: snapshot config: %v", errBadFrame, err)
			}
		}
		m.Snapshot = s
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errBadFrame, len(d.b))
	}
	if d.err == nil && snapLen > maxSnapshot {
		d.err = fmt.Errorf("%w: snapshot of %d bytes", errBadFrame, snapLen)
	}
	return m, snapLen, d.err
}

// frameWriter appends frames to a buffer.
type frameWriter struct{ buf []byte }

func (w *frameWriter) begin(kind byte) int {
	at := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0, kind)
	return at
}

func (w *frameWriter) end(at int) {
	binary.BigEndian.PutUint32(w.buf[at:], uint32(len(w.buf)-at-4))
}

// writeMessage appends m's frames: one, or a header and chunks for MsgSnap.
func (w *frameWriter) writeMessage(m *raftcore.Message) {
	if m.Snapshot == nil {
		at := w.begin(frameMsg)
		w.buf = appendMessage(w.buf, m)
		w.end(at)
		return
	}
	at := w.begin(frameSnapHeader)
	w.buf = appendMessage(w.buf, m)
	w.end(at)
	data := m.Snapshot.Data
	for len(data) > 0 {
		n := min(len(data), snapChunk)
		at := w.begin(frameSnapChunk)
		w.buf = append(w.buf, data[:n]...)
		w.end(at)
		data = data[n:]
	}
}

// writeHello announces the sender: its id, peer address and client address.
func (w *frameWriter) writeHello(id, peerAddr, clientAddr string) {
	at := w.begin(frameHello)
	w.buf = append(w.buf, wireVersion)
	w.buf = appendString(w.buf, id)
	w.buf = appendString(w.buf, peerAddr)
	w.buf = appendString(w.buf, clientAddr)
	w.end(at)
}

// readFrame reads one frame into buf (reused when large enough; pass nil
// when the payload must outlive the next read, as decoded entries alias it).
func readFrame(r io.Reader, buf []byte) (kind byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame length %d", errBadFrame, n)
	}
	if cap(buf) < int(n-1) {
		buf = make([]byte, n-1)
	}
	buf = buf[:n-1]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[4], buf, nil
}

func decodeHello(b []byte) (id, peerAddr, clientAddr string, err error) {
	d := decoder{b: b}
	if d.byte() != wireVersion {
		return "", "", "", fmt.Errorf("%w: hello version", errBadFrame)
	}
	id = string(d.bytes())
	peerAddr = string(d.bytes())
	clientAddr = string(d.bytes())
	if d.err == nil && id == "" {
		d.err = fmt.Errorf("%w: hello without an id", errBadFrame)
	}
	return id, peerAddr, clientAddr, d.err
}

// snapAssembler collects a MsgSnap's chunks.
type snapAssembler struct {
	msg  *raftcore.Message
	want uint64
	data []byte
}

// add takes a frame; it returns the completed message when the last chunk
// arrived.
func (a *snapAssembler) header(m raftcore.Message, n uint64) (*raftcore.Message, bool) {
	a.msg, a.want, a.data = &m, n, make([]byte, 0, n)
	return a.complete()
}

func (a *snapAssembler) chunk(b []byte) (*raftcore.Message, bool, error) {
	if a.msg == nil || uint64(len(a.data)+len(b)) > a.want {
		return nil, false, fmt.Errorf("%w: unexpected snapshot chunk", errBadFrame)
	}
	a.data = append(a.data, b...)
	m, ok := a.complete()
	return m, ok, nil
}

func (a *snapAssembler) complete() (*raftcore.Message, bool) {
	if uint64(len(a.data)) < a.want {
		return nil, false
	}
	m := a.msg
	m.Snapshot.Data = a.data
	a.msg, a.data = nil, nil
	return m, true
}
