package kvserver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/raftlab/raftlab/reconfig"
)

// Config is a raft-kv node's configuration. ParseFlags fills it from the
// command line with environment fallbacks; tests build it directly.
type Config struct {
	// ID is this node's id ("kv-0"). It must be one of Peers unless Join.
	ID string
	// Peers maps member ids to their peer (Raft) addresses. Without Join,
	// the ids of Peers are the founding voters.
	Peers map[string]string
	// Join: start with an empty log and wait to be added by the leader (as
	// a learner) instead of founding a cluster with Peers as voters.
	Join bool
	// DataDir holds the WAL and snapshots; created if missing.
	DataDir string
	// ClientAddr, PeerAddr and AdminAddr are the listen addresses. PeerAddr
	// defaults to Peers[ID].
	ClientAddr, PeerAddr, AdminAddr string
	// AdvertisePeer is the peer address other nodes reach this one at;
	// defaults to Peers[ID], then PeerAddr.
	AdvertisePeer string
	// AdvertiseClient is the client address reported to clients in
	// redirects; defaults to ClientAddr.
	AdvertiseClient string
	// ElectionTimeout and Heartbeat: the election timeout is randomized in
	// [ElectionTimeout, 2*ElectionTimeout). Heartbeat is the tick.
	ElectionTimeout, Heartbeat time.Duration
	// SnapshotInterval and SnapshotEntries: a snapshot is taken when either
	// this much time or this many applied entries passed since the last.
	SnapshotInterval time.Duration
	SnapshotEntries  uint64
	// SnapshotKeep is how many entries stay in the log behind a snapshot,
	// so that a follower a little behind gets entries, not a snapshot.
	SnapshotKeep uint64
	// Mode is the safety mode (docs/BUGS.md): safe, unsafe-early-vote,
	// unsafe-no-joint.
	Mode reconfig.Mode
	// AdminToken, when set, must be given as "Authorization: Bearer TOKEN"
	// on every admin call.
	AdminToken string
	// Limits of the client API.
	MaxKeyBytes, MaxValueBytes, MaxBodyBytes int
	// RequestTimeout bounds how long a client request waits for commit.
	RequestTimeout time.Duration
	// PeerToken, when set, is the cluster's shared peer secret: this node
	// takes no message from a peer connection before the peer proved it
	// holds the token (an HMAC-SHA256 of a nonce this node chose, so the
	// token never crosses the wire), and proves it in turn when it dials.
	// Every member needs the same token. Empty: peers are not
	// authenticated (fine on loopback; see the package doc).
	PeerToken string
	// MaxSnapshotBytes bounds a snapshot received from a peer; a larger
	// one is refused (the connection closed). Memory for a snapshot grows
	// as its chunks arrive, never ahead of them.
	MaxSnapshotBytes int64
	// PeerStallTimeout: a write to a peer that makes no progress for this
	// long fails, and the connection is redialed. Each written byte pushes
	// the deadline back, so a large snapshot over a slow but live link
	// completes; a stalled one is reported failed to raftcore, which
	// sends it again.
	PeerStallTimeout time.Duration
	// Logf, when set, receives the node's log lines.
	Logf func(format string, args ...any)

	// peerDial, when set (tests), dials peers instead of net.DialTimeout.
	peerDial func(addr string, timeout time.Duration) (net.Conn, error)
	// initialFaults are the faults the transport starts with (Start reads
	// them from InitialFaultsEnv).
	initialFaults map[faultKey]Fault
}

// Defaults of the tunables.
const (
	DefaultElectionTimeout  = 300 * time.Millisecond
	DefaultHeartbeat        = 50 * time.Millisecond
	DefaultSnapshotInterval = 30 * time.Second
	DefaultSnapshotEntries  = 20000
	DefaultSnapshotKeep     = 5000
	DefaultMaxKeyBytes      = 1024
	DefaultMaxValueBytes    = 1 << 20
	DefaultRequestTimeout   = 5 * time.Second
	DefaultMaxSnapshotBytes = 1 << 30
	DefaultPeerStallTimeout = 5 * time.Second
)

// ErrUsage marks a configuration error: the command prints it and exits 2.
var ErrUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// envPrefix is the prefix of the environment fallbacks: --peer-addr falls
// back to RAFT_KV_PEER_ADDR.
const envPrefix = "RAFT_KV_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Description is raft-kv's one-paragraph description, the head of its
// --help.
const Description = `raft-kv is raftlab's replicated key-value server: one node of a Raft
cluster (raftcore, on a disk WAL with snapshots). It serves three planes,
each on its own port: the client plane (--client-addr: HTTP/JSON GET, PUT,
POST and DELETE on /kv/{key}, linearizable through any node, plus /healthz,
/readyz and /metrics), the admin plane (--admin-addr: /admin/status,
membership changes, leadership transfer, snapshots and fault injection,
behind --admin-token when set) and the peer plane (--peer-addr: Raft
messages and snapshots between members, authenticated with --peer-token
when set).`

// Usage writes raft-kv's --help: the description, a usage line, and every
// flag with its default and its environment variable, generated from the
// flag set ParseFlags uses.
func Usage(w io.Writer) {
	fs, _ := newFlagSet()
	fmt.Fprintf(w, "%s\n\nUsage:\n  raft-kv --id ID --peers ID=HOST:PORT,... --data-dir DIR [flags]\n"+
		"  raft-kv --id ID --join --peer-addr HOST:PORT --data-dir DIR [flags]\n\n"+
		"Every flag falls back to the environment variable %s<FLAG> (upper case,\n"+
		"dashes as underscores); a flag given on the command line wins. --id also\n"+
		"falls back to POD_NAME. Exit codes: 0 after SIGTERM or SIGINT (or --help),\n"+
		"1 on a fatal runtime error, 2 on a configuration error.\n\nFlags:\n",
		Description, envPrefix)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			typ = " " + typ
		}
		fmt.Fprintf(w, "  --%s%s\n        %s\n        default: %s; env: %s\n",
			f.Name, typ, usage, FlagDefault(f), FlagEnv(f.Name))
	})
}

// FlagDefault is the default of a raft-kv flag as --help shows it: its
// value, or what it means when the default is computed or empty.
func FlagDefault(f *flag.Flag) string {
	if d, ok := computedDefaults[f.Name]; ok {
		return d
	}
	if f.DefValue == "" {
		return "none"
	}
	return f.DefValue
}

// computedDefaults describe the defaults that are not a flag's zero value.
var computedDefaults = map[string]string{
	"id":               "none (required)",
	"peers":            "none (required unless --join)",
	"data-dir":         "none (required)",
	"peer-addr":        "this node's address in --peers",
	"advertise-peer":   "this node's address in --peers, then --peer-addr",
	"advertise-client": "--client-addr",
	"max-body-bytes":   "2*max-value-bytes+1024",
	"peer-token":       "none (peers are not authenticated: only for loopback)",
	"admin-token":      "none (the admin plane is open)",
}

// FlagEnv names the environment fallbacks of a raft-kv flag.
func FlagEnv(flagName string) string {
	if flagName == "id" {
		return envName(flagName) + ", then POD_NAME"
	}
	return envName(flagName)
}

// flagValues are the variables newFlagSet binds.
type flagValues struct {
	id, peers, dataDir, clientAddr, peerAddr, adminAddr string
	advPeer, advClient, mode, token                     string
	electionMs, heartbeatMs                             int
	snapInterval, reqTimeout                            time.Duration
	snapEntries, snapKeep                               uint64
	maxKey, maxValue, maxBody                           int
	join, joinUnlessPeer                                bool
	peerToken                                           string
	maxSnap                                             int64
	peerStall                                           time.Duration
}

// newFlagSet is raft-kv's flag set, shared by ParseFlags and Usage.
func newFlagSet() (*flag.FlagSet, *flagValues) {
	fs := flag.NewFlagSet("raft-kv", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := &flagValues{}
	fs.StringVar(&v.id, "id", "", "this node's `id`, e.g. kv-0")
	fs.StringVar(&v.peers, "peers", "", "members as `id=host:port,...` (the founding voters unless --join)")
	fs.BoolVar(&v.join, "join", false, "start empty and wait to be added as a learner")
	fs.BoolVar(&v.joinUnlessPeer, "join-unless-peer", false, "found the cluster with --peers when --id is one of them, else --join "+
		"(for a StatefulSet, whose pods share one template: the founders are in --peers, later members join)")
	fs.StringVar(&v.dataDir, "data-dir", "", "data `directory` (WAL, snapshots); created if missing")
	fs.StringVar(&v.clientAddr, "client-addr", "127.0.0.1:8080", "client plane listen `address`")
	fs.StringVar(&v.peerAddr, "peer-addr", "", "peer (Raft) plane listen `address`")
	fs.StringVar(&v.adminAddr, "admin-addr", "127.0.0.1:9090", "admin plane listen `address`")
	fs.StringVar(&v.advPeer, "advertise-peer", "", "peer `address` others reach this node at")
	fs.StringVar(&v.advClient, "advertise-client", "", "client `address` reported in redirects")
	fs.IntVar(&v.electionMs, "election-timeout-ms", int(DefaultElectionTimeout/time.Millisecond), "election timeout in `ms` (randomized in [t, 2t))")
	fs.IntVar(&v.heartbeatMs, "heartbeat-ms", int(DefaultHeartbeat/time.Millisecond), "heartbeat interval in `ms` (at most half the election timeout)")
	fs.DurationVar(&v.snapInterval, "snapshot-interval", DefaultSnapshotInterval, "snapshot at least this often (0: never by time)")
	fs.Uint64Var(&v.snapEntries, "snapshot-entries", DefaultSnapshotEntries, "snapshot after this many applied entries (0: never by count)")
	fs.Uint64Var(&v.snapKeep, "snapshot-keep-entries", DefaultSnapshotKeep, "entries kept in the log behind a snapshot")
	fs.StringVar(&v.mode, "mode", "safe", "safety `mode`: safe, unsafe-early-vote, unsafe-no-joint (docs/BUGS.md)")
	fs.StringVar(&v.token, "admin-token", "", "bearer `token` required by the admin plane")
	fs.IntVar(&v.maxKey, "max-key-bytes", DefaultMaxKeyBytes, "largest key accepted, in bytes")
	fs.IntVar(&v.maxValue, "max-value-bytes", DefaultMaxValueBytes, "largest value accepted, in bytes")
	fs.IntVar(&v.maxBody, "max-body-bytes", 0, "largest request body accepted, in bytes")
	fs.DurationVar(&v.reqTimeout, "request-timeout", DefaultRequestTimeout, "how long a request waits for commit")
	fs.StringVar(&v.peerToken, "peer-token", "", "shared `secret` a peer must prove (HMAC of a nonce, never sent) before its messages are taken; "+
		"the same on every member; prefer the environment variable to the flag")
	fs.Int64Var(&v.maxSnap, "max-snapshot-bytes", DefaultMaxSnapshotBytes, "largest snapshot accepted from a peer, in bytes (must exceed the leader's snapshot size)")
	fs.DurationVar(&v.peerStall, "peer-stall-timeout", DefaultPeerStallTimeout, "a peer write (a snapshot included) that makes no progress this long fails and is retried")
	return fs, v
}

// ParseFlags reads a Config from args (without the program name). Every
// flag falls back to the environment variable RAFT_KV_<FLAG> (dashes as
// underscores), and --id also to POD_NAME, so that a StatefulSet pod can take
// its id from its name. Errors wrap ErrUsage and are one line, except -h,
// -help and --help, which return flag.ErrHelp: the caller prints Usage and
// exits 0.
func ParseFlags(args []string, getenv func(string) string) (Config, error) {
	fs, v := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, flag.ErrHelp
		}
		return Config{}, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return Config{}, usagef("unexpected argument %q (all settings are flags)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		v := getenv(envName(f.Name))
		if v == "" && f.Name == "id" {
			v = getenv("POD_NAME")
		}
		if v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = usagef("environment %s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return Config{}, envErr
	}
	m, err := reconfig.ParseMode(v.mode)
	if err != nil {
		return Config{}, usagef("--mode: %v", err)
	}
	pm, err := ParsePeers(v.peers)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		ID: v.id, Peers: pm, Join: v.join, DataDir: v.dataDir,
		ClientAddr: v.clientAddr, PeerAddr: v.peerAddr, AdminAddr: v.adminAddr,
		AdvertisePeer: v.advPeer, AdvertiseClient: v.advClient,
		ElectionTimeout:  time.Duration(v.electionMs) * time.Millisecond,
		Heartbeat:        time.Duration(v.heartbeatMs) * time.Millisecond,
		SnapshotInterval: v.snapInterval, SnapshotEntries: v.snapEntries, SnapshotKeep: v.snapKeep,
		Mode: m, AdminToken: v.token,
		MaxKeyBytes: v.maxKey, MaxValueBytes: v.maxValue, MaxBodyBytes: v.maxBody,
		RequestTimeout: v.reqTimeout,
		PeerToken:      v.peerToken, MaxSnapshotBytes: v.maxSnap, PeerStallTimeout: v.peerStall,
	}
	if _, founder := pm[c.ID]; v.joinUnlessPeer && !founder {
		c.Join = true
	}
	return c, c.Validate()
}

// ParsePeers parses "kv-0=127.0.0.1:7000,kv-1=...". Duplicate ids or
// addresses and malformed entries are errors.
func ParsePeers(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	addrs := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, usagef("--peers entry %d %q: want id=host:port", i+1, part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, usagef("--peers entry %d %q: %v", i+1, part, err)
		}
		if _, dup := out[id]; dup {
			return nil, usagef("--peers: duplicate id %q", id)
		}
		if other, dup := addrs[addr]; dup {
			return nil, usagef("--peers: %s and %s share the address %s", other, id, addr)
		}
		out[id], addrs[addr] = addr, id
	}
	return out, nil
}

// Validate checks a Config and fills defaults; errors wrap ErrUsage.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return usagef("--id is required (or RAFT_KV_ID, or POD_NAME)")
	case len(c.Peers) == 0 && !c.Join:
		return usagef("--peers is required (id=host:port,...), or --join")
	case c.DataDir == "":
		return usagef("--data-dir is required")
	case c.ElectionTimeout <= 0 || c.Heartbeat <= 0:
		return usagef("--election-timeout-ms and --heartbeat-ms must be positive")
	case c.Heartbeat*2 > c.ElectionTimeout:
		return usagef("--heartbeat-ms (%d) must be at most half of --election-timeout-ms (%d)",
			c.Heartbeat.Milliseconds(), c.ElectionTimeout.Milliseconds())
	case c.MaxKeyBytes <= 0 || c.MaxValueBytes <= 0 || c.MaxBodyBytes < 0:
		return usagef("--max-key-bytes and --max-value-bytes must be positive")
	case c.RequestTimeout <= 0:
		return usagef("--request-timeout must be positive")
	case c.MaxSnapshotBytes < 0 || uint64(c.MaxSnapshotBytes) > math.MaxInt:
		return usagef("--max-snapshot-bytes must be positive")
	case c.PeerStallTimeout < 0:
		return usagef("--peer-stall-timeout must be positive")
	}
	if _, ok := c.Peers[c.ID]; !ok && !c.Join {
		ids := make([]string, 0, len(c.Peers))
		for id := range c.Peers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return usagef("--id %s is not in --peers (%s); add it, or pass --join", c.ID, strings.Join(ids, ","))
	}
	if c.PeerAddr == "" {
		c.PeerAddr = c.Peers[c.ID]
	}
	if c.PeerAddr == "" {
		return usagef("--peer-addr is required with --join when --peers does not name %s", c.ID)
	}
	if c.AdvertisePeer == "" {
		c.AdvertisePeer = c.Peers[c.ID]
	}
	if c.AdvertisePeer == "" {
		c.AdvertisePeer = c.PeerAddr
	}
	if c.AdvertiseClient == "" {
		c.AdvertiseClient = c.ClientAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 2*c.MaxValueBytes + 1024
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if c.PeerStallTimeout == 0 {
		c.PeerStallTimeout = DefaultPeerStallTimeout
	}
	if c.SnapshotEntries == 0 && c.SnapshotInterval == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return usagef("--data-dir %s cannot be made: %v", c.DataDir, err)
	}
	return nil
}

// electionTicks is the election timeout in heartbeat ticks.
func (c *Config) electionTicks() int {
	n := int(c.ElectionTimeout / c.Heartbeat)
	if n < 2 {
		n = 2
	}
	return n
}
