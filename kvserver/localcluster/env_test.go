package localcluster

import (
	"slices"
	"testing"

	"github.com/raftlab/raftlab/kvserver"
)

// A node started without faults of its own does not inherit the ones in
// this process's environment; one given faults has exactly those.
func TestProcessEnvDropsInheritedFaults(t *testing.T) {
	inherited := []string{"PATH=/bin", kvserver.InitialFaultsEnv + `={"faults":[{"peer":"*","drop":true}]}`, "HOME=/h"}
	if got := processEnv(inherited, nil); !slices.Equal(got, []string{"PATH=/bin", "HOME=/h"}) {
		t.Fatalf("without faults: %q", got)
	}
	own := kvserver.InitialFaultsEnv + `={"faults":[]}`
	if got := processEnv(inherited, []string{own}); !slices.Equal(got, []string{"PATH=/bin", "HOME=/h", own}) {
		t.Fatalf("with faults: %q", got)
	}
}
