# shellcheck shell=bash
# env.sh and infra.json (what tests and `ferry start` read), and which components run (check).
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

# ------------------------------------------------------- env / json --
write_env() {
  local proxy_region
  proxy_region=$(cat "$RUN/registries/proxy-region" 2>/dev/null || echo none)
  [[ $proxy_region == none ]] && proxy_region=
  cat >"$RUN/env.sh.tmp" <<EOF
export FERRY_CACHE=$CACHE
export FERRY_RUN_DIR=$RUN
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export FERRY_REGISTRY_PRIMARY=127.0.0.1:$PRIMARY_PORT
export FERRY_REGISTRY_EU_WEST=127.0.0.1:${REGION_PORT[eu-west]}
export FERRY_REGISTRY_US_EAST=127.0.0.1:${REGION_PORT[us-east]}
export FERRY_REGISTRY_PROXY_REGION=${proxy_region}
export FERRY_REGIONS=$(
    IFS=,
    echo "${REGIONS[*]}"
  )
export KUBECONFIG=$RUN/kubeconfig
export FERRY_KUBE_CONTEXT_EU_WEST=eu-west
export FERRY_KUBE_CONTEXT_US_EAST=us-east
export FERRY_KUBECTL=$K8S_BIN/kubectl
export FERRY_STACK_IMAGE=127.0.0.1:$PRIMARY_PORT/ferry/stack-shell:$IMAGES_TAG
export FERRY_BASE_IMAGE=127.0.0.1:$PRIMARY_PORT/ferry/base:$IMAGES_TAG
export FERRY_SAMPLE_APP_REPO=$CACHE/repos/hello-app
export FERRY_SAMPLE_APP_IMAGE=127.0.0.1:$PRIMARY_PORT/ferry/hello-app
EOF
  mv "$RUN/env.sh.tmp" "$RUN/env.sh"
  local comps=() c
  for c in redis registries images k8s; do component_up "$c" && comps+=("\"$c\""); done
  local pr=null
  [[ -n $proxy_region ]] && pr="\"$proxy_region\""
  local node_eu node_us build_s=null
  node_eu=$(node_name eu-west) node_us=$(node_name us-east)
  [[ -f $K8S_BIN/.build-seconds ]] && build_s=$(<"$K8S_BIN/.build-seconds")
  cat >"$RUN/infra.json.tmp" <<EOF
{
  "version": 1,
  "cacheDir": "$CACHE",
  "runDir": "$RUN",
  "components": [$(IFS=,; echo "${comps[*]}")],
  "redis": { "url": "redis://127.0.0.1:$REDIS_PORT", "port": $REDIS_PORT },
  "registries": {
    "primary": "127.0.0.1:$PRIMARY_PORT",
    "regions": { "eu-west": "127.0.0.1:${REGION_PORT[eu-west]}", "us-east": "127.0.0.1:${REGION_PORT[us-east]}" },
    "proxyRegion": $pr,
    "insecure": true
  },
  "images": {
    "pause": "127.0.0.1:$PRIMARY_PORT/ferry/pause:$PAUSE_TAG",
    "base": "127.0.0.1:$PRIMARY_PORT/ferry/base:$IMAGES_TAG",
    "stack": "127.0.0.1:$PRIMARY_PORT/ferry/stack-shell:$IMAGES_TAG",
    "sampleApp": { "repo": "$CACHE/repos/hello-app", "image": "127.0.0.1:$PRIMARY_PORT/ferry/hello-app", "tags": ["v1", "v2", "v3", "v4"] }
  },
  "kubernetes": {
    "version": "v$K8S_VERSION",
    "etcdVersion": "v$ETCD_VERSION",
    "coldBuildSeconds": $build_s,
    "kubeconfig": "$RUN/kubeconfig",
    "kubectl": "$K8S_BIN/kubectl",
    "contexts": {
      "eu-west": { "context": "eu-west", "server": "https://127.0.0.1:${API_PORT[eu-west]}", "node": "$node_eu", "nodeIP": "$(node_ip eu-west)", "cgroupRoot": "$(cgroup_root eu-west)", "containerdSocket": "$RUN/k8s/eu-west/containerd/containerd.sock", "podLogsDir": "$RUN/k8s/eu-west/pod-logs" },
      "us-east": { "context": "us-east", "server": "https://127.0.0.1:${API_PORT[us-east]}", "node": "$node_us", "nodeIP": "$(node_ip us-east)", "cgroupRoot": "$(cgroup_root us-east)", "containerdSocket": "$RUN/k8s/us-east/containerd/containerd.sock", "podLogsDir": "$RUN/k8s/us-east/pod-logs" }
    }
  },
  "envFile": "$RUN/env.sh"
}
EOF
  mv "$RUN/infra.json.tmp" "$RUN/infra.json"
}

component_up() {
  local r n
  case $1 in
    redis) pid_of redis >/dev/null ;;
    registries)
      for n in primary "${REGIONS[@]}"; do pid_of "registry-$n" >/dev/null || return 1; done
      ;;
    images) [[ -f $CACHE/images-$(images_key)/.done ]] ;;
    sentinel) sentinel_up ;;
    prometheus) prometheus_up ;;
    synapse) synapse_up ;;
    k8s)
      for r in "${REGIONS[@]}"; do
        for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet; do
          pid_of "$n-$r" >/dev/null || return 1
        done
      done
      ;;
    *) return 1 ;;
  esac
}
