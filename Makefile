# raftlab — see README.md.
GO        ?= go
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
# Seeds of the randomized raftcore test in `make test` (the issue asks >= 2000).
RAFT_SEEDS ?= 2000

.PHONY: all build test test-race lint bench bench-kv load raft-kv runner bug1 bug2 demo core-demo sweep-random mutants clean

all: build

build:
	$(GO) build $(PKGS)

# The test command of the README and of CI: unit, datadriven, example and
# randomized tests, then the race detector on the packages, then lint.
test: build
	RAFT_SEEDS=$(RAFT_SEEDS) $(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race -short $(PKGS)
	$(MAKE) lint

# The race detector alone (the second half of make test).
test-race:
	$(GO) test -count=1 -race -short $(PKGS)

lint:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum not tidy: run go mod tidy (go mod tidy -diff shows the changes)"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@$(GOBIN)/staticcheck -version 2>/dev/null | grep -q 0.8.2 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./raftcore/ ./raftcore/disk/

# raft-kv and its load generator.
raft-kv:
	mkdir -p bin
	$(GO) build -o bin/raft-kv ./cmd/raft-kv
	$(GO) build -o bin/raft-kv-load ./cmd/raft-kv-load

# Load against a running cluster: make load ENDPOINTS=http://127.0.0.1:8080,...
# (LOAD_ARGS for more flags, e.g. LOAD_ARGS="--writes 0.5 --rate 3000").
ENDPOINTS ?= http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082
LOAD_ARGS ?=
load: raft-kv
	bin/raft-kv-load --endpoints $(ENDPOINTS) $(LOAD_ARGS)

# The issue's benchmark: a 3-node local cluster (fsync on), 64 closed-loop
# clients, 128-byte values, 100% then 50% writes. Not a test: figures only.
bench-kv: raft-kv
	bin/raft-kv-load --spawn 3 --bin bin/raft-kv --clients 64 --value-size 128 --writes 1 --duration 20s --warmup 3s
	bin/raft-kv-load --spawn 3 --bin bin/raft-kv --clients 64 --value-size 128 --writes 0.5 --duration 20s --warmup 3s

# The runner. BACKEND=sim for the simulator (default: local processes).
BACKEND ?= local
runner: raft-kv
	$(GO) build -o bin/runner ./cmd/runner

# The docs/BUGS.md scenarios on the default backend, with their verdict.
bug1: runner
	bin/runner apply experiments/bug1.yaml --backend $(BACKEND) --bin bin/raft-kv -q
bug2: runner
	bin/runner apply experiments/bug2.yaml --backend $(BACKEND) --bin bin/raft-kv -q

# bug1 and bug2, each in its unsafe mode and in safe mode: one table.
demo: runner
	@printf '%-6s %-18s %-22s %s\n' bug safetyMode verdict "expectation (exit)"
	@for b in bug1 bug2; do for m in unsafe safe; do \
	  set=""; [ $$m = safe ] && set="--set cluster.safetyMode=safe"; \
	  out=$$(bin/runner apply experiments/$$b.yaml --backend $(BACKEND) --bin bin/raft-kv -q $$set); code=$$?; \
	  mode=$$(echo "$$out" | sed -n 's/.*safetyMode \([a-z-]*\).*/\1/p' | head -1); \
	  verdict=$$(echo "$$out" | sed -n 's/^seen *\(NOT linearizable\|linearizable\( unknown\)\?\).*/\1/p'); \
	  met=$$([ $$code = 0 ] && echo "met (0)" || echo "NOT met ($$code)"); \
	  printf '%-6s %-18s %-22s %s\n' $$b "$$mode" "$$verdict" "$$met"; \
	done; done

# raftcore alone: the two bugs on the bare core, 200 seeds each.
core-demo:
	$(GO) run ./cmd/raftcore-demo

# Safe mode under random faults: 1,000 seeds of the 10 s experiment (sim).
sweep-random: runner
	bin/runner sweep experiments/random-faults.yaml --backend sim --seeds 1000

# The mutation gate: a control run of the unmutated tree, then every mutant
# of mutants/catalog.yaml, each of which the safety evidence must catch.
# Table and JSON in results/mutants/. MUTANTS_ARGS for more flags, e.g.
# MUTANTS_ARGS="-only vote-not-persisted -control=false", or "-all" to run every
# check for every mutant (see go run ./cmd/mutants -h).
MUTANTS_ARGS ?=
mutants:
	$(GO) run ./cmd/mutants $(MUTANTS_ARGS)

clean:
	$(GO) clean -testcache
	rm -rf bin/
	# Run outputs only: results/schema.json is part of the repository.
	if [ -d results ]; then find results -mindepth 1 -maxdepth 1 ! -name schema.json -exec rm -rf {} +; fi
