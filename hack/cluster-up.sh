#!/usr/bin/env bash
# hack/cluster-up.sh: bring up a real single-node Kubernetes cluster on this
# machine, without a registry, kind or systemd: containerd + runc + CNI from
# Debian, etcd/kube-*/CoreDNS/crictl built by hack/k8s-bins.sh, images built
# by cmd/mkimage. Run as root. Idempotent: when the cluster is already up and
# healthy it says so and exits 0; when it is partly up it is torn down first.
#
# State, logs, PIDs: ${RAFTLAB_CLUSTER_DIR:-/var/lib/raftlab-cluster}
# Admin kubeconfig: $RAFTLAB_CLUSTER_DIR/kubeconfig (printed as an export line
# on stdout at the end). Tear down with hack/cluster-down.sh.
# See docs/KUBERNETES.md for what runs and why.
set -euo pipefail
LOG_PREFIX=cluster-up
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

PV_COUNT="${RAFTLAB_PV_COUNT:-16}"
PV_SIZE="${RAFTLAB_PV_SIZE:-1Gi}"
COREDNS_IMAGE=localhost/coredns:raftlab

need_root
[[ "$STATE" == /* && "$STATE" != / ]] || die "RAFTLAB_CLUSTER_DIR=$STATE must be an absolute path other than /"
# A unix socket path must fit in 108 bytes (sun_path), containerd's included.
((${#CTRD_SOCK} < 100)) || die "RAFTLAB_CLUSTER_DIR is too long for containerd's socket path ($CTRD_SOCK)"
T0=$SECONDS

# ---------------------------------------------------------------------------
# Already up?

node_name() {
	local n
	n="${RAFTLAB_NODE_NAME:-$(hostname)}"
	n="$(tr '[:upper:]' '[:lower:]' <<<"$n")"
	[[ "$n" =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "node name '$n' is not a DNS name: set RAFTLAB_NODE_NAME"
	echo "$n"
}
NODE="$(node_name)"

node_ready() {
	[[ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

apiserver_ready() {
	curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

all_running() {
	local c
	for c in "${COMPONENTS[@]}"; do
		[[ -n "$(pid_of "$c")" ]] || return 1
	done
}

if all_running && apiserver_ready && node_ready; then
	log "already up and healthy (node $NODE Ready); nothing to do"
	echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
	exit 0
fi
if compgen -G "$RUN/*.pid" >/dev/null; then
	log "partly up or unhealthy: tearing it down first"
	"$REPO/hack/cluster-down.sh"
fi

# ---------------------------------------------------------------------------
# Host prerequisites

# Debian packages: containerd and runc run the pods, the CNI plugins wire
# them, iptables/conntrack serve kube-proxy and kubelet, jq and curl the
# scripts. A temporary policy-rc.d keeps the packages from starting a
# system containerd (we run our own, with our config).
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
command -v iptables >/dev/null || missing+=(iptables)
command -v conntrack >/dev/null || missing+=(conntrack)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap ]] || missing+=(containernetworking-plugins)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]} > 0)); then
	command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
	log "installing ${missing[*]} (apt-get)"
	made_policy=false
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=true
	fi
	ok=true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
		ok=false
	$made_policy && rm -f /usr/sbin/policy-rc.d
	$ok || die "apt-get install ${missing[*]} failed"
fi

log "binaries: hack/k8s-bins.sh all"
BIN="$("$REPO/hack/k8s-bins.sh" all | tail -n1)"

# Host IP: the source address of the default route, else the first global
# IPv4 address (route get sends nothing). The apiserver advertises it: pods
# reach the kubernetes Service, 10.96.0.1, through it.
HOST_IP="${RAFTLAB_HOST_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)}"
[[ -n "$HOST_IP" ]] || HOST_IP="$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')"
[[ "$HOST_IP" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "could not find this host's IPv4 address: set RAFTLAB_HOST_IP"

# The ports we listen on must be free (another cluster, a stray apiserver).
for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" 10248 10249 10250 10256 10257 10259; do
	if ss -Hltn "sport = :$p" | grep -q .; then
		die "port $p is already in use ($(ss -Hltnp "sport = :$p" | awk '{print $NF}' | head -n1)); is another cluster running?"
	fi
done
# A kubepods cgroup with processes in it belongs to another kubelet.
for d in /sys/fs/cgroup/*/kubepods; do
	[[ -d "$d" ]] || continue
	if [[ -n "$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | head -n1)" ]]; then
		die "$d has processes: another kubelet runs on this machine"
	fi
	find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true # an empty leftover
done

# Pod traffic is routed and NATed by this host; bridged pod-to-pod traffic
# must go through iptables for Services (kube-proxy) to work.
sysctl -qw net.ipv4.ip_forward=1
if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
	sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
else
	log "warning: no br_netfilter (net.bridge.bridge-nf-call-iptables): Service traffic between pods may fail"
fi

mkdir -p "$STATE" "$PKI" "$RUN" "$CTRD" "$CNI_CONF_DIR" "$CNI_IPAM_DIR" "$KUBELET_DIR" "$POD_LOGS" "$PV_DIR" "$STATE/manifests" "$STATE/images" "$STATE/config"
chmod 700 "$PKI"
# Logs of the previous run are kept one run, for post-mortems.
if [[ -d "$LOGS" ]]; then rm -rf "$LOGS.prev" && mv "$LOGS" "$LOGS.prev"; fi
mkdir -p "$LOGS"

# ---------------------------------------------------------------------------
# PKI (openssl): a CA kept across runs (so copies of the kubeconfig stay
# valid), leaf certificates regenerated when the node name or IP changes.

t=$SECONDS
if [[ ! -f "$PKI/ca.crt" ]]; then
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=raftlab-ca" -days 3650 -out "$PKI/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
	rm -f "$PKI/params"
fi
if [[ ! -f "$PKI/sa.key" ]]; then
	# Service-account tokens: RSA, the one key type every client verifies.
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
	openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
fi

# cert NAME SUBJECT EKU [SANS]: an EC key and a CA-signed certificate.
cert() {
	local name="$1" subj="$2" eku="$3" sans="${4:-}"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
	openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		echo "subjectKeyIdentifier=hash"
		echo "authorityKeyIdentifier=keyid"
		[[ -n "$sans" ]] && echo "subjectAltName=$sans"
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

params="node=$NODE ip=$HOST_IP"
if [[ "$(cat "$PKI/params" 2>/dev/null)" != "$params" ]]; then
	log "certificates for $params"
	cert apiserver "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE,IP:127.0.0.1,IP:$HOST_IP,IP:10.96.0.1"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
	cert controller-manager "/CN=system:kube-controller-manager" clientAuth
	cert scheduler "/CN=system:kube-scheduler" clientAuth
	cert kube-proxy "/CN=system:kube-proxy" clientAuth
	# The Node authorizer knows a kubelet by this name and group.
	cert kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
	cert kubelet-serving "/CN=$NODE" serverAuth "DNS:$NODE,IP:$HOST_IP,IP:127.0.0.1"
	echo "$params" >"$PKI/params"
fi

# kubeconfig FILE CERTNAME: a kubeconfig for the local apiserver.
kubeconfig() {
	local b64="base64 -w0"
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: raftlab
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$PKI/$2.crt")
    client-key-data: $($b64 <"$PKI/$2.key")
contexts:
- name: raftlab
  context:
    cluster: raftlab
    user: $2
current-context: raftlab
EOF
	chmod 600 "$1"
}
for c in controller-manager scheduler kube-proxy kubelet; do kubeconfig "$STATE/config/$c.kubeconfig" "$c"; done
kubeconfig "$KUBECONFIG_ADMIN" admin
cat >"$STATE/config/crictl.yaml" <<EOF
runtime-endpoint: unix://$CTRD_SOCK
image-endpoint: unix://$CTRD_SOCK
timeout: 20
EOF
log "PKI and kubeconfigs ready in $((SECONDS - t))s"

# ---------------------------------------------------------------------------
# Processes

# start NAME BINARY ARGS...: start a component in its own session, its
# output in $LOGS/NAME.log, "PID EXE" in $RUN/NAME.pid (cluster-down kills
# only a PID whose /proc/PID/exe is still EXE).
start() {
	local name="$1" bin="$2" exe
	shift 2
	exe="$(readlink -f "$bin")"
	[[ -x "$exe" ]] || die "$bin is not an executable"
	setsid "$bin" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
	echo "$! $exe" >"$RUN/$name.pid"
}

# wait_for SECONDS NAME WHAT CMD...: until_deadline, and on time-out the
# component's log tail and a hint.
wait_for() {
	local secs="$1" name="$2" what="$3"
	shift 3
	until_deadline "$secs" "$what" "$@" && return 0
	if [[ -z "$(pid_of "$name")" ]]; then log "$name exited"; fi
	tail -n 20 "$LOGS/$name.log" >&2 || true
	die "$name: not ready after ${secs}s (log: $LOGS/$name.log); clean up with hack/cluster-down.sh"
}

# containerd, with everything under $CTRD. restrict_oom_score_adj: this VM
# withholds CAP_SYS_RESOURCE, so runc cannot give the pause container the
# oom_score_adj -998 the CRI asks for, and every sandbox would fail with
# "can't get final child's PID from pipe"; the switch clamps it to
# containerd's own score.
cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
EOF
cat >"$CNI_CONF_DIR/10-raftlab.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$CNI_IPAM_DIR"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
start containerd "$(command -v containerd)" --config "$CTRD/config.toml"
wait_for 30 containerd "containerd up" ctr_ version

# Images: a Go pause and CoreDNS, FROM scratch, built by cmd/mkimage and
# imported straight into containerd (no registry to pull from). In the
# background while etcd and the apiserver start; kubelet waits for it.
images() {
	local t=$SECONDS
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$STATE/images/mkimage" ./cmd/mkimage) ||
		die "go build ./cmd/mkimage failed (if go says 'updates to go.mod needed', go.mod needs go mod tidy)"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$STATE/images/pause" ./hack/pause) ||
		die "go build ./hack/pause failed"
	"$STATE/images/mkimage" --binary "$STATE/images/pause" --name "$PAUSE_IMAGE" --out "$STATE/images/pause.tar" >/dev/null
	"$STATE/images/mkimage" --binary "$BIN/coredns" --name "$COREDNS_IMAGE" --out "$STATE/images/coredns.tar" >/dev/null
	ctr_ images import "$STATE/images/pause.tar" >/dev/null
	ctr_ images import "$STATE/images/coredns.tar" >/dev/null
	log "images $PAUSE_IMAGE and $COREDNS_IMAGE built and imported in $((SECONDS - t))s"
}
images &
images_job=$!

# etcd on loopback only, on its own ports. --unsafe-no-fsync: a throwaway
# test cluster whose state cluster-down deletes; fsync would only slow the
# apiserver on a shared disk.
start etcd "$BIN/etcd" --name raftlab --data-dir "$STATE/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "raftlab=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
wait_for 30 etcd "etcd up" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN/kube-apiserver" \
	--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
	--bind-address=0.0.0.0 --secure-port="$APISERVER_PORT" --advertise-address="$HOST_IP" \
	--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
	--client-ca-file="$PKI/ca.crt" \
	--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
	--allow-privileged=true --profiling=false
wait_for 60 kube-apiserver "kube-apiserver ready" apiserver_ready

start kube-controller-manager "$BIN/kube-controller-manager" \
	--kubeconfig="$STATE/config/controller-manager.kubeconfig" \
	--authentication-kubeconfig="$STATE/config/controller-manager.kubeconfig" \
	--authorization-kubeconfig="$STATE/config/controller-manager.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false \
	--root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
	--cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
	--use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
	--profiling=false
start kube-scheduler "$BIN/kube-scheduler" \
	--kubeconfig="$STATE/config/scheduler.kubeconfig" \
	--authentication-kubeconfig="$STATE/config/scheduler.kubeconfig" \
	--authorization-kubeconfig="$STATE/config/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --profiling=false

# kubelet. cgroupfs: there is no systemd. failCgroupV1: false: this host is
# cgroup v1, which kubelet >= 1.35 refuses by default. Low eviction
# thresholds and no image GC: a small shared VM whose images cannot be
# pulled back once removed.
resolv=/etc/resolv.conf
[[ -f /run/systemd/resolve/resolv.conf ]] && resolv=/run/systemd/resolve/resolv.conf
cat >"$STATE/config/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: "unix://$CTRD_SOCK"
clusterDomain: cluster.local
clusterDNS: ["$DNS_IP"]
resolvConf: "$resolv"
failSwapOn: false
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podLogsDir: "$POD_LOGS"
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
wait "$images_job" || die "building or importing the pause and CoreDNS images failed"
touch "$RUN/kubepods-ours" # our kubelet makes the kubepods cgroups (checked free above)
start kubelet "$BIN/kubelet" --config="$STATE/config/kubelet.yaml" \
	--kubeconfig="$STATE/config/kubelet.kubeconfig" --root-dir="$KUBELET_DIR" \
	--hostname-override="$NODE" --node-ip="$HOST_IP"

# kube-proxy in iptables mode (the kernel has no IPVS). maxPerCore 0: leave
# the conntrack table size alone.
cat >"$STATE/config/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/config/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: "$CLUSTER_CIDR"
hostnameOverride: "$NODE"
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
start kube-proxy "$BIN/kube-proxy" --config="$STATE/config/kube-proxy.yaml"
wait_for 90 kubelet "node $NODE Ready" node_ready

# ---------------------------------------------------------------------------
# Cluster contents: local PVs with a default StorageClass, CoreDNS.

{
	cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: raftlab-local
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
	for ((i = 0; i < PV_COUNT; i++)); do
		d="$PV_DIR/pv$(printf %02d "$i")"
		mkdir -p "$d" && chmod 0777 "$d" # any pod UID may write
		cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: raftlab-pv$(printf %02d "$i")
  labels: {raftlab.dev/local-pv: "true"}
spec:
  capacity: {storage: $PV_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: raftlab-local
  volumeMode: Filesystem
  local: {path: "$d"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: ["$NODE"]}
EOF
	done
} >"$STATE/manifests/storage.yaml"

# CoreDNS. TTLs of 5 s, not kubeadm's 30: a name looked up before its pod
# existed (a StatefulSet's peers, at start) is cached as NXDOMAIN for the
# TTL, and test clusters come and go all the time.
cat >"$STATE/manifests/coredns.yaml" <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 2s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        prometheus :9153
        forward . /etc/resolv.conf
        cache 5
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 50Mi}
          limits: {memory: 170Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 10
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap:
          name: coredns
          items: [{key: Corefile, path: Corefile}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
EOF
kc apply -f "$STATE/manifests/storage.yaml" -f "$STATE/manifests/coredns.yaml" >/dev/null

# The PV recycler: offers Released PVs again (see the script).
start pv-recycler "$(command -v bash)" "$REPO/hack/cluster-pv-recycler.sh"

# dns_answers: CoreDNS, through the Service IP (so kube-proxy too), answers
# an A query for kubernetes.default.svc.cluster.local with 10.96.0.1. A raw
# UDP query from bash: no dig on a minimal host.
dns_answers() {
	local q="" label
	local -a labels
	IFS=. read -ra labels <<<"kubernetes.default.svc.cluster.local"
	for label in "${labels[@]}"; do q+="$(printf '\\x%02x' "${#label}")$label"; done
	# id 0x5241, RD, one question; QTYPE A, QCLASS IN. $1 and $2 are the
	# inner shell's arguments. dd sends the query in one write (one
	# datagram): printf alone may write it in pieces.
	# shellcheck disable=SC2016
	timeout 3 bash -c 'exec 3<>"/dev/udp/$1/53" && printf "$2" | dd bs=4096 iflag=fullblock status=none >&3 && dd bs=512 count=1 status=none <&3 | od -An -tx1 -v' \
		_ "$DNS_IP" "\\x52\\x41\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00${q}\\x00\\x00\\x01\\x00\\x01" |
		tr -d ' \n' | grep -Eq '^5241[89a-f].[0-9a-f]0.*0a600001$' # a response, rcode 0, answer 10.96.0.1
}
default_sa() { kc -n default get serviceaccount default; }
wait_for 120 kubelet "CoreDNS available" kc -n kube-system rollout status deployment/coredns --timeout=5s
wait_for 60 kube-proxy "CoreDNS answers at $DNS_IP" dns_answers
wait_for 30 kube-controller-manager "" default_sa

log "cluster up in $((SECONDS - T0))s: node $NODE ($HOST_IP), Kubernetes v$K8S_VERSION"
log "state $STATE, logs $LOGS, PIDs $RUN; images in: hack/cluster-load-image.sh FILE.tar"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
