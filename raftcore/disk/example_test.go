package disk_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/disk"
)

// A single-voter node on disk storage: it commits writes, the machine loses
// power, and the restarted node gives back every write it acknowledged.
// (MemFS stands in for the disk; disk.Options{} uses the real one.)
func Example() {
	fs := disk.NewMemFS()
	st, _ := disk.Open("/var/lib/kv-0", disk.Options{FS: fs})
	st.Bootstrap(raftcore.NewConfig([]string{"kv-0"}))

	rn, _ := raftcore.NewRawNode(raftcore.Options{ID: "kv-0", Storage: st})
	rn.Campaign()
	var acked []string
	handle := func() {
		for rn.HasReady() {
			rd := rn.Ready()
			if !rd.Snapshot.IsEmpty() {
				st.ApplySnapshot(rd.Snapshot)
			}
			// Durable before anything that depends on it is sent or acknowledged.
			if err := st.Save(rd.HardState, rd.Entries); err != nil {
				panic(err)
			}
			for _, e := range rd.CommittedEntries {
				if e.Type == raftcore.EntryNormal && len(e.Data) > 0 {
					acked = append(acked, string(e.Data))
				}
			}
			rn.Advance(rd)
		}
	}
	handle()
	for i := 1; i <= 3; i++ {
		rn.Propose(fmt.Appendf(nil, "put k%d", i))
		handle()
	}
	fmt.Println("acknowledged:", acked)

	fs.Crash(rand.New(rand.NewPCG(1, 1))) // power loss: unsynced writes are gone or torn
	st2, err := disk.Open("/var/lib/kv-0", disk.Options{FS: fs})
	if err != nil {
		panic(err)
	}
	hs, _ := st2.InitialState()
	ents, _ := st2.Entries(1, hs.Commit+1, 1<<20)
	var recovered []string
	for _, e := range ents {
		if e.Type == raftcore.EntryNormal && len(e.Data) > 0 {
			recovered = append(recovered, string(e.Data))
		}
	}
	fmt.Println("after the crash:", recovered, "term", hs.Term)
	// Output:
	// acknowledged: [put k1 put k2 put k3]
	// after the crash: [put k1 put k2 put k3] term 2
}
