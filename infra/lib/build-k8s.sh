#!/usr/bin/env bash
# Build Kubernetes v$K8S_VERSION + etcd from Go modules into $1 (bin dir).
# Usage: build-k8s.sh OUT_BIN_DIR   (env: K8S_VERSION, FERRY_CACHE)
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")/../k8s" && pwd)
: "${K8S_VERSION:?}"
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
export GOCACHE="${FERRY_CACHE:-$HOME/.cache/ferry}/go-build"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" GOTOOLCHAIN=auto
date_=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date_ -X $p.gitCommit=0000000000000000000000000000000000000000"
done
tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
cd "$here"
start=$(date +%s)
go build -trimpath -ldflags "$ld" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kubectl \
  go.etcd.io/etcd/server/v3 \
  ./cmd/cri-reset
# a "vN" module path names its binary after the previous path element
mv "$tmp/server" "$tmp/etcd"
echo "$(( $(date +%s) - start ))" > "$tmp/.build-seconds"
rm -rf "$out"; mv "$tmp" "$out"
