// Package memcluster runs a cluster of raftcore nodes in one goroutine, over
// raftcore.MemNetwork and raftcore.MemoryStorage, with a virtual clock: the
// same seed and the same calls give the same run. It is the cluster helper of
// raftcore's tests, the engine of its godoc example, and the in-process
// cluster that reconfig and the simulator build on.
//
// Each node applies entries of the form "key=value" to a small map, so that a
// test can read what a node's state machine holds; other data is applied
// without effect. What a node wrote to its MemoryStorage survives Crash;
// everything else (its RawNode, its map, messages in flight to it) is lost.
// With Options.LoseUnsynced, Crash keeps only what a Ready with MustSync
// made durable, as a server that skips the fsync of the other Readys would.
package memcluster
