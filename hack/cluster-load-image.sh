#!/usr/bin/env bash
# hack/cluster-load-image.sh FILE.tar...: import docker-archive image
# tarballs (cmd/mkimage's output, or docker save's) into the containerd of
# the cluster hack/cluster-up.sh runs, in the k8s.io namespace the kubelet
# uses. There is no registry: pods then use the image by its tag with
# imagePullPolicy IfNotPresent (any tag but latest) or Never. Re-importing a
# tag replaces it; running pods keep the image they started with.
set -euo pipefail
LOG_PREFIX=cluster-load-image
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

(($# > 0)) || die "usage: hack/cluster-load-image.sh FILE.tar... (e.g. bin/images/raft-kv.tar)"
need_root
[[ -n "$(pid_of containerd)" ]] || die "the cluster's containerd is not running: make cluster-up"
for f in "$@"; do
	[[ -f "$f" ]] || die "$f: no such file (make images builds bin/images/*.tar)"
	t=$SECONDS
	out="$(ctr_ images import "$f" 2>&1)" || die "importing $f: $out"
	# ctr prints "unpacking <name> (sha256:...)...done" per image.
	names="$(sed -n 's/^unpacking \([^ ]*\) .*/\1/p' <<<"$out" | paste -sd' ')"
	log "imported ${names:-$f} in $((SECONDS - t))s"
done
