package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Edit replaces the one occurrence of Old in File (relative to the tree's
// root) by New.
type Edit struct {
	File string `yaml:"file"`
	Old  string `yaml:"old"`
	New  string `yaml:"new"`
}

// Mutant is one named bug: its main edit and, when it needs more, the others.
type Mutant struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Edit        `yaml:",inline"`
	Also        []Edit `yaml:"also"`
}

// Edits lists every edit of m, the main one first.
func (m Mutant) Edits() []Edit { return append([]Edit{m.Edit}, m.Also...) }

// Catalog is mutants/catalog.yaml.
type Catalog struct {
	Mutants []Mutant `yaml:"mutants"`
}

// LoadCatalog reads and validates a catalog file strictly: unknown fields,
// duplicate or empty names and empty edits are errors.
func LoadCatalog(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.Mutants) == 0 {
		return nil, fmt.Errorf("%s: no mutants", path)
	}
	seen := map[string]bool{}
	var errs []error
	for i, m := range c.Mutants {
		switch {
		case m.Name == "":
			errs = append(errs, fmt.Errorf("%s: mutant %d has no name", path, i+1))
			continue
		case seen[m.Name]:
			errs = append(errs, fmt.Errorf("%s: mutant %s: duplicate name", path, m.Name))
		case m.Description == "":
			errs = append(errs, fmt.Errorf("%s: mutant %s: no description", path, m.Name))
		}
		seen[m.Name] = true
		for _, e := range m.Edits() {
			if e.File == "" || e.Old == "" || e.Old == e.New {
				errs = append(errs, fmt.Errorf("%s: mutant %s: an edit needs file, a non-empty old and a different new", path, m.Name))
			}
		}
	}
	return &c, errors.Join(errs...)
}

// Apply makes m's edits in the tree at root. Each old snippet must occur
// exactly once in its file (after the edits before it): anything else means
// the code moved under the catalog, which must then be fixed, not skipped.
func (m Mutant) Apply(root string) error {
	for _, e := range m.Edits() {
		path := filepath.Join(root, filepath.FromSlash(e.File))
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("mutant %s: %w", m.Name, err)
		}
		if n := strings.Count(string(b), e.Old); n != 1 {
			return fmt.Errorf("mutant %s: %s: the old snippet occurs %d times, want exactly once:\n%s", m.Name, e.File, n, e.Old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), e.Old, e.New, 1)), 0o644); err != nil {
			return fmt.Errorf("mutant %s: %w", m.Name, err)
		}
	}
	return nil
}

// CheckAgainst verifies, without writing anything, that every edit of every
// mutant matches exactly once in the tree at root: the catalog is checked
// in full before any mutant runs.
func (c *Catalog) CheckAgainst(root string) error {
	return c.CheckAgainstFiles(func(file string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	})
}

// CheckAgainstFiles is CheckAgainst over any source of file contents.
func (c *Catalog) CheckAgainstFiles(read func(file string) ([]byte, error)) error {
	var errs []error
	for _, m := range c.Mutants {
		files := map[string]string{}
		for _, e := range m.Edits() {
			text, ok := files[e.File]
			if !ok {
				b, err := read(e.File)
				if err != nil {
					errs = append(errs, fmt.Errorf("mutant %s: %w", m.Name, err))
					break
				}
				text = string(b)
			}
			if n := strings.Count(text, e.Old); n != 1 {
				errs = append(errs, fmt.Errorf("mutant %s: %s: the old snippet occurs %d times, want exactly once:\n%s", m.Name, e.File, n, e.Old))
				break
			}
			files[e.File] = strings.Replace(text, e.Old, e.New, 1)
		}
	}
	return errors.Join(errs...)
}
