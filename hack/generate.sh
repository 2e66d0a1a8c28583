#!/usr/bin/env bash
# hack/generate.sh [generate|verify]
#
# generate (make generate): runs controller-gen (pinned in go.mod as a tool)
# over operator/ and writes
#   operator/api/*/zz_generated.deepcopy.go   DeepCopy* (object)
#   config/crd/bases/*.yaml                   the CRDs (crd)
#   config/rbac/role.yaml                     ClusterRole raft-operator from the
#                                             +kubebuilder:rbac markers (rbac)
# Every generated file starts with hack/boilerplate.{go,yaml}.txt.
#
# verify (make verify-generated, part of make lint): regenerates in a copy of
# the work tree (in a temp dir) and fails, naming each file, when a generated
# file in the work tree is stale, missing or no longer generated. The work
# tree is not touched. A tree that already passed is remembered by a hash of
# everything the output depends on (the non-test Go files of every package of
# this module that ./operator/... imports, go.mod, go.sum, the headers, this
# script, the generated files and the Go version), so a second run with
# nothing changed costs a go list and a sha256sum (~0.3 s) instead of
# controller-gen (~5 s warm). The marks live in
# ${RAFTLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftlab}/verify-generated/;
# RAFTLAB_VERIFY_NOCACHE=1 ignores them.
set -euo pipefail

cd "$(dirname "$0")/.."
GO="${GO:-go}"
MODULE=github.com/raftlab/raftlab
CACHE="${RAFTLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/raftlab}"

die() { printf 'generate: %s\n' "$*" >&2; exit 1; }

# gen DIR: the generators, run in DIR (the work tree or a copy of it).
gen() {
	(
		cd "$1"
		"$GO" tool controller-gen \
			object:headerFile=hack/boilerplate.go.txt \
			crd:headerFile=hack/boilerplate.yaml.txt \
			paths=./operator/api/... \
			output:crd:artifacts:config=config/crd/bases
		# rbac reads the markers of the controller too. Without any marker it
		# writes nothing: no role.yaml.
		"$GO" tool controller-gen \
			rbac:roleName=raft-operator,headerFile=hack/boilerplate.yaml.txt \
			paths=./operator/... \
			output:rbac:artifacts:config=config/rbac
	)
}

# generated DIR: the generated files under DIR, relative to it, sorted.
generated() {
	(
		cd "$1"
		{
			[[ -d config/crd/bases ]] && find config/crd/bases -type f -name '*.yaml'
			[[ -f config/rbac/role.yaml ]] && echo config/rbac/role.yaml
			find operator -type f -name 'zz_generated.*.go'
		} | LC_ALL=C sort
	)
}

# tree_files: the work tree's files (tracked and untracked, not ignored), NUL
# separated; without git, everything but .git, bin and results.
tree_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z -c -o --exclude-standard | while IFS= read -r -d '' f; do
			[[ -f "$f" ]] && printf '%s\0' "$f"
		done
	else
		find . \( -path ./.git -o -path ./bin -o -path ./results \) -prune -o -type f -printf '%P\0'
	fi
}

# key: a hash of everything the generated files depend on, and of them.
key() {
	local dirs
	dirs="$("$GO" list -e -deps -f '{{with .Module}}{{if eq .Path "'"$MODULE"'"}}{{$.Dir}}{{end}}{{end}}' ./operator/...)"
	{
		"$GO" env GOVERSION
		# shellcheck disable=SC2086 # one dir a line, no spaces in this repo
		for d in $dirs; do
			find "$d" -maxdepth 1 -type f -name '*.go' ! -name '*_test.go'
		done | LC_ALL=C sort
		printf '%s\n' go.mod go.sum hack/boilerplate.go.txt hack/boilerplate.yaml.txt hack/generate.sh
		generated .
	} | while IFS= read -r f; do
		if [[ -f "$f" ]]; then printf '%s\n' "$f"; sha256sum <"$f"; else printf '%s\n' "$f"; fi
	done | sha256sum | cut -d' ' -f1
}

verify() {
	local k="" marks="$CACHE/verify-generated"
	if [[ "${RAFTLAB_VERIFY_NOCACHE:-}" != 1 ]]; then
		k="$(key)"
		if [[ -e "$marks/$k" ]]; then
			echo "verify-generated: up to date (this tree passed before; RAFTLAB_VERIFY_NOCACHE=1 to regenerate anyway)"
			return 0
		fi
	fi

	local tmp
	tmp="$(mktemp -d "${TMPDIR:-/tmp}/raftlab-verify-generated.XXXXXX")"
	# shellcheck disable=SC2064 # expand now
	trap "rm -rf '$tmp'" EXIT
	tree_files | tar --null -T - -cf - | tar -xf - -C "$tmp"
	# Generate from scratch, so that a file no longer generated shows.
	generated "$tmp" | (cd "$tmp" && xargs -r rm -f)
	gen "$tmp" || die "controller-gen failed (above); fix the markers, then run make generate"

	local -a want have
	mapfile -t want < <(generated "$tmp")
	mapfile -t have < <(generated .)
	local f bad=0
	for f in "${want[@]}"; do
		if [[ ! -f "$f" ]]; then
			echo "verify-generated: $f is missing: run make generate" >&2
			bad=1
		elif ! cmp -s "$f" "$tmp/$f"; then
			echo "verify-generated: $f is stale (differs from what the markers generate): run make generate" >&2
			diff -u --label "$f (work tree)" --label "$f (generated)" "$f" "$tmp/$f" | head -n 40 >&2 || true
			bad=1
		fi
	done
	for f in "${have[@]}"; do
		if [[ ! -f "$tmp/$f" ]]; then
			echo "verify-generated: $f is not generated any more: delete it" >&2
			bad=1
		fi
	done
	if [[ $bad != 0 ]]; then
		echo "verify-generated: FAILED: the generated files above do not match the markers; run make generate and commit the result" >&2
		return 1
	fi
	echo "verify-generated: ${#want[@]} generated files up to date"
	if [[ -n "$k" ]]; then
		mkdir -p "$marks"
		touch "$marks/$k"
		# Keep the 50 newest marks.
		find "$marks" -maxdepth 1 -type f -printf '%T@ %p\n' | LC_ALL=C sort -rn | tail -n +51 | cut -d' ' -f2- | xargs -r rm -f
	fi
}

case "${1:-generate}" in
generate) gen . ;;
verify) verify ;;
-h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown mode '$1' (want generate or verify)" ;;
esac
