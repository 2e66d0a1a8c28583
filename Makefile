# raftlab — see README.md.
GO        ?= go
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
# Seeds of the randomized raftcore test in `make test` (the issue asks >= 2000).
RAFT_SEEDS ?= 2000

.PHONY: all build test test-race lint bench demo clean

all: build

build:
	$(GO) build $(PKGS)

# The test command of the README and of CI: unit, datadriven, example and
# randomized tests, then the race detector on the packages, then lint.
test: build
	RAFT_SEEDS=$(RAFT_SEEDS) $(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race -short $(PKGS)
	$(MAKE) lint

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@$(GOBIN)/staticcheck -version 2>/dev/null | grep -q 0.8.2 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./raftcore/ ./raftcore/disk/

demo:
	$(GO) run ./cmd/raftcore-demo

clean:
	$(GO) clean -testcache
	rm -rf results/
