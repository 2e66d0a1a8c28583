// Command raftcore-demo runs the two BUGS.md scenarios on raftcore's
// in-memory cluster, with and without their unsafe options, over many seeds,
// and prints how often safety broke. It is raftlab's main job until the
// experiment runner exists.
//
// Usage:
//
//	raftcore-demo [-seeds N] [-v]
//
// Exit code 0 when every unsafe run broke safety and no safe run did, 1
// otherwise, 2 on bad flags.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/raftlab/raftlab/raftcore/memcluster"
)

func main() {
	seeds := flag.Int("seeds", 200, "seeds per scenario and mode")
	verbose := flag.Bool("v", false, "print the first violation of each unsafe scenario")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: raftcore-demo [-seeds N] [-v]\n\n"+
			"Runs BUGS.md's bug1 (early vote) and bug2 (no joint consensus) on raftcore's\n"+
			"in-memory cluster and prints how often each mode broke safety.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *seeds <= 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "raftcore-demo: -seeds must be positive and no arguments are taken; see -h")
		os.Exit(2)
	}
	fmt.Printf("BUGS.md scenarios on raftcore's deterministic in-memory cluster, %d seeds each\n\n", *seeds)
	fmt.Printf("%-18s %-8s %-22s %s\n", "scenario", "mode", "safety violated", "expected")
	ok := true
	for _, sc := range []struct {
		name string
		run  func(bool, uint64) (memcluster.BugOutcome, error)
	}{{"bug1-early-vote", memcluster.RunBug1}, {"bug2-no-joint", memcluster.RunBug2}} {
		for _, unsafe := range []bool{true, false} {
			violated := 0
			var example string
			for seed := uint64(1); seed <= uint64(*seeds); seed++ {
				o, err := sc.run(unsafe, seed)
				if err != nil {
					fmt.Fprintf(os.Stderr, "raftcore-demo: %s seed %d: %v\n", sc.name, seed, err)
					os.Exit(1)
				}
				if o.Violated() {
					violated++
					if example == "" {
						example = o.Violations[0]
					}
				}
			}
			mode, want := "safe", "never"
			met := violated == 0
			if unsafe {
				mode, want = "unsafe", "every time"
				met = violated == *seeds
			}
			mark := "ok"
			if !met {
				mark, ok = "NOT MET", false
			}
			fmt.Printf("%-18s %-8s %4d of %-4d (%5.1f%%)   %-10s %s\n", sc.name, mode, violated, *seeds,
				100*float64(violated)/float64(*seeds), want, mark)
			if *verbose && example != "" {
				fmt.Printf("    e.g. %s\n", example)
			}
		}
	}
	if !ok {
		os.Exit(1)
	}
}
