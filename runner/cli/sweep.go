package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/raftlab/raftlab/runner"
)

func sweepCmd(ctx context.Context, stdout, stderr io.Writer) *cobra.Command {
	var (
		backendName, out string
		seeds, seedStart uint64
		matrix, sets     []string
		parallel         int
		quiet            bool
	)
	cmd := &cobra.Command{
		Use:   "sweep FILE",
		Short: "Run a matrix of settings times seeds and aggregate violation rates with Wilson 95% intervals",
		Long: `sweep runs one experiment file for every cell of the --matrix (the
product of its axes) times --seeds seeds, on the simulator in parallel or on
real processes one run at a time, and aggregates per cell how often safety
was violated, with Wilson 95% intervals. It writes aggregate.json and
runs.jsonl under --out and prints the table.

Exit codes: 0 every cell met the file's expectations, 1 not, 2 invalid input.`,
		Example: `  runner sweep experiments/bug2.yaml --seeds 200 --matrix cluster.safetyMode=safe,unsafe-no-joint
  runner sweep experiments/random-faults.yaml --seeds 1000 --set workload.duration=10s`,
		Args: exactFiles(1),
		RunE: func(_ *cobra.Command, args []string) error {
			mk, ok := Backends[backendName]
			if !ok {
				return invalid("--backend %q: expected sim, local or kind", backendName)
			}
			be, err := mk(BackendOptions{})
			if err != nil {
				return err
			}
			if backendName != "sim" && parallel > 1 {
				parallel = 1 // real clusters share the machine's ports and disk
			}
			o := runner.SweepOptions{Backend: be, Seeds: seeds, SeedStart: seedStart, Matrix: matrix, Sets: sets, Parallel: parallel}
			if !quiet {
				o.Progress = stderr
			}
			if _, err := runner.Cells(matrix); err != nil {
				return usageError{err}
			}
			agg, runs, err := runner.Sweep(ctx, args[0], o)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join("results", agg.Experiment, fmt.Sprintf("sweep-%s-%s", backendName, time.Now().UTC().Format("20060102T150405")))
			}
			if err := runner.WriteSweep(out, agg, runs); err != nil {
				return err
			}
			runner.PrintAggregate(stdout, agg, out)
			if !agg.Met {
				return errNotMet
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&backendName, "backend", "sim", "sim (parallel) or local (one run at a time)")
	f.Uint64Var(&seeds, "seeds", 100, "seeds per matrix cell")
	f.Uint64Var(&seedStart, "seed-start", 1, "first seed")
	f.StringArrayVar(&matrix, "matrix", nil, "an axis path=v1,v2,... (repeatable; cells are the product)")
	f.StringArrayVar(&sets, "set", nil, "override for every cell (repeatable)")
	f.IntVar(&parallel, "parallel", defaultParallel(), "runs at once")
	f.StringVar(&out, "out", "", "folder for aggregate.json and runs.jsonl (default results/<experiment>/sweep-...)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}
