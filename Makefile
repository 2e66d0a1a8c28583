# raftlab — see README.md.
GO        ?= go
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
# Seeds of the randomized raftcore test in `make test` (the issue asks >= 2000).
RAFT_SEEDS ?= 2000

.PHONY: generate verify-generated deploy undeploy
.PHONY: all build test test-race lint bench bench-kv load raft-kv runner bug1 bug2 demo core-demo sweep-random mutants clean
.PHONY: k8s-bins envtest-bins mkimage images cluster-up cluster-down cluster-load setup-kind teardown-kind

all: build

build:
	$(GO) build $(PKGS)

# The test command of the README and of CI: unit, datadriven, example and
# randomized tests, then the race detector on the packages, then lint.
# The envtest tests (operator/api/v1) need kube-apiserver and etcd:
# hack/k8s-bins.sh builds them once (cached) and prints their directory, and
# RAFTLAB_REQUIRE_ENVTEST=1 makes them fail instead of skip without it.
test: build
	KUBEBUILDER_ASSETS=$$(hack/k8s-bins.sh envtest) && export KUBEBUILDER_ASSETS && \
	  RAFTLAB_REQUIRE_ENVTEST=1 RAFT_SEEDS=$(RAFT_SEEDS) $(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -race -short $(PKGS)
	$(MAKE) lint

# The race detector alone (the second half of make test).
test-race:
	$(GO) test -count=1 -race -short $(PKGS)

lint: verify-generated
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

# The operator's end-to-end suite (test/e2e) on a real Kubernetes: the
# cluster of E2E_KUBECONFIG if set (kind on a laptop: make setup-kind, then
# E2E_KUBECONFIG=~/.kube/config), else this machine's own (make cluster-up,
# idempotent, as root). It builds and imports the images, deploys the
# operator (and restarts it on the new image), and runs the suite.
E2E_KUBECONFIG ?=
E2E_ARGS ?=
.PHONY: e2e
e2e: images
	@set -e; kc="$(E2E_KUBECONFIG)"; kubectl="$(KUBECTL)"; \
	if [ -z "$$kc" ]; then \
	  hack/cluster-up.sh; hack/cluster-load-image.sh bin/images/*.tar; \
	  kc=$${RAFTLAB_CLUSTER_DIR:-/var/lib/raftlab-cluster}/kubeconfig; kubectl="$$(hack/k8s-bins.sh all)/kubectl"; \
	fi; \
	echo "e2e: cluster $$kc"; \
	KUBECONFIG=$$kc $$kubectl apply -k config/default; \
	KUBECONFIG=$$kc $$kubectl -n raftlab-system rollout restart deploy/raft-operator; \
	KUBECONFIG=$$kc $$kubectl -n raftlab-system rollout status deploy/raft-operator --timeout=180s; \
	RAFTLAB_E2E_KUBECONFIG=$$kc RAFTLAB_REQUIRE_E2E=1 $(GO) test -count=1 -timeout 30m -v ./test/e2e/ $(E2E_ARGS)

# The operator's generated files (controller-gen, pinned in go.mod): deepcopy
# in operator/api/v1, the CRD in config/crd/bases, the ClusterRole
# raft-operator in config/rbac/role.yaml (from the +kubebuilder:rbac markers
# under operator/). verify-generated regenerates in a temp copy and fails on
# a stale file; it remembers a tree that passed, so a rerun is ~0.3 s.
generate:
	hack/generate.sh generate

verify-generated:
	@hack/generate.sh verify

# The operator, its CRD and RBAC into the cluster of KUBECONFIG
# (namespace raftlab-system; config/default). The image localhost/raft-operator:dev
# must be on the nodes (make images; hack/cluster-*.sh).
KUBECTL ?= kubectl
deploy:
	$(KUBECTL) apply -k config/default

undeploy:
	$(KUBECTL) delete -k config/default --ignore-not-found

clean:
	$(GO) clean -testcache
	rm -rf bin/
	# Run outputs only: results/schema.json is part of the repository.
	if [ -d results ]; then find results -mindepth 1 -maxdepth 1 ! -name schema.json -exec rm -rf {} +; fi

# --- Kubernetes (docs/KUBERNETES.md) ---------------------------------------
# Kubernetes binaries built from the Go module proxy, cached by version under
# $(RAFTLAB_CACHE) (default ~/.cache/raftlab): k8s-bins for the cluster,
# envtest-bins for envtest (KUBEBUILDER_ASSETS=$$(hack/k8s-bins.sh envtest)).
K8S_VERSION ?= 1.37.2
export K8S_VERSION
k8s-bins:
	hack/k8s-bins.sh all
envtest-bins:
	hack/k8s-bins.sh envtest

# Container images without Docker or a registry: static binaries in
# one-layer FROM-scratch docker-archive tarballs (cmd/mkimage).
IMAGE_TAG      ?= dev
KV_IMAGE       ?= localhost/raft-kv:$(IMAGE_TAG)
OPERATOR_IMAGE ?= localhost/raft-operator:$(IMAGE_TAG)
STATIC_GO      := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w'
mkimage:
	mkdir -p bin
	$(GO) build -o bin/mkimage ./cmd/mkimage
images: mkimage
	mkdir -p bin/static bin/images
	$(STATIC_GO) -o bin/static/raft-kv ./cmd/raft-kv
	bin/mkimage --binary bin/static/raft-kv --name $(KV_IMAGE) --out bin/images/raft-kv.tar
	@if [ -d cmd/raft-operator ]; then \
	  echo "$(STATIC_GO) -o bin/static/raft-operator ./cmd/raft-operator"; \
	  $(STATIC_GO) -o bin/static/raft-operator ./cmd/raft-operator && \
	  bin/mkimage --binary bin/static/raft-operator --name $(OPERATOR_IMAGE) --out bin/images/raft-operator.tar; \
	else echo "images: ./cmd/raft-operator does not exist yet: skipping $(OPERATOR_IMAGE)"; fi

# A real single-node cluster on this machine (root): containerd, etcd, the
# control plane, kubelet, kube-proxy, CoreDNS, local PVs. Idempotent.
# KUBECONFIG: $(RAFTLAB_CLUSTER_DIR)/kubeconfig (default /var/lib/raftlab-cluster).
cluster-up:
	hack/cluster-up.sh
cluster-down:
	hack/cluster-down.sh
# The images of make images, into the cluster's containerd.
cluster-load: images
	hack/cluster-load-image.sh bin/images/*.tar

# kind, where it exists (machines with internet: it pulls its node image).
KIND         ?= kind
KIND_CLUSTER ?= raftlab
setup-kind: images
	@command -v $(KIND) >/dev/null || { echo "setup-kind: kind is not available here (it needs a registry for its node image); use make cluster-up"; exit 1; }
	$(KIND) get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) || $(KIND) create cluster --name $(KIND_CLUSTER)
	for f in bin/images/*.tar; do $(KIND) load image-archive --name $(KIND_CLUSTER) $$f || exit 1; done
teardown-kind:
	@command -v $(KIND) >/dev/null || { echo "teardown-kind: kind is not available here; use make cluster-down"; exit 1; }
	$(KIND) delete cluster --name $(KIND_CLUSTER)
