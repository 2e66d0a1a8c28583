// Package kvserver is raft-kv: a replicated key-value server built from
// raftcore (consensus), raftcore/disk (WAL and snapshots) and kvserver/sm
// (the state machine the simulator shares). cmd/raft-kv is its main.
//
// # The loop
//
// One goroutine owns the RawNode, the storage and the state machine. It
// takes a tick, a batch of peer messages, a batch of client writes (one
// ProposeBatch for everything queued) or a batch of reads (one ReadIndex for
// everything queued), then handles every Ready in the order raftcore
// requires: append and one group-committed fsync, then send, then apply,
// then Advance. Nothing is acknowledged, to a client or a peer, before it is
// durable (Raft paper, Figure 2). Snapshots are taken every
// --snapshot-entries applied entries or --snapshot-interval, keeping
// --snapshot-keep-entries of log behind them.
//
// # Client API (client port)
//
//	PUT|POST /kv/{key}  {"value": "..."}  -> 200 {"outcome":"ok","index":N,"existed":bool,"duplicate":bool}
//	GET      /kv/{key}                    -> 200 {"key","value","index"} | 404 {"code":"not_found"}
//	DELETE   /kv/{key}                    -> 200 {"outcome":"ok","index":N,"existed":bool}
//
// Any node accepts any request: a follower's write goes to the leader as a
// forwarded proposal and is answered when the follower applies it; a read
// takes a ReadIndex read point from the leader (Raft thesis §6.4) and is
// served once the node has applied up to it, so reads through any node are
// linearizable. Every response carries X-Raft-Node, X-Raft-Leader and
// X-Raft-Leader-Url (the leader's client URL, once known), so clients can go
// to the leader directly.
//
// Exactly once: a write with X-Client-Id and X-Request-Seq (positive,
// increasing per client id, one request outstanding per client id, a new id
// starting at 1) is applied at most once; a retry, or a late copy arriving
// after newer requests, is answered with the first result ("duplicate":
// true) while the session remembers it (the client's 64 newest sequence
// numbers). Other requests older than the client's newest are refused with
// 409 stale_request: outcome "failed" if the session shows that sequence
// number was never applied, "unknown" if it is too old to tell. Writes
// without a client id are not deduplicated.
//
// Sessions expire by the log, identically on every replica (kvserver/sm
// has the rule): one with no request for 2^20 log entries, or the least
// recently active when 2^17 sessions are held. A client whose session
// expired gets 409 session_expired for any request with X-Request-Seq above
// 1: nothing of it is applied and nothing will be under that client id, but
// its outcome is "unknown", since an attempt sent before the expiry may have
// been applied (a client that never sent that request before knows it was
// not). It must go on under a new client id, starting at 1; the Go client
// (kvserver/client) does so by itself. A request with X-Request-Seq 1
// always opens a session, so a client id must not be reused after expiry.
//
// Errors are JSON {"error", "code", "outcome", "leader", "leader_url"}.
// outcome "failed" means definitely not applied, "unknown" that it may have
// been; both are about the request (client id and sequence number), not
// only about the attempt answered. Codes: 400 missing_key, bad_body,
// bad_seq, bad_client_id; 405 method_not_allowed; 409 stale_request (failed
// or unknown), session_expired (unknown); 413 value_too_large
// (--max-value-bytes), body_too_large (--max-body-bytes); 414 key_too_large
// (--max-key-bytes); 503 no_leader (failed), no_read_point (failed); 504
// unknown_outcome (timed out after --request-timeout: it may still commit).
//
// # Admin plane (admin port)
//
// With --admin-token every /admin call needs "Authorization: Bearer TOKEN".
// Membership calls go to the leader (elsewhere: 421 not_leader with the
// leader's id) and take the configuration index they expect
// ("expect_config_index", from status); if it moved the answer is 409
// config_moved with the current index, so a retried call never applies
// twice. Other refusals of raftcore (a change in flight, no commit in this
// term, more than one voter in one step) are 409 refused.
//
//	GET  /admin/status[?format=text]   term, leader, commit, applied, configuration (text and JSON), joint state,
//	                                   configuration index and whether it is committed, the committed configuration,
//	                                   per-member progress (on the leader), peers, faults
//	POST /admin/add-learner     {"id","address","expect_config_index"}  address: the learner's peer address,
//	                                   recorded in the log first so every node can reach it
//	GET  /admin/caught-up?id=ID[&max_lag=N]  {"match","leader_index","lag","durable","reachable","caught_up"}
//	POST /admin/enter-joint     {"voters":[...],"expect_config_index"}  appends C_old,new
//	POST /admin/commit-new      {"expect_config_index","wait_ms"}  200 once the joint entry is committed, 202 pending
//	POST /admin/leave-joint     {"expect_config_index"}  appends C_new
//	POST /admin/remove-member   {"id","expect_config_index"}  one step (a learner, or one voter)
//	POST /admin/change-voters   {"voters","expect_config_index"}  one step; refused for more than one voter
//	                                   unless the node runs --mode unsafe-no-joint
//	POST /admin/transfer-leader {"to","wait_ms"}  TimeoutNow to a caught-up voter (thesis §3.10)
//	POST /admin/snapshot                       take a snapshot now
//	GET|POST|DELETE /admin/faults  {"peer":"kv-1"|"*","direction":"in"|"out"|"both","drop","delay_ms","jitter_ms","loss_percent"}
//	                                   injects faults on this node's peer traffic; a zero fault or DELETE clears
//
// /metrics (Prometheus), /healthz and /readyz (ready: a leader is known and
// this node applied up to the commit index it learned from it) are on both
// ports, without the token.
//
// # Peer transport
//
// Persistent TCP connections, one outbound per peer with its own queue and
// writer goroutine: every message waiting is encoded into one buffer and
// written at once, and AppendEntries are pipelined (raftcore keeps up to 512
// in flight per follower). Frames are length-prefixed binary (codec.go). A
// snapshot travels as a header frame and 1 MiB chunk frames. A connection
// starts with a hello naming the sender, its peer and client addresses.
//
// # Safety modes
//
// --mode unsafe-early-vote makes the node take its membership from --peers
// at every start instead of from its log (raftcore
// Options.UnsafeStartupMembership); --mode unsafe-no-joint lets
// change-voters replace any number of voters in one step
// (Options.UnsafeAllowMultiVoterOneStep). ../shared/design/BUGS.md says what
// breaks. The default, safe, is the only mode for real use.
//
// # Shutdown
//
// On SIGTERM a leader first transfers leadership to its most caught-up
// reachable voter and waits (bounded) until it has moved; then the node
// stops. Every acknowledged write is already on disk, so a kill -9 at any
// time also leaves a recoverable data directory.
package kvserver
