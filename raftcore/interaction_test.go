package raftcore_test

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// TestInteraction runs the scenario files under testdata/: prose that says
// what is shown, commands, and the expected output. Regenerate the expected
// output with `go test ./raftcore -run TestInteraction -rewrite` and commit
// only diffs you have read and understood.
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		env := &interactionEnv{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := env.handle(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			if out == "" {
				return "ok\n"
			}
			return out
		})
	})
}

type interactionEnv struct {
	c     *memcluster.Cluster
	k     *memcluster.Checker
	trace bytes.Buffer
}

type handler func(e *interactionEnv, d *datadriven.TestData, args []string) (string, error)

var handlers = map[string]handler{
	"new-cluster":     (*interactionEnv).handleNewCluster,
	"add-node":        (*interactionEnv).handleAddNode,
	"campaign":        (*interactionEnv).handleCampaign,
	"propose":         (*interactionEnv).handlePropose,
	"stabilize":       (*interactionEnv).handleStabilize,
	"tick":            (*interactionEnv).handleTick,
	"tick-node":       (*interactionEnv).handleTickNode,
	"status":          (*interactionEnv).handleStatus,
	"log":             (*interactionEnv).handleLog,
	"kv":              (*interactionEnv).handleKV,
	"partition":       (*interactionEnv).handlePartition,
	"isolate":         (*interactionEnv).handleIsolate,
	"heal":            (*interactionEnv).handleHeal,
	"crash":           (*interactionEnv).handleCrash,
	"restart":         (*interactionEnv).handleRestart,
	"compact":         (*interactionEnv).handleCompact,
	"add-learner":     (*interactionEnv).handleAddLearner,
	"remove":          (*interactionEnv).handleRemove,
	"enter-joint":     (*interactionEnv).handleEnterJoint,
	"leave-joint":     (*interactionEnv).handleLeaveJoint,
	"change-config":   (*interactionEnv).handleChangeConfig,
	"transfer-leader": (*interactionEnv).handleTransferLeader,
	"read-index":      (*interactionEnv).handleReadIndex,
	"read-states":     (*interactionEnv).handleReadStates,
	"check":           (*interactionEnv).handleCheck,
	"step":            (*interactionEnv).handleStep,
	"process":         (*interactionEnv).handleProcess,
	"deliver":         (*interactionEnv).handleDeliver,
	"drop-pending":    (*interactionEnv).handleDropPending,
	"pause":           (*interactionEnv).handlePause,
	"resume":          (*interactionEnv).handleResume,
	"unreachable":     (*interactionEnv).handleUnreachable,
	"counters":        (*interactionEnv).handleCounters,
}

func (e *interactionEnv) handle(d *datadriven.TestData) (string, error) {
	h, ok := handlers[d.Cmd]
	if !ok {
		return "", fmt.Errorf("unknown command %q", d.Cmd)
	}
	if e.c == nil && d.Cmd != "new-cluster" {
		return "", fmt.Errorf("%s: run new-cluster first", d.Cmd)
	}
	var pos []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			pos = append(pos, a.Key)
		}
	}
	e.trace.Reset()
	out, err := h(e, d, pos)
	return e.trace.String() + out, err
}

// Argument helpers: key=value and key=(a,b,c).
func argList(d *datadriven.TestData, key string) []string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return a.Vals
		}
	}
	return nil
}

func argInt(d *datadriven.TestData, key string, def int) int {
	if v := argList(d, key); len(v) == 1 {
		n, err := strconv.Atoi(v[0])
		if err == nil {
			return n
		}
	}
	return def
}

func (e *interactionEnv) rn(id string) (*raftcore.RawNode, error) { return e.c.RN(id) }

func (e *interactionEnv) handleNewCluster(d *datadriven.TestData, _ []string) (string, error) {
	voters := argList(d, "voters")
	opts := memcluster.Options{
		ElectionTick:                 argInt(d, "election", 10),
		HeartbeatTick:                argInt(d, "heartbeat", 1),
		PreVote:                      d.HasArg("prevote"),
		CheckQuorum:                  d.HasArg("checkquorum"),
		MaxSizePerMsg:                uint64(argInt(d, "max-msg-size", 0)),
		MaxInflightMsgs:              argInt(d, "max-inflight", 0),
		Seed:                         uint64(argInt(d, "seed", 1)),
		UnsafeAllowMultiVoterOneStep: d.HasArg("unsafe-no-joint"),
	}
	c, err := memcluster.New(opts, voters...)
	if err != nil {
		return "", err
	}
	e.c = c
	e.k = memcluster.NewChecker(c)
	c.Trace = &e.trace
	return "", nil
}

func (e *interactionEnv) handleAddNode(d *datadriven.TestData, pos []string) (string, error) {
	var startup *raftcore.Config
	if v := argList(d, "startup"); v != nil {
		cfg := raftcore.NewConfig(v)
		startup = &cfg
	}
	for _, id := range pos {
		if err := e.c.AddNode(id, startup); err != nil {
			return "", err
		}
	}
	return "", nil
}

func (e *interactionEnv) handleCampaign(_ *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	return "", rn.Campaign()
}

// propose kv-0 k=v: the second argument, as written, is the entry's data.
func (e *interactionEnv) handlePropose(d *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	if len(d.CmdArgs) != 2 {
		return "", fmt.Errorf("usage: propose NODE DATA")
	}
	data := d.CmdArgs[1].Key
	if v := d.CmdArgs[1].Vals; len(v) > 0 {
		data += "=" + strings.Join(v, ",")
	}
	err = rn.Propose([]byte(data))
	e.k.AfterOp(pos[0])
	return "", err
}

// stabilize [quiet]: deliver everything until the cluster is idle. Verbose
// output lists every delivered message; quiet lists only role changes.
func (e *interactionEnv) handleStabilize(d *datadriven.TestData, _ []string) (string, error) {
	if d.HasArg("quiet") {
		e.c.Trace = &quietWriter{w: &e.trace}
		defer func() { e.c.Trace = &e.trace }()
	}
	return "", e.c.Stabilize()
}

// quietWriter drops message lines (those indented) from the trace.
type quietWriter struct{ w *bytes.Buffer }

func (q *quietWriter) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("  ")) {
		q.w.Write(p)
	}
	return len(p), nil
}

// tick [n]: n rounds of one tick on every node, then delivery (quietly).
func (e *interactionEnv) handleTick(d *datadriven.TestData, pos []string) (string, error) {
	n := 1
	if len(pos) > 0 {
		n, _ = strconv.Atoi(pos[0])
	}
	e.c.Trace = &quietWriter{w: &e.trace}
	defer func() { e.c.Trace = &e.trace }()
	return "", e.c.RunTicks(n)
}

func (e *interactionEnv) handleTickNode(_ *datadriven.TestData, pos []string) (string, error) {
	n, _ := strconv.Atoi(pos[1])
	return "", e.c.TickNode(pos[0], n)
}

func (e *interactionEnv) handleStatus(_ *datadriven.TestData, pos []string) (string, error) {
	ids := pos
	if len(ids) == 0 {
		ids = e.c.IDs()
	}
	var b strings.Builder
	for _, id := range ids {
		n := e.c.Node(id)
		if n == nil {
			return "", fmt.Errorf("no node %s", id)
		}
		if !n.Up() {
			fmt.Fprintf(&b, "%s down\n", id)
			continue
		}
		fmt.Fprintln(&b, n.RN.BasicStatus())
	}
	return b.String(), nil
}

func (e *interactionEnv) handleLog(_ *datadriven.TestData, pos []string) (string, error) {
	var b strings.Builder
	for _, id := range pos {
		ents, snap, err := e.c.LogOf(id)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s:", id)
		if snap > 0 {
			fmt.Fprintf(&b, " [snapshot %d]", snap)
		}
		for _, en := range ents {
			fmt.Fprintf(&b, " %s,", en)
		}
		b.WriteString("\n")
	}
	return strings.ReplaceAll(b.String(), ",\n", "\n"), nil
}

func (e *interactionEnv) handleKV(_ *datadriven.TestData, pos []string) (string, error) {
	var b strings.Builder
	for _, id := range pos {
		n := e.c.Node(id)
		keys := make([]string, 0, len(n.KV))
		for k := range n.KV {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%s applied=%d:", id, n.Applied)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, n.KV[k])
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// partition (a,b) (c,d): groups are given as key=(ids) pairs g1=(..) g2=(..).
func (e *interactionEnv) handlePartition(d *datadriven.TestData, _ []string) (string, error) {
	var groups [][]string
	for _, a := range d.CmdArgs {
		if len(a.Vals) > 0 {
			groups = append(groups, a.Vals)
		}
	}
	e.c.Net.Partition(groups...)
	return "", nil
}

func (e *interactionEnv) handleIsolate(_ *datadriven.TestData, pos []string) (string, error) {
	for _, id := range pos {
		e.c.Net.Isolate(id)
	}
	return "", nil
}

func (e *interactionEnv) handleHeal(*datadriven.TestData, []string) (string, error) {
	e.c.Net.Heal()
	return "", nil
}

func (e *interactionEnv) handleCrash(_ *datadriven.TestData, pos []string) (string, error) {
	return "", e.c.Crash(pos[0])
}

func (e *interactionEnv) handleRestart(d *datadriven.TestData, pos []string) (string, error) {
	if v := argList(d, "startup"); v != nil {
		cfg := raftcore.NewConfig(v)
		e.c.SetStartup(pos[0], &cfg)
	}
	return "", e.c.Restart(pos[0])
}

func (e *interactionEnv) handleCompact(_ *datadriven.TestData, pos []string) (string, error) {
	return "", e.c.Compact(pos[0])
}

func (e *interactionEnv) confChange(id string, f func(*raftcore.RawNode) error) (string, error) {
	rn, err := e.rn(id)
	if err != nil {
		return "", err
	}
	err = f(rn)
	e.k.AfterOp(id)
	if err != nil {
		return "", err
	}
	s := rn.BasicStatus()
	return fmt.Sprintf("%s joint=%s@%d\n", s.Config, s.JointState, s.ConfigIndex), nil
}

func (e *interactionEnv) handleAddLearner(_ *datadriven.TestData, pos []string) (string, error) {
	return e.confChange(pos[0], func(rn *raftcore.RawNode) error { return rn.AddLearner(pos[1]) })
}

func (e *interactionEnv) handleRemove(_ *datadriven.TestData, pos []string) (string, error) {
	return e.confChange(pos[0], func(rn *raftcore.RawNode) error { return rn.RemoveMember(pos[1]) })
}

func (e *interactionEnv) handleEnterJoint(d *datadriven.TestData, pos []string) (string, error) {
	return e.confChange(pos[0], func(rn *raftcore.RawNode) error {
		return rn.ProposeConfChange(raftcore.ConfChange{Op: raftcore.OpEnterJoint, Voters: argList(d, "voters"),
			ExpectConfigIndex: uint64(argInt(d, "expect-index", 0))})
	})
}

func (e *interactionEnv) handleLeaveJoint(_ *datadriven.TestData, pos []string) (string, error) {
	return e.confChange(pos[0], func(rn *raftcore.RawNode) error { return rn.LeaveJoint() })
}

func (e *interactionEnv) handleChangeConfig(d *datadriven.TestData, pos []string) (string, error) {
	return e.confChange(pos[0], func(rn *raftcore.RawNode) error {
		return rn.ChangeConfig(raftcore.NewConfig(argList(d, "voters"), argList(d, "learners")...))
	})
}

func (e *interactionEnv) handleTransferLeader(_ *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	return "", rn.TransferLeader(pos[1])
}

func (e *interactionEnv) handleReadIndex(_ *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	if err := e.k.ReadRequested(pos[0], []byte(pos[1])); err != nil {
		return "", err
	}
	return "", rn.ReadIndex([]byte(pos[1]))
}

// pause NODE: the node stops (SIGSTOP): no ticks, nothing handled, messages
// for it held until it resumes.
func (e *interactionEnv) handlePause(_ *datadriven.TestData, pos []string) (string, error) {
	return "", e.c.Pause(pos[0])
}

// resume NODE: the held messages are stepped by the next delivery.
func (e *interactionEnv) handleResume(_ *datadriven.TestData, pos []string) (string, error) {
	return "", e.c.Resume(pos[0])
}

// counters NODE: the messages it refused and the proposals it dropped.
func (e *interactionEnv) handleCounters(_ *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	c := rn.BasicStatus().Counters
	return fmt.Sprintf("dropped=%d rejected-proposals=%d\n", c.DroppedMessages, c.RejectedProposals), nil
}

// unreachable NODE PEER: NODE's transport reports PEER unreachable.
func (e *interactionEnv) handleUnreachable(_ *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	rn.ReportUnreachable(pos[1])
	return "", nil
}

func (e *interactionEnv) handleReadStates(_ *datadriven.TestData, pos []string) (string, error) {
	n := e.c.Node(pos[0])
	if len(n.ReadStates) == 0 {
		return "no read states\n", nil
	}
	var b strings.Builder
	for _, rs := range n.ReadStates {
		fmt.Fprintf(&b, "read %q at index %d (applied %d)\n", rs.RequestCtx, rs.Index, n.Applied)
	}
	n.ReadStates = nil
	return b.String(), nil
}

// check runs the full safety check and prints the violations seen so far.
func (e *interactionEnv) handleCheck(*datadriven.TestData, []string) (string, error) {
	e.k.CheckLogMatching()
	if len(e.k.Violations) == 0 {
		return "no safety violation\n", nil
	}
	return "VIOLATIONS:\n  " + strings.Join(e.k.Violations, "\n  ") + "\n", nil
}

// step kv-1 bad=<kind> [from=kv-0]: feed a malformed message and show the
// refusal.
func (e *interactionEnv) handleStep(d *datadriven.TestData, pos []string) (string, error) {
	rn, err := e.rn(pos[0])
	if err != nil {
		return "", err
	}
	from := "kv-0"
	if v := argList(d, "from"); len(v) == 1 {
		from = v[0]
	}
	m := raftcore.Message{From: from, To: pos[0], Term: rn.BasicStatus().Term}
	switch argList(d, "bad")[0] {
	case "local":
		m.Type = raftcore.MsgHup
	case "gap":
		m.Type = raftcore.MsgApp
		m.Index = 1
		m.LogTerm = 1
		m.Entries = []raftcore.Entry{{Term: m.Term, Index: 5}}
	case "future-entry-term":
		m.Type = raftcore.MsgApp
		m.Index = 1
		m.LogTerm = 1
		m.Entries = []raftcore.Entry{{Term: m.Term + 5, Index: 2}}
	case "config-garbage":
		m.Type = raftcore.MsgApp
		m.Index = 1
		m.LogTerm = 1
		m.Entries = []raftcore.Entry{{Term: m.Term, Index: 2, Type: raftcore.EntryConfig, Data: []byte{1, 200}}}
	case "nil-snapshot":
		m.Type = raftcore.MsgSnap
	case "wrong-recipient":
		m.Type = raftcore.MsgHeartbeat
		m.To = "kv-9"
	case "unknown-type":
		m.Type = raftcore.MessageType(200)
	case "stale-term":
		m.Type = raftcore.MsgVote
		m.Term = 1
	case "read-resp-no-term":
		m.Type = raftcore.MsgReadIndexResp
		m.Term = 0
		m.Index = 99
		m.Context = []byte("forged")
	case "heartbeat-resp-future-round":
		m.Type = raftcore.MsgHeartbeatResp
		m.Round = 1 << 40
	}
	err = rn.Step(m)
	return fmt.Sprintf("step: %v\ndropped=%d\n", err, rn.BasicStatus().Counters.DroppedMessages), nil
}

// process NODE...: handle the nodes' Readies (persist, send, apply) only.
func (e *interactionEnv) handleProcess(_ *datadriven.TestData, pos []string) (string, error) {
	for _, id := range pos {
		e.c.ProcessNode(id)
	}
	return "", nil
}

// deliver: one round of delivery of the messages in flight.
func (e *interactionEnv) handleDeliver(*datadriven.TestData, []string) (string, error) {
	e.c.Deliver()
	return "", nil
}

// drop-pending: lose every message in flight.
func (e *interactionEnv) handleDropPending(*datadriven.TestData, []string) (string, error) {
	for _, id := range e.c.IDs() {
		e.c.Net.DropPendingTo(id)
	}
	return "", nil
}
