package kvserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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
}

func (f Fault) active() bool { return f.Drop || f.DelayMs > 0 || f.JitterMs > 0 || f.LossPercent > 0 }

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
// flush; AppendEntries are pipelined (nothing waits for a response).
type transport struct {
	id, advertise   string
	advertiseClient string
	ln              net.Listener
	deliver         func(raftcore.Message)
	unreachable     func(id string)
	logf            func(string, ...any)

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

	sent, dropped atomic.Uint64
}

const peerQueue = 4096

type peer struct {
	id   string
	t    *transport
	q    chan raftcore.Message
	stop chan struct{}
}

func newTransport(id, advertise, advertiseClient string, ln net.Listener, addrs map[string]string, deliver func(raftcore.Message), unreachable func(string), logf func(string, ...any)) *transport {
	t := &transport{
		id: id, advertise: advertise, advertiseClient: advertiseClient, ln: ln, clients: map[string]string{}, deliver: deliver, unreachable: unreachable, logf: logf,
		addrs: map[string]string{}, peers: map[string]*peer{}, faults: map[faultKey]Fault{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), conns: map[net.Conn]struct{}{},
	}
	for k, v := range addrs {
		if k != id {
			t.addrs[k] = v
		}
	}
	t.wg.Add(1)
	go t.accept()
	return t
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

// judge applies the link's fault: drop (false) or deliver after delay.
// mu held.
func (t *transport) judge(peerID, dir string) (ok bool, delay time.Duration) {
	f, found := t.faults[faultKey{peerID, dir}]
	if !found {
		return true, 0
	}
	if f.Drop || (f.LossPercent > 0 && t.rng.Float64()*100 < f.LossPercent) {
		return false, 0
	}
	d := time.Duration(f.DelayMs) * time.Millisecond
	if f.JitterMs > 0 {
		d += time.Duration(t.rng.IntN(f.JitterMs*1000)) * time.Microsecond
	}
	return true, d
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
		ok, delay := t.judge(m.To, DirOut)
		if !ok {
			t.mu.Unlock()
			t.dropped.Add(1)
			continue
		}
		p := t.peerLocked(m.To)
		t.mu.Unlock()
		if p == nil {
			t.dropped.Add(1)
			continue
		}
		if delay > 0 {
			time.AfterFunc(delay, func() { p.enqueue(m) })
			continue
		}
		p.enqueue(m)
	}
}

func (p *peer) enqueue(m raftcore.Message) {
	select {
	case p.q <- m:
	default:
		p.t.dropped.Add(1)
		p.t.unreachable(p.id)
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
// After a failure it waits (backoff up to one second) and dials again,
// dropping what was queued meanwhile.
func (p *peer) run() {
	defer p.t.wg.Done()
	backoff := 10 * time.Millisecond
	var fw frameWriter
	for {
		addr := p.t.addr(p.id)
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			p.t.track(conn, true)
			err = p.write(conn, &fw)
			p.t.track(conn, false)
			_ = conn.Close()
			backoff = 10 * time.Millisecond
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
			<-p.q
			p.t.dropped.Add(1)
		}
	}
}

// write sends the hello, then batches of queued messages: every message
// waiting in the queue is encoded into one buffer and written at once.
func (p *peer) write(conn net.Conn, fw *frameWriter) error {
	fw.buf = fw.buf[:0]
	fw.writeHello(p.t.id, p.t.advertise, p.t.advertiseClient)
	if _, err := conn.Write(fw.buf); err != nil {
		return err
	}
	for {
		var m raftcore.Message
		select {
		case <-p.stop:
			return net.ErrClosed
		case m = <-p.q:
		}
		fw.buf = fw.buf[:0]
		fw.writeMessage(&m)
		n := 1
	batch:
		for len(fw.buf) < 4<<20 {
			select {
			case m = <-p.q:
				fw.writeMessage(&m)
				n++
			default:
				break batch
			}
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(fw.buf); err != nil {
			return err
		}
		p.t.sent.Add(uint64(n))
		if cap(fw.buf) > 8<<20 {
			fw.buf = nil // do not keep a snapshot-sized buffer
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
	r := bufio.NewReaderSize(c, 256<<10)
	kind, payload, err := readFrame(r, nil)
	if err != nil {
		return
	}
	if kind != frameHello {
		t.logf("peer connection from %s: first frame is not a hello", c.RemoteAddr())
		return
	}
	from, addr, clientAddr, err := decodeHello(payload)
	if err != nil {
		t.logf("peer connection from %s: %v", c.RemoteAddr(), err)
		return
	}
	t.learn(from, addr, clientAddr)
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
		if m.From != from && !forwardable(m.Type) {
			t.logf("peer %s sent a %s from %q; closing", from, m.Type, m.From)
			return
		}
		t.mu.Lock()
		ok, delay := t.judge(from, DirIn)
		t.mu.Unlock()
		switch {
		case !ok:
			t.dropped.Add(1)
		case delay > 0:
			msg := *m
			time.AfterFunc(delay, func() { t.deliver(msg) })
		default:
			t.deliver(*m)
		}
	}
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
	return fmt.Sprintf("drop=%v delay=%dms jitter=%dms loss=%.1f%%", f.Drop, f.DelayMs, f.JitterMs, f.LossPercent)
}

// forwardable reports the requests a follower passes on to its leader with
// their originator as From (raftcore keeps it, so that a read is answered
// to the node that asked and a transfer goes to the node that was named):
// only these may arrive on a connection from another peer. This trusts
// peers: a member can name any originator, and so steer a transfer or have
// a ReadIndex answer sent to another member (which ignores contexts it did
// not issue). The peer port must only be reachable by members.
func forwardable(t raftcore.MessageType) bool {
	return t == raftcore.MsgProp || t == raftcore.MsgReadIndex || t == raftcore.MsgTransferLeader
}
