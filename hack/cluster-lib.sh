# hack/cluster-lib.sh: shared by hack/cluster-{up,down,load-image}.sh and
# hack/cluster-pv-recycler.sh (sourced, not run). It names every path of the
# single-node cluster, so that the scripts cannot disagree about them; see
# docs/KUBERNETES.md for the layout.
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${RAFTLAB_CLUSTER_DIR:-/var/lib/raftlab-cluster}"
K8S_VERSION="${K8S_VERSION:-1.37.2}"
K8S_VERSION="${K8S_VERSION#v}"
CACHE="${RAFTLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftlab}"
BIN="$CACHE/k8s/v$K8S_VERSION" # what hack/k8s-bins.sh all fills

PKI="$STATE/pki"
RUN="$STATE/run"   # <component>.pid
LOGS="$STATE/logs" # <component>.log
KUBECONFIG_ADMIN="$STATE/kubeconfig"
CTRD="$STATE/containerd"
CTRD_SOCK="$CTRD/containerd.sock"
CNI_CONF_DIR="$STATE/cni/net.d"
CNI_IPAM_DIR="$STATE/cni/ipam"
CNI_NETWORK=raftlab-pods # the CNI network name; CNI tags its iptables rules with it
CNI_BRIDGE=raftlab0
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
KUBELET_DIR="$STATE/kubelet"
POD_LOGS="$STATE/pod-logs"
PV_DIR="$STATE/pv"
ETCD_PORT=12379 # not etcd's 2379, so that a machine's own etcd is left alone
ETCD_PEER_PORT=12380
APISERVER_PORT=6443
PAUSE_IMAGE=localhost/pause:raftlab

# The components in start order; cluster-down stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy pv-recycler)

log() { printf '%s: %s\n' "${LOG_PREFIX:-cluster}" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${LOG_PREFIX:-cluster}" "$*" >&2
	exit 1
}

need_root() {
	[[ "$(id -u)" == 0 ]] || die "must run as root (it runs containerd, kubelet and changes iptables)"
}

# alive PID: the process exists and is not a zombie (our daemons are
# reparented to PID 1 once cluster-up exits, and it may reap them late).
alive() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }" # the state letter follows the command name in parentheses
	[[ "${stat:0:1}" != Z ]]
}

# pid_of NAME: the PID recorded for component NAME if that process is still
# alive and still the program we started (its /proc/PID/exe is the recorded
# binary), so that a recycled PID is never taken for ours. Empty otherwise.
pid_of() {
	local f="$RUN/$1.pid" pid exe
	[[ -f "$f" ]] || return 0
	read -r pid exe <"$f" || true
	[[ -n "$pid" ]] && alive "$pid" || return 0
	[[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]] || return 0
	echo "$pid"
}

# kc ARGS...: kubectl as cluster admin. The cached kubectl matches the server
# version; one on PATH is only a fallback.
kc() {
	local k="$BIN/kubectl"
	[[ -x "$k" ]] || k="$(command -v kubectl)" || die "no kubectl: run hack/k8s-bins.sh all"
	"$k" --kubeconfig "$KUBECONFIG_ADMIN" "$@"
}

# ctr_ ARGS...: ctr against our containerd, in the namespace the CRI uses.
ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }

# crictl_ ARGS...: crictl against our containerd (the CRI API: stopping a pod
# this way also runs CNI DEL and removes its network namespace).
crictl_() {
	"$BIN/crictl" --runtime-endpoint "unix://$CTRD_SOCK" --image-endpoint "unix://$CTRD_SOCK" --timeout 20s "$@"
}

# until_deadline SECONDS WHAT CMD...: run CMD every half second until it
# succeeds, then log "WHAT in N s" (if WHAT is not empty); return 1 after
# SECONDS.
until_deadline() {
	local secs="$1" what="$2" start="$EPOCHREALTIME" end
	shift 2
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.5
	done
	[[ -z "$what" ]] || log "$what in $(since "$start")s"
}

# since EPOCHREALTIME: the seconds elapsed, to a tenth.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
