package experiment

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/raftlab/raftlab/reconfig"
)

// APIVersion and KindName are the only accepted header values.
const (
	APIVersion = "raftlab/v1"
	KindName   = "Experiment"
	// MaxNodes bounds the node ids kv-0 .. kv-8.
	MaxNodes = 9
)

// Selectors are node names resolved when a step runs.
var Selectors = []string{"leader", "follower", "minority", "majority"}

// Load reads and validates an experiment file, with --set overrides
// ("cluster.safetyMode=safe") applied before validation.
func Load(path string, sets []string) (*Experiment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("cannot read the experiment file: %v", err)}}
	}
	return Parse(path, data, sets)
}

// Parse decodes and validates an experiment; every error is an *Error (or
// Errors) naming the file, line and column.
func Parse(file string, data []byte, sets []string) (*Experiment, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{yamlSyntaxError(file, err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, Errors{{File: file, Msg: "the file is empty; expected an Experiment (apiVersion: raftlab/v1, kind: Experiment, ...)"}}
	}
	root := doc.Content[0]
	for _, s := range sets {
		if err := applySet(root, s); err != nil {
			return nil, Errors{{File: file, Msg: fmt.Sprintf("--set %s: %v", s, err)}}
		}
	}
	exp := &Experiment{File: file}
	d := &decoder{}
	d.decode(root, reflect.ValueOf(exp).Elem(), "the experiment")
	var errs Errors
	for _, pe := range d.errs {
		errs = append(errs, &Error{File: file, Line: pe.n.Line, Column: pe.n.Column, Msg: pe.msg})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	exp.setDefaults()
	if errs := exp.validate(root); len(errs) > 0 {
		return nil, errs
	}
	return exp, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlSyntaxError(file string, err error) *Error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Column: 1, Msg: "YAML syntax: " + m[2]}
	}
	return &Error{File: file, Msg: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// applySet sets path (dotted keys; list indexes as numbers) to value (a
// YAML scalar or flow value) in the document, adding the last key if the
// mapping lacks it. The path must name a field of the format.
func applySet(root *yaml.Node, set string) error {
	path, value, ok := strings.Cut(set, "=")
	if !ok || path == "" {
		return errors.New("expected path=value, for example cluster.safetyMode=safe")
	}
	if err := checkSetPath(reflect.TypeOf(Experiment{}), strings.Split(path, ".")); err != nil {
		return err
	}
	var val yaml.Node
	if err := yaml.Unmarshal([]byte(value), &val); err != nil || len(val.Content) == 0 {
		val = yaml.Node{Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}}}
	}
	newNode := val.Content[0]
	n := root
	keys := strings.Split(path, ".")
	for i, k := range keys {
		last := i == len(keys)-1
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == k {
					found = true
					if last {
						newNode.Line, newNode.Column = n.Content[j+1].Line, n.Content[j+1].Column
						n.Content[j+1] = newNode
					} else {
						n = n.Content[j+1]
					}
					break
				}
			}
			if !found {
				child := newNode
				if !last {
					child = &yaml.Node{Kind: yaml.MappingNode}
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, child)
				n = child
			}
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(k)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return fmt.Errorf("%q is not an index of that list (it has %d items)", k, len(n.Content))
			}
			if last {
				n.Content[idx] = newNode
			} else {
				n = n.Content[idx]
			}
		default:
			return fmt.Errorf("%s is not a mapping or list in this file", strings.Join(keys[:i], "."))
		}
	}
	return nil
}

func checkSetPath(t reflect.Type, keys []string) error {
	for i, k := range keys {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			fields, names := fieldsOf(t)
			idx, ok := fields[k]
			if !ok {
				where := "the experiment"
				if i > 0 {
					where = strings.Join(keys[:i], ".")
				}
				return fmt.Errorf("%s has no field %q; expected one of: %s", where, k, strings.Join(names, ", "))
			}
			t = t.Field(idx).Type
		case reflect.Slice:
			if _, err := strconv.Atoi(k); err != nil {
				return fmt.Errorf("%s is a list: use a number, for example %s.0", strings.Join(keys[:i], "."), strings.Join(keys[:i], "."))
			}
			t = t.Elem()
		default:
			return fmt.Errorf("%s is a value, not a mapping", strings.Join(keys[:i], "."))
		}
	}
	return nil
}

func (e *Experiment) setDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&e.Cluster.Replicas, 3)
	if e.Cluster.SafetyMode == "" {
		e.Cluster.SafetyMode = "safe"
	}
	def(&e.Cluster.ElectionTimeoutMs, 300)
	def(&e.Cluster.HeartbeatMs, 50)
	def(&e.Network.DelayMs, 1)
	def(&e.Network.FsyncMs, 1)
	def(&e.Workload.Keys, 8)
	if e.Workload.KeyDistribution == "" {
		e.Workload.KeyDistribution = "uniform"
	}
	if e.Workload.ZipfS == 0 {
		e.Workload.ZipfS = 1.1
	}
	def(&e.Workload.ValueBytes, 16)
	def(&e.Workload.OpTimeoutMs, 1000)
	if e.Workload.ReadContexts == "" {
		e.Workload.ReadContexts = ReadContextsUnique
	}
	if e.Workload.Duration == 0 {
		e.Workload.Duration = Duration(10e9)
	}
	if e.Seed == 0 {
		e.Seed = 1
	}
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
var nodeRe = regexp.MustCompile(`^kv-([0-9])$`)

// validate checks what the types cannot: values, ranges and node names.
func (e *Experiment) validate(root *yaml.Node) Errors {
	var errs Errors
	at := func(path []string, format string, args ...any) {
		n := lookup(root, path)
		er := &Error{File: e.File, Msg: fmt.Sprintf(format, args...)}
		if n != nil {
			er.Line, er.Column = n.Line, n.Column
		}
		errs = append(errs, er)
	}
	if e.APIVersion != APIVersion {
		at([]string{"apiVersion"}, "apiVersion must be %q, got %q", APIVersion, e.APIVersion)
	}
	if e.Kind != KindName {
		at([]string{"kind"}, "kind must be %q, got %q", KindName, e.Kind)
	}
	if !nameRe.MatchString(e.Metadata.Name) {
		at([]string{"metadata", "name"}, "metadata.name must be lower-case letters, digits and dashes (it names the results folder), got %q", e.Metadata.Name)
	}
	c := e.Cluster
	if c.Replicas < 1 || c.Replicas > MaxNodes {
		at([]string{"cluster", "replicas"}, "cluster.replicas must be 1..%d, got %d", MaxNodes, c.Replicas)
	}
	if _, err := reconfig.ParseMode(c.SafetyMode); err != nil {
		at([]string{"cluster", "safetyMode"}, "cluster.safetyMode must be safe, unsafe-early-vote or unsafe-no-joint, got %q", c.SafetyMode)
	}
	if c.HeartbeatMs < 1 || c.ElectionTimeoutMs < 2*c.HeartbeatMs {
		at([]string{"cluster", "electionTimeoutMs"}, "cluster.electionTimeoutMs (%d) must be at least twice heartbeatMs (%d), and heartbeatMs at least 1", c.ElectionTimeoutMs, c.HeartbeatMs)
	}
	if c.SnapshotEntries < 0 {
		at([]string{"cluster", "snapshotEntries"}, "cluster.snapshotEntries must be >= 0")
	}
	if e.Network.DelayMs < 0 || e.Network.JitterMs < 0 || e.Network.FsyncMs < 0 {
		at([]string{"network"}, "network delays must be >= 0")
	}
	if e.Network.ClientDelayMs < 0 || e.Network.ClientJitterMs < 0 {
		at([]string{"network"}, "network.clientDelayMs and clientJitterMs must be >= 0")
	}
	if e.Network.SnapshotKBps < 0 {
		at([]string{"network", "snapshotKBps"}, "network.snapshotKBps must be >= 0 (0: the simulator's default)")
	}
	if p := e.Network.ClientLossPercent; !(p >= 0 && p <= 100) { // NaN too
		at([]string{"network", "clientLossPercent"}, "network.clientLossPercent must be in [0, 100]")
	}
	w := e.Workload
	switch {
	case w.Clients < 0 || w.Clients > 1000:
		at([]string{"workload", "clients"}, "workload.clients must be 0..1000, got %d", w.Clients)
	case w.Rate < 0:
		at([]string{"workload", "rate"}, "workload.rate must be >= 0 (0 = closed loop), got %v", w.Rate)
	case w.Keys < 1:
		at([]string{"workload", "keys"}, "workload.keys must be >= 1, got %d", w.Keys)
	case w.KeyDistribution != "uniform" && w.KeyDistribution != "zipf":
		at([]string{"workload", "keyDistribution"}, "workload.keyDistribution must be uniform or zipf, got %q", w.KeyDistribution)
	case w.ZipfS <= 1:
		at([]string{"workload", "zipfS"}, "workload.zipfS must be > 1, got %v", w.ZipfS)
	case w.ReadRatio < 0 || w.ReadRatio > 1:
		at([]string{"workload", "readRatio"}, "workload.readRatio must be within 0..1, got %v", w.ReadRatio)
	case w.ValueBytes < 1 || w.ValueBytes > 1<<20:
		at([]string{"workload", "valueBytes"}, "workload.valueBytes must be 1..1048576, got %d", w.ValueBytes)
	case w.Outstanding < 0 || w.Outstanding > 64:
		at([]string{"workload", "outstanding"}, "workload.outstanding must be 1..64 (0: the default, 1), got %d", w.Outstanding)
	case w.OpTimeoutMs < 1:
		at([]string{"workload", "opTimeoutMs"}, "workload.opTimeoutMs must be >= 1, got %d", w.OpTimeoutMs)
	case w.ReadContexts != ReadContextsUnique && w.ReadContexts != ReadContextsPerNode:
		at([]string{"workload", "readContexts"}, "workload.readContexts must be %s or %s, got %q", ReadContextsUnique, ReadContextsPerNode, w.ReadContexts)
	}
	known := map[string]bool{}
	for i := 0; i < c.Replicas; i++ {
		known[fmt.Sprintf("kv-%d", i)] = true
	}
	for i, s := range e.Steps {
		stepErrs := e.validateStep(s, known)
		for _, m := range stepErrs {
			er := &Error{File: e.File, Line: s.Pos.Line, Column: s.Pos.Column, Msg: fmt.Sprintf("step %d (%s): %s", i+1, s.Action(), m)}
			errs = append(errs, er)
		}
	}
	return errs
}

func (e *Experiment) validateStep(s Step, known map[string]bool) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if n := s.actions(); n != 1 {
		if n == 0 {
			bad("no action; a step is one of: sleep, await, partition, isolate, heal, delay, loss, kill, restart, pause, resume, start, scale, reconfigure, transferLeader, put, get, random")
		} else {
			bad("%d actions in one step; give each its own step", n)
		}
		return errs
	}
	introduce := func(id string) {
		if nodeRe.MatchString(id) {
			known[id] = true
		}
	}
	checkNode := func(id string, selectorOK bool) {
		if selectorOK && slices.Contains(Selectors, id) {
			return
		}
		if !nodeRe.MatchString(id) {
			bad("%q is not a node: nodes are kv-0 .. kv-%d%s", id, MaxNodes-1, map[bool]string{true: ", or a selector (leader, follower, minority, majority)"}[selectorOK])
			return
		}
		if !known[id] {
			bad("node %s does not exist at this step: the cluster has %s; add it first with start, scale or reconfigure", id, knownList(known))
		}
	}
	if s.At != nil && s.When != nil {
		bad("a step has either at or when, not both")
	}
	if (s.At != nil || s.When != nil) && (s.Sleep != nil || s.Await != nil || s.Random != nil) {
		bad("sleep, await and random take no at or when")
	}
	if s.When != nil {
		errs = append(errs, e.checkCondition(*s.When, known, false)...)
	}
	switch {
	case s.Sleep != nil:
	case s.Await != nil:
		errs = append(errs, e.checkCondition(*s.Await, known, true)...)
	case s.Partition != nil:
		seen := map[string]bool{}
		for _, g := range s.Partition.Groups {
			for _, id := range g {
				// A group may name a node that starts later: it joins
				// its side as it starts (docs/BUGS.md bug 1).
				if !nodeRe.MatchString(id) {
					bad("%q is not a node name: nodes are kv-0 .. kv-%d", id, MaxNodes-1)
				}
				if seen[id] {
					bad("node %s is in two groups", id)
				}
				seen[id] = true
			}
		}
	case s.Isolate != nil, s.Kill != nil, s.Restart != nil, s.Pause != nil, s.Resume != nil:
		for _, id := range firstNodes(s.Isolate, s.Kill, s.Restart, s.Pause, s.Resume) {
			checkNode(id, true)
		}
	case s.Start != nil:
		for _, id := range *s.Start {
			if !nodeRe.MatchString(id) {
				bad("%q is not a node name: nodes are kv-0 .. kv-%d", id, MaxNodes-1)
			}
			introduce(id)
		}
	case s.Scale != nil:
		if *s.Scale < 1 || *s.Scale > MaxNodes {
			bad("scale must be 1..%d, got %d", MaxNodes, *s.Scale)
		}
		for i := 0; i < *s.Scale; i++ {
			introduce(fmt.Sprintf("kv-%d", i))
		}
	case s.Reconfigure != nil:
		if len(s.Reconfigure.Voters) == 0 {
			bad("reconfigure needs voters: [kv-0, ...]")
		}
		for _, id := range s.Reconfigure.Voters {
			if !nodeRe.MatchString(id) {
				bad("%q is not a node name: nodes are kv-0 .. kv-%d", id, MaxNodes-1)
			}
			introduce(id)
		}
	case s.TransferLeader != nil:
		checkNode(*s.TransferLeader, true)
	case s.Delay != nil, s.Loss != nil:
		f := s.Delay
		if f == nil {
			f = s.Loss
		}
		for _, id := range f.Nodes {
			checkNode(id, true)
		}
		if (f.From == "") != (f.To == "") {
			bad("a link needs both from and to")
		}
		if f.From != "" {
			checkNode(f.From, true)
			checkNode(f.To, true)
			if len(f.Nodes) > 0 {
				bad("give either nodes or from/to")
			}
		}
		if s.Delay != nil && (f.Ms < 1 || f.JitterMs < 0) {
			bad("delay needs ms >= 1 (and jitterMs >= 0)")
		}
		if s.Loss != nil && (f.Percent <= 0 || f.Percent > 100) {
			bad("loss needs percent within (0, 100]")
		}
	case s.Put != nil, s.Get != nil:
		op := s.Put
		if op == nil {
			op = s.Get
		}
		checkNode(op.Node, true)
		if op.Key == "" {
			bad("needs a key")
		}
		if s.Put != nil && op.Value == "" {
			bad("put needs a value")
		}
		if s.Get != nil && op.Value != "" {
			bad("get takes no value")
		}
	case s.Random != nil:
		r := s.Random
		if r.Every <= 0 || r.Hold <= 0 {
			bad("random needs every and hold, for example {every: 2s, hold: 1s}")
		}
		for _, k := range r.Kinds {
			if !slices.Contains(RandomKinds, k) && !slices.Contains(RandomLegacyKinds, k) {
				bad("unknown random kind %q; expected some of: %s", k, strings.Join(append(slices.Clone(RandomKinds), RandomLegacyKinds...), ", "))
			}
		}
		for _, t := range r.On {
			if !slices.Contains(RandomTriggers, t) {
				bad("unknown random trigger %q in on; expected some of: %s", t, strings.Join(RandomTriggers, ", "))
			}
		}
		if r.MaxActive < 0 {
			bad("maxActive must be >= 0 (0: the default, 3)")
		}
		if r.MaxReplicas != 0 && (r.MaxReplicas < 1 || r.MaxReplicas > MaxNodes) {
			bad("maxReplicas must be 1..%d", MaxNodes)
		}
		max := r.MaxReplicas
		if max == 0 {
			max = min(e.Cluster.Replicas+2, MaxNodes)
		}
		for i := 0; i < max; i++ {
			introduce(fmt.Sprintf("kv-%d", i))
		}
	}
	return errs
}

func (e *Experiment) checkCondition(c Condition, known map[string]bool, await bool) []string {
	var errs []string
	n := 0
	if c.Leader != nil {
		n++
	}
	if len(c.LeaderIn) > 0 {
		n++
	}
	if c.JointState != "" {
		n++
		if !slices.Contains(JointStates, c.JointState) {
			errs = append(errs, fmt.Sprintf("jointState must be one of %s, got %q", strings.Join(JointStates, ", "), c.JointState))
		}
	}
	if c.Applied != nil {
		n++
	}
	if c.CaughtUp != "" {
		n++
	}
	if c.Reconfigured != nil {
		n++
	}
	if n != 1 {
		errs = append(errs, "give exactly one condition: leader, leaderIn, jointState, applied, caughtUp or reconfigured")
	}
	for _, id := range append(append([]string{}, c.LeaderIn...), c.CaughtUp, c.Node) {
		if id != "" && (!nodeRe.MatchString(id) || !known[id]) {
			errs = append(errs, fmt.Sprintf("node %q does not exist at this step (the cluster has %s)", id, knownList(known)))
		}
	}
	if await && c.Timeout <= 0 {
		errs = append(errs, "await needs a timeout, for example timeout: 5s")
	}
	return errs
}

func firstNodes(ns ...*Nodes) Nodes {
	for _, n := range ns {
		if n != nil {
			return *n
		}
	}
	return nil
}

func knownList(known map[string]bool) string {
	var ids []string
	for i := 0; i < MaxNodes; i++ {
		if id := fmt.Sprintf("kv-%d", i); known[id] {
			ids = append(ids, id)
		}
	}
	return strings.Join(ids, ", ")
}

// lookup finds the value node at a key path, or the deepest node found.
func lookup(n *yaml.Node, path []string) *yaml.Node {
	for _, k := range path {
		if n.Kind != yaml.MappingNode {
			return n
		}
		next := (*yaml.Node)(nil)
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == k {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
	return n
}
