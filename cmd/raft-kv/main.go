// Command raft-kv is raftlab's replicated key-value server: a raftcore node
// on a disk WAL, serving an HTTP/JSON client API, a peer port and an admin
// plane. See the kvserver package documentation for the API, and the README
// for a 3-node cluster started by hand.
//
// raft-kv --help (or -h) prints what it is, a usage line and every flag with
// its default and environment variable, and exits 0.
//
// raft-kv hand-off (a pod's preStop hook) asks the node serving on
// RAFT_KV_ADMIN_ADDR to hand its leadership away and waits until it has.
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
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

// handOff is `raft-kv hand-off`, the preStop hook of a raft-kv pod: it asks
// the node serving on RAFT_KV_ADMIN_ADDR (with RAFT_KV_ADMIN_TOKEN) to hand
// its leadership away, and returns once it no longer leads, so that the
// leadership moves while the pod still serves, before SIGTERM. Exit 0 when
// the node no longer leads (or never did), 1 otherwise.
func handOff(getenv func(string) string, stdout, stderr io.Writer) int {
	addr := getenv("RAFT_KV_ADMIN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "raft-kv hand-off: RAFT_KV_ADMIN_ADDR=%q: %v\n", addr, err)
		return 1
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening on every address: call it on loopback
	}
	// The server gives up on a transfer after 3 election timeouts.
	timeout := 10 * time.Second
	if ms, err := strconv.Atoi(getenv("RAFT_KV_ELECTION_TIMEOUT_MS")); err == nil && ms > 0 {
		timeout = 3*time.Duration(ms)*time.Millisecond + 2*time.Second
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+net.JoinHostPort(host, port)+"/admin/hand-off", nil)
	if err != nil {
		fmt.Fprintf(stderr, "raft-kv hand-off: %v\n", err)
		return 1
	}
	if tok := getenv("RAFT_KV_ADMIN_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "raft-kv hand-off: %v\n", err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "raft-kv hand-off: HTTP %d: %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(stdout, "raft-kv hand-off: %s\n", strings.TrimSpace(string(body)))
	return 0
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "hand-off" {
		os.Exit(handOff(os.Getenv, os.Stdout, os.Stderr))
	}
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
