// Command raft-kv-load is raft-kv's load generator: N closed-loop clients,
// or an open-loop rate, against a running cluster (--endpoints) or against a
// local cluster it starts itself from a raft-kv binary (--spawn N --bin).
// It prints ops/s and p50/p95/p99 per operation, and the report as JSON
// with --json.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/raftlab/raftlab/kvserver/loadgen"
	"github.com/raftlab/raftlab/kvserver/localcluster"
)

func main() {
	var (
		endpoints, bin, dir, jsonOut string
		serverArgs                   string
		spawn                        int
		cfg                          loadgen.Config
	)
	flag.StringVar(&endpoints, "endpoints", "", "client URLs, comma-separated (or use --spawn)")
	flag.IntVar(&spawn, "spawn", 0, "start a local cluster of this many raft-kv processes (needs --bin)")
	flag.StringVar(&bin, "bin", "", "raft-kv binary for --spawn")
	flag.StringVar(&serverArgs, "server-args", "", "extra raft-kv flags for --spawn, space-separated")
	flag.StringVar(&dir, "dir", "", "data directory for --spawn (default: a temporary directory, removed after)")
	flag.IntVar(&cfg.Clients, "clients", 64, "concurrent clients")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up")
	flag.Float64Var(&cfg.WriteRatio, "writes", 1, "share of writes in [0, 1]")
	flag.IntVar(&cfg.ValueSize, "value-size", 128, "value size in bytes")
	flag.IntVar(&cfg.Keys, "keys", 10000, "key space")
	flag.Float64Var(&cfg.Rate, "rate", 0, "open-loop requests per second (0: closed loop)")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of the key and operation choices")
	flag.StringVar(&jsonOut, "json", "", "also write the report as JSON to this file")
	flag.Parse()
	if err := run(endpoints, spawn, bin, dir, jsonOut, strings.Fields(serverArgs), cfg); err != nil {
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
