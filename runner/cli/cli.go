// Package cli is the runner command line (cmd/runner): apply, sweep and
// validate, with the flags, outputs and exit codes of docs/EXPERIMENTS.md.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftlab/raftlab/runner"
	"github.com/raftlab/raftlab/runner/backend"
	"github.com/raftlab/raftlab/runner/experiment"
	"github.com/raftlab/raftlab/runner/local"
	"github.com/raftlab/raftlab/runner/sim"
)

// Exit codes.
const (
	ExitMet     = 0
	ExitNotMet  = 1
	ExitInvalid = 2
)

// usageError is invalid input: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func invalid(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// notMet is a run whose expectations did not hold: exit 1, already reported.
var errNotMet = errors.New("expectations not met")

// Backends maps --backend names to backends.
var Backends = map[string]func(opts BackendOptions) (backend.Backend, error){
	"sim":   func(BackendOptions) (backend.Backend, error) { return sim.Backend{}, nil },
	"local": func(o BackendOptions) (backend.Backend, error) { return local.Backend{Bin: o.Bin, Dir: o.Dir}, nil },
	"kind": func(BackendOptions) (backend.Backend, error) {
		return nil, invalid("--backend kind: the Kubernetes backend is not built yet (it comes with the operator); use --backend local or --backend sim")
	},
}

// BackendOptions are the flags a backend may use.
type BackendOptions struct {
	// Bin is the raft-kv binary for the local backend ("" = build it).
	Bin string
	// Dir holds the local backend's node folders ("" = a temporary one).
	Dir string
	// KeepDir keeps the node folders even when the run passes.
	KeepDir bool
}

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(ctx, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case err == nil:
		return ExitMet
	case errors.Is(err, errNotMet):
		return ExitNotMet
	default:
		fmt.Fprintln(stderr, "runner:", err)
		var ue usageError
		var ee experiment.Errors
		if errors.As(err, &ue) || errors.As(err, &ee) {
			return ExitInvalid
		}
		return ExitNotMet
	}
}

func newRoot(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "runner",
		Short: "Run raftlab experiments: membership changes, faults and a workload, checked for linearizability",
		Long: `runner plays declarative experiments (experiments/*.yaml) on a deterministic
simulator (--backend sim) or on real raft-kv processes on loopback
(--backend local, the default), checks the history with porcupine, and
writes results under results/<experiment>/<run-id>/.

Exit codes: 0 every expectation of the file met, 1 not met, 2 invalid input.`,
		SilenceUsage: true, SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(applyCmd(ctx, stdout, stderr), validateCmd(stdout), sweepCmd(ctx, stdout, stderr))
	return root
}

func exactFiles(n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if n > 0 && len(args) != n {
			return invalid("expected %d experiment file, got %d arguments", n, len(args))
		}
		if n == 0 && len(args) == 0 {
			return invalid("expected at least one experiment file")
		}
		return nil
	}
}

func applyCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var (
		backendName, out, bin, dir string
		seed                       uint64
		sets                       []string
		quiet, keep                bool
		checkTimeout               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Run one experiment and write its results",
		Long: `apply plays one experiment file (experiments/*.yaml): it starts the
cluster on the backend (--backend local: raft-kv processes on loopback;
sim: the deterministic simulator), runs the workload and the steps, checks
the history for linearizability and the file's invariants, prints a summary
and writes result.json, history.jsonl and latency histograms under --out.

Exit codes: 0 every expectation of the file met, 1 not met, 2 invalid input
(bad file, flag or backend).`,
		Args: exactFiles(1),
		RunE: func(_ *cobra.Command, args []string) error {
			exp, err := experiment.Load(args[0], sets)
			if err != nil {
				return err
			}
			mk, ok := Backends[backendName]
			if !ok {
				return invalid("--backend %q: expected sim, local or kind", backendName)
			}
			be, err := mk(BackendOptions{Bin: bin, Dir: dir, KeepDir: keep})
			if err != nil {
				return err
			}
			opts := runner.Options{Backend: be, Seed: seed, Sets: sets, CheckTimeout: checkTimeout}
			if !quiet {
				opts.Log = stderr
			}
			run, err := runner.Execute(ctx, exp, opts)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join("results", exp.Metadata.Name, runID(run.Result))
			}
			run.Result.RunID = filepath.Base(out)
			if err := run.Write(out); err != nil {
				return err
			}
			if d := run.Result.BackendDir; d != "" && run.Result.Expectations.Met && !keep {
				// The run passed: its node folders are not evidence.
				_ = os.RemoveAll(d)
				run.Result.BackendDir = ""
			}
			run.PrintSummary(stdout, out)
			if !run.Result.Expectations.Met {
				return errNotMet
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&backendName, "backend", "local", "where to run: local (raft-kv processes on loopback), sim (deterministic simulator) or kind")
	f.Uint64Var(&seed, "seed", 0, "random seed (0: the file's seed)")
	f.StringArrayVar(&sets, "set", nil, "override a field of the file, e.g. --set cluster.safetyMode=safe (repeatable)")
	f.StringVar(&out, "out", "", "results folder (default results/<experiment>/<run-id>)")
	f.StringVar(&bin, "bin", "", "local backend: the raft-kv binary (default: build ./cmd/raft-kv)")
	f.StringVar(&dir, "dir", "", "local backend: where node data and logs go (default: a temporary folder, kept if the run fails)")
	f.BoolVar(&keep, "keep", false, "local backend: keep node data and logs even when the run passes")
	f.BoolVarP(&quiet, "quiet", "q", false, "do not print the steps as they run")
	f.DurationVar(&checkTimeout, "check-timeout", time.Minute, "bound on the linearizability check (a timeout gives verdict unknown)")
	return cmd
}

func runID(res *runner.Result) string {
	return fmt.Sprintf("%s-seed%d-%s", res.Backend, res.Seed, time.Now().UTC().Format("20060102T150405.000"))
}

func validateCmd(stdout io.Writer) *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check experiment files strictly; errors give file:line:column and what was expected",
		Long: `validate parses each file as runner apply would and reports every problem as
file:line:column: message. Exit 2 if any file is invalid.

The file format (docs/EXPERIMENTS.md): apiVersion: raftlab/v1, kind: Experiment,
metadata {name, description}, cluster {replicas, safetyMode, electionTimeoutMs,
heartbeatMs, snapshotEntries}, network {delayMs, jitterMs, fsyncMs} (sim),
workload {clients, rate, keys, keyDistribution, zipfS, readRatio, valueBytes,
opTimeoutMs, duration, readContexts (sim: unique or per-node)}, steps [...], expect {linearizable, invariants,
minOkOps, ifSafe {...}}, seed.

Steps (one action each, optional name, at: offset or when: condition):
sleep, await {leader|leaderIn|jointState|applied|caughtUp|reconfigured, timeout},
partition [[groups]] or isolate-leader|majority-minority|bridge|ring,
isolate, heal {}, delay {nodes|from,to, ms, jitterMs}, loss {nodes|from,to,
percent}, kill, restart, pause, resume, start, scale N,
reconfigure {voters}, transferLeader, put {node, key, value}, get {node, key},
random {every, hold, kinds, maxReplicas}. Node names are kv-0..kv-8 or the
selectors leader, follower, minority, majority.`,
		Args: exactFiles(0),
		RunE: func(_ *cobra.Command, args []string) error {
			invalidFiles := 0
			for _, path := range args {
				exp, err := experiment.Load(path, sets)
				if err != nil {
					fmt.Fprintln(stdout, err)
					invalidFiles++
					continue
				}
				fmt.Fprintf(stdout, "%s: ok (%s, %d steps, safetyMode %s)\n", path, exp.Metadata.Name, len(exp.Steps), exp.Cluster.SafetyMode)
			}
			if invalidFiles > 0 {
				return usageError{fmt.Errorf("%d of %d files invalid", invalidFiles, len(args))}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a field before validating (repeatable)")
	return cmd
}

func defaultParallel() int { return runtime.NumCPU() }
