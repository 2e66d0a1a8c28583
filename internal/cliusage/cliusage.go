// Package cliusage prints the flag list of a command's --help in the one
// form raftlab's small binaries share: every flag, its description and its
// default, generated from the flag set so that the help cannot drift.
package cliusage

import (
	"flag"
	"fmt"
	"io"
)

// PrintFlags writes every flag of fs as
//
//	<dash><name> <type>
//	      <description>
//	      default: <default>
//
// dash is "-" or "--". notes gives, by flag name, the words for defaults that
// are empty or computed; other flags show their DefValue.
func PrintFlags(w io.Writer, fs *flag.FlagSet, dash string, notes map[string]string) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, text := flag.UnquoteUsage(f)
		if typ != "" {
			typ = " " + typ
		}
		fmt.Fprintf(w, "  %s%s%s\n        %s\n        default: %s\n", dash, f.Name, typ, text, Default(f, notes))
	})
}

// Default is the default PrintFlags shows for f.
func Default(f *flag.Flag, notes map[string]string) string {
	if d, ok := notes[f.Name]; ok {
		return d
	}
	return f.DefValue
}
