package experiment

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in an experiment file, at a line and column.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errors is every problem found in a file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// nodeDecoder is implemented by field types with their own YAML shapes
// (durations, node lists, partitions): they report errors at the node.
type nodeDecoder interface {
	decodeNode(n *yaml.Node) error
}

// posError is an error at a YAML node, before the file name is known.
type posError struct {
	n   *yaml.Node
	msg string
}

func (e *posError) Error() string { return e.msg }

func errAt(n *yaml.Node, format string, args ...any) error {
	return &posError{n: n, msg: fmt.Sprintf(format, args...)}
}

// decoder walks a YAML node tree into Go values strictly: unknown keys,
// wrong kinds and bad scalars are errors at their node; all are collected.
type decoder struct {
	errs []*posError
}

func (d *decoder) fail(err error, n *yaml.Node) {
	if pe, ok := err.(*posError); ok {
		d.errs = append(d.errs, pe)
		return
	}
	d.errs = append(d.errs, &posError{n: n, msg: err.Error()})
}

var nodeDecoderType = reflect.TypeOf((*nodeDecoder)(nil)).Elem()

// fieldsOf maps a struct's yaml keys to field indexes; a field named Pos
// of type Pos receives the mapping's position.
func fieldsOf(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = i
		names = append(names, tag)
	}
	return m, names
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, what string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), what)
		return
	}
	if v.Addr().Type().Implements(nodeDecoderType) {
		if err := v.Addr().Interface().(nodeDecoder).decodeNode(n); err != nil {
			d.fail(err, n)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(errAt(n, "%s: expected a mapping, got %s", what, kindName(n)), n)
			return
		}
		fields, names := fieldsOf(v.Type())
		seen := map[string]bool{}
		if f := v.FieldByName("Pos"); f.IsValid() && f.Type() == reflect.TypeOf(Pos{}) {
			f.Set(reflect.ValueOf(Pos{Line: n.Line, Column: n.Column}))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			idx, ok := fields[k.Value]
			if !ok {
				d.fail(errAt(k, "unknown key %q in %s; expected one of: %s", k.Value, what, strings.Join(names, ", ")), k)
				continue
			}
			if seen[k.Value] {
				d.fail(errAt(k, "key %q given twice in %s", k.Value, what), k)
				continue
			}
			seen[k.Value] = true
			d.decode(val, v.Field(idx), k.Value)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(errAt(n, "%s: expected a list, got %s", what, kindName(n)), n)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", what, i))
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(errAt(n, "%s: expected %s, got %s", what, scalarKind(v), kindName(n)), n)
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(errAt(n, "%s: expected %s, got %q", what, scalarKind(v), n.Value), n)
		}
	}
}

func scalarKind(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a non-negative integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return v.Type().String()
}
