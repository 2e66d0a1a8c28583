package raftcore_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCoreIsPure keeps the decision code free of I/O, clocks and
// goroutines (docs/ARCHITECTURE.md: the single most important rule). It parses
// every non-test file of the core packages and fails on a forbidden import
// or a go statement.
func TestCoreIsPure(t *testing.T) {
	forbidden := map[string]bool{
		"net": true, "net/http": true, "os": true, "os/exec": true, "time": true,
		"io/ioutil": true, "syscall": true, "math/rand": false, // math/rand/v2 seeded is fine
	}
	for _, dir := range []string{".", "quorum", "memcluster"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if forbidden[p] {
					t.Errorf("%s imports %q: core code must not do I/O or read clocks", f, p)
				}
			}
			ast.Inspect(af, func(n ast.Node) bool {
				if g, ok := n.(*ast.GoStmt); ok {
					t.Errorf("%s: go statement at offset %d: core code must not start goroutines", f, g.Pos())
				}
				return true
			})
		}
		if checked == 0 {
			t.Errorf("no source files found in %s", dir)
		}
	}
}
