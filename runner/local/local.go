// Package local is the runner's backend of real raft-kv processes on
// loopback (kvserver/localcluster): real disks in a folder of their own,
// faults through each node's admin plane (/admin/faults), kill -9,
// SIGSTOP/SIGCONT, and membership changes through reconfig's HTTP admin
// driver (kvserver/client.Admin). No root needed. Every process it starts
// is killed by Close, which the runner calls also on Ctrl-C.
package local

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/client"
	"github.com/raftlab/raftlab/kvserver/localcluster"
	"github.com/raftlab/raftlab/reconfig"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
)

// Backend runs experiments on local processes.
type Backend struct {
	// Bin is the raft-kv binary; "" builds ./cmd/raft-kv of this module
	// into the run's folder.
	Bin string
	// Dir is the parent of the run's folder ("" = the system's temporary
	// folder).
	Dir string
}

// Name implements backend.Backend.
func (Backend) Name() string { return "local" }

// Start implements backend.Backend.
func (b Backend) Start(ctx context.Context, exp *experiment.Experiment, seed uint64) (backend.Cluster, error) {
	dir, err := os.MkdirTemp(b.Dir, "raftlab-"+exp.Metadata.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("local: run folder: %w", err)
	}
	bin := b.Bin
	if bin == "" {
		bin = filepath.Join(dir, "raft-kv")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/raftlab/raftlab/cmd/raft-kv")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("local: building raft-kv (run from the raftlab checkout, or pass --bin): %v\n%s", err, out)
		}
	}
	var args []string
	if n := exp.Cluster.SnapshotEntries; n > 0 {
		args = append(args, "--snapshot-entries", fmt.Sprint(n), "--snapshot-keep-entries", fmt.Sprint(max(n/10, 1)))
	}
	lc, err := localcluster.Start(localcluster.Options{Bin: bin, Dir: dir, N: exp.Cluster.Replicas, Mode: exp.Cluster.SafetyMode,
		ElectionTimeoutMs: exp.Cluster.ElectionTimeoutMs, HeartbeatMs: exp.Cluster.HeartbeatMs, Args: args})
	if err != nil {
		return nil, fmt.Errorf("local: %w (node logs in %s)", err, dir)
	}
	return &Cluster{lc: lc, dir: dir, t0: time.Now(), paused: map[string]bool{}, configs: map[uint64]bool{},
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		ops:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}, nil
}

// Cluster is a running local cluster. Safe for concurrent use.
type Cluster struct {
	lc   *localcluster.Cluster
	dir  string
	t0   time.Time
	http *http.Client // admin and status
	ops  *http.Client // client operations

	mu      sync.Mutex
	paused  map[string]bool
	timers  []*time.Timer
	closed  bool
	configs map[uint64]bool
	stats   backend.Stats
}

// Now implements backend.Cluster.
func (c *Cluster) Now() time.Duration { return time.Since(c.t0) }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Clock implements backend.Cluster.
func (c *Cluster) Clock() reconfig.Clock { return wallClock{} }

// WaitUntil implements backend.Cluster, polling cond every 10 ms.
func (c *Cluster) WaitUntil(ctx context.Context, cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond != nil && cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		step := min(left, 10*time.Millisecond)
		if cond == nil {
			step = left
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(step):
		}
	}
}

// After implements backend.Cluster.
func (c *Cluster) After(at time.Duration, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.timers = append(c.timers, time.AfterFunc(max(at-c.Now(), 0), func() {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if !closed {
			fn()
		}
	}))
}

// Observe implements backend.Cluster: every node's /admin/status at once.
func (c *Cluster) Observe(ctx context.Context) backend.View {
	ids := c.lc.IDs()
	views := make([]backend.NodeView, len(ids))
	var wg sync.WaitGroup
	var commits []kvserver.StatusJSON
	var cmu sync.Mutex
	for i, id := range ids {
		c.mu.Lock()
		views[i] = backend.NodeView{ID: id, Up: c.lc.Node(id).Running(), Paused: c.paused[id]}
		c.mu.Unlock()
		if !views[i].Up || views[i].Paused {
			continue
		}
		wg.Add(1)
		go func(i int, id string) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			st, err := c.lc.Status(cctx, id)
			if err != nil {
				return
			}
			v := &views[i]
			v.Leader, v.Term, v.Applied, v.Commit = st.State == "leader", st.Term, st.Applied, st.Commit
			v.Joint = st.JointState
			if v.Joint == "committed" {
				v.Joint = "joint"
			}
			v.Voters, v.Learners = st.Config.Voters, st.Config.Learners
			cmu.Lock()
			commits = append(commits, st)
			cmu.Unlock()
		}(i, id)
	}
	wg.Wait()
	out := backend.View{Nodes: views}
	var term uint64
	for _, v := range views {
		if v.Leader && v.Term >= term {
			out.Leader, term = v.ID, v.Term
		}
	}
	c.noteConfigs(commits)
	return out
}

// noteConfigs records the committed configurations the statuses show
// (sampled: a configuration committed and replaced between two samples is
// missed).
func (c *Cluster) noteConfigs(sts []kvserver.StatusJSON) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range sts {
		idx := st.CommittedConfigIndex
		if idx == 0 || c.configs[idx] {
			continue
		}
		c.configs[idx] = true
		cc := st.CommittedConfig
		c.stats.Configs = append(c.stats.Configs, backend.ConfigRecord{Index: idx, Voters: cc.Voters, Outgoing: cc.OutgoingVoters,
			Learners: cc.Learners, AtMs: c.Now().Milliseconds()})
	}
}

func (c *Cluster) adminCall(id, method, path string, body any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var e kvserver.AdminError
	code, err := c.lc.Admin(ctx, id, method, path, body, &e)
	if err != nil {
		return fmt.Errorf("local: %s %s on %s: %w", method, path, id, err)
	}
	if code >= 300 {
		return fmt.Errorf("local: %s %s on %s: HTTP %d %s", method, path, id, code, e.Error)
	}
	return nil
}

func (c *Cluster) running(id string) bool {
	n := c.lc.Node(id)
	return n != nil && n.Running()
}

// Block implements backend.Cluster: each side drops the other's messages.
// A node not running now gets its blocks when it starts (the engine
// re-applies them).
func (c *Cluster) Block(a, b string) error {
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if c.running(p[0]) {
			if err := c.adminCall(p[0], http.MethodPost, "/admin/faults", kvserver.FaultRequest{Peer: p[1], Direction: "both", Fault: kvserver.Fault{Drop: true}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Heal implements backend.Cluster.
func (c *Cluster) Heal() error {
	var errs []string
	for _, id := range c.lc.IDs() {
		if c.running(id) {
			if err := c.adminCall(id, http.MethodDelete, "/admin/faults", nil); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// SetNetwork implements backend.Cluster (first version: every running
// node's faults are cleared, then each link's fault is set on its sending
// side; paused and later nodes are not followed yet).
func (c *Cluster) SetNetwork(n backend.Network) error {
	if err := c.Heal(); err != nil {
		return err
	}
	for l, f := range n {
		if !c.running(l.From) {
			continue
		}
		req := kvserver.FaultRequest{Peer: l.To, Direction: "out", Fault: kvserver.Fault{Drop: f.Drop, DelayMs: f.DelayMs, JitterMs: f.JitterMs, LossPercent: f.LossPercent}}
		if err := c.adminCall(l.From, http.MethodPost, "/admin/faults", req); err != nil {
			return err
		}
	}
	return nil
}

// SetFault implements backend.Cluster on the sending side.
func (c *Cluster) SetFault(from, to string, f backend.Fault) error {
	peer := to
	if peer == "" {
		peer = "*"
	}
	for _, id := range c.lc.IDs() {
		if (from != "" && id != from) || id == to || !c.running(id) {
			continue
		}
		req := kvserver.FaultRequest{Peer: peer, Direction: "out", Fault: kvserver.Fault{DelayMs: f.DelayMs, JitterMs: f.JitterMs, LossPercent: f.LossPercent}}
		if err := c.adminCall(id, http.MethodPost, "/admin/faults", req); err != nil {
			return err
		}
	}
	return nil
}

// Start implements backend.Cluster: a new node that joins with an empty
// log, or, with startup, one that takes startup as its membership.
func (c *Cluster) Start(id string, startup []string) error {
	if _, err := c.lc.Reserve(id, true); err != nil {
		return err
	}
	return c.Restart(id, startup)
}

// waitServing waits until a started process answers on its admin port, so
// that the faults and calls that follow reach it.
func (c *Cluster) waitServing(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return localcluster.WaitFor(ctx, id+" serving", func() (bool, error) {
		if !c.running(id) {
			return false, fmt.Errorf("local: %s exited at start (see %s)", id, c.lc.Node(id).LogPath)
		}
		sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer scancel()
		_, err := c.lc.Status(sctx, id)
		return err == nil, nil
	})
}

// Kill implements backend.Cluster (SIGKILL).
func (c *Cluster) Kill(id string) error {
	c.mu.Lock()
	paused := c.paused[id]
	delete(c.paused, id)
	c.mu.Unlock()
	if paused {
		_ = c.lc.Signal(id, syscall.SIGCONT)
	}
	return c.lc.Kill(id)
}

// Restart implements backend.Cluster: the process starts on its folder;
// the nodes of its start-up membership are reserved first, so that its
// peer list can name them.
func (c *Cluster) Restart(id string, startup []string) error {
	for _, s := range startup {
		if _, err := c.lc.Reserve(s, true); err != nil {
			return err
		}
	}
	if err := c.lc.RestartWithPeers(id, startup); err != nil {
		return err
	}
	return c.waitServing(id)
}

// Pause implements backend.Cluster (SIGSTOP).
func (c *Cluster) Pause(id string) error {
	if err := c.lc.Signal(id, syscall.SIGSTOP); err != nil {
		return err
	}
	c.mu.Lock()
	c.paused[id] = true
	c.mu.Unlock()
	return nil
}

// Resume implements backend.Cluster (SIGCONT).
func (c *Cluster) Resume(id string) error {
	if err := c.lc.Signal(id, syscall.SIGCONT); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.paused, id)
	c.mu.Unlock()
	return nil
}

// TransferLeader implements backend.Cluster.
func (c *Cluster) TransferLeader(to string) error {
	lead := c.Observe(context.Background()).Leader
	if lead == "" {
		return fmt.Errorf("local: no leader to transfer from")
	}
	if lead == to {
		return nil
	}
	return c.adminCall(lead, http.MethodPost, "/admin/transfer-leader", kvserver.MembershipRequest{To: to})
}

// Admin implements backend.Cluster: reconfig's HTTP admin over every node
// reserved so far.
func (c *Cluster) Admin() reconfig.Admin {
	a := &client.Admin{Nodes: map[string]string{}, PeerAddrs: map[string]string{}, HTTP: c.http}
	for _, id := range c.lc.IDs() {
		n := c.lc.Node(id)
		a.Nodes[id] = c.lc.AdminURL(id)
		a.PeerAddrs[id] = n.PeerAddr
	}
	return a
}

// Do implements backend.Cluster: one HTTP call to the node itself (no
// redirect, no retry on another node), on its own goroutine.
func (c *Cluster) Do(id string, op backend.Op, timeout time.Duration, done func(backend.Result)) {
	n := c.lc.Node(id)
	if n == nil {
		done(backend.Result{Outcome: backend.Failed, Err: "no such node"})
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cl, err := client.New([]string{"http://" + n.ClientAddr}, client.Options{MaxAttempts: 1, AttemptTimeout: timeout,
			HTTP: c.ops, ClientID: fmt.Sprintf("%s.%d", op.ClientID, op.Seq)})
		if err != nil {
			done(backend.Result{Outcome: backend.Failed, Err: err.Error()})
			return
		}
		var res backend.Result
		switch op.Kind {
		case backend.Put:
			_, err = cl.Put(ctx, op.Key, []byte(op.Value))
		case backend.Get:
			var v []byte
			v, res.Found, err = cl.Get(ctx, op.Key)
			res.Value = string(v)
		}
		switch client.OutcomeOf(err) {
		case client.OK:
			res.Outcome = backend.OK
		case client.Failed:
			res.Outcome = backend.Failed
		default:
			res.Outcome = backend.Unknown
		}
		if err != nil {
			res.Err = err.Error()
		}
		done(res)
	}()
}

// Stats implements backend.Cluster. Peer bytes and elections are not
// visible from outside the processes; configurations are sampled.
func (c *Cluster) Stats() backend.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Configs = slices.Clone(s.Configs)
	s.Dir = c.dir
	s.ConfigsSampled = true
	return s
}

// Close implements backend.Cluster: every process is killed; the folder
// stays (the caller removes it when the run passed).
func (c *Cluster) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, t := range c.timers {
		t.Stop()
	}
	for id := range c.paused {
		_ = c.lc.Signal(id, syscall.SIGCONT)
	}
	c.mu.Unlock()
	c.lc.Close()
	return nil
}
