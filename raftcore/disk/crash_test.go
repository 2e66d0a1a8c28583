package disk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raftlab/raftlab/internal/testseed"
	"github.com/raftlab/raftlab/raftcore"
)

// state is what a storage holds: the model side of the crash test.
type state struct {
	hs   raftcore.HardState
	snap raftcore.Snapshot
	ents []raftcore.Entry // after the snapshot
}

func capture(s raftcore.Storage) state {
	hs, _ := s.InitialState()
	snap, _ := s.Snapshot()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	var ents []raftcore.Entry
	if lo := snap.Meta.Index + 1; lo <= last {
		if lo < first {
			lo = first
		}
		ents, _ = s.Entries(lo, last+1, ^uint64(0))
	}
	return state{hs: hs, snap: snap, ents: append([]raftcore.Entry(nil), ents...)}
}

// equal reports whether recovery may return b for the model state a. A
// snapshot holds only committed entries, so recovery raises a commit index
// below the snapshot's to it (the hard state saying so may not have been
// synced when the snapshot was): a's commit is read the same way.
func (a state) equal(b state) bool {
	hs := a.hs
	if !a.snap.IsEmpty() && hs.Commit < a.snap.Meta.Index {
		hs.Commit = a.snap.Meta.Index
	}
	if hs != b.hs || a.snap.Meta.Index != b.snap.Meta.Index || a.snap.Meta.Term != b.snap.Meta.Term ||
		!bytes.Equal(a.snap.Data, b.snap.Data) || len(a.ents) != len(b.ents) {
		return false
	}
	for i := range a.ents {
		x, y := a.ents[i], b.ents[i]
		if x.Index != y.Index || x.Term != y.Term || x.Type != y.Type || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

func (a state) String() string {
	last := a.snap.Meta.Index
	if len(a.ents) > 0 {
		last = a.ents[len(a.ents)-1].Index
	}
	return fmt.Sprintf("hs=%+v snap=%d/%d entries (%d..%d]", a.hs, a.snap.Meta.Term, a.snap.Meta.Index, a.snap.Meta.Index, last)
}

func (a state) restore() *raftcore.MemoryStorage {
	m := raftcore.NewMemoryStorage()
	if !a.snap.IsEmpty() {
		m.ApplySnapshot(a.snap)
	}
	m.Append(a.ents)
	m.SetHardState(a.hs)
	return m
}

// crashRun is one seed of the crash test: random appends (with conflicts),
// hard states, syncs, snapshots and rotations on MemFS, with crashes between
// and inside operations, each followed by recovery and a check.
type crashRun struct {
	t     *testing.T
	rng   *rand.Rand
	fs    *MemFS
	opts  Options
	st    *Storage
	model *raftcore.MemoryStorage
	// states are the model's states since the last recovery, at the
	// granularity of a WAL record: recovery may stop after any record.
	states []state
	// durable is the first index in states that recovery may return: every
	// state before it was reported durable and then superseded.
	durable int
	// tickets maps an Append's ticket to the last state index it produced.
	tickets map[Ticket]int
	cases   *crashCases
}

// crashCases counts what the crashes left of segment creation, so that the
// test can check that it reaches the cases recovery must handle.
type crashCases struct {
	// A segment's temporary file: no bytes, only zeros (its size reached
	// the disk, its data did not), or a part of what was written.
	tmpEmpty, tmpZeros, tmpPartial int
	// An unfinished last segment as an older build left it, under its own
	// name (see injectLegacy): empty, zeros, a torn header.
	legacy [3]int
}

func (c *crashRun) push() { c.states = append(c.states, capture(c.model)) }

func (c *crashRun) lastIdx() uint64 { l, _ := c.model.LastIndex(); return l }

// rotates reports whether the next Append starts a new segment.
func (c *crashRun) rotates() bool { return nextAppendRotates(c.st) }

// nextAppendRotates reports whether the next Append to s starts a new
// segment.
func nextAppendRotates(s *Storage) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && s.curSize >= s.segSize
}

// step runs one random operation; it returns false once the storage failed
// (a scheduled crash happened).
func (c *crashRun) step() bool {
	hs, _ := c.model.InitialState()
	snap, _ := c.model.Snapshot()
	last := c.lastIdx()
	switch r := c.rng.IntN(100); {
	case r < 55: // append, sometimes cutting an uncommitted suffix
		at := last + 1
		// Terms never go down along the log, and a cut gets a new term, as
		// in Raft; otherwise two different entries could share an index
		// and a term.
		lastTerm, _ := c.model.Term(last)
		term := max(hs.Term, lastTerm, 1)
		if c.rng.IntN(5) == 0 && last > max(hs.Commit, snap.Meta.Index) {
			at = max(hs.Commit, snap.Meta.Index) + 1 + c.rng.Uint64N(last-max(hs.Commit, snap.Meta.Index))
			term++
		}
		n := c.rng.IntN(6)
		var ents []raftcore.Entry
		for i := 0; i < n; i++ {
			data := make([]byte, c.rng.IntN(200))
			for j := range data {
				data[j] = byte(c.rng.Uint32())
			}
			ents = append(ents, raftcore.Entry{Term: term, Index: at + uint64(i), Data: data})
		}
		newHS := hs
		newHS.Term = max(term, hs.Term)
		if c.rng.IntN(3) == 0 {
			newHS.Term++
			newHS.Vote = fmt.Sprintf("n%d", c.rng.IntN(5))
		}
		newLast := last
		if n > 0 {
			newLast = at + uint64(n) - 1
		}
		if newLast > hs.Commit && c.rng.IntN(2) == 0 {
			newHS.Commit = hs.Commit + 1 + c.rng.Uint64N(newLast-hs.Commit)
		}
		if c.rotates() && c.rng.IntN(4) == 0 {
			// This append starts a new segment: crash somewhere in the
			// rotation (sync, truncate, create, write, preallocate, sync,
			// rename, directory sync) more often than chance would.
			c.fs.CrashAfter(1 + c.rng.IntN(10))
		}
		tk, err := c.st.Append(newHS, ents)
		// The model moves record by record, as recovery may cut anywhere.
		for i := range ents {
			c.model.Append(ents[i : i+1])
			c.push()
		}
		if !newHS.IsEmpty() && newHS != hs {
			c.model.SetHardState(newHS)
			c.push()
		}
		if err != nil {
			return false
		}
		c.tickets[tk] = len(c.states) - 1
	case r < 80: // group commit: sync the newest ticket, or an older one
		if len(c.tickets) == 0 {
			return true
		}
		var t Ticket
		for k := range c.tickets {
			t = max(t, k)
		}
		if c.rng.IntN(4) == 0 {
			t = Ticket(c.rng.Uint64N(uint64(t)) + 1)
		}
		if err := c.st.Sync(t); err != nil {
			return false
		}
		// Everything appended before the sync's write is durable; at
		// least the state of ticket t.
		if i, ok := c.tickets[t]; ok && i > c.durable {
			c.durable = i
		}
		for k := range c.tickets {
			if k <= t {
				delete(c.tickets, k)
			}
		}
	case r < 90: // snapshot of the applied (committed) state
		if hs.Commit <= snap.Meta.Index {
			return true
		}
		i := snap.Meta.Index + 1 + c.rng.Uint64N(hs.Commit-snap.Meta.Index)
		data := fmt.Appendf(nil, "state@%d", i)
		_, err := c.st.CreateSnapshot(i, cfg3, data)
		if err != nil {
			c.model.CreateSnapshot(i, cfg3, data)
			c.push()
			return false
		}
		c.model.CreateSnapshot(i, cfg3, data)
		c.push()
		c.durable = len(c.states) - 1
		c.tickets = map[Ticket]int{}
	case r < 94: // a snapshot from the leader replaces the log
		i := last + 1 + c.rng.Uint64N(20)
		snapNew := raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: i, Term: hs.Term + 1, Config: cfg3}, Data: fmt.Appendf(nil, "leader@%d", i)}
		err := c.st.ApplySnapshot(snapNew)
		c.model.ApplySnapshot(snapNew)
		c.push()
		if err != nil {
			return false
		}
		c.durable = len(c.states) - 1
		c.tickets = map[Ticket]int{}
	default: // crash now, between operations
		return false
	}
	return true
}

// inspect looks at the WAL that a crash left, before recovery: it counts the
// temporary files of interrupted segment creations, and checks the invariant
// of segment creation: no segment name exists without a durable header.
func (c *crashRun) inspect(seed uint64) {
	dir := filepath.Join("/data", walDir)
	names, err := c.fs.ReadDir(dir)
	if err != nil {
		c.t.Fatalf("seed %d: %v", seed, err)
	}
	for _, n := range names {
		b, err := c.fs.ReadFile(filepath.Join(dir, n))
		if err != nil {
			c.t.Fatalf("seed %d: %v", seed, err)
		}
		if strings.HasSuffix(n, ".wal"+tmpSuffix) {
			switch {
			case len(b) == 0:
				c.cases.tmpEmpty++
			case allZero(b):
				c.cases.tmpZeros++
			default:
				c.cases.tmpPartial++
			}
			continue
		}
		if _, _, ok := parseSegName(n); !ok {
			continue
		}
		if typ, _, _, err := decodeRecord(b); err != nil || typ != recHeader {
			if err == nil {
				err = fmt.Errorf("its first record is of type %d", typ)
			}
			c.t.Fatalf("seed %d: after the crash, segment %s (%d bytes) has no durable header (%v)\nfiles:\n%s\nreplay: DISK_SEED=%d go test ./raftcore/disk -run 'TestCrashRecovery$' -v", seed, n, len(b), err, c.fs, seed)
		}
	}
}

// injectLegacy makes the WAL look as if the crash had come while a build
// older than the temporary-name scheme created the next segment under its
// own name: the last segment cut to its records, durably (what rotation did
// first), and the next segment's name holding no bytes, zeros or a torn
// header. The records are unchanged, so recovery must return a legal state
// as before, and drop the new name. It returns that name, or "" when the
// last segment ends in a torn tail (rotation synced it first, so that
// cannot be).
func (c *crashRun) injectLegacy(seed uint64) string {
	dir := filepath.Join("/data", walDir)
	names, _ := c.fs.ReadDir(dir)
	var last string
	for _, n := range names {
		if _, _, ok := parseSegName(n); ok {
			last = n
		}
	}
	if last == "" {
		return ""
	}
	path := filepath.Join(dir, last)
	b, _ := c.fs.ReadFile(path)
	end := 0
	for end < len(b) {
		_, _, n, err := decodeRecord(b[end:])
		if err != nil {
			break
		}
		end += n
	}
	if !allZero(b[end:]) {
		return ""
	}
	if err := c.fs.Truncate(path, int64(end)); err != nil {
		c.t.Fatalf("seed %d: %v", seed, err)
	}
	seq, _, _ := parseSegName(last)
	next := filepath.Join(dir, segName(seq+1, lastOf(c.states[len(c.states)-1])+1))
	size := int(c.opts.SegmentSize)
	var content []byte
	switch kind := c.rng.IntN(3); kind {
	case 0: // created, nothing written reached the disk
	case 1: // the preallocated size reached the disk, the data did not
		content = make([]byte, size)
	default: // the header was torn
		h := appendHeader(nil, segmentHeader{Version: FormatVersion, Seq: seq + 1, FirstIndex: 1})
		cut := 1 + c.rng.IntN(len(h)-1)
		if allZero(h[cut:]) {
			// The bytes lost are zeros anyway (the header's high bytes):
			// cut before the type byte instead, so that it is torn.
			cut = recordHeaderSize - 1
		}
		content = append(h[:cut], make([]byte, size)...)[:size]
	}
	c.fs.WriteFile(next, content)
	kind := 2
	switch {
	case len(content) == 0:
		kind = 0
	case allZero(content):
		kind = 1
	}
	c.cases.legacy[kind]++
	return next
}

// behind says how got is behind d, the last state reported durable, if it
// is: a lower term, another vote in the same term, a lower commit index, a
// committed entry lost or changed, an older snapshot, or a last index below
// minLast, the lowest of every state since d (a later append may cut the
// log's uncommitted suffix).
func behind(d state, minLast uint64, got state) string {
	switch {
	case got.hs.Term < d.hs.Term:
		return fmt.Sprintf("the term went back from %d to %d", d.hs.Term, got.hs.Term)
	case got.hs.Term == d.hs.Term && d.hs.Vote != "" && got.hs.Vote != d.hs.Vote:
		return fmt.Sprintf("the vote in term %d changed from %q to %q (a second vote)", d.hs.Term, d.hs.Vote, got.hs.Vote)
	case got.hs.Commit < d.hs.Commit:
		return fmt.Sprintf("the commit index went back from %d to %d", d.hs.Commit, got.hs.Commit)
	case got.snap.Meta.Index < d.snap.Meta.Index:
		return fmt.Sprintf("the snapshot went back from %d to %d", d.snap.Meta.Index, got.snap.Meta.Index)
	case lastOf(got) < minLast:
		return fmt.Sprintf("the last index went back to %d, below %d", lastOf(got), minLast)
	}
	for _, e := range d.ents {
		if e.Index > d.hs.Commit {
			break
		}
		if e.Index <= got.snap.Meta.Index {
			continue // covered by the snapshot
		}
		i := int(e.Index - got.snap.Meta.Index - 1)
		if i >= len(got.ents) || got.ents[i].Term != e.Term || !bytes.Equal(got.ents[i].Data, e.Data) {
			return fmt.Sprintf("committed entry %d (term %d) was lost or changed", e.Index, e.Term)
		}
	}
	return ""
}

// recover crashes the machine, reopens the storage and checks it against the
// states recovery may legally return.
func (c *crashRun) recover(seed uint64) {
	replay := fmt.Sprintf("replay: DISK_SEED=%d go test ./raftcore/disk -run 'TestCrashRecovery$' -v", seed)
	c.fs.Recover(c.rng)
	c.inspect(seed)
	legacy := ""
	if c.rng.IntN(8) == 0 {
		legacy = c.injectLegacy(seed)
	}
	st, err := Open("/data", c.opts)
	if err != nil {
		c.t.Fatalf("seed %d: recovery failed: %v\nfiles:\n%s\n%s", seed, err, c.fs, replay)
	}
	got := capture(st)
	if d := st.Recovered().DroppedSegment; d != legacy {
		c.t.Fatalf("seed %d: recovery dropped the segment %q, want %q (the unfinished one injected)\n%s", seed, d, legacy, replay)
	}
	minLast := lastOf(c.states[c.durable])
	for _, st := range c.states[c.durable:] {
		minLast = min(minLast, lastOf(st))
	}
	if what := behind(c.states[c.durable], minLast, got); what != "" {
		c.t.Fatalf("seed %d: recovered %v\nis behind what was reported durable (%v): %s\n%s", seed, got, c.states[c.durable], what, replay)
	}
	match := -1
	for i := len(c.states) - 1; i >= c.durable; i-- {
		if c.states[i].equal(got) {
			match = i
			break
		}
	}
	if match < 0 {
		lo := c.states[c.durable]
		if testing.Verbose() {
			for i := c.durable; i < len(c.states); i++ {
				c.t.Logf("candidate %d: %v %v", i, c.states[i], c.states[i].terms())
			}
			c.t.Logf("recovered terms %v", got.terms())
		}
		c.t.Fatalf("seed %d: recovered %v\nwhich is no state at or after the last durable one (%v; %d candidates)\n%s", seed, got, lo, len(c.states)-c.durable, replay)
	}
	if d := st.DurableIndex(); d != lastOf(got) {
		c.t.Fatalf("seed %d: after recovery DurableIndex = %d, want the last index %d", seed, d, lastOf(got))
	}
	c.st = st
	c.model = got.restore()
	c.states = []state{got}
	c.durable = 0
	c.tickets = map[Ticket]int{}
}

func lastOf(s state) uint64 {
	if len(s.ents) > 0 {
		return s.ents[len(s.ents)-1].Index
	}
	return s.snap.Meta.Index
}

var cfg3 = raftcore.NewConfig([]string{"a", "b", "c"})

// TestCrashRecovery writes, crashes and recovers thousands of times: every
// state reported durable survives (term, vote, commit, entries), and recovery
// returns exactly the state after some prefix of the records written
// (nothing after a torn record is read, nothing synced is lost). Crashes
// inside segment creation leave its temporary file empty, zero-filled or
// partial, never a segment name without a header; some recoveries also
// start from an unfinished segment as an older build left it. DISK_SEEDS
// sets the number of seeds (each crashes 5 times), DISK_SEED replays one,
// DISK_SEED_BASE shifts them.
func TestCrashRecovery(t *testing.T) {
	seeds := testseed.FromEnv(t, "DISK", 1000, 200)
	crashes, torn := 0, 0
	cases := &crashCases{}
	for _, seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		fs := NewMemFS()
		c := &crashRun{t: t, rng: rng, fs: fs, opts: Options{FS: fs, SegmentSize: int64(200 + rng.IntN(2000))}, tickets: map[Ticket]int{}, cases: cases}
		st, err := Open("/data", c.opts)
		if err != nil {
			t.Fatal(err)
		}
		c.st, c.model = st, raftcore.NewMemoryStorage()
		c.push()
		for round := 0; round < 5; round++ {
			if rng.IntN(2) == 0 {
				// Crash inside some later file operation.
				fs.CrashAfter(1 + rng.IntN(60))
			}
			for ops := 0; ops < 200 && c.step(); ops++ {
			}
			c.recover(seed)
			crashes++
			if c.st.Recovered().TornFile != "" {
				torn++
			}
		}
	}
	t.Logf("%d seeds, %d crashes and recoveries, %d with a torn tail truncated", len(seeds), crashes, torn)
	t.Logf("segment creation: temporary files left empty %d, zero-filled %d, partial %d; unfinished segments of an older build: empty %d, zero-filled %d, torn header %d",
		cases.tmpEmpty, cases.tmpZeros, cases.tmpPartial, cases.legacy[0], cases.legacy[1], cases.legacy[2])
	if len(seeds) >= 100 { // a replay of one seed need not reach them all
		if cases.tmpEmpty == 0 || cases.tmpZeros == 0 || cases.tmpPartial == 0 {
			t.Errorf("the crashes no longer reach every state of an interrupted segment creation (temporary file empty %d, zero-filled %d, partial %d)", cases.tmpEmpty, cases.tmpZeros, cases.tmpPartial)
		}
		for kind, n := range cases.legacy {
			if n == 0 {
				t.Errorf("no recovery started from an unfinished segment of kind %d (empty, zero-filled, torn header)", kind)
			}
		}
	}
}

func (a state) terms() []uint64 {
	var t []uint64
	for _, e := range a.ents {
		t = append(t, e.Term)
	}
	return t
}
