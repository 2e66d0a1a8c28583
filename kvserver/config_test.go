package kvserver

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

// usageBlocks splits Usage's flag list into one block per flag, by name.
func usageBlocks(t *testing.T, out string) map[string]string {
	t.Helper()
	_, list, ok := strings.Cut(out, "\nFlags:\n")
	if !ok {
		t.Fatalf("no Flags: section in\n%s", out)
	}
	blocks := map[string]string{}
	for _, b := range strings.Split("\n"+list, "\n  --")[1:] {
		name, _, _ := strings.Cut(b, " ")
		name, _, _ = strings.Cut(name, "\n")
		blocks[name] = b
	}
	return blocks
}

func TestUsageListsEveryFlag(t *testing.T) {
	var b strings.Builder
	Usage(&b)
	out := b.String()
	for _, want := range []string{Description, "Usage:\n  raft-kv --id ID", "client plane", "admin plane", "peer plane", "POD_NAME"} {
		if !strings.Contains(out, want) {
			t.Errorf("Usage lacks %q", want)
		}
	}
	blocks := usageBlocks(t, out)
	fs, _ := newFlagSet()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		blk, ok := blocks[f.Name]
		if !ok {
			t.Errorf("Usage lacks --%s", f.Name)
			return
		}
		env := "RAFT_KV_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if f.Name == "id" {
			env += ", then POD_NAME"
		}
		def := f.DefValue
		if d, ok := computedDefaults[f.Name]; ok {
			def = d
		} else if def == "" {
			def = "none"
		}
		if want := "\n        default: " + def + "; env: " + env; !strings.HasSuffix(strings.TrimRight(blk, "\n"), want) {
			t.Errorf("--%s: want %q in\n%s", f.Name, want, blk)
		}
		if _, usage := flag.UnquoteUsage(f); !strings.Contains(blk, "\n        "+usage+"\n") {
			t.Errorf("--%s: description missing in\n%s", f.Name, blk)
		}
	})
	if n < 20 || len(blocks) != n {
		t.Errorf("Usage lists %d flags, the flag set has %d", len(blocks), n)
	}
	for name := range computedDefaults {
		if fs.Lookup(name) == nil {
			t.Errorf("computedDefaults names %q, which is not a flag", name)
		}
	}
	// Defaults shown are the defaults ParseFlags applies.
	for name, want := range map[string]string{
		"client-addr": "127.0.0.1:8080", "admin-addr": "127.0.0.1:9090", "election-timeout-ms": "300",
		"heartbeat-ms": "50", "snapshot-interval": "30s", "snapshot-entries": "20000", "mode": "safe",
		"request-timeout": "5s", "peer-stall-timeout": "5s", "max-snapshot-bytes": "1073741824",
	} {
		if !strings.Contains(blocks[name], "default: "+want+";") {
			t.Errorf("--%s: default %s not shown in\n%s", name, want, blocks[name])
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help", "--h"} {
		_, err := ParseFlags([]string{"--id", "kv-0", arg}, func(string) string { return "" })
		if !errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrUsage) {
			t.Errorf("ParseFlags(%s) = %v, want flag.ErrHelp (not a usage error)", arg, err)
		}
	}
	_, err := ParseFlags([]string{"--no-such-flag"}, func(string) string { return "" })
	if !errors.Is(err, ErrUsage) || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad flag: %v, want a one-line usage error", err)
	}
}

// --join-unless-peer: a StatefulSet's pods share one template; the founders
// (in --peers) found the cluster, any other pod joins.
func TestJoinUnlessPeer(t *testing.T) {
	env := map[string]string{
		"RAFT_KV_PEERS": "demo-0=demo-0.p:7000,demo-1=demo-1.p:7000,demo-2=demo-2.p:7000", "RAFT_KV_DATA_DIR": "/data",
		"RAFT_KV_PEER_ADDR": ":7000", "RAFT_KV_JOIN_UNLESS_PEER": "true",
	}
	for id, join := range map[string]bool{"demo-0": false, "demo-2": false, "demo-3": true, "demo-10": true} {
		env["POD_NAME"] = id
		c, err := ParseFlags(nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if c.Join != join || c.ID != id {
			t.Errorf("%s: Join=%v ID=%s, want Join=%v", id, c.Join, c.ID, join)
		}
	}
	delete(env, "RAFT_KV_JOIN_UNLESS_PEER")
	env["POD_NAME"] = "demo-3"
	if _, err := ParseFlags(nil, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "not in --peers") {
		t.Fatalf("demo-3 without --join-unless-peer: %v, want refused as not in --peers", err)
	}
}
