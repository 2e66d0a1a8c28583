package kvserver

import (
	"bufio"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// Fault is the injected misbehaviour of one direction of one peer link.
type Fault struct {
	// Drop discards every message.
	Drop bool `json:"drop,omitempty"`
	// DelayMs delays each message by DelayMs plus a uniform jitter in
	// [0, JitterMs) (messages may then be reordered, as a network can).
	DelayMs  int `json:"delay_ms,omitempty"`
	JitterMs int `json:"jitter_ms,omitempty"`
	// LossPercent discards that share of messages at random.
	LossPercent float64 `json:"loss_percent,omitempty"`
	// DuplicatePercent delivers that share of messages twice (each copy
	// delayed on its own). Snapshots are never duplicated: their delivery
	// is reported to raftcore once.
	DuplicatePercent float64 `json:"duplicate_percent,omitempty"`
}

func (f Fault) active() bool {
	return f.Drop || f.DelayMs > 0 || f.JitterMs > 0 || f.LossPercent > 0 || f.DuplicatePercent > 0
}

// Direction of a fault: messages this node sends to the peer (out) or
// receives from it (in).
const (
	DirOut = "out"
	DirIn  = "in"
)

// faultKey names a link direction.
type faultKey struct{ peer, dir string }

// transport is the peer network: one persistent outbound TCP connection per
// peer, fed by a queue and written by its own goroutine (so a slow peer
// never blocks the raft loop), and one reader goroutine per inbound
// connection. Messages already queued are written in one batch and one
// flush; AppendEntries are pipelined (nothing waits for a response). A
// snapshot is streamed chunk by chunk; every write is under a
// progress-based deadline (writeAll). Connections open with the handshake
// of codec.go: the acceptor's challenge, the dialer's hello and its proof
// of the peer token.
type transport struct {
	id, advertise   string
	advertiseClient string
	ln              net.Listener
	deliver         func(raftcore.Message)
	unreachable     func(id string)
	// snapStatus reports a MsgSnap delivered (written out whole) or not
	// (failed, or dropped before it was sent). It is called from transport
	// goroutines, send's caller's included, and must not block.
	snapStatus func(id string, ok bool)
	logf       func(string, ...any)
	// token is the peer token ("" none); maxSnapshot bounds a received
	// snapshot; stall is the write (and handshake) progress timeout.
	token       string
	maxSnapshot uint64
	stall       time.Duration
	dial        func(addr string, timeout time.Duration) (net.Conn, error)

	mu    sync.Mutex
	addrs map[string]string
	// clients are the peers' client addresses, learned from their hellos.
	clients map[string]string
	peers   map[string]*peer
	faults  map[faultKey]Fault
	rng     *rand.Rand
	closed  bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup

	sent, dropped          atomic.Uint64
	delayed                atomic.Uint64 // messages (copies) held by a delay fault
	authFailures           atomic.Uint64 // inbound hellos without a valid proof
	snapsSent, snapsFailed atomic.Uint64 // snapshots written out whole / failed or dropped
	authLoggedAt           atomic.Int64  // unix ns of the last refusal logged
}

const peerQueue = 4096

type peer struct {
	id   string
	t    *transport
	q    chan raftcore.Message
	stop chan struct{}
	// lastErr is the handshake failure logged last (run's goroutine only).
	lastErr string
}

func newTransport(cfg Config, ln net.Listener, deliver func(raftcore.Message), unreachable func(string), snapStatus func(string, bool), logf func(string, ...any)) *transport {
	t := &transport{
		id: cfg.ID, advertise: cfg.AdvertisePeer, advertiseClient: cfg.AdvertiseClient, ln: ln, clients: map[string]string{},
		deliver: deliver, unreachable: unreachable, snapStatus: snapStatus, logf: logf,
		token: cfg.PeerToken, maxSnapshot: uint64(cfg.MaxSnapshotBytes), stall: cfg.PeerStallTimeout, dial: cfg.peerDial,
		addrs: map[string]string{}, peers: map[string]*peer{}, faults: map[faultKey]Fault{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), conns: map[net.Conn]struct{}{},
	}
	if t.dial == nil {
		t.dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, timeout)
		}
	}
	if t.maxSnapshot == 0 {
		t.maxSnapshot = DefaultMaxSnapshotBytes
	}
	if t.stall <= 0 {
		t.stall = DefaultPeerStallTimeout
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && t.token == "" && !a.IP.IsLoopback() {
		logf("peer port %s is not on loopback and no --peer-token is set: anything that reaches it can act as a member", ln.Addr())
	}
	for k, v := range cfg.Peers {
		if k != t.id {
			t.addrs[k] = v
		}
	}
	if cfg.initialFaults != nil {
		// Before the first dial or accept: the node's first message is
		// already judged by these faults (Start read them from
		// InitialFaultsEnv and refused to start on a malformed value).
		t.replaceFaults(cfg.initialFaults)
		logf("%s: starting with faults %v", InitialFaultsEnv, t.faultList())
	}
	t.wg.Add(1)
	go t.accept()
	return t
}

// initialFaults reads the faults a node starts with from InitialFaultsEnv:
// nil when it is unset or empty; an error naming the variable and the
// problem when its value is not a valid FaultSet (malformed JSON, a field
// FaultSet does not have, trailing data, an invalid fault). Start refuses
// to start on it: a node meant to start partitioned must not start
// connected.
func initialFaults(cfg Config) (map[faultKey]Fault, error) {
	v := os.Getenv(InitialFaultsEnv)
	if v == "" {
		return nil, nil
	}
	bad := func(err error) error {
		return fmt.Errorf("environment variable %s: %w (value %q); refusing to start", InitialFaultsEnv, err, v)
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var fs FaultSet
	if err := dec.Decode(&fs); err != nil {
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(errors.New("trailing data after the JSON object"))
	}
	book := map[string]string{cfg.ID: cfg.AdvertisePeer}
	for k, a := range cfg.Peers {
		book[k] = a
	}
	m, err := fs.faultMap(cfg.ID, book)
	if err != nil {
		return nil, bad(err)
	}
	return m, nil
}

// setAddr records (or changes) a peer's address.
func (t *transport) setAddr(id, addr string) {
	if id == t.id || addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addrs[id] == addr {
		return
	}
	t.addrs[id] = addr
	if p := t.peers[id]; p != nil { // reconnect to the new address
		close(p.stop)
		delete(t.peers, id)
	}
}

func (t *transport) addr(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addrs[id]
}

// clientAddr is a peer's client address, "" if not yet known.
func (t *transport) clientAddr(id string) string {
	if id == t.id {
		return t.advertiseClient
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.clients[id]
}

func (t *transport) addrBook() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{t.id: t.advertise}
	for k, v := range t.addrs {
		out[k] = v
	}
	return out
}

// setFault sets (or, with the zero Fault, clears) a link fault.
func (t *transport) setFault(peerID, dir string, f Fault) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.active() {
		t.faults[faultKey{peerID, dir}] = f
	} else {
		delete(t.faults, faultKey{peerID, dir})
	}
}

func (t *transport) clearFaults() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.faults)
}

// replaceFaults makes fs the whole set of faults in force, in one step:
// no message is judged by a mix of the old set and the new one, so moving
// from one set to another never opens a gap (a cut link briefly open) nor
// applies a fault twice.
func (t *transport) replaceFaults(fs map[faultKey]Fault) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.faults)
	for k, f := range fs {
		if f.active() {
			t.faults[k] = f
		}
	}
}

func (t *transport) faultList() map[string]map[string]Fault {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[string]Fault{}
	for k, f := range t.faults {
		if out[k.peer] == nil {
			out[k.peer] = map[string]Fault{}
		}
		out[k.peer][k.dir] = f
	}
	return out
}

// judge applies the link's fault to one message: how many copies to
// deliver (0: dropped; 2: duplicated) and the delay of each. An array, not
// a slice: this runs for every message. mu held.
func (t *transport) judge(peerID, dir string, dup bool) (copies int, delays [2]time.Duration) {
	f, found := t.faults[faultKey{peerID, dir}]
	if !found {
		return 1, delays
	}
	if f.Drop || (f.LossPercent > 0 && t.rng.Float64()*100 < f.LossPercent) {
		return 0, delays
	}
	copies = 1
	if dup && f.DuplicatePercent > 0 && t.rng.Float64()*100 < f.DuplicatePercent {
		copies = 2
	}
	for i := range copies {
		delays[i] = time.Duration(f.DelayMs) * time.Millisecond
		if f.JitterMs > 0 {
			delays[i] += time.Duration(t.rng.IntN(f.JitterMs*1000)) * time.Microsecond
		}
	}
	return copies, delays
}

// cutNow reports whether the link is cut now. A message held by a delay
// asks it when its delay ends: a partition set meanwhile drops it, as a
// cut link loses what was in flight on it. (Loss and delay were drawn
// when the message was sent; they are not drawn again.)
func (t *transport) cutNow(peerID, dir string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed || t.faults[faultKey{peerID, dir}].Drop
}

// send queues messages; it never blocks. A full queue drops the message
// (Raft tolerates loss) and reports the peer unreachable.
func (t *transport) send(msgs []raftcore.Message) {
	for _, m := range msgs {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return
		}
		copies, delays := t.judge(m.To, DirOut, m.Snapshot == nil)
		if copies == 0 {
			t.mu.Unlock()
			t.lost(m) // a snapshot is reported failed, as when a delay ends on a cut
			continue
		}
		p := t.peerLocked(m.To)
		t.mu.Unlock()
		if p == nil {
			t.lost(m)
			continue
		}
		for _, delay := range delays[:copies] {
			if delay > 0 {
				t.delayed.Add(1)
				time.AfterFunc(delay, func() {
					if t.cutNow(m.To, DirOut) {
						t.lost(m) // a snapshot is reported failed: it will not arrive
						return
					}
					p.enqueue(m)
				})
				continue
			}
			p.enqueue(m)
		}
	}
}

func (p *peer) enqueue(m raftcore.Message) {
	select {
	case p.q <- m:
	default:
		p.t.lost(m)
		p.t.unreachable(p.id)
	}
}

// lost counts a message that will not be sent. A snapshot is reported
// failed, so that raftcore sends it again instead of waiting for it.
func (t *transport) lost(m raftcore.Message) {
	t.dropped.Add(1)
	if m.Snapshot != nil {
		t.snapsFailed.Add(1)
		t.snapStatus(m.To, false)
	}
}

// peerLocked returns the peer's sender, starting it; nil if the address is
// unknown. mu held.
func (t *transport) peerLocked(id string) *peer {
	if p := t.peers[id]; p != nil {
		return p
	}
	if t.addrs[id] == "" {
		return nil
	}
	p := &peer{id: id, t: t, q: make(chan raftcore.Message, peerQueue), stop: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go p.run()
	return p
}

// run keeps a connection to the peer and writes queued messages to it.
// After a failure it waits (backoff up to one second; the backoff starts
// again only after a connection that lasted, so a peer that refuses this
// node, a wrong peer token, is redialed about once a second) and dials
// again, dropping what was queued meanwhile.
func (p *peer) run() {
	defer p.t.wg.Done()
	backoff := 10 * time.Millisecond
	var fw frameWriter
	for {
		addr := p.t.addr(p.id)
		conn, err := p.t.dial(addr, time.Second)
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			p.t.track(conn, true)
			start := time.Now()
			err = p.write(conn, &fw)
			p.t.track(conn, false)
			_ = conn.Close()
			if time.Since(start) > time.Second {
				backoff = 10 * time.Millisecond
			}
		}
		select {
		case <-p.stop:
			return
		default:
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			p.t.unreachable(p.id)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-p.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		backoff = min(backoff*2, time.Second)
		// Messages queued while the peer was away are stale; Raft resends.
		for len(p.q) > 0 {
			p.t.lost(<-p.q)
		}
	}
}

// write runs the handshake, then sends batches of queued messages: every
// message waiting in the queue is encoded into one buffer and written at
// once, up to a snapshot, which is streamed on its own.
func (p *peer) write(conn net.Conn, fw *frameWriter) error {
	if err := p.handshake(conn, fw); err != nil {
		return err
	}
	// After the handshake the peer sends nothing on this connection, so a
	// read returns only when it is gone: its FIN (a process that stopped,
	// a pod deleted) or a reset. Close the connection then, so that the
	// next write fails and the peer is redialed at once: its address may
	// now resolve elsewhere (a pod that came back with a new IP). Without
	// this, writes went on into the send buffer of a connection whose far
	// end had left, until the kernel gave up retransmitting (about 100 s).
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		_ = conn.Close()
	}()
	var next *raftcore.Message // a snapshot taken from the queue, not yet written
	for {
		var m raftcore.Message
		if next != nil {
			m, next = *next, nil
		} else {
			select {
			case <-p.stop:
				return net.ErrClosed
			case m = <-p.q:
			}
		}
		if m.Snapshot != nil {
			if err := p.writeSnapshot(conn, fw, &m); err != nil {
				return err
			}
			continue
		}
		fw.buf = fw.buf[:0]
		fw.writeMessage(&m)
		n := 1
	batch:
		for len(fw.buf) < 4<<20 {
			select {
			case m := <-p.q:
				if m.Snapshot != nil {
					next = &m
					break batch
				}
				fw.writeMessage(&m)
				n++
			default:
				break batch
			}
		}
		if err := p.t.writeAll(conn, fw.buf); err != nil {
			if next != nil {
				p.t.lost(*next)
			}
			return err
		}
		p.t.sent.Add(uint64(n))
		if cap(fw.buf) > 8<<20 {
			fw.buf = nil // do not keep a large buffer
		}
	}
}

// handshake answers the acceptor's challenge with this node's hello and,
// with a peer token, the proof of it.
func (p *peer) handshake(conn net.Conn, fw *frameWriter) error {
	_ = conn.SetReadDeadline(time.Now().Add(p.t.stall))
	kind, payload, err := readFrameMax(conn, nil, maxHandshakeFrame)
	if err != nil {
		return p.handshakeFailed(fmt.Errorf("no challenge: %w", err))
	}
	if kind != frameChallenge {
		return p.handshakeFailed(fmt.Errorf("%w: first frame of kind %d is not a challenge", errBadFrame, kind))
	}
	nonce, required, err := decodeChallenge(payload)
	if err != nil {
		return p.handshakeFailed(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if required && p.t.token == "" {
		// Go on: the peer refuses and logs it; say why on this side too.
		_ = p.handshakeFailed(errors.New("it requires a peer token and this node has none (--peer-token)"))
	}
	h := hello{id: p.t.id, peerAddr: p.t.advertise, clientAddr: p.t.advertiseClient}
	if p.t.token != "" {
		h.proof = helloProof(p.t.token, nonce, p.id, h)
	}
	fw.buf = fw.buf[:0]
	fw.writeAuthHello(h)
	if err := p.t.writeAll(conn, fw.buf); err != nil {
		return err
	}
	if !required || p.t.token != "" {
		p.lastErr = "" // a later failure is news again
	}
	return nil
}

// handshakeFailed logs err unless it is what was logged last for this peer
// (a peer that stays wrong is redialed every second).
func (p *peer) handshakeFailed(err error) error {
	if msg := err.Error(); msg != p.lastErr {
		p.lastErr = msg
		p.t.logf("peer %s: handshake: %v", p.id, err)
	}
	return err
}

// writeSnapshot streams a MsgSnap, its header and then its data one chunk
// at a time, and reports the outcome: delivered once the last chunk was
// written, failed when a write failed (a stall of the stall timeout
// included), which also ends the connection.
func (p *peer) writeSnapshot(conn net.Conn, fw *frameWriter, m *raftcore.Message) error {
	start := time.Now()
	data := m.Snapshot.Data
	fw.buf = fw.buf[:0]
	fw.writeSnapHeader(m)
	written := 0
	for {
		n := min(len(data)-written, snapChunk)
		if n > 0 {
			fw.writeSnapChunk(data[written : written+n])
		}
		if err := p.t.writeAll(conn, fw.buf); err != nil {
			fw.buf = nil
			p.t.snapsFailed.Add(1)
			p.t.logf("snapshot %d to %s failed after %d of %d bytes in %v: %v", m.Snapshot.Meta.Index, p.id, written, len(data), time.Since(start).Round(time.Millisecond), err)
			p.t.snapStatus(p.id, false)
			return err
		}
		written += n
		if written == len(data) {
			break
		}
		fw.buf = fw.buf[:0]
	}
	fw.buf = nil // do not keep a chunk-sized buffer
	p.t.sent.Add(1)
	p.t.snapsSent.Add(1)
	p.t.logf("snapshot %d (%d bytes) sent to %s in %v", m.Snapshot.Meta.Index, len(data), p.id, time.Since(start).Round(time.Millisecond))
	p.t.snapStatus(p.id, true)
	return nil
}

// writeAll writes b under a progress-based deadline: the write deadline is
// the stall timeout from now, and is pushed back whenever some bytes went
// out, so that a large write over a slow link completes and only one that
// makes no progress fails: between one and two stall timeouts after the
// last byte went out.
func (t *transport) writeAll(c net.Conn, b []byte) error {
	for {
		_ = c.SetWriteDeadline(time.Now().Add(t.stall))
		n, err := c.Write(b)
		b = b[n:]
		if err == nil {
			return nil
		}
		if n == 0 || len(b) == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
}

func (t *transport) track(c net.Conn, add bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		if t.closed {
			_ = c.Close()
		}
		t.conns[c] = struct{}{}
	} else {
		delete(t.conns, c)
	}
}

func (t *transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.track(c, true)
		t.wg.Add(1)
		go t.read(c)
	}
}

// read receives frames from one inbound connection and delivers them.
func (t *transport) read(c net.Conn) {
	defer t.wg.Done()
	defer t.track(c, false)
	defer func() { _ = c.Close() }()
	h, ok := t.acceptHello(c)
	if !ok {
		return
	}
	from := h.id
	t.learn(from, h.peerAddr, h.clientAddr)
	r := bufio.NewReaderSize(c, 256<<10)
	var snap snapAssembler
	for {
		kind, payload, err := readFrame(r, nil)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				t.logf("peer %s: %v", from, err)
			}
			return
		}
		var m *raftcore.Message
		switch kind {
		case frameMsg:
			msg, _, err := decodeMessage(payload)
			if err != nil {
				t.logf("peer %s: %v", from, err)
				return
			}
			m = &msg
		case frameSnapHeader:
			msg, n, err := decodeMessage(payload)
			if err != nil || msg.Snapshot == nil {
				t.logf("peer %s: bad snapshot header: %v", from, err)
				return
			}
			if n > t.maxSnapshot {
				t.logf("peer %s: snapshot %d of %d bytes is above --max-snapshot-bytes (%d): refused, closing; raise the limit on this node if the snapshot is genuine",
					from, msg.Snapshot.Meta.Index, n, t.maxSnapshot)
				return
			}
			m, _ = snap.header(msg, n)
		case frameSnapChunk:
			var err error
			if m, _, err = snap.chunk(payload); err != nil {
				t.logf("peer %s: %v", from, err)
				return
			}
		default:
			t.logf("peer %s: unknown frame kind %d", from, kind)
			return
		}
		if m == nil {
			continue
		}
		// A forwarded request keeps its originator as From
		// (raftcore's IsForwarded), so only those may name another
		// member. This trusts peers: a member can name any originator,
		// and so steer a transfer or have a ReadIndex answer sent to
		// another member (which ignores contexts it did not issue).
		if m.From != from && !m.Type.IsForwarded() {
			t.logf("peer %s sent a %s from %q; closing", from, m.Type, m.From)
			return
		}
		t.mu.Lock()
		copies, delays := t.judge(from, DirIn, m.Snapshot == nil)
		t.mu.Unlock()
		if copies == 0 {
			t.dropped.Add(1)
			continue
		}
		for _, delay := range delays[:copies] {
			if delay == 0 {
				t.deliver(*m)
				continue
			}
			msg := *m
			t.delayed.Add(1)
			time.AfterFunc(delay, func() {
				if t.cutNow(from, DirIn) {
					t.dropped.Add(1)
					return
				}
				t.deliver(msg)
			})
		}
	}
}

// acceptHello runs the accepting side of the handshake (codec.go): it sends
// the challenge and reads the hello, both within the stall timeout, and
// with a peer token checks the hello's proof. false: the connection is to
// be closed (a refusal is counted and logged).
func (t *transport) acceptHello(c net.Conn) (hello, bool) {
	_ = c.SetDeadline(time.Now().Add(t.stall))
	var nonce [nonceSize]byte
	_, _ = crand.Read(nonce[:]) // never fails (crypto/rand)
	var fw frameWriter
	fw.writeChallenge(nonce[:], t.token != "")
	if _, err := c.Write(fw.buf); err != nil {
		return hello{}, false
	}
	kind, payload, err := readFrameMax(c, nil, maxHandshakeFrame)
	if err != nil {
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			t.logf("peer connection from %s: no hello: %v", c.RemoteAddr(), err)
		}
		return hello{}, false
	}
	if kind != frameHello {
		t.logf("peer connection from %s: first frame is not a hello", c.RemoteAddr())
		return hello{}, false
	}
	h, err := decodeAuthHello(payload)
	if err != nil {
		t.logf("peer connection from %s: %v", c.RemoteAddr(), err)
		return hello{}, false
	}
	if t.token != "" && !validProof(t.token, nonce[:], t.id, h) {
		n := t.authFailures.Add(1)
		now := time.Now().UnixNano()
		if last := t.authLoggedAt.Load(); now-last >= int64(time.Second) && t.authLoggedAt.CompareAndSwap(last, now) {
			why := "a wrong peer token"
			if h.proof == nil {
				why = "no peer token"
			}
			t.logf("peer connection from %s as %q refused: it proved %s (--peer-token); %d refused so far", c.RemoteAddr(), h.id, why, n)
		}
		return hello{}, false
	}
	_ = c.SetDeadline(time.Time{})
	return h, true
}

// learn records the addresses a peer announced in its hello; a known peer
// address is kept (the log's address records and --peers are authoritative).
func (t *transport) learn(id, addr, clientAddr string) {
	if id == t.id || addr == "" {
		return
	}
	t.mu.Lock()
	known := t.addrs[id]
	if clientAddr != "" {
		t.clients[id] = clientAddr
	}
	t.mu.Unlock()
	if known == "" {
		t.setAddr(id, addr)
	}
}

func (t *transport) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	_ = t.ln.Close()
	for _, p := range t.peers {
		close(p.stop)
	}
	t.peers = map[string]*peer{}
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

func (f Fault) String() string {
	return fmt.Sprintf("drop=%v delay=%dms jitter=%dms loss=%.1f%% dup=%.1f%%", f.Drop, f.DelayMs, f.JitterMs, f.LossPercent, f.DuplicatePercent)
}
