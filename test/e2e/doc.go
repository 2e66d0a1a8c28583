// Package e2e is the operator's end-to-end suite, on a real Kubernetes
// through sigs.k8s.io/e2e-framework: the cluster `make cluster-up` starts
// on this machine, or any cluster (kind on a laptop) that has the raft-kv
// and raft-operator images and the operator deployed (`make deploy`).
//
// `make e2e` brings the cluster up if there is none, builds and imports the
// images, deploys the operator and runs the suite with
// RAFTLAB_E2E_KUBECONFIG set. Without it the tests skip (so `go test ./...`
// needs no cluster), unless RAFTLAB_REQUIRE_E2E=1 makes that a failure.
//
// The suite reaches pods by their IPs and Services by their cluster IPs
// from where it runs: true on the single-node cluster here (the host is on
// the pod bridge and runs kube-proxy); on kind, run it from inside the
// node's network or through port-forwards.
package e2e
