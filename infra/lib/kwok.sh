#!/usr/bin/env bash
# kwok (sigs.k8s.io/kwok): a controller that plays kubelet for fake nodes
# against a real kube-apiserver. Used by the scale bench (bench/scale/) so the
# real local clusters stay small. Built from its Go module like the local
# Kubernetes (infra/lib/build-k8s.sh): CGO off, trimmed, shared GOCACHE.
#
#   source infra/lib/kwok.sh; kwok_ensure        → prints the kwok binary path
#   bash infra/lib/kwok.sh                       → same, as a command
#   bash infra/lib/kwok.sh stages                → kwok's own "fast" stages, one YAML
#
# Env: KWOK_VERSION (default v0.8.0), FERRY_CACHE (default ~/.cache/ferry).
# The cold build time (seconds) is kept next to the binary in .build-seconds.

KWOK_VERSION=${KWOK_VERSION:-v0.8.0}

kwok_dir() { echo "${FERRY_CACHE:-$HOME/.cache/ferry}/kwok-$KWOK_VERSION"; }
kwok_bin() { echo "$(kwok_dir)/bin/kwok"; }
kwok_built() { [[ -x $(kwok_bin) ]]; }

# Idempotent: builds only when the binary is missing. Prints its path.
kwok_ensure() {
  if kwok_built; then kwok_bin; return 0; fi
  local dir out tmp start
  dir=$(kwok_dir)
  out=$dir/bin
  tmp=$out.tmp.$$
  rm -rf "$tmp"; mkdir -p "$tmp"
  start=$(date +%s)
  (
    export GOCACHE="${FERRY_CACHE:-$HOME/.cache/ferry}/go-build"
    export CGO_ENABLED=0 GOFLAGS="-buildvcs=false" GOTOOLCHAIN=auto GOBIN="$tmp"
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  ) || { rm -rf "$tmp"; return 1; }
  echo "$(( $(date +%s) - start ))" > "$tmp/.build-seconds"
  rm -rf "$out"; mv "$tmp" "$out"
  kwok_bin
}

# kwok alone changes nothing until it is given stages (what to do with a node or
# a pod, and when). Its module ships the "fast" ones kwokctl uses: nodes Ready at
# once, pods Running and Ready at once, completed and deleted like a kubelet.
# Prints them as one multi-document YAML, read from the module `go install` fetched.
kwok_stages() {
  local mod
  mod="$(GOFLAGS=-mod=mod go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  if [[ ! -d $mod ]]; then
    (cd /tmp && GOTOOLCHAIN=auto go mod download -x "sigs.k8s.io/kwok@$KWOK_VERSION" >&2) || return 1
  fi
  local f
  for f in node/fast/node-initialize.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo '---'
    cat "$mod/$f"
  done
}

if [[ ${BASH_SOURCE[0]} == "$0" && ${1:-} == stages ]]; then
  set -euo pipefail
  kwok_stages
  exit 0
fi

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  kwok_ensure
fi
