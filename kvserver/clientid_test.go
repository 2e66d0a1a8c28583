package kvserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/client"
)

// Issue 14, defect 2: a process restarted with a fixed client.Options.ClientID
// (a new Client with the same ClientID) gets its writes applied, not refused
// as stale nor answered with the previous process's results.
func TestServerRestartedClientWithFixedClientID(t *testing.T) {
	s := kvserver.StartOneNode(t, nil)
	u := "http://" + s.ClientAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	newClient := func() *client.Client {
		c, err := client.New([]string{u}, client.Options{ClientID: "fixed", Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	before := newClient()
	for _, v := range []string{"1", "2", "3"} {
		if _, err := before.Put(ctx, "k", []byte("before-"+v)); err != nil {
			t.Fatal(err)
		}
	}
	after := newClient() // the process restarted
	for _, v := range []string{"1", "2", "3", "4"} {
		res, err := after.Put(ctx, "k", []byte("after-"+v))
		if err != nil || res.Duplicate {
			t.Fatalf("restarted client, write %s: %+v %v", v, res, err)
		}
		got, found, err := after.Get(ctx, "k")
		if err != nil || !found || string(got) != "after-"+v {
			t.Fatalf("after the restarted client's write %s, k = %q %v %v", v, got, found, err)
		}
	}
}
