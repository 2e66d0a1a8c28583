// Package testseed picks the seeds of the project's randomized tests from
// the environment, one way for all of them: PREFIX_SEED=N replays one seed;
// PREFIX_SEEDS=N runs N seeds (default n, nShort under -short) starting after
// PREFIX_SEED_BASE (default 0). A failing test prints PREFIX_SEED=N so that
// the run can be replayed alone.
package testseed

import (
	"os"
	"strconv"
	"testing"
)

// FromEnv returns the seeds to run.
func FromEnv(t testing.TB, prefix string, n, nShort int) []uint64 {
	t.Helper()
	if s := os.Getenv(prefix + "_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s_SEED=%q: want an unsigned integer", prefix, s)
		}
		return []uint64{seed}
	}
	if testing.Short() {
		n = nShort
	}
	if s := os.Getenv(prefix + "_SEEDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("%s_SEEDS=%q: want a positive integer", prefix, s)
		}
		n = v
	}
	var base uint64
	if s := os.Getenv(prefix + "_SEED_BASE"); s != "" {
		b, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s_SEED_BASE=%q: want an unsigned integer", prefix, s)
		}
		base = b
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = base + uint64(i+1)
	}
	return seeds
}
