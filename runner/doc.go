// Package runner is the experiment engine behind cmd/runner: it brings a
// cluster up on a backend (runner/sim, runner/local), drives the workload
// of N clients (open or closed loop, uniform or zipf keys) while it plays
// the experiment's steps (faults, membership changes through reconfig's
// driver, explicit operations, waits on cluster state), records every
// operation with its call and return times and outcome, and then checks
// the history (runner/check: porcupine, and the configuration history) and
// measures it (HDR latency per operation type and phase, throughput,
// failover downtime, reconfiguration phases). Execute runs one experiment;
// Run.Write writes its results (result.json, history.jsonl, latency-*.hgrm,
// linearizability.html); Sweep runs a matrix of settings times seeds.
//
// The engine calls the backend from one goroutine and never holds its own
// lock across a backend call: the simulator runs the engine's callbacks
// (operation completions, timers) inside those calls, the local backend on
// other goroutines. On the simulator everything the engine draws comes
// from the run's seed, so a seed replays a run exactly.
package runner
