package raftcore_test

import (
	"testing"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// BenchmarkCommit measures committed entries per second for an in-memory
// 3-voter cluster in one process, 128-byte entries: one entry per proposal
// (unbatched) and 256 entries per proposal (batched, as a server batches
// client writes). Every entry goes through the full path: append, Ready,
// storage append, messages, follower append, acknowledgement, commit, apply.
func BenchmarkCommit(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
	}{{"unbatched", 1}, {"batched-256", 256}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := memcluster.New(memcluster.Options{ElectionTick: 10, HeartbeatTick: 1, Seed: 1, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256},
				"kv-0", "kv-1", "kv-2")
			if err != nil {
				b.Fatal(err)
			}
			if err := c.ElectLeader("kv-0"); err != nil {
				b.Fatal(err)
			}
			leader, _ := c.RN("kv-0")
			payload := make([]byte, 128)
			copy(payload, "k=")
			batch := make([][]byte, bc.batch)
			for i := range batch {
				batch[i] = payload
			}
			start := leader.BasicStatus().Commit
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for done := 0; done < b.N; done += bc.batch {
				n := min(bc.batch, b.N-done)
				if err := leader.ProposeBatch(batch[:n]); err != nil {
					b.Fatal(err)
				}
				c.Flush(64)
			}
			if err := c.Stabilize(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			committed := leader.BasicStatus().Commit - start
			if committed < uint64(b.N) {
				b.Fatalf("committed %d of %d entries", committed, b.N)
			}
			b.ReportMetric(float64(committed)/b.Elapsed().Seconds(), "entries/s")
			_ = raftcore.None
		})
	}
}
