#!/usr/bin/env bash
# hack/cluster-smoke.sh [--keep]: a smoke test of the cluster of
# hack/cluster-up.sh with raft-kv itself: import bin/images/raft-kv.tar
# (make images), run a 3-replica StatefulSet on raftlab-local PVs in the
# namespace raftlab-smoke, and check that
#   - all three pods become Ready (volumes bound, peers found through DNS),
#   - a leader is elected (GET /admin/status on each pod IP, from the host),
#   - a PUT then a GET go through kubectl port-forward and a ClusterIP Service,
# then delete the namespace and wait until the recycler has made the PVs
# Available again. --keep leaves the StatefulSet running.
set -euo pipefail
LOG_PREFIX=cluster-smoke
# shellcheck source=hack/cluster-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

keep=false
[[ "${1:-}" == --keep ]] && keep=true
NS=raftlab-smoke
IMAGE="${KV_IMAGE:-localhost/raft-kv:dev}"
TAR="${KV_TAR:-$REPO/bin/images/raft-kv.tar}"
need_root
[[ -f "$KUBECONFIG_ADMIN" ]] || die "no $KUBECONFIG_ADMIN: make cluster-up"
[[ -f "$TAR" ]] || die "no $TAR: make images"
T0=$SECONDS

"$REPO/hack/cluster-load-image.sh" "$TAR"

peers="kv-0=kv-0.kv.$NS.svc.cluster.local:7000,kv-1=kv-1.kv.$NS.svc.cluster.local:7000,kv-2=kv-2.kv.$NS.svc.cluster.local:7000"
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
---
# Headless, publishing not-ready pods: peers must find each other before
# any of them is Ready (there is no leader, hence no readiness, before).
apiVersion: v1
kind: Service
metadata: {name: kv, namespace: $NS}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: kv}
  ports:
  - {name: peer, port: 7000}
  - {name: client, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: kv-client, namespace: $NS}
spec:
  selector: {app: kv}
  ports:
  - {name: client, port: 8080}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv, namespace: $NS}
spec:
  serviceName: kv
  replicas: 3
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: kv}
  template:
    metadata:
      labels: {app: kv}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: raft-kv
        image: $IMAGE
        imagePullPolicy: IfNotPresent
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - {name: RAFT_KV_PEERS, value: "$peers"}
        - {name: RAFT_KV_DATA_DIR, value: /data}
        - {name: RAFT_KV_CLIENT_ADDR, value: ":8080"}
        - {name: RAFT_KV_PEER_ADDR, value: ":7000"}
        - {name: RAFT_KV_ADMIN_ADDR, value: ":9090"}
        - {name: RAFT_KV_ADVERTISE_CLIENT, value: "\$(POD_NAME).kv.$NS.svc.cluster.local:8080"}
        ports:
        - {name: client, containerPort: 8080}
        - {name: peer, containerPort: 7000}
        - {name: admin, containerPort: 9090}
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
          periodSeconds: 2
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: raftlab-local
      resources:
        requests: {storage: 1Gi}
EOF
t=$SECONDS
kc -n "$NS" rollout status statefulset/kv --timeout=180s >/dev/null ||
	{ kc -n "$NS" get pods,pvc -o wide >&2; die "StatefulSet kv not Ready after 180s"; }
log "StatefulSet kv 3/3 Ready in $((SECONDS - t))s"

# A leader, the same one seen by every member, from the pods' admin planes.
leaders=()
for i in 0 1 2; do
	ip="$(kc -n "$NS" get pod "kv-$i" -o jsonpath='{.status.podIP}')"
	st="$(curl -fsS --max-time 3 "http://$ip:9090/admin/status")" || die "GET http://$ip:9090/admin/status failed"
	leaders+=("$(jq -r .leader <<<"$st")")
	log "kv-$i ($ip): $(jq -r '"\(.state) term \(.term) leader \(.leader) config \(.config_text)"' <<<"$st")"
done
[[ -n "${leaders[0]}" && "${leaders[0]}" == "${leaders[1]}" && "${leaders[1]}" == "${leaders[2]}" ]] ||
	die "members disagree on the leader: ${leaders[*]}"
log "leader ${leaders[0]}"

# PUT through a port-forward to kv-1, GET through the ClusterIP Service.
kc -n "$NS" port-forward pod/kv-1 18080:8080 >"$LOGS/smoke-port-forward.log" 2>&1 &
pf=$!
trap 'kill "$pf" 2>/dev/null || true' EXIT
until_deadline 15 "" curl -fsS --max-time 1 http://127.0.0.1:18080/healthz || die "port-forward to kv-1 not ready"
val="smoke-$RANDOM"
curl -fsS --max-time 5 -L -X PUT -d "{\"value\":\"$val\"}" http://127.0.0.1:18080/kv/smoke >/dev/null ||
	die "PUT /kv/smoke through the port-forward failed"
svc="$(kc -n "$NS" get service kv-client -o jsonpath='{.spec.clusterIP}')"
got="$(curl -fsS --max-time 5 "http://$svc:8080/kv/smoke")" || die "GET http://$svc:8080/kv/smoke failed"
[[ "$got" == *"$val"* ]] || die "GET /kv/smoke answered $got, want $val"
log "PUT via port-forward, GET via Service $svc: $got"
kill "$pf" 2>/dev/null || true

if $keep; then
	log "passed in $((SECONDS - T0))s; kept namespace $NS"
	exit 0
fi
# The PVs our claims hold (others may use the cluster at the same time).
mapfile -t pvs < <(kc -n "$NS" get pvc -o jsonpath='{range .items[*]}{.spec.volumeName}{"\n"}{end}')
t=$SECONDS
kc delete namespace "$NS" --timeout=120s >/dev/null
available() {
	local pv
	for pv in "${pvs[@]}"; do
		[[ "$(kc get pv "$pv" -o jsonpath='{.status.phase}')" == Available ]] || return 1
	done
}
until_deadline 60 "" available || die "PVs ${pvs[*]} not all Available 60s after deleting $NS"
log "namespace deleted and PVs ${pvs[*]} recycled in $((SECONDS - t))s"
log "passed in $((SECONDS - T0))s"
