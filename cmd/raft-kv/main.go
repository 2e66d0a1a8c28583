// Command raft-kv is raftlab's replicated key-value server: a raftcore node
// on a disk WAL, serving an HTTP/JSON client API, a peer port and an admin
// plane. See the kvserver package documentation for the API, and the README
// for a 3-node cluster started by hand.
//
// Exit codes: 0 after SIGTERM or SIGINT (leadership transferred first when
// this node leads), 1 on a fatal runtime error (storage, listeners), 2 on a
// configuration error.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/raftlab/raftlab/kvserver"
)

func main() {
	cfg, err := kvserver.ParseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		if errors.Is(err, kvserver.ErrUsage) {
			fmt.Fprintf(os.Stderr, "raft-kv: %v (see raft-kv -h)\n", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "raft-kv: %v\n", err)
		os.Exit(1)
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
