// Command raft-kv-load is raft-kv's load generator: N closed-loop clients,
// or an open-loop rate, against a running cluster (--endpoints) or against a
// local cluster it starts itself from a raft-kv binary (--spawn N --bin).
// It prints ops/s and p50/p95/p99 per operation, and the report as JSON
// with --json. --help (or -h) prints what it does and every flag with its
// default, and exits 0; bad flags exit 2.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/raftlab/raftlab/internal/cliusage"
	"github.com/raftlab/raftlab/kvserver/loadgen"
	"github.com/raftlab/raftlab/kvserver/localcluster"
)

// description is the head of raft-kv-load --help.
const description = `raft-kv-load is raft-kv's load generator: --clients closed-loop clients, or
an open-loop --rate, of puts and gets (--writes is the share of writes)
over --keys keys, against a running cluster (--endpoints) or against a local
cluster of --spawn raft-kv processes it starts itself from --bin. After
--warmup it measures for --duration, then prints ops/s and p50/p95/p99
latency per operation, and writes the report as JSON with --json.`

// options are raft-kv-load's flags.
type options struct {
	endpoints, bin, dir, jsonOut string
	serverArgs                   string
	spawn                        int
	cfg                          loadgen.Config
}

func newFlagSet() (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("raft-kv-load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.endpoints, "endpoints", "", "client `URLs`, comma-separated (or use --spawn)")
	fs.IntVar(&o.spawn, "spawn", 0, "start a local cluster of this many raft-kv processes (needs --bin)")
	fs.StringVar(&o.bin, "bin", "", "raft-kv `binary` for --spawn")
	fs.StringVar(&o.serverArgs, "server-args", "", "extra raft-kv `flags` for --spawn, space-separated")
	fs.StringVar(&o.dir, "dir", "", "data `directory` for --spawn")
	fs.IntVar(&o.cfg.Clients, "clients", 64, "concurrent clients")
	fs.DurationVar(&o.cfg.Duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&o.cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up")
	fs.Float64Var(&o.cfg.WriteRatio, "writes", 1, "share of writes in [0, 1]")
	fs.IntVar(&o.cfg.ValueSize, "value-size", 128, "value size in bytes")
	fs.IntVar(&o.cfg.Keys, "keys", 10000, "key space")
	fs.Float64Var(&o.cfg.Rate, "rate", 0, "open-loop requests per second (0: closed loop)")
	fs.Uint64Var(&o.cfg.Seed, "seed", 1, "seed of the key and operation choices")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this `file`")
	return fs, o
}

// defaultNotes describe defaults that are empty or computed.
var defaultNotes = map[string]string{
	"endpoints":   "none (give --endpoints or --spawn)",
	"bin":         "none (required with --spawn)",
	"server-args": "none",
	"dir":         "a temporary directory, removed after",
	"json":        "none (no JSON report)",
}

func usage(w io.Writer) {
	fs, _ := newFlagSet()
	fmt.Fprintf(w, "%s\n\nUsage:\n  raft-kv-load --endpoints http://HOST:PORT,... [flags]\n"+
		"  raft-kv-load --spawn N --bin ./raft-kv [flags]\n\n"+
		"Exit codes: 0 the run completed (or --help), 1 it failed, 2 bad flags.\n\nFlags:\n", description)
	cliusage.PrintFlags(w, fs, "--", defaultNotes)
}

// parse reads the command line; done reports the command is over (help
// printed, or bad flags reported) with exit code code.
func parse(args []string, stdout, stderr io.Writer) (o *options, code int, done bool) {
	fs, o := newFlagSet()
	if code, done := cliusage.Parse(fs, args, "raft-kv-load", "-h", usage, stdout, stderr); done {
		return nil, code, true
	}
	return o, 0, false
}

func main() {
	o, code, done := parse(os.Args[1:], os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	if err := run(o.endpoints, o.spawn, o.bin, o.dir, o.jsonOut, strings.Fields(o.serverArgs), o.cfg); err != nil {
		fmt.Fprintf(os.Stderr, "raft-kv-load: %v\n", err)
		os.Exit(1)
	}
}

func run(endpoints string, spawn int, bin, dir, jsonOut string, serverArgs []string, cfg loadgen.Config) error {
	ctx := context.Background()
	switch {
	case spawn > 0 && bin == "":
		return fmt.Errorf("--spawn needs --bin (go build -o raft-kv ./cmd/raft-kv)")
	case spawn > 0:
		if dir == "" {
			d, err := os.MkdirTemp("", "raft-kv-load-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(d)
			dir = d
		}
		c, err := localcluster.Start(localcluster.Options{Bin: bin, Dir: dir, N: spawn, Args: serverArgs})
		if err != nil {
			return err
		}
		defer c.Close()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		lead, err := c.WaitLeader(wctx)
		cancel()
		if err != nil {
			return err
		}
		fmt.Printf("local cluster of %d in %s, leader %s\n", spawn, dir, lead)
		cfg.Endpoints = c.ClientURLs()
	case endpoints == "":
		return fmt.Errorf("give --endpoints http://host:port,... or --spawn N --bin raft-kv")
	default:
		cfg.Endpoints = strings.Split(endpoints, ",")
	}
	rep, err := loadgen.Run(ctx, cfg)
	rep.Print(os.Stdout)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if werr := os.WriteFile(jsonOut, append(b, '\n'), 0o644); werr != nil {
			return werr
		}
	}
	return err
}
