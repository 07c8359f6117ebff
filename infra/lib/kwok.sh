#!/usr/bin/env bash
# kwok (sigs.k8s.io/kwok): a controller that plays kubelet for fake nodes
# against a real kube-apiserver. Used by the scale bench (bench/scale/) so the
# real local clusters stay small. Built from its Go module like the local
# Kubernetes (infra/lib/build-k8s.sh): CGO off, trimmed, shared GOCACHE.
#
#   source infra/lib/kwok.sh; kwok_ensure        → prints the kwok binary path
#   bash infra/lib/kwok.sh                       → same, as a command
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

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  kwok_ensure
fi
