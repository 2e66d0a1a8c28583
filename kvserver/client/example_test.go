package client_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/client"
	"github.com/raftlab/raftlab/reconfig"
)

// Example starts a one-node raft-kv in this process (kvserver.Start, on
// loopback ports the system picks and a temporary data directory), then
// writes a key and reads it back through the client.
func Example() {
	dir, err := os.MkdirTemp("", "raft-kv-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := kvserver.Start(kvserver.Config{
		ID: "kv-0", Peers: map[string]string{"kv-0": "127.0.0.1:0"}, DataDir: dir,
		ClientAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		ElectionTimeout: 100 * time.Millisecond, Heartbeat: 20 * time.Millisecond,
		SnapshotEntries: kvserver.DefaultSnapshotEntries, SnapshotKeep: kvserver.DefaultSnapshotKeep,
		Mode: reconfig.Safe, MaxKeyBytes: kvserver.DefaultMaxKeyBytes, MaxValueBytes: kvserver.DefaultMaxValueBytes,
		RequestTimeout: kvserver.DefaultRequestTimeout,
	})
	if err != nil {
		panic(err)
	}
	defer srv.Stop(context.Background())

	c, err := client.New([]string{"http://" + srv.ClientAddr()}, client.Options{ClientID: "example"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first call may wait for the node to elect itself: the client
	// retries "no leader" answers within its attempts and ctx.
	res, err := c.Put(ctx, "greeting", []byte("hello"))
	if err != nil {
		panic(err)
	}
	fmt.Println("put: existed", res.Existed)
	v, found, err := c.Get(ctx, "greeting")
	fmt.Printf("get: %q found %v, outcome %v\n", v, found, client.OutcomeOf(err))
	_, found, err = c.Get(ctx, "nothing")
	fmt.Printf("get nothing: found %v, outcome %v\n", found, client.OutcomeOf(err))
	// Output:
	// put: existed false
	// get: "hello" found true, outcome ok
	// get nothing: found false, outcome ok
}
