#!/usr/bin/env bash
# hack/cluster-pv-recycler.sh: started by hack/cluster-up.sh (component
# "pv-recycler"), stopped by hack/cluster-down.sh.
#
# The static local PVs of StorageClass raftlab-local have no provisioner, so
# a PV whose claim is deleted stays Released forever and the 16 PVs would run
# out after a few test clusters. Every few seconds this wipes the directory
# of each Released raftlab PV and removes its claimRef, which makes it
# Available again (what sig-storage-local-static-provisioner does on real
# clusters). It only touches PVs labelled raftlab.dev/local-pv whose path is
# under the cluster's PV directory, and it exits when the apiserver it
# serves is gone, so it never outlives the cluster.
set -euo pipefail
LOG_PREFIX=pv-recycler
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

INTERVAL="${RAFTLAB_PV_RECYCLE_INTERVAL:-3}"

recycle_once() {
	local name path
	kc get pv -l raftlab.dev/local-pv=true -o json |
		jq -r '.items[] | select(.status.phase == "Released") | "\(.metadata.name) \(.spec.local.path)"' |
		while read -r name path; do
			case "$path" in
			"$PV_DIR"/pv[0-9]*) ;;
			*)
				log "skipping $name: path $path is not under $PV_DIR"
				continue
				;;
			esac
			# Wipe, then re-offer: a new claim must never see old data.
			find "$path" -xdev -mindepth 1 -delete
			kc patch pv "$name" --type=json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null &&
				log "recycled $name ($path)"
		done
}

log "watching Released PVs every ${INTERVAL}s"
while [[ -n "$(pid_of kube-apiserver)" ]]; do
	recycle_once || log "pass failed (will retry)"
	sleep "$INTERVAL"
done
log "kube-apiserver is gone: exiting"
