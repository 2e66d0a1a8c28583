// Package sim is the runner's deterministic simulator backend: the same
// raftcore RawNode, the same KV state machine (kvserver/sm), the same
// durable storage (raftcore/disk) and the same reconfiguration driver as
// the real server, on one goroutine, with a virtual clock in milliseconds
// and random sources seeded by the run.
//
// Clocks: every node has a clock of its own, seeded by the run and the
// node: it runs up to 3% fast or slow and ticks at its own sub-millisecond
// phase. One tick is one millisecond of that clock (ElectionTick is
// cluster.electionTimeoutMs, HeartbeatTick cluster.heartbeatMs), so the
// core draws election timeouts in 1 ms steps, and nodes disagree on how
// long a timeout or a CheckQuorum lease lasts, as real machines do. A
// paused or crashed node's ticks are lost.
//
// The network is raftcore's MemNetwork: one-way cuts, per-link delay and
// jitter (which reorders), loss and duplication, set as a whole by
// SetNetwork on top of the base network (network: in the file). Delay,
// loss and duplication are drawn when a message is sent; a cut is judged
// when it is sent and again when it is due, so no message crosses a cut,
// whether set before or after it left. Snapshots travel as streams: a
// snapshot takes the link's delay plus its size over network.snapshotKBps,
// fails if its link is cut or either end crashes meanwhile, and the leader
// hears which (ReportSnapshot): finished only once delivered.
//
// The disk is raftcore/disk's WAL and snapshot files on a MemFS per node.
// A Ready is handled as raft-kv handles it: the snapshot installed, the
// hard state and entries appended, and, if the Ready must be synced, the
// sync completes network.fsyncMs later; only then does the node send,
// apply and advance. A crash (Kill) loses every byte and directory change
// the node had not synced, whatever the code chose to sync, and the node
// comes back (Restart) from what its MemFS kept, through the WAL's
// recovery. A disk that does not recover, or that the core refuses to
// start from, is an invariant violation (result.json invariantViolations)
// and the node stays down.
//
// Clients call any member: a follower forwards proposals and ReadIndex
// requests to its leader and serves a read once it has applied the index of
// the ReadState it gets back, which it matches to the read by context
// (workload.readContexts: unique, or raft-kv's old per-node numbering that
// collides across nodes). With network.clientDelayMs, clientJitterMs and
// clientLossPercent, a request and its answer each take their time and
// may be lost; a client that hears nothing gives up at its timeout
// (unknown), whatever the node did. A paused node (SIGSTOP) neither ticks
// nor handles anything: messages for it and its clients' requests wait,
// and when it resumes it works through them one at a time, its Ready after
// each, in a seeded random order that keeps each peer's messages in order.
//
// Same experiment and seed, same history, byte for byte: nothing reads the
// wall clock, iterates a map in an order that matters, or starts a
// goroutine. Events at the same millisecond run in the order they were
// scheduled.
package sim
