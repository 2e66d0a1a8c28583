package kvserver_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/raftlab/raftlab/kvserver"
	"github.com/raftlab/raftlab/kvserver/client"
)

// Issue 14, defect 4, end to end: client.Put and client.Get round-trip
// arbitrary bytes exactly, UTF-8 text or not.
func TestClientValuesRoundTripAnyBytes(t *testing.T) {
	s := kvserver.StartOneNode(t, nil)
	c, err := client.New([]string{"http://" + s.ClientAddr()}, client.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seq := func(from, to int) []byte {
		var b []byte
		for i := from; i < to; i++ {
			b = append(b, byte(i))
		}
		return b
	}
	for i, v := range [][]byte{
		{0xff},
		{0xc3},             // a truncated sequence
		{0xed, 0xa0, 0x80}, // an encoded surrogate
		{0xc0, 0x80},       // an overlong NUL
		[]byte("\uFFFD"),   // the replacement character itself, valid
		[]byte("a\x00b"),
		[]byte("plain text, <html> & \"quotes\""),
		{},
		seq(0, 64),
		seq(192, 256),
		seq(100, 164),
	} {
		if _, err := c.Put(ctx, "k", v); err != nil {
			t.Fatalf("value %d %q: put: %v", i, v, err)
		}
		got, found, err := c.Get(ctx, "k")
		if err != nil || !found || !bytes.Equal(got, v) {
			t.Fatalf("value %d: put %q, got %q (found %v, %v)", i, v, got, found, err)
		}
	}
}
