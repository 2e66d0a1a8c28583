// Command mkimage writes a container image without Docker, a Dockerfile or
// a registry: one layer, FROM scratch, holding a single static binary (mode
// 0755) and an empty /tmp (mode 1777), with the binary as the entrypoint.
// The output is a docker-archive tarball (manifest.json with RepoTags),
// which all of these accept:
//
//	ctr -n k8s.io images import FILE.tar      (containerd; hack/cluster-load-image.sh)
//	docker load -i FILE.tar
//	kind load image-archive FILE.tar
//
// Usage:
//
//	mkimage --binary bin/raft-kv --name localhost/raft-kv:dev --out bin/images/raft-kv.tar \
//	        [--entrypoint /raft-kv] [--env K=V]... [--arg A]...
//
// The binary must be a statically linked ELF file (build it with
// CGO_ENABLED=0): a FROM-scratch image has no libc or dynamic loader, so a
// dynamically linked one would fail at start with a bare "no such file or
// directory". The image's architecture is read from the ELF header.
//
// The output is reproducible: file times are the Unix epoch and the config
// has no creation time, so the same binary and flags give the same image ID.
// The output file appears through a rename, never half written.
//
// Use a tag other than "latest" (for example :dev) and, in pods,
// imagePullPolicy IfNotPresent or Never: there is no registry to pull from.
//
// Exit codes: 0 written (or --help), 1 the build failed, 2 bad flags.
package main
