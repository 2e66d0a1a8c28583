package kvserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/disk"
	"github.com/raftlab/raftlab/reconfig"
)

// A member whose only WAL segment holds no intact record (a zero-filled
// file left by a crash while an earlier build created it) has lost its term
// and vote: it must not start as a fresh founder, which could vote twice in
// a term.
func TestStartRefusesAMemberWhoseOnlySegmentWasLost(t *testing.T) {
	addrs := freeAddrs(t, 3)
	dir := t.TempDir()
	st, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Bootstrap(raftcore.NewConfig([]string{"kv-0"})); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("want one segment, have %v", segs)
	}
	fi, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segs[0], make([]byte, fi.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	var logged []string
	cfg := Config{
		ID: "kv-0", Peers: map[string]string{"kv-0": addrs[0]}, DataDir: dir,
		ClientAddr: addrs[1], AdminAddr: addrs[2],
		ElectionTimeout: 200 * time.Millisecond, Heartbeat: 20 * time.Millisecond,
		SnapshotEntries: DefaultSnapshotEntries, SnapshotKeep: 10, Mode: reconfig.Safe,
		MaxKeyBytes: 16, MaxValueBytes: 64, RequestTimeout: 2 * time.Second,
		Logf: func(format string, args ...any) { logged = append(logged, format) },
	}
	s, err := Start(cfg)
	if err == nil {
		s.shutdown()
		t.Fatal("Start bootstrapped a member whose term and vote were lost")
	}
	if !strings.Contains(err.Error(), "refusing to start it as a new member") {
		t.Fatalf("error does not say what happened and what to do: %v", err)
	}
	if len(logged) == 0 || !strings.Contains(logged[0], "dropped WAL segment") {
		t.Fatalf("the dropped segment was not logged: %q", logged)
	}
}
