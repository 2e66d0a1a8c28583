package kvserver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftlab/raftlab/kvserver/sm"
	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/disk"
	"github.com/raftlab/raftlab/reconfig"
)

// Server is one raft-kv node: the loop, the peer transport and the three
// HTTP listeners (client API, admin plane with /metrics, /healthz, /readyz).
type Server struct {
	cfg   Config
	n     *node
	boot  string // distinguishes this process's anonymous writes
	anon  uint64
	anonM sync.Mutex

	clientLn, adminLn net.Listener
	clientSrv         *http.Server
	adminSrv          *http.Server
	stopOnce          sync.Once
	stopped           chan struct{}
	err               error
	// eventPolls counts the GET /admin/events calls waiting for an event.
	eventPolls atomic.Int64
}

// Start opens (or creates) the data directory, recovers the node and starts
// serving. The listeners are bound before Start returns.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Before the data directory is opened: a node given malformed
	// faults does not start at all (cmd/raft-kv exits 1 with the error).
	fm, err := initialFaults(cfg)
	if err != nil {
		return nil, err
	}
	cfg.initialFaults = fm
	st, err := disk.Open(cfg.DataDir, disk.Options{})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = st.Close()
		}
	}()
	hs, _ := st.InitialState()
	last, _ := st.LastIndex()
	snap, _ := st.Snapshot()
	rec := st.Recovered()
	if rec.TornFile != "" && cfg.Logf != nil {
		cfg.Logf("recovery: cut a torn tail of %d bytes at %s offset %d (a write a crash interrupted; never reported durable)", rec.TornBytes, rec.TornFile, rec.TornOffset)
	}
	if rec.DroppedSegment != "" {
		if cfg.Logf != nil {
			cfg.Logf("recovery: dropped WAL segment %s, which held no intact record (left by a crash while an earlier build created it)", rec.DroppedSegment)
		}
		if hs.IsEmpty() && last == 0 && snap.IsEmpty() {
			// This member wrote a WAL before: it may have voted. Starting
			// it as a fresh founder could cast a second vote in a term.
			return nil, fmt.Errorf("data directory %s: its only WAL segment (%s) held no intact record, so this member's term, vote and log are lost; "+
				"refusing to start it as a new member: remove the directory and add the member back (as a learner, then a voter)", cfg.DataDir, rec.DroppedSegment)
		}
	}
	if hs.IsEmpty() && last == 0 && snap.IsEmpty() && !cfg.Join {
		if err := st.Bootstrap(raftcore.NewConfig(slices.Sorted(maps.Keys(cfg.Peers)))); err != nil {
			return nil, err
		}
	}
	opts := raftcore.Options{
		ID: cfg.ID, ElectionTick: cfg.electionTicks(), HeartbeatTick: 1, Storage: st,
		CheckQuorum: true, PreVote: true, Seed: seedOf(cfg.ID),
		MaxInflightMsgs: 512,
	}
	switch cfg.Mode {
	case reconfig.UnsafeEarlyVote:
		// docs/BUGS.md, unsafe-early-vote: the membership comes from the start-up
		// configuration (the peer list), not from the log.
		c := raftcore.NewConfig(slices.Sorted(maps.Keys(cfg.Peers)))
		opts.UnsafeStartupMembership = &c
	case reconfig.UnsafeNoJoint:
		opts.UnsafeAllowMultiVoterOneStep = true
	}
	n := &node{
		cfg: cfg, st: st, sm: sm.New(), m: newMetrics(),
		propc: make(chan *proposal, 4096), readc: make(chan *readReq, 4096),
		recvc: make(chan raftcore.Message, 4096), callc: make(chan func()),
		syncc: make(chan syncJob, 4096), syncErr: make(chan error, 1), syncDone: make(chan struct{}),
		stopc: make(chan struct{}), donec: make(chan struct{}), fatal: make(chan error, 1),
		waiters: map[waitKey]*proposal{}, readBatches: map[uint64][]*readReq{},
		addrs: map[string]string{}, lastSnapAt: time.Now(),
	}
	empty := ""
	n.stats.lead.Store(&empty)
	peerLn, err := net.Listen("tcp", cfg.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("peer listener %s: %w", cfg.PeerAddr, err)
	}
	n.tr = newTransport(cfg, peerLn, n.receive,
		func(id string) {
			// Called from transport goroutines: report through the loop.
			select {
			case n.callc <- func() { n.rn.ReportUnreachable(id) }:
			default:
			}
		},
		func(id string, ok bool) {
			// A snapshot went out or failed: tell raftcore through the
			// loop, which owns the RawNode, without blocking the caller
			// (possibly the syncer, which the loop may be waiting for).
			go n.call(func() { n.rn.ReportSnapshot(id, ok) })
		}, n.logf)
	if !snap.IsEmpty() {
		if err := n.restore(snap); err != nil {
			n.tr.close()
			return nil, err
		}
		opts.Applied = snap.Meta.Index
	}
	if n.rn, err = raftcore.NewRawNode(opts); err != nil {
		n.tr.close()
		return nil, err
	}
	s := &Server{cfg: cfg, n: n, boot: strconv.FormatInt(time.Now().UnixNano(), 36), stopped: make(chan struct{})}
	n.m.register(n)
	if s.clientLn, err = net.Listen("tcp", cfg.ClientAddr); err != nil {
		n.tr.close()
		return nil, fmt.Errorf("client listener %s: %w", cfg.ClientAddr, err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		n.tr.close()
		_ = s.clientLn.Close()
		return nil, fmt.Errorf("admin listener %s: %w", cfg.AdminAddr, err)
	}
	ok = true
	s.clientSrv = &http.Server{Handler: s.clientHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.adminSrv = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go n.run()
	go func() { _ = s.clientSrv.Serve(s.clientLn) }()
	go func() { _ = s.adminSrv.Serve(s.adminLn) }()
	go func() {
		select {
		case err := <-n.fatal:
			n.logf("fatal: %v", err)
			s.err = err
			s.shutdown()
		case <-s.stopped:
		}
	}()
	return s, nil
}

func seedOf(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64() ^ uint64(time.Now().UnixNano())
}

// ClientAddr and AdminAddr are the bound listen addresses.
func (s *Server) ClientAddr() string { return s.clientLn.Addr().String() }
func (s *Server) AdminAddr() string  { return s.adminLn.Addr().String() }

// Done is closed when the server stopped (after Stop, or a fatal storage
// error); Err then says why.
func (s *Server) Done() <-chan struct{} { return s.stopped }

// Err is the fatal error that stopped the server, nil after Stop.
func (s *Server) Err() error { return s.err }

// Stop transfers leadership away if this node leads (to the most caught-up
// voter, waiting until ctx ends or three election timeouts pass), then
// stops. The data directory is left recoverable either way: everything
// acknowledged is already synced.
func (s *Server) Stop(ctx context.Context) {
	if s.n.stats.isLeader.Load() {
		if to, err := s.transferAway(ctx); err != nil {
			s.n.logf("stop: leadership not transferred: %v", err)
		} else {
			s.n.logf("stop: leadership transferred to %s", to)
		}
	}
	s.shutdown()
}

func (s *Server) shutdown() {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.clientSrv.Shutdown(ctx)
		_ = s.adminSrv.Shutdown(ctx)
		select {
		case <-s.n.stopc:
		default:
			close(s.n.stopc)
		}
		<-s.n.donec
		s.n.tr.close()
		if err := s.n.st.Close(); err != nil && s.err == nil {
			s.err = err
		}
		close(s.stopped)
	})
}

// transferAway moves leadership to the voter with the highest match index
// and waits until this node is no longer leader.
func (s *Server) transferAway(ctx context.Context) (string, error) {
	var to string
	var err error
	s.n.call(func() {
		st := s.n.rn.Status()
		if st.State != raftcore.StateLeader {
			err = errors.New("not the leader")
			return
		}
		var best uint64
		for _, id := range st.Config.Voters {
			if pr, ok := st.Progress[id]; ok && id != st.ID && pr.RecentActive && pr.Match >= best {
				to, best = id, pr.Match
			}
		}
		if to == "" {
			err = errors.New("no reachable voter to transfer to")
			return
		}
		err = s.n.rn.TransferLeader(to)
	})
	if err != nil {
		return "", err
	}
	// raftcore aborts a transfer that has not finished within an election
	// timeout; never wait much longer than that, whatever ctx allows.
	ctx, cancel := context.WithTimeout(ctx, 3*s.cfg.ElectionTimeout)
	defer cancel()
	if err := s.waitFor(ctx, func() bool { return !s.n.stats.isLeader.Load() }); err != nil {
		return "", fmt.Errorf("transfer to %s: %w", to, err)
	}
	return to, nil
}

// waitFor polls cond every few milliseconds until it holds or ctx ends.
func (s *Server) waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.n.donec:
			return errors.New("node stopped")
		case <-t.C:
		}
	}
	return nil
}
