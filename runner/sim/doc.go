// Package sim is the runner's deterministic simulator backend: the same
// raftcore RawNode, the same KV state machine (kvserver/sm) and the same
// reconfiguration driver as the real server, on one goroutine, with a
// virtual clock in milliseconds and random sources seeded by the run.
//
// The network is raftcore's MemNetwork: partitions of any shape, per-link
// delay and jitter (which reorders), loss and duplication. The disk is a
// MemoryStorage written only when a Ready's simulated fsync completes
// (network.fsyncMs after the Ready): messages are sent and entries applied
// only then, as the server does, and a crash before it loses the Ready, as
// a crash loses what was not synced.
//
// Clients call any member: a follower forwards proposals and ReadIndex
// requests to its leader and serves a read once it has applied the index of
// the ReadState it gets back, which it matches to the read by context
// (workload.readContexts: unique, or raft-kv's old per-node numbering that
// collides across nodes). A paused node (SIGSTOP) neither ticks nor
// handles anything: messages for it and its clients' requests wait, and
// when it resumes it works through them one at a time, its Ready after
// each, in a seeded random order that keeps each peer's messages in order.
//
// Same experiment and seed, same history, byte for byte: nothing reads the
// wall clock, iterates a map in an order that matters, or starts a
// goroutine. Events at the same millisecond run in the order they were
// scheduled.
package sim
