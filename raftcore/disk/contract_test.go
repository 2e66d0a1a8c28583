package disk

import (
	"testing"

	"github.com/raftlab/raftlab/raftcore/storagetest"
)

// The WAL storage meets the same contract as raftcore.MemoryStorage, and
// meets it again after every reopen, on the real disk and on MemFS.
func TestStorageContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func() FS
	}{{"os", func() FS { return OSFS{} }}, {"memfs", func() FS { return NewMemFS() }}} {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.Run(t, storagetest.Harness{
				New: func(t *testing.T) storagetest.Storage {
					s, err := Open(t.TempDir(), Options{FS: tc.fs(), SegmentSize: 256})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s
				},
				Reopen: func(t *testing.T, old storagetest.Storage) storagetest.Storage {
					d := old.(*Storage)
					if err := d.Close(); err != nil {
						t.Fatal(err)
					}
					s, err := Open(d.dir, Options{FS: d.fs, SegmentSize: 256})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s
				},
			})
		})
	}
}
