// Package sim is the runner's deterministic simulator backend: the same
// raftcore RawNode, the same KV state machine (kvserver/sm) and the same
// reconfiguration driver as the real server, on one goroutine, with a
// virtual clock in milliseconds and one seeded random source.
//
// The network is raftcore's MemNetwork: partitions of any shape, per-link
// delay and jitter (which reorders), loss and duplication. The disk is a
// MemoryStorage written only when a Ready's simulated fsync completes
// (network.fsyncMs after the Ready): messages are sent and entries applied
// only then, as the server does, and a crash before it loses the Ready, as
// a crash loses what was not synced.
//
// Same experiment and seed, same history, byte for byte: nothing reads the
// wall clock, iterates a map in an order that matters, or starts a
// goroutine. Events at the same millisecond run in the order they were
// scheduled.
package sim
