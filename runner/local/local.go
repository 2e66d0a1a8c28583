// Package local is the runner's backend of real raft-kv processes on
// loopback (kvserver/localcluster): real disks in a folder of their own,
// kill -9, SIGSTOP/SIGCONT, and membership changes through reconfig's HTTP
// admin driver (kvserver/client.Admin). No root needed. Every process it
// starts is killed by Close, which the runner calls also on Ctrl-C.
//
// The network (SetNetwork) is kept here and placed on the nodes through
// their admin planes (PUT /admin/faults, one whole set per node): a
// link's delay, loss and duplication at its sender, its cut at both ends.
// A paused node is muted before it stops and given the network in force
// when it resumes; a node that starts or restarts takes its faults from
// its environment (kvserver.InitialFaultsEnv), in force before its first
// message (a malformed one stops it from starting), and Restart reads them
// back (GET /admin/faults) once it serves. The network is not held while a
// node starts: a change then is placed on it once it serves.
//
// The runner follows every node's GET /admin/events (events.go): the
// committed configurations are recorded from them, complete when they
// chain, and WaitUntil evaluates its condition on each event's view, so a
// state shorter than a status poll (a joint configuration entering) is
// seen.
package local

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
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
		if err := localcluster.BuildRaftKV(ctx, bin); err != nil {
			return nil, fmt.Errorf("local: %w (run from the raftlab checkout, or pass --bin)", err)
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
	c := &Cluster{lc: lc, dir: dir, t0: time.Now(), paused: map[string]bool{}, starting: map[string]bool{}, configs: map[uint64]bool{},
		http:   &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		ops:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
		netw:   backend.Network{},
		placed: map[string]string{},
		models: map[string]*nodeModel{},
		subGen: map[string]int{},
		prevOf: map[uint64]uint64{},
		polled: map[string][2]uint64{},
		wake:   make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, id := range lc.IDs() {
		c.subscribe(id)
	}
	return c, nil
}

// Cluster is a running local cluster. Safe for concurrent use.
type Cluster struct {
	lc   *localcluster.Cluster
	dir  string
	t0   time.Time
	http *http.Client // admin and status
	ops  *http.Client // client operations

	ctx    context.Context // ends at Close: the event subscriptions
	cancel context.CancelFunc

	// netMu orders the network changes with the starts, pauses and
	// resumes, so that a node is never configured from a stale network.
	netMu sync.Mutex
	// netw is the desired network (SetNetwork); placed is, per running
	// node, the fault set last put on it (JSON), to skip unchanged nodes.
	netw   backend.Network
	placed map[string]string

	mu       sync.Mutex
	paused   map[string]bool
	starting map[string]bool // started, not yet serving: not called (Restart places its set)
	subs     sync.WaitGroup  // the event subscriptions (Close waits for them)
	timers   []*time.Timer
	closed   bool
	configs  map[uint64]bool
	stats    backend.Stats

	// Event-driven state (events.go): each node's state as its last event
	// reported it, the views built at each event, and what the config
	// records' chain needs.
	models  map[string]*nodeModel
	subGen  map[string]int // a subscription ends when its node's generation moves on
	views   []eventView    // the newest maxViews views, in order of arrival
	viewSeq uint64         // seq of the newest view (views[len-1])
	wake    chan struct{}  // closed and replaced at each new view
	prevOf  map[uint64]uint64
	evLost  bool                 // some node's ring dropped events before they were read
	polled  map[string][2]uint64 // applied, commit of the last status of each node
}

// Now implements backend.Cluster.
func (c *Cluster) Now() time.Duration { return time.Since(c.t0) }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Clock implements backend.Cluster.
func (c *Cluster) Clock() reconfig.Clock { return wallClock{} }

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
// (WaitUntil judges its condition also on the views membership events
// built; Observe is the cluster as it is.)
func (c *Cluster) Observe(ctx context.Context) backend.View {
	ids := c.lc.IDs()
	views := make([]backend.NodeView, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		c.mu.Lock()
		views[i] = backend.NodeView{ID: id, Up: c.lc.Node(id).Running(), Paused: c.paused[id]}
		gen := c.subGen[id] // the process asked; its status is kept only while it is current
		c.mu.Unlock()
		if !views[i].Up || views[i].Paused {
			continue
		}
		wg.Add(1)
		go func(i int, id string, gen int) {
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
			v.Voters, v.Learners, v.OutgoingVoters = st.Config.Voters, st.Config.Learners, st.Config.OutgoingVoters
			c.mu.Lock()
			if c.subGen[id] == gen {
				c.polled[id] = [2]uint64{st.Applied, st.Commit}
			}
			c.mu.Unlock()
		}(i, id, gen)
	}
	wg.Wait()
	out := backend.View{Nodes: views}
	var term uint64
	for _, v := range views {
		if v.Leader && v.Term >= term {
			out.Leader, term = v.ID, v.Term
		}
	}
	return out
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

// SetNetwork implements backend.Cluster. The backend keeps n and enforces
// each link's fault at its sender, in the sender's transport ("out"): a
// delay, a loss or a duplication is applied once, on one side. A cut link
// is also cut at its receiver ("in"; dropping twice changes nothing), so
// that a message that was in flight when the link was cut (in a socket
// buffer, or queued to a paused node) is judged when it is delivered, and
// dropped. Each running node gets its whole set in one PUT /admin/faults
// (no gap and no overlap between its old set and its new), and only when
// its set changed. A paused node is not called (it would not answer): it
// was muted before it stopped (Pause), and it gets its set at Resume. A
// node not running gets its set when it starts (Restart, through the
// process's environment, before its first message).
func (c *Cluster) SetNetwork(n backend.Network) error {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	return c.setNetworkLocked(n)
}

func (c *Cluster) setNetworkLocked(n backend.Network) error {
	c.netw = maps.Clone(n)
	var errs []error
	for _, id := range c.lc.IDs() {
		if err := c.placeLocked(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// faultSet is the set of faults node id enforces for the desired network:
// the faults of the links it sends on, and the cuts of those it receives on.
func (c *Cluster) faultSet(id string) kvserver.FaultSet {
	fs := kvserver.FaultSet{Faults: []kvserver.FaultRequest{}}
	for _, l := range slices.SortedFunc(maps.Keys(c.netw), func(a, b backend.Link) int {
		return strings.Compare(a.From+"\x00"+a.To, b.From+"\x00"+b.To)
	}) {
		f := c.netw[l]
		switch {
		case l.From == l.To || f.IsZero():
		case l.From == id:
			fs.Faults = append(fs.Faults, kvserver.FaultRequest{Peer: l.To, Direction: kvserver.DirOut, Fault: kvserver.Fault{
				Drop: f.Drop, DelayMs: f.DelayMs, JitterMs: f.JitterMs, LossPercent: f.LossPercent, DuplicatePercent: f.DuplicatePercent}})
		case l.To == id && f.Drop:
			fs.Faults = append(fs.Faults, kvserver.FaultRequest{Peer: l.From, Direction: kvserver.DirIn, Fault: kvserver.Fault{Drop: true}})
		}
	}
	return fs
}

// muteSet cuts everything a node sends and receives: a node about to be
// paused gets it, so that when it resumes it neither sends under a stale
// set nor takes in what was queued to it across a link cut meanwhile,
// before it is given the network in force then.
// ("*" is every peer the node knows; the reserved ids are named too, for
// a peer it learns of only after it resumes.)
func (c *Cluster) muteSet(self string) kvserver.FaultSet {
	fs := kvserver.FaultSet{Faults: []kvserver.FaultRequest{{Peer: "*", Direction: "both", Fault: kvserver.Fault{Drop: true}}}}
	for _, id := range others(c.lc.IDs(), self) {
		fs.Faults = append(fs.Faults, kvserver.FaultRequest{Peer: id, Direction: "both", Fault: kvserver.Fault{Drop: true}})
	}
	return fs
}

func others(ids []string, self string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == self })
}

// placeLocked puts node id's fault set on it if it runs, is not paused
// nor starting (Restart places it once it serves) and its set changed.
// netMu held.
func (c *Cluster) placeLocked(id string) error {
	c.mu.Lock()
	skip := c.paused[id] || c.starting[id]
	c.mu.Unlock()
	if !c.running(id) || skip {
		return nil
	}
	return c.putFaults(id, c.faultSet(id), false)
}

func (c *Cluster) putFaults(id string, fs kvserver.FaultSet, force bool) error {
	b, _ := json.Marshal(fs)
	if !force && c.placed[id] == string(b) {
		return nil
	}
	if err := c.adminCall(id, http.MethodPut, "/admin/faults", fs); err != nil {
		delete(c.placed, id) // unknown: put it again next time
		return err
	}
	c.placed[id] = string(b)
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
	c.netMu.Lock()
	defer c.netMu.Unlock()
	c.mu.Lock()
	paused := c.paused[id]
	delete(c.paused, id)
	c.mu.Unlock()
	if paused {
		_ = c.lc.Signal(id, syscall.SIGCONT)
	}
	err := c.lc.Kill(id)
	delete(c.placed, id)
	c.nodeGone(id)
	return err
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
	c.netMu.Lock()
	// The node's faults go in through its environment: they are in force
	// from its first message, not from an admin call made once it serves
	// (by then it may have talked across a partition).
	fs := c.faultSet(id)
	b, _ := json.Marshal(fs)
	c.mu.Lock()
	c.starting[id] = true
	c.mu.Unlock()
	err := c.lc.RestartWithEnv(id, startup, []string{kvserver.InitialFaultsEnv + "=" + string(b)})
	if err == nil {
		c.placed[id] = string(b)
		c.subscribe(id)
	}
	c.netMu.Unlock()
	if err == nil {
		// Not under netMu: this takes up to 10 s, and the network may
		// change meanwhile (a timer's SetNetwork); the node is not called
		// for it while it starts (placeLocked), and gets it below.
		err = c.waitServing(id)
	}
	c.netMu.Lock()
	defer c.netMu.Unlock()
	c.mu.Lock()
	delete(c.starting, id)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.checkFaults(id, fs); err != nil {
		return err
	}
	return c.placeLocked(id) // the network in force now, if it changed while the node started
}

// checkFaults verifies that node id enforces fs (GET /admin/faults): a node
// that ignored or misread its start-up faults would run unpartitioned.
func (c *Cluster) checkFaults(id string, fs kvserver.FaultSet) error {
	want := map[string]map[string]kvserver.Fault{}
	for _, r := range fs.Faults {
		if want[r.Peer] == nil {
			want[r.Peer] = map[string]kvserver.Fault{}
		}
		want[r.Peer][r.Direction] = r.Fault
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var got map[string]map[string]kvserver.Fault
	code, err := c.lc.Admin(ctx, id, http.MethodGet, "/admin/faults", nil, &got)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("HTTP %d", code)
	}
	if err != nil {
		delete(c.placed, id)
		return fmt.Errorf("local: %s started; reading back its faults (GET /admin/faults): %w", id, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return nil
	}
	if !reflect.DeepEqual(got, want) {
		delete(c.placed, id)
		return fmt.Errorf("local: %s started with faults %v, not the %v it was given in %s (see %s)", id, got, want, kvserver.InitialFaultsEnv, c.lc.Node(id).LogPath)
	}
	return nil
}

// Pause implements backend.Cluster (SIGSTOP). The node is muted first
// (everything it sends or receives is dropped at its side): while it is
// stopped the network may change and it cannot be told, and on SIGCONT it
// would send under its old set, and read what was queued to it, at once.
// Muted, it does neither until Resume gives it the set in force then; a
// message it held in a delay is judged at its release, so it is dropped
// too. (The mute comes a few milliseconds before the stop and lasts a few
// after the SIGCONT, as if the pause were that much longer: what it drops
// then, Raft sends again.)
func (c *Cluster) Pause(id string) error {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	c.mu.Lock()
	already := c.paused[id]
	c.mu.Unlock()
	if !already && c.running(id) {
		if err := c.putFaults(id, c.muteSet(id), false); err != nil {
			return fmt.Errorf("local: pause %s: muting it first: %w", id, err)
		}
	}
	if err := c.lc.Signal(id, syscall.SIGSTOP); err != nil {
		// Not stopped: it runs muted. Give it its set back.
		if !already {
			err = errors.Join(err, c.placeLocked(id))
		}
		return err
	}
	c.mu.Lock()
	c.paused[id] = true
	c.pushViewLocked(time.Now()) // a paused leader leads no more in the views
	c.mu.Unlock()
	return nil
}

// Resume implements backend.Cluster (SIGCONT), then gives the node the
// faults in force now in place of the mute, in one call.
func (c *Cluster) Resume(id string) error {
	c.netMu.Lock()
	defer c.netMu.Unlock()
	if err := c.lc.Signal(id, syscall.SIGCONT); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.paused, id)
	c.pushViewLocked(time.Now())
	c.mu.Unlock()
	return c.placeLocked(id)
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
// visible from outside the processes. The configurations come from the
// nodes' events; ConfigsSampled is false only when they form one unbroken
// chain (configsComplete).
func (c *Cluster) Stats() backend.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Configs = slices.Clone(s.Configs)
	slices.SortFunc(s.Configs, func(a, b backend.ConfigRecord) int { return cmp.Compare(a.Index, b.Index) })
	s.Dir = c.dir
	s.ConfigsSampled = !c.configsCompleteLocked(s.Configs)
	return s
}

// Close implements backend.Cluster: every process is killed; the folder
// stays (the caller removes it when the run passed).
func (c *Cluster) Close() error {
	c.cancel()
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
	c.subs.Wait() // each ends at c.ctx's end, within a poll
	return nil
}
