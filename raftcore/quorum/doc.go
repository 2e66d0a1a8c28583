// Package quorum is the quorum arithmetic of raftcore: majorities of one voter
// set and joint quorums over two (Raft paper §6, "joint consensus": during a
// joint configuration, agreement for elections and entry commitment requires
// separate majorities from both the old and the new configurations).
//
// It is a leaf package: plain sets of ids in, indexes and verdicts out. Node
// ids are strings; learners are never passed in, so they can never count.
package quorum
