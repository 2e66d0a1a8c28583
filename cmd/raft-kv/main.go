// Command raft-kv is raftlab's replicated key-value server: a raftcore node
// on a disk WAL, serving an HTTP/JSON client API, a peer port and an admin
// plane. See the kvserver package documentation for the API, and the README
// for a 3-node cluster started by hand.
//
// raft-kv --help (or -h) prints what it is, a usage line and every flag with
// its default and environment variable, and exits 0.
//
// Exit codes: 0 after SIGTERM or SIGINT (leadership transferred first when
// this node leads) or after --help, 1 on a fatal runtime error (storage,
// listeners), 2 on a configuration error (one line on stderr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/raftlab/raftlab/kvserver"
)

// configure parses the command line. done reports that the command is over
// (help printed, or a bad configuration reported) with exit code code.
func configure(args []string, getenv func(string) string, stdout, stderr io.Writer) (cfg kvserver.Config, code int, done bool) {
	cfg, err := kvserver.ParseFlags(args, getenv)
	switch {
	case err == nil:
		return cfg, 0, false
	case errors.Is(err, flag.ErrHelp):
		kvserver.Usage(stdout)
		return cfg, 0, true
	case errors.Is(err, kvserver.ErrUsage):
		fmt.Fprintf(stderr, "raft-kv: %v (see raft-kv -h)\n", err)
		return cfg, 2, true
	default:
		fmt.Fprintf(stderr, "raft-kv: %v\n", err)
		return cfg, 1, true
	}
}

func main() {
	cfg, code, done := configure(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	logger := log.New(os.Stderr, cfg.ID+" ", log.LstdFlags|log.Lmicroseconds)
	cfg.Logf = logger.Printf
	srv, err := kvserver.Start(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "raft-kv: %v\n", err)
		os.Exit(1)
	}
	logger.Printf("serving: client %s, admin %s, peers on %s, data %s, mode %s",
		srv.ClientAddr(), srv.AdminAddr(), cfg.PeerAddr, cfg.DataDir, cfg.Mode)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		logger.Printf("%v: stopping", sig)
		ctx, cancel := context.WithTimeout(context.Background(), 3*cfg.ElectionTimeout+time.Second)
		srv.Stop(ctx)
		cancel()
		if err := srv.Err(); err != nil {
			logger.Printf("stopped with: %v", err)
			os.Exit(1)
		}
	case <-srv.Done():
		logger.Printf("stopped: %v", srv.Err())
		os.Exit(1)
	}
}
