package cliusage

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Parse parses args with fs, for a command that takes flags only. It
// reports done with the exit code when the command is over: 0 after
// printing usage to stdout for -h, -help or --help; 2 after one line on
// stderr for a bad flag or a stray argument, naming the command and
// pointing at help (its own flag spelling, "-h" or "--help").
func Parse(fs *flag.FlagSet, args []string, cmd, help string, usage func(io.Writer), stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return 0, true
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v (see %s %s)\n", cmd, err, cmd, help)
		return 2, true
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q (all settings are flags; see %s %s)\n", cmd, fs.Arg(0), cmd, help)
		return 2, true
	}
	return 0, false
}
