// Command raftcore-demo runs the two docs/BUGS.md scenarios on raftcore's
// in-memory cluster, with and without their unsafe options, over many seeds,
// and prints how often safety broke. It is raftlab's main job until the
// experiment runner exists.
//
// Usage:
//
//	raftcore-demo [-seeds N] [-v]
//
// -h or -help prints what it does and every flag with its default, and
// exits 0.
//
// Exit code 0 when every unsafe run broke safety and no safe run did, 1
// otherwise, 2 on bad flags (one line on stderr).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/raftlab/raftlab/internal/cliusage"
	"github.com/raftlab/raftlab/raftcore/memcluster"
)

// description is the head of raftcore-demo --help.
const description = `raftcore-demo runs docs/BUGS.md's two scenarios, bug1 (early vote) and
bug2 (no joint consensus), on raftcore's deterministic in-memory cluster,
each with its unsafe option on and off, over -seeds seeds, and prints how
often each mode broke safety: the unsafe modes should break it every time,
the safe ones never.`

func newFlagSet() (fs *flag.FlagSet, seeds *int, verbose *bool) {
	fs = flag.NewFlagSet("raftcore-demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	seeds = fs.Int("seeds", 200, "seeds per scenario and mode (positive)")
	verbose = fs.Bool("v", false, "print the first violation of each unsafe scenario")
	return fs, seeds, verbose
}

func usage(w io.Writer) {
	fs, _, _ := newFlagSet()
	fmt.Fprintf(w, "%s\n\nUsage:\n  raftcore-demo [-seeds N] [-v]\n\n"+
		"Exit codes: 0 every unsafe run broke safety and no safe run did (or -help),\n"+
		"1 otherwise, 2 on bad flags.\n\nFlags:\n", description)
	cliusage.PrintFlags(w, fs, "-", nil)
}

// parse reads the command line; done reports the command is over (help
// printed, or bad flags reported) with exit code code.
func parse(args []string, stdout, stderr io.Writer) (seeds int, verbose bool, code int, done bool) {
	fs, s, v := newFlagSet()
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return 0, false, 0, true
	case err != nil:
		fmt.Fprintf(stderr, "raftcore-demo: %v (see raftcore-demo -h)\n", err)
		return 0, false, 2, true
	case *s <= 0 || fs.NArg() > 0:
		fmt.Fprintln(stderr, "raftcore-demo: -seeds must be positive and no arguments are taken (see raftcore-demo -h)")
		return 0, false, 2, true
	}
	return *s, *v, 0, false
}

func main() {
	nseeds, verbose, code, done := parse(os.Args[1:], os.Stdout, os.Stderr)
	if done {
		os.Exit(code)
	}
	seeds := &nseeds
	fmt.Printf("docs/BUGS.md scenarios on raftcore's deterministic in-memory cluster, %d seeds each\n\n", *seeds)
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
			if verbose && example != "" {
				fmt.Printf("    e.g. %s\n", example)
			}
		}
	}
	if !ok {
		os.Exit(1)
	}
}
