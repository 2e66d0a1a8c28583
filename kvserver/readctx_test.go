package kvserver

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// Issue 14, defect 3: a peer's MsgReadIndexResp carries any context (short,
// empty, long, another node's or another start's). Through the node's real
// path (the transport's delivery, raftcore, the Ready's ReadStates) none
// may crash the node or release a read; the node's own ReadState still
// does, after them.
func TestForeignReadStatesFromAPeer(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	lead := tc.leader()
	var f *Server
	for id, s := range tc.servers {
		if id != lead {
			f = s
			break
		}
	}
	fu := "http://" + f.ClientAddr()
	if code, out, _ := do(t, http.MethodPut, fu+"/kv/k", `{"value":"v"}`, nil); code != 200 {
		t.Fatalf("put: %d %v", code, out)
	}
	// A read through the follower gives it a tag, so that contexts are
	// parsed rather than all ignored.
	if code, out, _ := do(t, http.MethodGet, fu+"/kv/k", "", nil); code != 200 {
		t.Fatalf("read through the follower: %d %v", code, out)
	}
	const sentinelBatch = 1 << 40
	sentinel := &readReq{key: "k", done: make(chan readResult, 1), deadline: time.Now().Add(time.Minute)}
	var tag []byte
	var term uint64
	var pending int
	f.n.call(func() {
		tag = bytes.Clone(f.n.readTag)
		term = f.n.rn.BasicStatus().Term
		for _, rs := range f.n.readBatches {
			pending += len(rs)
		}
		f.n.readBatches[sentinelBatch] = []*readReq{sentinel}
	})
	if len(tag) == 0 {
		t.Fatal("the follower has no read tag after a read")
	}
	foreign := bytes.Clone(tag)
	foreign[0] ^= 0xff
	long := bytes.Repeat([]byte{0xa5}, 1<<20)
	copy(long, tag)
	for _, ctx := range [][]byte{
		nil,
		{},
		{1},
		{1, 2, 3, 4, 5, 6, 7},
		binary.BigEndian.AppendUint64(nil, 1), // the old encoding: a bare counter
		tag,                                   // the tag alone
		tag[:len(tag)-1],
		append(bytes.Clone(tag), 0, 0, 0, 0, 0, 0, 1),          // one byte short
		append(readCtx(tag, sentinelBatch), 0),                 // one byte long
		readCtx(foreign, sentinelBatch),                        // another start or node
		readCtx(tag[:len(tag)-1], sentinelBatch),               // a shorter id
		append(readCtx(tag, 0)[:len(tag)], readCtx(tag, 7)...), // the tag twice
		long,                                   // 1 MiB
		readCtx(tag, sentinelBatch+1),          // ours, no such batch
		readCtx(tag, ^uint64(0)),               // ours, no such batch
		bytes.Repeat([]byte{0xff}, len(tag)+8), // the right length
	} {
		f.n.receive(raftcore.Message{Type: raftcore.MsgReadIndexResp, From: lead, To: f.cfg.ID, Term: term, Index: 1, Context: ctx})
	}
	if len(sentinel.done) != 0 {
		t.Fatal("a foreign ReadState released a read")
	}
	// Messages are taken in order: once the node's own ReadState, sent
	// last, released its read, every message before it was handled.
	f.n.receive(raftcore.Message{Type: raftcore.MsgReadIndexResp, From: lead, To: f.cfg.ID, Term: term, Index: 1, Context: readCtx(tag, sentinelBatch)})
	select {
	case res := <-sentinel.done:
		if res.failed != nil || !res.found || string(res.value) != "v" {
			t.Fatalf("the node's own ReadState after the foreign ones: %+v", res)
		}
	case <-f.Done():
		t.Fatalf("the follower stopped: %v", f.Err())
	case <-time.After(10 * time.Second):
		t.Fatal("the node's own ReadState, sent after the foreign ones, released nothing (did the term change?)")
	}
	var after int
	f.n.call(func() {
		for _, rs := range f.n.readBatches {
			after += len(rs)
		}
	})
	if after > pending {
		t.Fatalf("%d reads waiting for a read point, %d before", after, pending)
	}
	if code, out, _ := do(t, http.MethodGet, fu+"/kv/k", "", nil); code != 200 || out["value"] != "v" {
		t.Fatalf("a read through the follower afterwards: %d %v", code, out)
	}
}

// parseReadCtx never panics, and takes exactly the contexts readCtx makes
// with the same tag.
func FuzzParseReadCtx(f *testing.F) {
	tag := newReadTag("kv-0", [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(tag, readCtx(tag, 1))
	f.Add(tag, []byte{})
	f.Add([]byte{}, []byte{1, 2, 3})
	f.Add(tag, append(readCtx(tag, 1), 0))
	f.Fuzz(func(t *testing.T, tag, ctx []byte) {
		n, ours := parseReadCtx(tag, ctx)
		if ours != bytes.Equal(ctx, readCtx(tag, n)) {
			t.Fatalf("parseReadCtx(%x, %x) = %d, %v", tag, ctx, n, ours)
		}
	})
}
