#!/usr/bin/env bash
# hack/cluster-down.sh [--purge]: stop the cluster hack/cluster-up.sh started
# and remove what it left on the host, so that the next cluster-up starts
# clean. Run as root. Safe to run twice, or when nothing is up.
#
# It stops only processes it can prove are ours: the PIDs in
# $RAFTLAB_CLUSTER_DIR/run/*.pid whose /proc/PID/exe is still the binary we
# started, containerd shims whose command line names our containerd socket,
# and processes inside the kubepods cgroups of our kubelet. Then it removes
# the pods' network namespaces, mounts under the state dir, the CNI bridge,
# the KUBE-* and our CNI iptables chains, and the cluster's state (etcd,
# kubelet, containerd, PV data). The CA and certificates (pki/) and the last
# logs (logs/) are kept; --purge removes them and the state dir too.
set -euo pipefail
LOG_PREFIX=cluster-down
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

purge=false
case "${1:-}" in
"") ;;
--purge) purge=true ;;
-h | --help)
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
	exit 0
	;;
*) die "unknown argument '$1' (want --purge or nothing)" ;;
esac

need_root
[[ "$STATE" == /* && "$STATE" != / ]] || die "RAFTLAB_CLUSTER_DIR=$STATE must be an absolute path other than /"
if [[ ! -d "$STATE" ]]; then
	log "nothing to do: $STATE does not exist"
	exit 0
fi
T0=$SECONDS

dead() { ! alive "$1"; }

# stop NAME [SECONDS]: SIGTERM the component's recorded PID, wait for it
# (bounded), then SIGKILL. Nothing happens if the PID is no longer ours.
stop() {
	local name="$1" secs="${2:-15}" pid end start="$EPOCHREALTIME"
	pid="$(pid_of "$name")"
	if [[ -n "$pid" ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		end=$((SECONDS + secs))
		while alive "$pid" && ((SECONDS < end)); do sleep 0.1; done
		if alive "$pid"; then
			log "$name ($pid) still running after ${secs}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			until_deadline 5 "" dead "$pid" || log "warning: $name ($pid) did not exit"
		fi
		log "stopped $name ($pid) in $(since "$start")s"
	fi
	rm -f "$RUN/$name.pid"
}

# First the processes that would recreate pods or PVs.
stop pv-recycler 5
stop kubelet 20

# The pods. Through the CRI (crictl) if containerd still runs: stopping a
# sandbox runs CNI DEL (IP released, iptables rules and network namespace
# removed). The IDs and netns paths are noted first, for the fallback below.
ids=()
netns=()
if [[ -n "$(pid_of containerd)" ]]; then
	mapfile -t ids < <(ctr_ containers ls -q 2>/dev/null || true)
	for id in "${ids[@]}"; do
		p="$(ctr_ containers info "$id" 2>/dev/null | jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null || true)"
		[[ -n "$p" ]] && netns+=("$p")
	done
	if [[ -x "$BIN/crictl" ]]; then
		n="$(crictl_ pods -q 2>/dev/null | wc -l)"
		if ((n > 0)); then
			start="$EPOCHREALTIME"
			timeout 90 "$BIN/crictl" --config "$STATE/config/crictl.yaml" rmp -fa >/dev/null 2>&1 ||
				log "warning: crictl rmp -fa failed; falling back to killing tasks"
			log "removed $n pod sandboxes (CRI) in $(since "$start")s"
		fi
	fi
	# Whatever the CRI did not own (ctr run) or could not stop.
	for id in $(ctr_ tasks ls -q 2>/dev/null || true); do
		ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	for id in $(ctr_ tasks ls -q 2>/dev/null || true); do
		timeout 10 ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true
	done
fi

# The control plane, in reverse start order (pv-recycler and kubelet are
# already stopped).
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
	stop "${COMPONENTS[i]}" 20
done

# containerd shims of our containerd (they outlive it by design): their
# command line carries "-address <our socket>".
for d in /proc/[0-9]*; do
	cmd="$(tr '\0' ' ' 2>/dev/null <"$d/cmdline" || true)"
	if [[ "$cmd" == *containerd-shim*" -address $CTRD_SOCK "* ]]; then
		if kill -KILL "${d#/proc/}" 2>/dev/null; then log "killed shim ${d#/proc/}"; fi
	fi
done

# Processes left in our kubelet's pod cgroups (containers whose shim died),
# then the cgroups themselves, deepest first. Only when our kubelet created
# them: cluster-up refuses to start next to a kubepods cgroup in use.
if [[ -f "$RUN/kubepods-ours" ]]; then
	for ((try = 0; try < 10; try++)); do
		pids="$(find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)"
		[[ -z "$pids" ]] && break
		# shellcheck disable=SC2086 # one PID per word
		kill -KILL $pids 2>/dev/null || true
		sleep 0.3
	done
	[[ -z "$pids" ]] || log "warning: processes left in kubepods: $pids"
	for d in /sys/fs/cgroup/*/kubepods; do
		[[ -d "$d" ]] && { find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "warning: could not remove $d"; }
	done
	rm -f "$RUN/kubepods-ours"
fi

# Network namespaces of our pods that CNI DEL did not remove.
for p in "${netns[@]}"; do
	if [[ -e "$p" ]]; then
		umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true
		rm -f "$p" && log "removed netns $p"
	fi
done

# Mounts under the state dir (kubelet's root-dir bind mount, pod volumes,
# local PV binds, container rootfs), children before parents.
for ((try = 0; try < 5; try++)); do
	mapfile -t mnts < <(awk -v s="$STATE/" 'index($2, s) == 1 { print $2 }' /proc/self/mounts | sort -ru)
	((${#mnts[@]} > 0)) || break
	for m in "${mnts[@]}"; do
		m="$(printf '%b' "$m")" # /proc/mounts escapes spaces as \040
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
done
((${#mnts[@]} == 0)) || log "warning: still mounted: ${mnts[*]}"

# iptables. kube-proxy --cleanup removes its chains and rules; then the
# remaining KUBE-* chains (kubelet's KUBE-FIREWALL, canaries, hints), and the
# CNI chains whose rules carry our network's name (bridge ipMasq, portmap).
if [[ -x "$BIN/kube-proxy" ]] && command -v iptables >/dev/null; then
	"$BIN/kube-proxy" --cleanup >"$LOGS/kube-proxy-cleanup.log" 2>&1 || true
fi
# del_rules IPT TABLE ERE: delete the rules of TABLE matching ERE, echo the
# chains they jumped to.
del_rules() {
	local ipt="$1" table="$2" re="$3" line
	{ "$ipt" -t "$table" -S 2>/dev/null | grep -E -- "$re" || true; } | while read -r line; do
		eval "$ipt -t $table ${line/#-A/-D}" 2>/dev/null || true
		[[ "$line" =~ -j\ ([^ ]+) ]] && echo "${BASH_REMATCH[1]}"
	done
}
# del_chains IPT TABLE CHAIN...: flush, unlink and delete chains.
del_chains() {
	local ipt="$1" table="$2" c
	shift 2
	for c in "$@"; do "$ipt" -t "$table" -F "$c" 2>/dev/null || true; done
	for c in "$@"; do
		del_rules "$ipt" "$table" "-j $c( |\$)" >/dev/null
		"$ipt" -t "$table" -X "$c" 2>/dev/null || true
	done
}
for ipt in iptables ip6tables; do
	command -v "$ipt" >/dev/null || continue
	for table in filter nat mangle; do
		mapfile -t ours < <(del_rules "$ipt" "$table" "name: \\\\\"$CNI_NETWORK\\\\\"" | grep '^CNI-' | sort -u)
		((${#ours[@]} == 0)) || del_chains "$ipt" "$table" "${ours[@]}"
		# portmap's shared chains, once no other network's container uses them.
		if ! "$ipt" -t "$table" -S CNI-HOSTPORT-DNAT 2>/dev/null | grep -q -- '-j CNI-DN-'; then
			mapfile -t hp < <("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^CNI-HOSTPORT-/ { print $2 }')
			((${#hp[@]} == 0)) || del_chains "$ipt" "$table" "${hp[@]}"
		fi
		mapfile -t kube < <("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }')
		((${#kube[@]} == 0)) || del_chains "$ipt" "$table" "${kube[@]}"
	done
done

# The CNI bridge (and any veth still attached to it), CNI's result cache
# for our network, kubelet's /var/log/containers links into our pod logs,
# runc state and shim sockets of our containers.
if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
	for v in $(ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
		ip link del "$v" 2>/dev/null || true
	done
	ip link del "$CNI_BRIDGE" && log "removed bridge $CNI_BRIDGE"
fi
rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
for l in /var/log/containers/*.log; do
	[[ -L "$l" && "$(readlink "$l")" == "$POD_LOGS"/* ]] && rm -f "$l"
done
for id in "${ids[@]}"; do
	rm -rf "/run/containerd/runc/k8s.io/$id"
	# containerd 1.6 names a shim socket sha256(<containerd address>/<ns>/<id>).
	rm -f "/run/containerd/s/$(printf '%s' "$CTRD_SOCK/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
done

# Directories containerd and CNI made for us, if nothing else uses them.
rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd \
	/var/lib/cni/results /var/lib/cni 2>/dev/null || true

# The state. --one-file-system: never follow a mount that survived.
for d in etcd kubelet containerd cni pv pod-logs run manifests images config; do
	rm -rf --one-file-system "${STATE:?}/$d"
done
rm -f "$KUBECONFIG_ADMIN"
if $purge; then
	rm -rf --one-file-system "${STATE:?}"
	log "purged $STATE"
fi
log "cluster down in $((SECONDS - T0))s"
