// Command runner runs raftlab experiments: runner apply FILE plays one on a
// backend (sim or local) and writes its results; runner sweep runs a matrix
// of settings times seeds; runner validate checks files. See README.md and
// docs/EXPERIMENTS.md.
//
// Exit codes: 0 every expectation met, 1 one was not, 2 invalid input
// (bad file, flag or backend).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/raftlab/raftlab/runner/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(code)
}
