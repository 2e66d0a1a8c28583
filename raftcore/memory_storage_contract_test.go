package raftcore_test

import (
	"testing"

	"github.com/raftlab/raftlab/raftcore"
	"github.com/raftlab/raftlab/raftcore/storagetest"
)

// memStorage gives MemoryStorage the Save call of the contract.
type memStorage struct{ *raftcore.MemoryStorage }

func (m memStorage) Save(hs raftcore.HardState, ents []raftcore.Entry) error {
	if err := m.Append(ents); err != nil {
		return err
	}
	if !hs.IsEmpty() {
		m.SetHardState(hs)
	}
	return nil
}

func TestMemoryStorageContract(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		New: func(*testing.T) storagetest.Storage { return memStorage{raftcore.NewMemoryStorage()} },
	})
}
