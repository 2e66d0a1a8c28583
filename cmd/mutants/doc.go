// Command mutants is raftlab's mutation gate: it checks that the project's
// safety evidence can tell a broken core from a correct one.
//
// For every named mutant of mutants/catalog.yaml (a real Raft bug written as
// an exact edit of the tree) it copies the source tree (the files git tracks
// or would add, without results/) into a scratch folder, applies the mutant,
// checks that it builds, and runs the evidence cheapest first until a check
// catches it: the disk crash tests, the KV session table against its model,
// raftcore's randomized test (the memcluster Checker) and its Figure 8
// schedules, reconfig's randomized driver tests, a sweep of the random-fault
// experiment on the simulator, then every experiment file in safe mode on
// the simulator. Only checks that assert invariants count; golden-output
// tests, which fail on any change, are not run.
//
// # What catches a mutant
//
// Every failing check is classified from its output (the Go tests' "seed N:
// ..." lines, the runner's runs.jsonl and result.json):
//
//   - safety: a safety property or invariant was violated: a Checker
//     violation ("step N: [...]", "after healing: [...]"), a state behind
//     what was reported durable or a directory that does not recover after
//     a crash, a mismatch with the model of exactly-once answers, a
//     reconfiguration invariant, a non-linearizable history or an invariant
//     violation of the runner.
//   - panic-invariant: a panic whose message names an invariant
//     ("invariant", "violat").
//   - liveness: no progress after healing, reads not answered, a driver
//     that did not act or converge, an experiment's expectations not met.
//   - panic: any other panic (a runtime error, a harness panic).
//   - timeout: the check did not finish within -timeout.
//   - failure: a non-zero exit the gate cannot attribute to any of these.
//
// Only safety and panic-invariant catch a mutant (status caught). A check
// that fails otherwise does not stop the gate: the next checks run, so that
// a later one (the Figure 8 schedules, the sweep, the experiments) can still
// catch the mutant by safety. A mutant no check caught is reported by the
// strongest class it met: liveness-only, panic-only, timeout-only or
// failure-only; survived if every check passed. All of these fail the gate:
// a mutant that only stops the cluster, crashes the code or hangs the check
// shows that the mutant changed something, not that the safety evidence can
// tell a broken core from a correct one. The randomized tests run with
// RAFT_MAX_FAILURES=3, so that a first failing seed that is only liveness
// does not hide a later one that breaks safety; "seeds to first catch" is
// the first seed of the catching class.
//
// A control run of the unmutated tree comes first: if it fails any check,
// the gate is meaningless and stops. Every Go test check runs with -test.v
// and names the tests it needs; a run in which one of them did not start
// (a renamed test makes -test.run match nothing, which exits 0) is an
// error, for the control and for every mutant, never a pass.
//
// The checks get the caller's environment without the variables that pick
// seeds, failure limits or faults (*_SEED, *_SEEDS, *_SEED_BASE,
// *_MAX_FAILURES, RAFT_KV_FAULTS): only the gate's budget decides them, and
// seeds run from 1.
//
// Usage:
//
//	mutants [flags]
//
// It prints a table (mutant, status, the check that caught it and the
// class, seeds until the first catch, time, the other failing checks) with
// a legend, and writes it under -out as table.txt and report.json (every
// failing check of every mutant with its class), with the output of every
// failing check in logs/. With -all every check runs for every mutant, not
// stopping at the catch, so that the table shows every check that catches
// it. Exit code 0 when every mutant was caught, 1 when one was not, the
// control failed or the catalog is broken (an old snippet not found exactly
// once, a mutant that does not build), 2 on bad flags. -h prints every flag
// with its default.
package main
