package reconfig

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/raftlab/raftlab/raftcore"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func secs(s string) time.Time {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("bad seconds %q", s))
	}
	return t0.Add(time.Duration(f * float64(time.Second)))
}

func ids(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// testPolicy is the policy of the decide scenarios.
var testPolicy = Policy{MaxLag: 10, Stabilization: 5 * time.Second, RateLimit: 30 * time.Second,
	FlapThreshold: 2, FlapWindow: time.Minute, MaxObservationAge: 5 * time.Second, Retry: time.Second, MaxRetry: 8 * time.Second}

// TestDecide runs testdata/decide/*.txt. The command
//
//	decide now=SECS desired=IDS [mode=M] [last-change=SECS] [seen=IDX]
//	       [flaps=SECS,SECS] [since=ID:SECS,ID:SECS] [at=SECS]
//
// takes the observation as input lines: "leader=ID term=T last=I index=I
// committed=BOOL joint=none|entering|committed|leaving", "voters=IDS",
// "outgoing=IDS", "learners=IDS", and "member ID match=I [durable=false]
// [reachable=false]"; it prints the decision.
func TestDecide(t *testing.T) {
	datadriven.Walk(t, "testdata/decide", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "decide" {
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			in := Input{Mode: Safe, Policy: testPolicy, CaughtUpSince: map[string]time.Time{}}
			at := ""
			for _, a := range d.CmdArgs {
				v := ""
				if len(a.Vals) > 0 {
					v = a.Vals[0]
				}
				switch a.Key {
				case "now":
					in.Now = secs(v)
				case "desired":
					in.Desired = ids(strings.Join(a.Vals, ","))
				case "mode":
					m, err := ParseMode(v)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					in.Mode = m
				case "last-change":
					in.LastChangeEnded = secs(v)
				case "seen":
					in.SeenConfigIndex, _ = strconv.ParseUint(v, 10, 64)
				case "flaps":
					for _, s := range ids(strings.Join(a.Vals, ",")) {
						in.LeaderChanges = append(in.LeaderChanges, secs(s))
					}
				case "since":
					for _, kv := range ids(strings.Join(a.Vals, ",")) {
						id, s, _ := strings.Cut(kv, ":")
						in.CaughtUpSince[id] = secs(s)
					}
				case "at":
					at = v
				default:
					d.Fatalf(t, "unknown argument %q", a.Key)
				}
			}
			in.Obs = parseObs(t, d, d.Input)
			in.Obs.At = in.Now
			if at != "" {
				in.Obs.At = secs(at)
			}
			return Decide(in).String() + "\n"
		})
	})
}

func parseObs(t *testing.T, d *datadriven.TestData, input string) Observation {
	obs := Observation{Members: map[string]MemberObs{}, Committed: true}
	var voters, outgoing, learners []string
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "member" {
			m := MemberObs{Durable: true, Reachable: true}
			for _, f := range fields[2:] {
				k, v, _ := strings.Cut(f, "=")
				switch k {
				case "match":
					m.Match, _ = strconv.ParseUint(v, 10, 64)
				case "durable":
					m.Durable = v == "true"
				case "reachable":
					m.Reachable = v == "true"
				default:
					d.Fatalf(t, "unknown member field %q", k)
				}
			}
			obs.Members[fields[1]] = m
			continue
		}
		for _, f := range fields {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "leader":
				obs.Leader = v
			case "term":
				obs.Term, _ = strconv.ParseUint(v, 10, 64)
			case "last":
				obs.LastIndex, _ = strconv.ParseUint(v, 10, 64)
			case "index":
				obs.ConfigIndex, _ = strconv.ParseUint(v, 10, 64)
			case "committed":
				obs.Committed = v == "true"
			case "joint":
				js := map[string]raftcore.JointState{"none": raftcore.JointNone, "entering": raftcore.JointEntering,
					"committed": raftcore.JointCommitted, "leaving": raftcore.JointLeaving}
				j, ok := js[v]
				if !ok {
					d.Fatalf(t, "unknown joint state %q", v)
				}
				obs.Joint = j
			case "voters":
				voters = ids(v)
			case "outgoing":
				outgoing = ids(v)
			case "learners":
				learners = ids(v)
			default:
				d.Fatalf(t, "unknown field %q", k)
			}
		}
	}
	obs.Config = raftcore.NewConfig(voters, learners...)
	obs.Config.OutgoingVoters = outgoing
	return obs
}
