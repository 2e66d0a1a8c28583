// Package experiment reads experiment files (docs/EXPERIMENTS.md): YAML decoded
// strictly from yaml.v3's node tree, so that an unknown key, a wrong type,
// a duration without a unit, a node that does not exist at that step or a
// step with two actions is an error naming the file, line and column and
// what was expected. Parse applies --set overrides (path=value) to the
// tree before decoding, so overrides are validated like the file.
package experiment
