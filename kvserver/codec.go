package kvserver

import (
	"crypto/hmac"
	"crypto/sha256"
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
// A connection opens with a handshake. The accepting node first sends a
// challenge: the wire version, a fresh random nonce and whether it requires
// a peer token. The dialing node answers with a hello: the wire version,
// its id, peer and client addresses, and a proof, HMAC-SHA256 keyed with
// the peer token (--peer-token) of the version, the nonce and the hello's
// fields (helloProof), or nothing without a token. A node with a token
// takes nothing from a connection before the proof checks out (compared in
// constant time); the token itself never crosses the wire, and a proof is
// good for its connection only. Only the dialer is authenticated, and only
// at the start: the frames that follow are neither encrypted nor signed.
//
// After the hello, a message is one frame, except MsgSnap: its message
// frame carries the snapshot without data and the data's length, and the
// data follows in chunk frames of at most snapChunk bytes, so that a large
// snapshot never has to fit in one frame. The sender streams the chunks
// (progress-based deadlines, transport.go); the receiver refuses a length
// above its --max-snapshot-bytes and takes memory only as chunks arrive.
const (
	frameHello byte = iota + 1
	frameMsg
	frameSnapHeader
	frameSnapChunk
	frameChallenge
)

const (
	// wireVersion 2 added Message.Round (heartbeat rounds for ReadIndex);
	// 3 added the challenge and the hello's proof (peer authentication).
	// A node refuses frames of another version: members of one cluster
	// must run the same wire version (no rolling upgrade from 2 to 3).
	wireVersion = 3
	// maxFrame bounds a frame; a larger length is a corrupt or hostile
	// stream and closes the connection. A frame's memory is taken as its
	// bytes arrive (frameStep at a time, doubling), not on its length.
	maxFrame  = 64 << 20
	frameStep = 64 << 10
	// maxHandshakeFrame bounds the challenge and the hello, read before
	// the peer is known.
	maxHandshakeFrame = 4 << 10
	// snapChunk is the size of a snapshot data chunk.
	snapChunk = 1 << 20
	// nonceSize is the challenge's nonce length; proofSize an HMAC-SHA256.
	nonceSize = 32
	proofSize = sha256.Size
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
// data that follows in chunks (the snapshot's Data is nil). The caller
// bounds snapLen (Config.MaxSnapshotBytes).
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
	// Each entry takes at least 4 bytes on the wire (term, index, type,
	// data length): a count beyond that is a lie, and would otherwise
	// allocate 48 bytes of Entry per byte of frame.
	if d.err == nil && n > uint64(len(d.b))/4 {
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

// writeMessage appends m's frames: one, or a header and chunks for MsgSnap
// (the transport streams those instead: writeSnapHeader, writeSnapChunk).
func (w *frameWriter) writeMessage(m *raftcore.Message) {
	if m.Snapshot == nil {
		at := w.begin(frameMsg)
		w.buf = appendMessage(w.buf, m)
		w.end(at)
		return
	}
	w.writeSnapHeader(m)
	for data := m.Snapshot.Data; len(data) > 0; {
		n := min(len(data), snapChunk)
		w.writeSnapChunk(data[:n])
		data = data[n:]
	}
}

// writeSnapHeader appends a MsgSnap's message frame (without the data).
func (w *frameWriter) writeSnapHeader(m *raftcore.Message) {
	at := w.begin(frameSnapHeader)
	w.buf = appendMessage(w.buf, m)
	w.end(at)
}

// writeSnapChunk appends one chunk frame of snapshot data (at most
// snapChunk bytes).
func (w *frameWriter) writeSnapChunk(data []byte) {
	at := w.begin(frameSnapChunk)
	w.buf = append(w.buf, data...)
	w.end(at)
}

// writeChallenge opens a connection on the accepting side.
func (w *frameWriter) writeChallenge(nonce []byte, tokenRequired bool) {
	at := w.begin(frameChallenge)
	w.buf = append(w.buf, wireVersion)
	w.buf = appendBytes(w.buf, nonce)
	var flags byte
	if tokenRequired {
		flags |= 1
	}
	w.buf = append(w.buf, flags)
	w.end(at)
}

func decodeChallenge(b []byte) (nonce []byte, tokenRequired bool, err error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != wireVersion {
		return nil, false, fmt.Errorf("%w: the peer speaks wire version %d, this node %d", errBadFrame, v, wireVersion)
	}
	nonce = d.bytes()
	flags := d.byte()
	if d.err == nil && len(nonce) != nonceSize {
		d.err = fmt.Errorf("%w: challenge nonce of %d bytes", errBadFrame, len(nonce))
	}
	return nonce, flags&1 != 0, d.err
}

// hello is what a dialing node announces: its id, peer address and client
// address, and its proof of the peer token (nil without a token).
type hello struct {
	id, peerAddr, clientAddr string
	proof                    []byte
}

// writeHello announces the sender without a proof (a node without a peer
// token).
func (w *frameWriter) writeHello(id, peerAddr, clientAddr string) {
	w.writeAuthHello(hello{id: id, peerAddr: peerAddr, clientAddr: clientAddr})
}

// writeAuthHello announces the sender with h.proof (helloProof).
func (w *frameWriter) writeAuthHello(h hello) {
	at := w.begin(frameHello)
	w.buf = append(w.buf, wireVersion)
	w.buf = appendString(w.buf, h.id)
	w.buf = appendString(w.buf, h.peerAddr)
	w.buf = appendString(w.buf, h.clientAddr)
	w.buf = appendBytes(w.buf, h.proof)
	w.end(at)
}

// helloProof is the proof a hello carries: HMAC-SHA256 keyed with the peer
// token of the wire version, the challenge's nonce, the member the dialer
// meant to reach (to) and the hello's fields, so that it holds for this
// connection, this sender and this receiver only: a proof obtained by
// whatever answered a dial to one member's address (a squatter on a down
// member's port) is worthless at any other member.
func helloProof(token string, nonce []byte, to string, h hello) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	b := append([]byte("raft-kv peer hello"), wireVersion)
	b = appendBytes(b, nonce)
	b = appendString(b, to)
	b = appendString(b, h.id)
	b = appendString(b, h.peerAddr)
	b = appendString(b, h.clientAddr)
	mac.Write(b)
	return mac.Sum(nil)
}

// validProof reports, in constant time, whether h proves token for nonce
// and for the receiver self.
func validProof(token string, nonce []byte, self string, h hello) bool {
	return len(h.proof) == proofSize && hmac.Equal(h.proof, helloProof(token, nonce, self, h))
}

// readFrame reads one frame into buf (reused when large enough; pass nil
// when the payload must outlive the next read, as decoded entries alias it).
func readFrame(r io.Reader, buf []byte) (kind byte, payload []byte, err error) {
	return readFrameMax(r, buf, maxFrame)
}

// readFrameMax reads a frame of at most limit bytes. Beyond buf's capacity
// it takes memory as the payload arrives, so that a length that is a lie
// costs at most about what was actually sent.
func readFrameMax(r io.Reader, buf []byte, limit uint32) (kind byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > limit {
		return 0, nil, fmt.Errorf("%w: frame length %d", errBadFrame, n)
	}
	size := int(n - 1)
	if cap(buf) >= size {
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, unexpectedEOF(err)
		}
		return hdr[4], buf, nil
	}
	buf = make([]byte, 0, min(size, frameStep))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return 0, nil, unexpectedEOF(err)
		}
	}
	return hdr[4], buf, nil
}

// unexpectedEOF: a stream that ends inside a frame did not end cleanly.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func decodeHello(b []byte) (id, peerAddr, clientAddr string, err error) {
	h, err := decodeAuthHello(b)
	return h.id, h.peerAddr, h.clientAddr, err
}

func decodeAuthHello(b []byte) (h hello, err error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != wireVersion {
		return h, fmt.Errorf("%w: the peer speaks wire version %d, this node %d", errBadFrame, v, wireVersion)
	}
	h.id = string(d.bytes())
	h.peerAddr = string(d.bytes())
	h.clientAddr = string(d.bytes())
	if p := d.bytes(); len(p) > 0 {
		h.proof = p
	}
	if d.err == nil && h.id == "" {
		d.err = fmt.Errorf("%w: hello without an id", errBadFrame)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes in the hello", errBadFrame, len(d.b))
	}
	return h, d.err
}

// snapAssembler collects a MsgSnap's chunks. Its buffer grows as chunks
// arrive (doubling, never beyond the announced length), so a header alone
// costs nothing; the caller bounds the announced length.
type snapAssembler struct {
	msg  *raftcore.Message
	want uint64
	data []byte
}

// header starts a snapshot of n bytes; it returns the message at once when
// n is 0.
func (a *snapAssembler) header(m raftcore.Message, n uint64) (*raftcore.Message, bool) {
	a.msg, a.want, a.data = &m, n, nil
	return a.complete()
}

// chunk takes a chunk frame; it returns the completed message when the
// last chunk arrived.
func (a *snapAssembler) chunk(b []byte) (*raftcore.Message, bool, error) {
	if a.msg == nil || uint64(len(a.data))+uint64(len(b)) > a.want {
		return nil, false, fmt.Errorf("%w: unexpected snapshot chunk", errBadFrame)
	}
	if need := len(a.data) + len(b); need > cap(a.data) {
		grown := make([]byte, len(a.data), int(min(a.want, uint64(max(need, 2*cap(a.data))))))
		copy(grown, a.data)
		a.data = grown
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
