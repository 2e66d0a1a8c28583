package disk

import (
	"testing"

	"github.com/raftlab/raftlab/raftcore"
)

// A follower installs a leader's snapshot (ApplySnapshot makes it durable at
// once) and crashes before the Ready's hard state, which raises commit to the
// snapshot's index, is synced. Recovery must still give a state the core
// starts from: a snapshot holds only committed entries, so its index is
// committed. Found by the simulator (runner/sim, TestRandomNetworkIsSafe
// seed 1792): the node could never restart ("persisted commit 68 is outside
// the log [80, 80]").
func TestCrashAfterSnapshotBeforeHardStateSync(t *testing.T) {
	fs := NewMemFS()
	s, err := Open(dataDir, Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	var ents []raftcore.Entry
	for i := uint64(1); i <= 3; i++ {
		ents = append(ents, raftcore.Entry{Term: 1, Index: i, Data: []byte("x")})
	}
	if err := s.Save(raftcore.HardState{Term: 1, Vote: "a", Commit: 2}, ents); err != nil {
		t.Fatal(err)
	}
	snap := raftcore.Snapshot{Meta: raftcore.SnapshotMeta{Index: 10, Term: 1, Config: cfg3}, Data: []byte("app-state")}
	if err := s.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	// The Ready's hard state, appended but not synced.
	if _, err := s.Append(raftcore.HardState{Term: 1, Vote: "a", Commit: 10}, nil); err != nil {
		t.Fatal(err)
	}
	fs.CrashLosingUnsynced()

	s2, err := Open(dataDir, Options{FS: fs})
	if err != nil {
		t.Fatalf("recovery refused the directory: %v", err)
	}
	defer s2.Close()
	hs, err := s2.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.Commit != 10 || hs.Term != 1 || hs.Vote != "a" {
		t.Fatalf("recovered hard state %+v, want term 1, vote a, commit 10 (the snapshot's index)", hs)
	}
	if _, err := raftcore.NewRawNode(raftcore.Options{ID: "a", Storage: s2, Applied: 10}); err != nil {
		t.Fatalf("the core refuses the recovered state: %v", err)
	}
}
