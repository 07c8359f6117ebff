# shellcheck shell=bash
# Prometheus for the analysis gates (Debian's `prometheus`, 2.42). It runs on
# the host, outside the clusters, and finds the app pods of every region
# through that region's API server, using the credentials of the region's
# kubeconfig context. Pod IPs on the clusters' bridges are reachable from the
# host, so it scrapes them directly.
#
# Debian builds Prometheus without kubernetes_sd_configs (its Kubernetes
# client libraries are not packaged; `promtool check config` says "field
# kubernetes_sd_configs not found"). So the discovery is a small loop of our
# own (prometheus-discovery): every 2 s it lists pods from each API server
# with kubectl and the region's minified kubeconfig, and writes a file_sd
# target list that Prometheus re-reads on change. With an upstream build, the
# same relabelling would be a kubernetes_sd_configs role: pod job.
#
#   infra/infra.sh up prometheus      (after k8s; only when named)
#   infra/infra.sh down prometheus
#
# Standalone (it needs only the kubeconfig written by the k8s component):
#   bash -c 'source infra/lib/prometheus.sh; up_prometheus'
#
# Sourced by infra.sh, which provides ensure_pkgs, start_bg, stop_procs,
# wait_until, port_free_or_ours, pid_of and log; the standalone form defines
# the few it needs.
#
# What is scraped: pods labelled app.kubernetes.io/managed-by=ferry (Ferry's
# rollouts) or annotated prometheus.io/scrape=true, on the port of the
# prometheus.io/port annotation (default 8080), path /metrics. Every series
# carries region, namespace, pod, app, env, track and version (the
# ferry.dev/version annotation Ferry puts on each pod template), which is
# what the gates select new and old pods by.

PROMETHEUS_PORT=${FERRY_PROMETHEUS_PORT:-9390}
# Short intervals: gates in tests judge a batch over seconds, not minutes.
PROMETHEUS_SCRAPE_INTERVAL=${FERRY_PROMETHEUS_SCRAPE_INTERVAL:-2s}
PROMETHEUS_KUBECTL=${FERRY_KUBECTL:-${K8S_BIN:-${FERRY_CACHE:-$HOME/.cache/ferry}/k8s-1.34.4/bin}/kubectl}

if ! declare -F log >/dev/null; then
  CACHE=${FERRY_CACHE:-$HOME/.cache/ferry}
  RUN=${FERRY_RUN_DIR:-$CACHE/run}
  LOGS=$RUN/logs
  PIDS=$RUN/pids
  log() { echo "$(date -u +%T) [prometheus] $*" >&2; }
  die() {
    log "ERROR: $1"
    [[ -n ${2:-} && -f $2 ]] && tail -20 "$2" >&2
    exit 1
  }
  pid_of() {
    local f=$PIDS/$1.pid pid
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$(<"$PIDS/$1.exe")")" ]] || return 1
    echo "$pid"
  }
  start_bg() {
    local name=$1 pid exe
    shift
    mkdir -p "$PIDS" "$LOGS"
    if pid=$(pid_of "$name"); then return 0; fi
    exe=$(command -v "$1")
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDS/$name.pid"
    echo "$exe" >"$PIDS/$name.exe"
    log "started $name (pid $!, log $LOGS/$name.log)"
  }
  stop_procs() {
    local name pid i
    for name in "$@"; do
      if pid=$(pid_of "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        log "stopped $name"
      fi
      rm -f "$PIDS/$name.pid" "$PIDS/$name.exe"
    done
  }
  port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  port_free_or_ours() {
    pid_of "$1" >/dev/null && return 0
    port_open "$2" || return 0
    die "port $2 is already in use by another process"
  }
  wait_until() {
    local secs=$1 what=$2 logf=$3 deadline
    shift 3
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what" "$logf"
      sleep 0.5
    done
  }
  ensure_pkgs() {
    local spec missing=()
    for spec in "$@"; do command -v "${spec%%:*}" >/dev/null || [[ -e ${spec%%:*} ]] || missing+=("${spec#*:}"); done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
      die "apt-get install ${missing[*]} failed" "$LOGS/apt.log"
  }
fi

# The regions' kubeconfig contexts, from the kubeconfig the k8s component wrote.
prometheus_contexts() {
  KUBECONFIG=$RUN/kubeconfig "$PROMETHEUS_KUBECTL" config get-contexts -o name
}

# Pod discovery for one region: the API server's pod list (with the region's
# kubeconfig credentials) as a file_sd target list. Kept to Ferry's pods and
# pods annotated prometheus.io/scrape=true; one target per pod, the port of
# prometheus.io/port (default 8080).
prometheus_discover_once() { # CONTEXT DIR
  local ctx=$1 d=$2 out
  out=$("$PROMETHEUS_KUBECTL" --kubeconfig "$d/kubeconfig-$ctx" --request-timeout=5s get pods -A -o json) || return 1
  jq --arg region "$ctx" '[.items[]
    | select(.status.phase == "Running" and (.status.podIP // "") != "" and .metadata.deletionTimestamp == null)
    | select(.metadata.labels["app.kubernetes.io/managed-by"] == "ferry" or .metadata.annotations["prometheus.io/scrape"] == "true")
    | {targets: ["\(.status.podIP):\(.metadata.annotations["prometheus.io/port"] // "8080")"],
       labels: {region: $region, namespace: .metadata.namespace, pod: .metadata.name,
                workload: (.metadata.labels["app.kubernetes.io/name"] // ""),
                app: (.metadata.labels["ferry.dev/app"] // ""),
                env: (.metadata.labels["ferry.dev/environment"] // ""),
                track: (.metadata.labels["ferry.dev/track"] // ""),
                version: (.metadata.annotations["ferry.dev/version"] // "")}}]' <<<"$out" >"$d/targets-$ctx.json.tmp" &&
    mv "$d/targets-$ctx.json.tmp" "$d/targets-$ctx.json"
}

# The discovery loop (a daemon of its own): file_sd picks up each rewrite at once (inotify).
prometheus_discover_loop() { # DIR INTERVAL_SECONDS
  local d=$1 every=$2 ctx
  for (( ; ; )); do
    for ctx in $(prometheus_contexts); do prometheus_discover_once "$ctx" "$d" || echo "discovery of $ctx failed" >&2; done
    sleep "$every"
  done
}

prometheus_config() { # DIR
  local d=$1 ctx
  cat <<CONF
# Written by infra/lib/prometheus.sh: one scrape job per region, targets from
# the discovery loop (file_sd; Debian's build has no kubernetes_sd_configs).
global:
  scrape_interval: $PROMETHEUS_SCRAPE_INTERVAL
  scrape_timeout: $PROMETHEUS_SCRAPE_INTERVAL
  evaluation_interval: $PROMETHEUS_SCRAPE_INTERVAL
scrape_configs:
CONF
  for ctx in $(prometheus_contexts); do
    KUBECONFIG=$RUN/kubeconfig "$PROMETHEUS_KUBECTL" config view --minify --flatten --context "$ctx" >"$d/kubeconfig-$ctx"
    chmod 600 "$d/kubeconfig-$ctx"
    [[ -f $d/targets-$ctx.json ]] || echo '[]' >"$d/targets-$ctx.json"
    cat <<CONF
  - job_name: pods-$ctx
    metrics_path: /metrics
    file_sd_configs:
      - files: [$d/targets-$ctx.json]
        refresh_interval: 5s
CONF
  done
}

up_prometheus() {
  ensure_pkgs prometheus:prometheus promtool:prometheus jq:jq
  [[ -f $RUN/kubeconfig ]] || die "prometheus needs the clusters' kubeconfig ($RUN/kubeconfig): run infra/infra.sh up k8s first"
  local d=$RUN/prometheus
  mkdir -p "$d/data" "$LOGS"
  prometheus_config "$d" >"$d/prometheus.yml.new"
  promtool check config "$d/prometheus.yml.new" >>"$LOGS/prometheus.log" 2>&1 ||
    die "promtool rejected the generated config $d/prometheus.yml.new" "$LOGS/prometheus.log"
  local changed=1
  cmp -s "$d/prometheus.yml.new" "$d/prometheus.yml" && changed=0
  mv "$d/prometheus.yml.new" "$d/prometheus.yml"
  port_free_or_ours prometheus "$PROMETHEUS_PORT"
  local pid
  if pid=$(pid_of prometheus); then
    # A running server reads a changed config on SIGHUP (contexts added, interval changed).
    ((changed)) && kill -HUP "$pid" && log "prometheus reloaded its config"
  else
    start_bg prometheus /usr/bin/prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
      --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
      --web.enable-lifecycle
  fi
  # The discovery loop runs from a copy of this file, so an edit of the repo never changes a running daemon.
  cp "${BASH_SOURCE[0]}" "$d/discover.sh"
  start_bg prometheus-discovery bash -c "source '$d/discover.sh'; RUN='$RUN'; prometheus_discover_loop '$d' 2"
  wait_until 60 "prometheus on :$PROMETHEUS_PORT" "$LOGS/prometheus.log" \
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  echo "export FERRY_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT" >"$d/env.sh"
  log "prometheus ready: http://127.0.0.1:$PROMETHEUS_PORT (env: $d/env.sh)"
}

prometheus_up() { # component check
  pid_of prometheus >/dev/null
}

down_prometheus() {
  stop_procs prometheus prometheus-discovery
}
