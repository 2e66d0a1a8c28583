#!/usr/bin/env bash
# hack/k8s-bins.sh [envtest|all]
#
# Builds the Kubernetes binaries this project tests against from the Go module
# proxy (no release download, no registry: the proxy is all we can reach) and
# caches them by version, so that only the first run on a machine pays.
#
#   envtest  kube-apiserver + etcd (what controller-runtime's envtest needs)
#   all      the above + kube-controller-manager, kube-scheduler, kubelet,
#            kube-proxy, kubectl, CoreDNS and crictl (what hack/cluster-up.sh
#            runs; kubectl matches the server, unlike an older one on PATH)
#
# Layout (CACHE = ${RAFTLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftlab}):
#   CACHE/k8s/v$K8S_VERSION/{kube-apiserver,...}   Kubernetes binaries
#   CACHE/etcd/v$ETCD_VERSION/etcd                 etcd
#   CACHE/coredns/v$COREDNS_VERSION/coredns        CoreDNS
#   CACHE/cri-tools/v$CRICTL_VERSION/crictl        crictl
#   CACHE/k8s/v$K8S_VERSION/{etcd,coredns,crictl}  symlinks to those, so that
#                                                  one dir is KUBEBUILDER_ASSETS
#   CACHE/src/<name>-v<version>/                   the wrapper modules
#
# The last line on stdout is the k8s directory, so
#   export KUBEBUILDER_ASSETS=$(hack/k8s-bins.sh envtest)
# works; all progress goes to stderr. Versions: K8S_VERSION (1.37.2),
# ETCD_VERSION (3.5.17), COREDNS_VERSION (1.15.0), CRICTL_VERSION (1.37.0).
#
# A binary that already exists is never rebuilt (it only ever appears through
# an atomic rename of a finished build), so a warm run does not start the go
# command at all. Delete a version directory to force its rebuild.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.5.17}"
COREDNS_VERSION="${COREDNS_VERSION:-1.15.0}"
CRICTL_VERSION="${CRICTL_VERSION:-1.37.0}"
K8S_VERSION="${K8S_VERSION#v}" ETCD_VERSION="${ETCD_VERSION#v}"
COREDNS_VERSION="${COREDNS_VERSION#v}" CRICTL_VERSION="${CRICTL_VERSION#v}"
CACHE="${RAFTLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftlab}"
GO="${GO:-go}"

log() { printf 'k8s-bins: %s\n' "$*" >&2; }
die() { printf 'k8s-bins: error: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; }

mode="${1:-envtest}"
case "$mode" in
envtest | all) ;;
-h | --help) usage; exit 0 ;;
*) usage; die "unknown mode '$mode' (want envtest or all)" ;;
esac

[[ "$K8S_VERSION" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION=$K8S_VERSION is not of the form 1.MINOR.PATCH"
# Kubernetes' staging modules (k8s.io/api, k8s.io/client-go, ...) are tagged
# v0.MINOR.PATCH for Kubernetes 1.MINOR.PATCH.
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

K8S_DIR="$CACHE/k8s/v$K8S_VERSION"
SRC="$CACHE/src"

k8s_cmds=(kube-apiserver)
# Tools built from their own modules: "binary version module package".
tools=("etcd $ETCD_VERSION go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3")
if [[ "$mode" == all ]]; then
	k8s_cmds+=(kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
	tools+=("coredns $COREDNS_VERSION github.com/coredns/coredns github.com/coredns/coredns"
		"crictl $CRICTL_VERSION sigs.k8s.io/cri-tools sigs.k8s.io/cri-tools/cmd/crictl")
fi

# tool_rel BINARY VERSION: where a tool's binary is cached, relative to
# CACHE (crictl lives under its module's name, cri-tools).
tool_rel() {
	local b="$1"
	[[ "$b" == crictl ]] && b=cri-tools
	echo "$b/v$2"
}
tool_dir() { echo "$CACHE/$(tool_rel "$@")"; }

# The symlinks that make the k8s dir a complete KUBEBUILDER_ASSETS (and the
# one place cluster-up.sh looks). Re-pointed when a tool's version changes.
link_tools() {
	local spec bin ver _ target
	for spec in "${tools[@]}"; do
		read -r bin ver _ <<<"$spec"
		target="../../$(tool_rel "$bin" "$ver")/$bin"
		if [[ "$(readlink "$K8S_DIR/$bin" 2>/dev/null || true)" != "$target" ]]; then
			ln -sfn "$target" "$K8S_DIR/.$bin.link.$$"
			mv -T "$K8S_DIR/.$bin.link.$$" "$K8S_DIR/$bin"
		fi
	done
}

# What is missing? Decided before touching go, so that a warm run costs
# nothing but a few stats.
missing_k8s=()
for c in "${k8s_cmds[@]}"; do
	[[ -x "$K8S_DIR/$c" ]] || missing_k8s+=("$c")
done
missing_tools=()
for spec in "${tools[@]}"; do
	read -r bin ver _ <<<"$spec"
	[[ -x "$(tool_dir "$bin" "$ver")/$bin" ]] || missing_tools+=("$spec")
done

mkdir -p "$K8S_DIR" "$SRC"
if [[ ${#missing_k8s[@]} -eq 0 && ${#missing_tools[@]} -eq 0 ]]; then
	link_tools
	log "cached: $K8S_DIR ($mode)"
	echo "$K8S_DIR"
	exit 0
fi

command -v "$GO" >/dev/null || die "'$GO' not found: a Go toolchain is needed to build the Kubernetes binaries"
command -v flock >/dev/null || die "flock not found (util-linux): it keeps two builds from racing"

# One build at a time per cache: a second caller (say cluster-up.sh while
# make k8s-bins runs) waits for the first, then finds the binaries built.
exec 9>"$CACHE/.k8s-bins.lock"
if ! flock -n 9; then
	log "another k8s-bins build holds $CACHE/.k8s-bins.lock; waiting (up to 45 min)"
	flock -w 2700 9 || die "timed out waiting for $CACHE/.k8s-bins.lock"
	exec 9>&-
	exec "$0" "$@" # re-evaluate what is missing now that the other build ended
fi

# The wrapper modules live outside any workspace and must resolve through the
# proxy: -mod=mod lets go add the requirements they need. The checksum
# database answers 404 for some k8s.io modules here, hence GONOSUMDB=k8s.io.
# CGO_ENABLED=0: static binaries, independent of the host's libc (CoreDNS
# goes into a FROM-scratch image).
export GOWORK=off GOFLAGS=-mod=mod GONOSUMDB="k8s.io${GONOSUMDB:+,$GONOSUMDB}" CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
go_version="$("$GO" env GOVERSION)"
go_version="${go_version#go}"

TMP="$(mktemp -d "$CACHE/.build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

elapsed() { echo "$((SECONDS - $1))s"; }

# new_wrapper DIR MODULE@VERSION: an empty module requiring MODULE@VERSION.
# Marked ready only once complete, so an interrupted set-up starts over.
new_wrapper() {
	local w="$1" req="$2"
	[[ -f "$w/.ready" ]] && return 0
	rm -rf "$w" && mkdir -p "$w"
	(cd "$w" && "$GO" mod init raftlab.local/bins >/dev/null 2>&1 &&
		"$GO" mod edit -go="$go_version" -require="$req") ||
		die "could not write the wrapper module $w"
}

# build WRAPPER LDFLAGS PKG...: go build the packages into TMP.
build() {
	local w="$1" ld="$2"
	shift 2
	(cd "$w" && "$GO" build -trimpath -ldflags "$ld" -o "$TMP/" "$@") ||
		die "go build of $* failed (wrapper module: $w)"
}

# install_bin PKG DEST: move the binary go built for PKG into DEST (a file
# path) with one atomic rename (TMP is on the same filesystem), so that DEST
# is never half a binary. go names a binary after the package's last path
# element, or the one before it when that is a major version (server/v3).
install_bin() {
	local p="$1" dest="$2" b
	b="${p##*/}"
	if [[ "$b" =~ ^v[0-9]+$ ]]; then p="${p%/*}" && b="${p##*/}"; fi
	[[ -x "$TMP/$b" ]] || die "go build produced no $b in $TMP"
	mkdir -p "$(dirname "$dest")"
	mv -f "$TMP/$b" "$dest"
}

# --- Kubernetes -------------------------------------------------------------
if [[ ${#missing_k8s[@]} -gt 0 ]]; then
	w="$SRC/kubernetes-v$K8S_VERSION"
	if [[ ! -f "$w/.ready" ]]; then
		t=$SECONDS
		log "writing wrapper module $w"
		new_wrapper "$w" "k8s.io/kubernetes@v$K8S_VERSION"
		# k8s.io/kubernetes itself replaces every staging module with a local
		# path (./staging/src/k8s.io/X), which a dependent module cannot use;
		# point each at its published tag instead.
		gomod="$(cd "$w" && "$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
		[[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@v$K8S_VERSION from the module proxy ($("$GO" env GOPROXY))"
		mapfile -t staging < <(awk '/^[[:space:]]*k8s\.io\/[^[:space:]]+ v0\.0\.0([[:space:]]|$)/ {print $1}' "$gomod" | sort -u)
		[[ ${#staging[@]} -gt 0 ]] || die "found no staging modules (k8s.io/X v0.0.0) in $gomod"
		edits=()
		for m in "${staging[@]}"; do edits+=("-replace=$m=$m@$STAGING_VERSION"); done
		(cd "$w" && "$GO" mod edit "${edits[@]}")
		touch "$w/.ready"
		log "wrapper ready (${#staging[@]} staging modules at $STAGING_VERSION) in $(elapsed "$t")"
	fi
	# Without the version ldflags the binaries report v0.0.0-master.
	ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
	# The apiserver first and alone: it is what envtest needs, and once it is
	# built most of the shared packages are in GOCACHE for the others.
	rest=()
	for c in "${missing_k8s[@]}"; do
		if [[ "$c" == kube-apiserver ]]; then
			t=$SECONDS
			log "building kube-apiserver v$K8S_VERSION (cold: ~5 min on 2 cores)"
			build "$w" "$ld" k8s.io/kubernetes/cmd/kube-apiserver
			install_bin k8s.io/kubernetes/cmd/kube-apiserver "$K8S_DIR/kube-apiserver"
			log "built kube-apiserver in $(elapsed "$t")"
		else
			rest+=("k8s.io/kubernetes/cmd/$c")
		fi
	done
	if [[ ${#rest[@]} -gt 0 ]]; then
		t=$SECONDS
		log "building ${rest[*]##*/} v$K8S_VERSION (cold, after the apiserver: ~3 min)"
		build "$w" "$ld" "${rest[@]}"
		for p in "${rest[@]}"; do install_bin "$p" "$K8S_DIR/${p##*/}"; done
		log "built them in $(elapsed "$t")"
	fi
fi

# --- etcd, CoreDNS, crictl --------------------------------------------------
for spec in "${missing_tools[@]}"; do
	read -r bin ver mod pkg <<<"$spec"
	t=$SECONDS
	w="$SRC/$bin-v$ver"
	new_wrapper "$w" "$mod@v$ver"
	touch "$w/.ready"
	log "building $bin v$ver ($pkg; cold: 1-2 min)"
	build "$w" "-s -w" "$pkg"
	install_bin "$pkg" "$(tool_dir "$bin" "$ver")/$bin"
	log "built $bin in $(elapsed "$t")"
done
link_tools

log "done: $K8S_DIR ($mode)"
echo "$K8S_DIR"
