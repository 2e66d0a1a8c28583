package reconfig

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestDecisionCodeIsPure: the decision code (Decide, Check, Tracker and the
// types) reads no clock, starts no goroutine and touches no file or socket;
// time comes in through Input.Now and Observation.At. The driver is the
// only place that reads a clock, through its injected Clock.
func TestDecisionCodeIsPure(t *testing.T) {
	fset := token.NewFileSet()
	for _, file := range []string{"decide.go", "types.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if p == "os" || p == "net" || strings.HasPrefix(p, "net/") || p == "sync" {
				t.Errorf("%s imports %s", file, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement at %s", file, fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "time" {
					switch n.Sel.Name {
					case "Now", "Since", "Until", "Sleep", "After", "Tick", "NewTimer", "NewTicker", "AfterFunc":
						t.Errorf("%s: time.%s at %s", file, n.Sel.Name, fset.Position(n.Pos()))
					}
				}
			}
			return true
		})
	}
}
