// Package localcluster starts and controls real raft-kv processes on
// loopback: the integration tests, the load generator's --spawn and the
// runner's local backend use it. Every node gets three free ports (client,
// peer, admin) and its own data directory; its output goes to a log file
// beside the data directory.
package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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
)

// Options describe a cluster.
type Options struct {
	// Bin is the raft-kv binary.
	Bin string
	// Dir holds the nodes' data directories and logs.
	Dir string
	// N founding voters, named kv-0 .. kv-(N-1).
	N int
	// Mode is the safety mode (default safe).
	Mode string
	// ElectionTimeoutMs and HeartbeatMs (defaults 300 and 50).
	ElectionTimeoutMs, HeartbeatMs int
	// Args are extra flags for every node.
	Args []string
	// AdminToken, when set, is passed to every node and used by Admin.
	AdminToken string
}

// Node is one raft-kv process.
type Node struct {
	ID                              string
	PeerAddr, ClientAddr, AdminAddr string
	DataDir, LogPath                string
	Join                            bool

	// mu guards the process fields: a restart replaces them while other
	// goroutines ask whether the node runs (the runner's subscriptions).
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// proc is the node's current process and its done channel (nil, nil
// before the first start).
func (n *Node) proc() (*exec.Cmd, chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd, n.done
}

// Cluster is a set of raft-kv processes.
type Cluster struct {
	opts  Options
	mu    sync.Mutex
	nodes map[string]*Node
	http  *http.Client
}

// FreePorts returns n distinct free loopback addresses.
func FreePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// Start starts N founding voters and returns once every process runs (not
// once a leader is elected: see WaitLeader).
func Start(opts Options) (*Cluster, error) {
	if opts.Bin == "" || opts.Dir == "" || opts.N <= 0 {
		return nil, errors.New("localcluster: Bin, Dir and N are required")
	}
	if opts.ElectionTimeoutMs == 0 {
		opts.ElectionTimeoutMs = 300
	}
	if opts.HeartbeatMs == 0 {
		opts.HeartbeatMs = 50
	}
	if opts.Mode == "" {
		opts.Mode = "safe"
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, nodes: map[string]*Node{}, http: &http.Client{Timeout: 10 * time.Second}}
	for i := 0; i < opts.N; i++ {
		if _, err := c.newNode(fmt.Sprintf("kv-%d", i), false); err != nil {
			return nil, err
		}
	}
	for _, id := range c.IDs() {
		if err := c.Restart(id); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) newNode(id string, join bool) (*Node, error) {
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, ClientAddr: ports[0], PeerAddr: ports[1], AdminAddr: ports[2],
		DataDir: filepath.Join(c.opts.Dir, id), LogPath: filepath.Join(c.opts.Dir, id+".log"), Join: join}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n, nil
}

// Reserve creates a node (ports, folders) without starting it, so that
// other nodes can name it in their peer lists before it runs.
func (c *Cluster) Reserve(id string, join bool) (*Node, error) {
	if n := c.Node(id); n != nil {
		return n, nil
	}
	return c.newNode(id, join)
}

// Signal sends a signal without waiting (SIGSTOP, SIGCONT).
func (c *Cluster) Signal(id string, sig syscall.Signal) error {
	n := c.Node(id)
	if n == nil || !n.Running() {
		return fmt.Errorf("localcluster: %s is not running", id)
	}
	cmd, _ := n.proc()
	return cmd.Process.Signal(sig)
}

// AddNode creates and starts a node that joins with an empty log (to be
// added as a learner through the admin plane).
func (c *Cluster) AddNode(id string) (*Node, error) {
	n, err := c.newNode(id, true)
	if err != nil {
		return nil, err
	}
	return n, c.Restart(id)
}

// IDs lists the nodes, sorted.
func (c *Cluster) IDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.nodes))
	for id := range c.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Node returns a node.
func (c *Cluster) Node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// peersFlag lists the peer address of every founding node, or of the
// given ids (a start-up membership: docs/BUGS.md unsafe-early-vote).
func (c *Cluster) peersFlag(ids []string) string {
	var parts []string
	for _, id := range c.IDs() {
		n := c.Node(id)
		if (ids == nil && !n.Join) || slices.Contains(ids, id) {
			parts = append(parts, id+"="+n.PeerAddr)
		}
	}
	return strings.Join(parts, ",")
}

// Restart starts the node's process (again), on the same ports and data.
func (c *Cluster) Restart(id string) error { return c.RestartWithPeers(id, nil) }

// RestartWithPeers is Restart with --peers naming exactly the given
// (reserved) nodes: in unsafe-early-vote mode the node takes them as its
// membership. nil means the founding nodes.
func (c *Cluster) RestartWithPeers(id string, peers []string) error {
	return c.RestartWithEnv(id, peers, nil)
}

// RestartWithEnv is RestartWithPeers with extra environment variables for
// the process (e.g. kvserver.InitialFaultsEnv, so that the node's faults
// are in force before it sends its first message).
func (c *Cluster) RestartWithEnv(id string, peers []string, env []string) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("localcluster: no node %s", id)
	}
	if n.Running() {
		return fmt.Errorf("localcluster: %s is running", id)
	}
	args := []string{
		"--id", id, "--data-dir", n.DataDir,
		"--client-addr", n.ClientAddr, "--admin-addr", n.AdminAddr, "--peer-addr", n.PeerAddr,
		"--advertise-peer", n.PeerAddr, "--peers", c.peersFlag(peers), "--mode", c.opts.Mode,
		"--election-timeout-ms", fmt.Sprint(c.opts.ElectionTimeoutMs), "--heartbeat-ms", fmt.Sprint(c.opts.HeartbeatMs),
	}
	if n.Join {
		args = append(args, "--join")
	}
	if c.opts.AdminToken != "" {
		args = append(args, "--admin-token", c.opts.AdminToken)
	}
	args = append(args, c.opts.Args...)
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.opts.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = processEnv(os.Environ(), env)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("localcluster: start %s: %w", id, err)
	}
	n.mu.Lock()
	n.cmd, n.done, n.err = cmd, make(chan struct{}), nil
	done := n.done
	n.mu.Unlock()
	go func(done chan struct{}) {
		err := cmd.Wait()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		_ = logf.Close()
		close(done)
	}(done)
	return nil
}

// processEnv is a node process's environment: this process's, without
// the node's initial faults (kvserver.InitialFaultsEnv: a node started
// without its own must not take the runner's), then extra.
func processEnv(inherited, extra []string) []string {
	out := make([]string, 0, len(inherited)+len(extra))
	for _, kv := range inherited {
		if !strings.HasPrefix(kv, kvserver.InitialFaultsEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// Running reports whether the node's process runs.
func (n *Node) Running() bool {
	_, done := n.proc()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to end.
func (c *Cluster) Kill(id string) error { return c.signal(id, syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM (leadership transferred first) and waits for the exit.
func (c *Cluster) Stop(id string) error { return c.signal(id, syscall.SIGTERM, 15*time.Second) }

func (c *Cluster) signal(id string, sig syscall.Signal, wait time.Duration) error {
	n := c.Node(id)
	if n == nil || !n.Running() {
		return fmt.Errorf("localcluster: %s is not running", id)
	}
	cmd, done := n.proc()
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("localcluster: %s did not exit within %v of %v", id, wait, sig)
	}
}

// ExitErr is the process's exit error after it ended (nil: exit 0).
func (n *Node) ExitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// Close kills every node.
func (c *Cluster) Close() {
	for _, id := range c.IDs() {
		if c.Node(id).Running() {
			_ = c.Kill(id)
		}
	}
}

// ClientURLs are the client URLs of the given nodes (all when none given).
func (c *Cluster) ClientURLs(ids ...string) []string {
	if len(ids) == 0 {
		ids = c.IDs()
	}
	var out []string
	for _, id := range ids {
		out = append(out, "http://"+c.Node(id).ClientAddr)
	}
	return out
}

// AdminURL is a node's admin URL.
func (c *Cluster) AdminURL(id string) string { return "http://" + c.Node(id).AdminAddr }

// Admin calls a node's admin plane: method, path (/admin/...), a JSON body
// (nil for none); the JSON answer is decoded into out when non-nil. It
// returns the HTTP status.
func (c *Cluster) Admin(ctx context.Context, id, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.AdminURL(id)+path, rd)
	if err != nil {
		return 0, err
	}
	if c.opts.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.AdminToken)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s on %s: HTTP %d: %s", method, path, id, resp.StatusCode, bytes.TrimSpace(data))
		}
	}
	return resp.StatusCode, nil
}

// Status is a node's /admin/status.
func (c *Cluster) Status(ctx context.Context, id string) (kvserver.StatusJSON, error) {
	var st kvserver.StatusJSON
	code, err := c.Admin(ctx, id, http.MethodGet, "/admin/status", nil, &st)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status of %s: HTTP %d", id, code)
	}
	return st, err
}

// Events is one GET /admin/events?after=after&wait_ms=waitMs of a node.
func (c *Cluster) Events(ctx context.Context, id string, after uint64, waitMs int) (kvserver.EventsJSON, error) {
	var out kvserver.EventsJSON
	path := fmt.Sprintf("/admin/events?after=%d&wait_ms=%d", after, waitMs)
	code, err := c.Admin(ctx, id, http.MethodGet, path, nil, &out)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("events of %s: HTTP %d", id, code)
	}
	return out, err
}

// WaitLeader waits until a running node leads and every running node of
// ids (all when empty) knows it; it returns the leader's id.
func (c *Cluster) WaitLeader(ctx context.Context, ids ...string) (string, error) {
	if len(ids) == 0 {
		ids = c.IDs()
	}
	var last error
	for {
		lead, agreed := "", true
		for _, id := range ids {
			if !c.Node(id).Running() {
				continue
			}
			st, err := c.Status(ctx, id)
			if err != nil {
				last, agreed = err, false
				break
			}
			if st.State == "leader" {
				lead = id
			}
			if st.Leader == "" || (lead != "" && st.Leader != lead) {
				agreed = false
			}
		}
		if agreed && lead != "" {
			return lead, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("localcluster: no agreed leader among %v: %v (last error: %v)", ids, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitFor polls cond every 20 ms until it holds (nil error) or ctx ends.
func WaitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// BuildRaftKV builds raft-kv (./cmd/raft-kv of this module, from the
// checkout the go command runs in) to the path bin; the error carries the
// compiler's output.
func BuildRaftKV(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/raftlab/raftlab/cmd/raft-kv").CombinedOutput()
	if err != nil {
		return fmt.Errorf("building raft-kv: %v\n%s", err, out)
	}
	return nil
}
