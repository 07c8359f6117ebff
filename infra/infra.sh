#!/usr/bin/env bash
# Ferry local infrastructure: Redis, OCI registries (primary + one per region),
# locally built base/stack/app images, and two real Kubernetes clusters
# (eu-west, us-east) built from the k8s.io/kubernetes Go module.
#
#   infra/infra.sh up [redis|registries|images|k8s|sentinel ...] [--proxy REGION]
#                              (sentinel: Redis primary + 2 replicas + 3 sentinels,
#                              infra/lib/sentinel.sh; only when named)
#   infra/infra.sh down [sentinel]  stop everything this script started (by pid),
#                              or only the sentinel part
#   infra/infra.sh status      what runs, where
#   infra/infra.sh check [component...]  exit 0 if all of them run
#   infra/infra.sh env         print $FERRY_RUN_DIR/env.sh
#   infra/infra.sh clean       down + delete runtime state (not the build cache)
#
# Build cache: ${FERRY_CACHE:-$HOME/.cache/ferry} (keyed by version)
# Runtime:     ${FERRY_RUN_DIR:-$FERRY_CACHE/run} (pids, data, logs, certs)
set -Eeuo pipefail

INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${FERRY_CACHE:-$HOME/.cache/ferry}
RUN=${FERRY_RUN_DIR:-$CACHE/run}
export FERRY_CACHE=$CACHE FERRY_RUN_DIR=$RUN

K8S_VERSION=1.34.4         # k8s.io/kubernetes v1.34.4, staging modules v0.34.4
ETCD_VERSION=3.6.4         # go.etcd.io/etcd/server/v3, as required by k8s 1.34.4
PAUSE_TAG=3.10
IMAGES_TAG=1               # tag of ferry/base and ferry/stack-shell
REDIS_PORT=6390
PRIMARY_PORT=5000
REGIONS=(eu-west us-east)
declare -A REGION_PORT=([eu-west]=5001 [us-east]=5002)
# per-cluster layout: etcd client/peer, apiserver, controller-manager, scheduler,
# kubelet, kubelet healthz, node (bridge gateway) network
declare -A ETCD_PORT=([eu-west]=2379 [us-east]=2389)
declare -A ETCD_PEER_PORT=([eu-west]=2380 [us-east]=2390)
declare -A API_PORT=([eu-west]=6443 [us-east]=6444)
declare -A KCM_PORT=([eu-west]=10257 [us-east]=10357)
declare -A SCHED_PORT=([eu-west]=10259 [us-east]=10359)
declare -A KUBELET_PORT=([eu-west]=10250 [us-east]=10350)
declare -A KUBELET_HEALTHZ=([eu-west]=10248 [us-east]=10348)
declare -A POD_NET=([eu-west]=10.88 [us-east]=10.89)
declare -A BRIDGE=([eu-west]=ferry-eu0 [us-east]=ferry-us0)
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1

K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
LOGS=$RUN/logs
PIDS=$RUN/pids

# ----------------------------------------------------------- components --
# One file per component, each defining idempotent functions (up_<component>
# and what it needs); `up` runs up_<component> for each component named.
# New components: add infra/lib/<component>.sh and its name to this list.
# Optional components (only when named): sentinel, prometheus (issue 18), synapse (issue 19);
# node-cpu: the local nodes' CPU weight, applied at the end of up_k8s (issue 16).
for part in common sentinel prometheus synapse node-cpu redis registries images k8s env down status; do
  # shellcheck source=/dev/null
  source "$INFRA_DIR/lib/$part.sh"
done
unset part

# ----------------------------------------------------------------- main --
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

main() {
  local cmd=${1:-}
  shift || true
  mkdir -p "$RUN" "$LOGS" "$PIDS"
  case $cmd in
    up)
      local comps=() a
      PROXY_REGION=
      while (($#)); do
        a=$1
        shift
        case $a in
          --proxy) PROXY_REGION=${1:?--proxy needs a region (or none)}; shift ;;
          --proxy=*) PROXY_REGION=${a#--proxy=} ;;
          redis | registries | images | k8s | sentinel | prometheus | synapse) comps+=("$a") ;;
          *) die "unknown component '$a' (redis, registries, images, k8s, sentinel, prometheus, synapse)" ;;
        esac
      done
      if [[ -n $PROXY_REGION && $PROXY_REGION != none && -z ${REGION_PORT[$PROXY_REGION]:-} ]]; then
        die "unknown region for --proxy: $PROXY_REGION (${REGIONS[*]})"
      fi
      ((${#comps[@]})) || comps=(redis registries images k8s)
      exec 9>"$RUN/.lock"
      flock -w 3600 9 || die "another infra.sh holds $RUN/.lock"
      local t0=$SECONDS c
      [[ " ${comps[*]} " == *" k8s "* ]] && build_k8s_start
      for c in "${comps[@]}"; do "up_$c"; done
      write_env
      log "up (${comps[*]}) done in $((SECONDS - t0))s; env: $RUN/env.sh, $RUN/infra.json"
      ;;
    down)
      exec 9>"$RUN/.lock"
      flock -w 600 9 || die "another infra.sh holds $RUN/.lock"
      case ${1:-} in
        sentinel | prometheus | synapse) "down_$1" ;; # one optional component
        *) down ;;
      esac
      ;;
    clean)
      exec 9>"$RUN/.lock"
      flock -w 600 9 || die "another infra.sh holds $RUN/.lock"
      down
      rm -rf "$RUN"
      log "removed $RUN"
      ;;
    check)
      # exit 0 when every named component (default: all) runs and infra.json
      # exists; waits for a concurrent up/down to finish first
      exec 9>"$RUN/.lock"
      flock -s -w 3600 9 || die "another infra.sh holds $RUN/.lock"
      [[ -f $RUN/infra.json ]] || exit 1
      local c
      (($#)) || set -- redis registries images k8s
      for c in "$@"; do component_up "$c" || exit 1; done
      ;;
    status) status ;;
    env)
      [[ -f $RUN/env.sh ]] || die "no $RUN/env.sh yet: run infra/infra.sh up"
      cat "$RUN/env.sh"
      ;;
    -h | --help | help | "") usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
