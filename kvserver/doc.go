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
//	PUT|POST /kv/{key}  {"value": "text"} | {"value_b64": "base64"}
//	                         -> 200 {"outcome":"ok","index":N,"existed":bool,"duplicate":bool}
//	GET      /kv/{key}       -> 200 {"key","value" | "value_b64","index"} | 404 {"code":"not_found"}
//	DELETE   /kv/{key}       -> 200 {"outcome":"ok","index":N,"existed":bool}
//
// A value is bytes (at most --max-value-bytes). A write gives it as exactly
// one of "value", text (a JSON string: stored as its UTF-8 bytes), or
// "value_b64", any bytes in standard base64 (RFC 4648 §4, with padding). A
// body that is not UTF-8 text (JSON text is UTF-8), or whose strings have a
// \u escape of a lone surrogate ("\ud800"), is refused with 400 bad_body,
// never stored with U+FFFD in place of what does not fit: send such values
// as value_b64. A read answers "value" when the stored bytes are valid
// UTF-8, and "value_b64" (and no "value") when they are not, so each value
// reads back exactly and text stays readable. A key is the URL path after
// /kv/, percent-decoded (any bytes); the "key" a read echoes is text, with
// bytes that are not UTF-8 shown as U+FFFD.
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
// numbers, each with a digest of its command). A retry is the same command:
// the same operation (PUT and POST are one), key and value. Another command under a client id and
// sequence number the session applied is refused with 409
// request_mismatch, outcome "failed": it was not applied, and never will be
// under that sequence number. It means the client reused the pair, most
// likely a client restarted with the same id (a process restarted with a
// fixed id, say): the client must go on under a new client id starting at
// 1, and should make its ids unique per process start (the Go client adds a
// random nonce to every session id, so it never reuses one). Other requests
// older than the client's newest are refused with 409 stale_request:
// outcome "failed" if the session shows that sequence number was never
// applied, "unknown" if it is too old to tell. Writes without a client id
// are not deduplicated.
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
// been. The answers of the state machine (stale_request, request_mismatch,
// session_expired) are about the request (client id, sequence number and
// command), not only about the attempt answered. 503 no_leader (failed)
// says that this attempt was not proposed: the request is not applied
// unless an earlier attempt of it was, and a client that sent one whose
// outcome it does not know (unknown, or no answer) must still count the
// request unknown. The node answers unknown itself when it knows of such an
// attempt (one it proposed and that was waiting when the retry came).
// Codes: 400 missing_key, bad_body, bad_seq, bad_client_id; 405
// method_not_allowed; 409 stale_request (failed or unknown),
// request_mismatch (failed), session_expired (unknown); 413 value_too_large
// (--max-value-bytes), body_too_large (--max-body-bytes); 414 key_too_large
// (--max-key-bytes); 503 no_leader (failed, or unknown as above),
// sessions_full (failed: every session in the full table was active too
// recently to make room for a new one; retry later),
// no_read_point (failed); 504 unknown_outcome (timed out after
// --request-timeout: it may still commit).
//
// # Admin plane (admin port)
//
// With --admin-token every /admin call needs the header exactly
// "Authorization: Bearer TOKEN" (the scheme "Bearer", one space, the token;
// compared in constant time); anything else is 401 unauthorized.
// Membership calls go to the leader (elsewhere: 421 not_leader with the
// leader's id) and take the configuration index they expect
// ("expect_config_index", from status); if it moved the answer is 409
// config_moved with the current index, so a retried call never applies
// twice. Other refusals of raftcore (a change in flight, no commit in this
// term, more than one voter in one step) are 409 refused.
//
// A membership call checks every refusal before it does anything (the
// request, the leadership, the index, raftcore's rules, the addresses), so
// a refused call changes nothing: no address record is written and no
// address taken into use. An accepted call writes its address records and
// its configuration entry in one step, the records first. A node takes an
// address into use when it applies the record; only a leader that adds new
// voters without a learner stage uses their addresses from the append (it
// may need them to commit). A record never re-addresses a member, and no
// call changes a member's address in place: to move a member, remove it
// (remove-member) and add it again with its new address (add-learner of a
// member is 409 refused, and says so). wait_ms is at most 60000 (one
// minute); a larger or negative value is 400 bad_request.
//
//	GET  /admin/status[?format=text]   term, leader, commit, applied, configuration (text and JSON), joint state,
//	                                   configuration index and whether it is committed, the committed configuration,
//	                                   per-member progress (on the leader), peers, faults
//	POST /admin/add-learner     {"id","address","expect_config_index"}  address: the new member's peer address
//	                                   (needed unless already known), recorded in the log before the configuration
//	                                   entry so every node can reach it; refused for a member
//	GET  /admin/caught-up?id=ID[&max_lag=N]  {"match","leader_index","lag","durable","reachable","caught_up"}
//	POST /admin/enter-joint     {"voters":[...],"addresses":{id:addr},"expect_config_index"}  appends C_old,new;
//	                                   addresses: of new voters that were never learners (a member's must be its own)
//	POST /admin/commit-new      {"expect_config_index","wait_ms"}  200 once the joint entry is committed, 202 pending
//	POST /admin/leave-joint     {"expect_config_index"}  appends C_new
//	POST /admin/remove-member   {"id","expect_config_index"}  one step (a learner, or one voter)
//	POST /admin/change-voters   {"voters","addresses","expect_config_index"}  one step; refused for more than one
//	                                   voter unless the node runs --mode unsafe-no-joint
//	POST /admin/transfer-leader {"to","wait_ms"}  TimeoutNow to a caught-up voter (thesis §3.10)
//	POST /admin/snapshot                       take a snapshot now
//	GET|POST|DELETE /admin/faults  {"peer":"kv-1"|"*","direction":"in"|"out"|"both","drop","delay_ms","jitter_ms",
//	                                   "loss_percent","duplicate_percent"}  injects faults on this node's peer traffic
//	                                   (POST sets one link direction's fault; a zero fault or DELETE clears)
//	PUT  /admin/faults          {"faults":[{fault as for POST}, ...]}  replaces every fault in force at once (no gap,
//	                                   no overlap between the old set and the new); {"faults":[]} clears
//	GET  /admin/events?after=N&wait_ms=M  {"boot","events":[...],"next","lost","reset"}  the node's numbered
//	                                   membership and leadership events after N, waiting up to M ms for one
//
// A fault's delay holds a message; when it is released, a drop in force on
// its link then drops it (a partition set meanwhile cuts what was in
// flight). Loss, duplication and the delay are drawn once, when the
// message is sent (out) or received (in). Faults can also be in force from
// the start: the environment variable RAFT_KV_FAULTS holds a PUT body; a
// malformed one (bad JSON, an unknown field, an invalid fault) makes the
// node refuse to start.
//
// Events are numbered from 1 in each process (boot names the process) and
// kept in a ring of the newest 4096: "lost" counts those after N no longer
// held (the caller fell behind), "reset" says N was beyond the newest (a
// number from an earlier process; the answer is then from 1). Kinds:
// "state" (role, term, leader, configuration or joint state changed;
// "changed" lists which; every state event carries role, term, leader,
// config, config_index, joint_state and commit), "config-applied" (the
// configuration entry at index was applied, so committed; prev_config_index
// is the configuration entry it replaced, unless prev_unknown: the previous
// one came from a snapshot) and "snapshot-restored" (the state machine was
// replaced by the snapshot at index, of configuration config). The state is
// compared after every turn of the node's loop, so a configuration entry
// appended in one turn and committed in a later one is reported entering,
// then committed.
//
// /metrics (Prometheus), /healthz and /readyz (ready: this node is a voter
// or learner of its configuration, a leader is known, and it applied up to
// the commit index it learned from it) are on both
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
// # Peer plane: authentication and snapshots
//
// With --peer-token (better: RAFT_KV_PEER_TOKEN, out of the process list)
// a node takes nothing from a peer connection until the dialer proved it
// holds the same token: the acceptor sends a random nonce, the hello
// carries HMAC-SHA256(token, nonce and the hello), checked in constant
// time; the token never crosses the wire. A refused connection is closed,
// logged and counted (raftkv_peer_auth_failures_total). Every member needs
// the same token (members with different tokens do not talk, so changing
// it means restarting every member with the new one). Without a token,
// the default, any process that reaches the peer port can act as a member:
// that is only for loopback, and a node whose peer port is not on loopback
// logs a warning. The token authenticates the dialer at the
// start of a connection only: the traffic is not encrypted or signed, so
// on a network where others can read or inject TCP traffic run the peer
// plane inside a VPN or TLS tunnel as well. Wire version 3 (codec.go);
// members must all run it.
//
// A snapshot is streamed in chunks. Every peer write has a progress-based
// deadline: it fails only after --peer-stall-timeout (default 5s) without
// a byte going out, so a follower behind a slow link still catches up; a
// failed (or undeliverable) snapshot is reported to raftcore, which sends
// it again (raftkv_peer_snapshots_sent_total, _failed_total). A receiver
// refuses a snapshot larger than --max-snapshot-bytes (default 1 GiB; it
// must exceed the leader's snapshot size, raftkv_snapshot_bytes) and takes
// memory only as chunks arrive, so a header alone costs nothing.
//
// # Safety modes
//
// --mode unsafe-early-vote makes the node take its membership from --peers
// at every start instead of from its log (raftcore
// Options.UnsafeStartupMembership); --mode unsafe-no-joint lets
// change-voters replace any number of voters in one step
// (Options.UnsafeAllowMultiVoterOneStep). docs/BUGS.md says what
// breaks. The default, safe, is the only mode for real use.
//
// # Shutdown
//
// On SIGTERM a leader first transfers leadership to its most caught-up
// reachable voter and waits (bounded) until it has moved; then the node
// stops. Every acknowledged write is already on disk, so a kill -9 at any
// time also leaves a recoverable data directory.
package kvserver
