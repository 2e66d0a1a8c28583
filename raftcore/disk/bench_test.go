package disk

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/raftlab/raftlab/raftcore"
)

// BenchmarkWAL measures entries/s and fsyncs/s on the real disk with 1, 8
// and 64 concurrent writers of 128-byte entries: "batched" is group commit
// (each writer appends, then waits for a Sync that may cover others'
// entries too); "fsync-per-entry" makes every entry durable on its own
// before the next is written. The data directory is made under
// RAFTLAB_BENCH_DIR, or the system's temporary directory: it must be on a
// real disk (not tmpfs) for the figures to mean anything.
//
//	go test ./raftcore/disk -run '^$' -bench BenchmarkWAL -benchtime 3s
func BenchmarkWAL(b *testing.B) {
	for _, mode := range []string{"batched", "fsync-per-entry"} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				benchWAL(b, writers, mode == "batched")
			})
		}
	}
}

func benchWAL(b *testing.B, writers int, batched bool) {
	dir, err := os.MkdirTemp(os.Getenv("RAFTLAB_BENCH_DIR"), "raftlab-wal-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 128)
	var (
		order sync.Mutex // assigns indexes in log order
		next  uint64     = 1
	)
	work := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	b.SetBytes(128)
	b.ResetTimer()
	start, fsyncs0, fsyncTime0 := time.Now(), s.Fsyncs(), s.FsyncTime()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				order.Lock()
				t, err := s.Append(raftcore.HardState{}, []raftcore.Entry{{Term: 1, Index: next, Data: data}})
				next++
				if !batched {
					// The baseline: this entry's own fsync before any other
					// entry is written.
					if err == nil {
						err = s.Sync(t)
					}
					order.Unlock()
				} else {
					order.Unlock()
					if err == nil {
						err = s.Sync(t)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed, "entries/s")
	b.ReportMetric(float64(s.Fsyncs()-fsyncs0)/elapsed, "fsyncs/s")
	n := max(1, s.Fsyncs()-fsyncs0)
	b.ReportMetric(float64(b.N)/float64(n), "entries/fsync")
	b.ReportMetric(float64((s.FsyncTime()-fsyncTime0).Microseconds())/float64(n), "µs/fsync")
}
