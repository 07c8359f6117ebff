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

# ---------------------------------------------------------------- helpers --
ts() { date -u +%H:%M:%S; }
log() { printf '%s [infra] %s\n' "$(ts)" "$*" >&2; }
die() {
  printf '%s [infra] ERROR: %s\n' "$(ts)" "$1" >&2
  if [[ -n ${2:-} && -f $2 ]]; then
    printf '%s [infra] ---- last lines of %s ----\n' "$(ts)" "$2" >&2
    tail -n 25 "$2" >&2 || true
    printf '%s [infra] ---- full log: %s\n' "$(ts)" "$2" >&2
  fi
  exit 1
}
trap 'rc=$?; printf "%s [infra] FAILED (exit %s) at line %s: %s\n" "$(ts)" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ensure_pkgs cmd:package ... — apt-get install only what is missing.
APT_UPDATED=0
ensure_pkgs() {
  local missing=() spec probe pkg
  for spec in "$@"; do
    probe=${spec%%:*} pkg=${spec#*:}
    if [[ $probe == /* ]]; then [[ -e $probe ]] && continue
    else command -v "$probe" >/dev/null 2>&1 && continue; fi
    missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  mkdir -p "$LOGS"
  export DEBIAN_FRONTEND=noninteractive
  if ((APT_UPDATED == 0)); then
    apt-get update -q >>"$LOGS/apt.log" 2>&1 || die "apt-get update failed" "$LOGS/apt.log"
    APT_UPDATED=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
    die "apt-get install ${missing[*]} failed" "$LOGS/apt.log"
}

# Go >= 1.24 builds Kubernetes 1.34. Debian 12 ships 1.19: if no new enough
# Go is found, install Debian's and let it fetch a Go 1.24 toolchain from the
# Go module proxy (golang.org/toolchain is an ordinary module there).
GO_FALLBACK=go1.24.13
go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v
  v=$(go env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  ((major > 1 || (major == 1 && minor >= 24)))
}
ensure_go() {
  [[ -d /usr/local/go/bin && :$PATH: != *:/usr/local/go/bin:* ]] && export PATH=$PATH:/usr/local/go/bin
  go_ok && return 0
  ensure_pkgs go:golang-go
  log "Go >= 1.24 not found; fetching $GO_FALLBACK from the Go module proxy"
  local mod=golang.org/toolchain@v0.0.1-$GO_FALLBACK.linux-amd64 dir tmp
  tmp=$(mktemp -d)
  dir=$(cd "$tmp" && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$tmp"
  [[ -x $dir/bin/go ]] || die "could not fetch $mod from the Go module proxy"
  export PATH=$dir/bin:$PATH
  go_ok || die "Go toolchain $dir/bin/go is not usable"
}

# pid bookkeeping: $PIDS/<name>.pid holds the pid, <name>.exe the binary path.
pid_of() {
  local f=$PIDS/$1.pid pid exe
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  exe=$(<"$PIDS/$1.exe")
  [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$exe")" ]] || return 1
  echo "$pid"
}

# start_bg NAME CMD... — start a daemon in its own session unless running.
start_bg() {
  local name=$1
  shift
  mkdir -p "$PIDS" "$LOGS"
  local pid
  if pid=$(pid_of "$name"); then
    log "$name already running (pid $pid)"
    return 0
  fi
  local exe
  exe=$(command -v "$1")
  printf '\n===== %s start %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOGS/$name.log"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
  echo "$exe" >"$PIDS/$name.exe"
  log "started $name (pid $!, log $LOGS/$name.log)"
}

# stop_procs NAME... — SIGTERM all at once, wait up to 10 s, then SIGKILL.
stop_procs() {
  local name pid i alive
  local -a pids=() names=()
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid") names+=("$name")
    fi
    rm -f "$PIDS/$name.pid" "$PIDS/$name.exe"
  done
  ((${#pids[@]})) || return 0
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  log "stopped ${names[*]}"
}
stop_proc() { stop_procs "$1"; }

# wait_until SECONDS WHAT LOGFILE CMD... — poll CMD until success.
wait_until() {
  local secs=$1 what=$2 logf=$3
  shift 3
  local deadline=$((SECONDS + secs)) name
  name=$(basename "$logf" .log)
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what" "$logf"
    if [[ -f $PIDS/$name.pid ]] && ! pid_of "$name" >/dev/null; then
      die "$name exited while waiting for $what" "$logf"
    fi
    sleep 0.5
  done
}

# port_free_or_ours NAME PORT — die if PORT is taken by a process we did not start
port_free_or_ours() {
  pid_of "$1" >/dev/null && return 0
  port_open "$2" || return 0
  die "port $2 is already in use by another process (not started by infra.sh); free it or stop that service"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# shellcheck source=lib/sentinel.sh
source "$INFRA_DIR/lib/sentinel.sh"
source "$INFRA_DIR/lib/synapse.sh" # matrix: Synapse homeserver (only when named)

# --------------------------------------------------------------- redis --
up_redis() {
  ensure_pkgs redis-server:redis-server
  local d=$RUN/redis
  mkdir -p "$d/data"
  cat >"$d/redis.conf" <<EOF
# Ferry: production-like settings for BullMQ (AOF, no eviction)
bind 127.0.0.1
protected-mode yes
port $REDIS_PORT
daemonize no
supervised no
dir $d/data
dbfilename dump.rdb
appendonly yes
appendfilename "appendonly.aof"
appendfsync everysec
maxmemory 2gb
maxmemory-policy noeviction
save 900 1
tcp-keepalive 60
loglevel notice
logfile ""
EOF
  port_free_or_ours redis $REDIS_PORT
  start_bg redis /usr/bin/redis-server "$d/redis.conf"
  wait_until 30 "redis on :$REDIS_PORT" "$LOGS/redis.log" \
    bash -c "[[ \$(redis-cli -p $REDIS_PORT ping) == PONG ]]"
  log "redis ready: redis://127.0.0.1:$REDIS_PORT"
}

# ---------------------------------------------------------- registries --
# registry_conf NAME PORT [PROXY_URL]
registry_conf() {
  local name=$1 port=$2 proxy=${3:-} d=$RUN/registries/$1 data=data
  # a pull-through cache keeps its own storage: switching modes never mixes
  # cached (expiring) content with pushed content
  [[ -n $proxy ]] && data=proxy-cache
  mkdir -p "$d/$data"
  {
    cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $d/$data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 24h
      interval: 1h
      dryrun: false
http:
  addr: 127.0.0.1:$port
  secret: ferry-local-$name
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
EOF
    if [[ -n $proxy ]]; then
      printf 'proxy:\n  remoteurl: %s\n' "$proxy"
    fi
  } >"$d/config.yml"
}

up_registries() {
  ensure_pkgs docker-registry:docker-registry skopeo:skopeo curl:curl
  # Debian's package enables a system registry on :5000 where systemd runs
  if [[ -d /run/systemd/system ]] && systemctl is-active -q docker-registry 2>/dev/null; then
    log "stopping the system docker-registry service (it holds :5000)"
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  local proxy_region=${PROXY_REGION:-}
  if [[ -z $proxy_region && -f $RUN/registries/proxy-region ]]; then
    proxy_region=$(<"$RUN/registries/proxy-region")
  fi
  [[ $proxy_region == none ]] && proxy_region=
  mkdir -p "$RUN/registries"
  echo "${proxy_region:-none}" >"$RUN/registries/proxy-region"
  registry_conf primary $PRIMARY_PORT
  local r name
  for r in "${REGIONS[@]}"; do
    if [[ $r == "$proxy_region" ]]; then
      registry_conf "$r" "${REGION_PORT[$r]}" "http://127.0.0.1:$PRIMARY_PORT"
    else
      registry_conf "$r" "${REGION_PORT[$r]}"
    fi
  done
  for name in primary "${REGIONS[@]}"; do
    local conf=$RUN/registries/$name/config.yml
    # a changed mode (proxy or not) needs a restart
    if pid_of "registry-$name" >/dev/null && ! cmp -s "$conf" "$conf.running"; then
      stop_proc "registry-$name"
    fi
    cp "$conf" "$conf.running"
    port_free_or_ours "registry-$name" "$(sed -n 's/^  addr: 127.0.0.1://p' "$conf")"
    start_bg "registry-$name" /usr/bin/docker-registry serve "$conf"
  done
  wait_until 30 "registry :$PRIMARY_PORT" "$LOGS/registry-primary.log" http_ok "http://127.0.0.1:$PRIMARY_PORT/v2/"
  for r in "${REGIONS[@]}"; do
    wait_until 30 "registry $r :${REGION_PORT[$r]}" "$LOGS/registry-$r.log" http_ok "http://127.0.0.1:${REGION_PORT[$r]}/v2/"
  done
  log "registries ready: primary 127.0.0.1:$PRIMARY_PORT, eu-west :${REGION_PORT[eu-west]}, us-east :${REGION_PORT[us-east]}${proxy_region:+ ($proxy_region proxies primary)}"
}

# --------------------------------------------------------------- images --
# Everything is built offline: static binaries from Debian packages and Go's
# standard library, assembled with buildah, cached as OCI archives under
# $CACHE/images-<hash of infra/images>, then pushed to the primary registry.
images_key() {
  (cd "$INFRA_DIR/images" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$PAUSE_TAG $IMAGES_TAG") |
    sha256sum | cut -c1-12
}

registry_has() { # HOST:PORT/REPO:TAG exists?
  local host=${1%%/*} rest=${1#*/}
  curl -fsS -o /dev/null -I --max-time 5 \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$host/v2/${rest%:*}/manifests/${rest##*:}"
}

bud() { # bud LOG TAG CONTEXT [extra buildah args]
  local logf=$1 tag=$2 ctx=$3
  shift 3
  buildah bud --layers --timestamp 0 --isolation chroot --pull=never --tls-verify=false \
    -t "$tag" "$@" "$ctx" >>"$logf" 2>&1 || die "buildah bud $tag failed" "$logf"
}

build_images() {
  local out=$1 logf=$LOGS/images-build.log work=$1.work
  rm -rf "$work"
  mkdir -p "$work"
  log "building images (log $logf)"
  : >"$logf"
  # pause: static C binary
  mkdir -p "$work/pause"
  gcc -Os -static -o "$work/pause/pause" "$INFRA_DIR/images/pause/pause.c" >>"$logf" 2>&1 || die "gcc pause failed" "$logf"
  strip "$work/pause/pause"
  cp "$INFRA_DIR/images/pause/Dockerfile" "$work/pause/"
  bud "$logf" localhost/ferry/pause:$PAUSE_TAG "$work/pause"
  # base: busybox-static + minimal /etc, language independent
  local root=$work/base/rootfs
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var/tmp,run}
  cp /bin/busybox "$root/bin/busybox"
  local app dir
  for app in $(/bin/busybox --list-full); do
    [[ $app == bin/busybox ]] && continue
    dir=$(dirname "$app")
    mkdir -p "$root/$dir"
    ln -sf /bin/busybox "$root/$app"
  done
  cp -r "$INFRA_DIR/images/base/etc/." "$root/etc/"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp "$INFRA_DIR/images/base/Dockerfile" "$work/base/"
  bud "$logf" localhost/ferry/base:$IMAGES_TAG "$work/base"
  # The archive's manifest goes to the registry byte for byte, so its digest is
  # the one the registry serves: the stack records it as its base.
  buildah push "localhost/ferry/base:$IMAGES_TAG" "oci-archive:$work/base.tar:ferry/base:$IMAGES_TAG" >>"$logf" 2>&1 ||
    die "buildah push oci-archive base failed" "$logf"
  local base_digest
  base_digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$work/base.tar" 2>>"$logf") ||
    die "skopeo inspect base archive failed" "$logf"
  # stack-shell: the "app server" runtime (static Go, stdlib only) + layout
  mkdir -p "$work/stack-shell"
  cp -r "$INFRA_DIR/images/stack-shell/." "$work/stack-shell/"
  (cd "$work/stack-shell/ferry-run" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=auto \
    GOCACHE=$CACHE/go-build go build -trimpath -ldflags '-s -w' -o ../ferry-run.bin .) >>"$logf" 2>&1 ||
    die "go build ferry-run failed" "$logf"
  bud "$logf" localhost/ferry/stack-shell:$IMAGES_TAG "$work/stack-shell" \
    --build-arg BASE=localhost/ferry/base:$IMAGES_TAG \
    --build-arg BASE_NAME=ferry/base --build-arg BASE_DIGEST="$base_digest"
  local img
  for img in pause:$PAUSE_TAG stack-shell:$IMAGES_TAG; do
    buildah push "localhost/ferry/$img" "oci-archive:$work/${img%%:*}.tar:ferry/$img" >>"$logf" 2>&1 ||
      die "buildah push oci-archive $img failed" "$logf"
  done
  buildah push "localhost/ferry/pause:$PAUSE_TAG" \
    "docker-archive:$work/pause-docker.tar:127.0.0.1:$PRIMARY_PORT/ferry/pause:$PAUSE_TAG" >>"$logf" 2>&1 ||
    die "buildah push docker-archive pause failed" "$logf"
  mv "$work"/*.tar "$out/"
  rm -rf "$work"
}

# The sample app: a real git repository with tags v1..v3 whose Dockerfile
# starts FROM the stack image in the primary registry.
make_app_repo() {
  local repo=$CACHE/repos/hello-app src=$INFRA_DIR/images/hello-app
  local want
  want=$( (cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12)
  if [[ -f $repo/.ferry-src && $(<"$repo/.ferry-src") == "$want" ]] && git -C "$repo" rev-parse -q --verify v3 >/dev/null; then
    return 0
  fi
  log "creating sample app repository $repo"
  rm -rf "$repo"
  mkdir -p "$repo"
  local g=(git -C "$repo" -c user.name="Ferry Infra" -c user.email=infra@ferry.local -c commit.gpgsign=false -c init.defaultBranch=main)
  "${g[@]}" init -q
  local v n=0
  for v in v1 v2 v3; do
    n=$((n + 1))
    find "$repo" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
    cp -r "$src/common/." "$repo/"
    cp -r "$src/$v/." "$repo/"
    sed -i "s/@REGISTRY@/127.0.0.1:$PRIMARY_PORT/; s/@STACK_TAG@/$IMAGES_TAG/" "$repo/Dockerfile"
    "${g[@]}" add -A
    GIT_AUTHOR_DATE="2024-01-0${n}T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0${n}T12:00:00Z" \
      "${g[@]}" commit -q -m "hello-app $v"
    "${g[@]}" tag -a "$v" -m "release $v"
  done
  echo "$want" >"$repo/.ferry-src"
  echo .ferry-src >"$repo/.git/info/exclude"
}

up_images() {
  ((EUID == 0)) || die "the images component needs root (buildah with overlay storage)"
  ensure_pkgs buildah:buildah skopeo:skopeo gcc:gcc /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev \
    /bin/busybox:busybox-static git:git strip:binutils
  ensure_go
  pid_of registry-primary >/dev/null || up_registries
  local key out
  key=$(images_key)
  out=$CACHE/images-$key
  if [[ ! -f $out/.done ]]; then
    local t0=$SECONDS
    mkdir -p "$out"
    build_images "$out"
    echo $((SECONDS - t0)) >"$out/.build-seconds"
    touch "$out/.done"
    log "images built in $((SECONDS - t0))s -> $out"
  fi
  local p=127.0.0.1:$PRIMARY_PORT img
  for img in pause:$PAUSE_TAG base:$IMAGES_TAG stack-shell:$IMAGES_TAG; do
    if ! registry_has "$p/ferry/$img"; then
      skopeo copy -q --dest-tls-verify=false "oci-archive:$out/${img%%:*}.tar" "docker://$p/ferry/$img" >>"$LOGS/images.log" 2>&1 ||
        die "push ferry/$img failed" "$LOGS/images.log"
      skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$p/ferry/$img" "docker://$p/ferry/${img%%:*}:latest" >>"$LOGS/images.log" 2>&1
      log "pushed $p/ferry/$img"
    fi
  done
  make_app_repo
  local repo=$CACHE/repos/hello-app v
  for v in v1 v2 v3; do
    if registry_has "$p/ferry/hello-app:$v"; then continue; fi
    local ctx=$CACHE/repos/.build-hello-app-$v
    rm -rf "$ctx"
    git clone -q --branch "$v" "$repo" "$ctx" 2>>"$LOGS/images.log"
    bud "$LOGS/images.log" "$p/ferry/hello-app:$v" "$ctx" --pull=missing --label "org.opencontainers.image.revision=$(git -C "$ctx" rev-parse HEAD)"
    buildah push -q --tls-verify=false "$p/ferry/hello-app:$v" "docker://$p/ferry/hello-app:$v" >>"$LOGS/images.log" 2>&1 ||
      die "buildah push hello-app:$v failed" "$LOGS/images.log"
    rm -rf "$ctx"
    log "built and pushed $p/ferry/hello-app:$v"
  done
}

# ------------------------------------------------------------------ k8s --
k8s_built() { [[ -x $K8S_BIN/kube-apiserver && -x $K8S_BIN/etcd && -x $K8S_BIN/kubelet && -x $K8S_BIN/kubectl && -x $K8S_BIN/cri-reset ]]; }

# The cold build (~30 min on 2 cores) starts first, in the background, while
# Redis, registries and images come up; up_k8s waits for it.
K8S_BUILD_PID=
build_k8s_start() {
  k8s_built && return 0
  ensure_go
  local logf=$LOGS/k8s-build.log
  log "building Kubernetes v$K8S_VERSION + etcd v$ETCD_VERSION from Go modules in the background (cold: ~30 min on 2 cores; log $logf)"
  printf '\n===== %s build start\n' "$(date -u +%FT%TZ)" >>"$logf"
  K8S_VERSION=$K8S_VERSION "$INFRA_DIR/lib/build-k8s.sh" "$K8S_BIN" >>"$logf" 2>&1 9>&- &
  K8S_BUILD_PID=$!
  K8S_BUILD_T0=$SECONDS
}
build_k8s() {
  k8s_built && [[ -z $K8S_BUILD_PID ]] && return 0
  [[ -n $K8S_BUILD_PID ]] || build_k8s_start
  log "waiting for the Kubernetes build (log $LOGS/k8s-build.log)"
  wait "$K8S_BUILD_PID" || die "Kubernetes build failed" "$LOGS/k8s-build.log"
  K8S_BUILD_PID=
  k8s_built || die "Kubernetes build produced no binaries" "$LOGS/k8s-build.log"
  log "Kubernetes built in $((SECONDS - K8S_BUILD_T0))s -> $K8S_BIN"
}

# openssl helpers ---------------------------------------------------------
pki_ca() { # DIR
  [[ -f $1/ca.crt ]] && return 0
  openssl req -x509 -new -nodes -newkey rsa:2048 -keyout "$1/ca.key" -out "$1/ca.crt" -days 3650 \
    -subj "/CN=ferry-$(basename "$(dirname "$1")")-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" 2>/dev/null
}
pki_cert() { # DIR NAME SUBJECT USAGE(client|server|both) [SANS]
  local d=$1 n=$2 subj=$3 usage=$4 sans=${5:-}
  [[ -f $d/$n.crt ]] && return 0
  local ext=$d/$n.ext eku
  case $usage in
    client) eku=clientAuth ;; server) eku=serverAuth ;; both) eku=serverAuth,clientAuth ;;
  esac
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -nodes -newkey rsa:2048 -keyout "$d/$n.key" -out "$d/$n.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/$n.crt" -days 3650 -extfile "$ext" 2>/dev/null
  rm -f "$d/$n.csr" "$ext"
}
kubeconfig() { # FILE CLUSTER SERVER CADIR USER CERTNAME
  local f=$1 c=$2 server=$3 pki=$4 user=$5 cert=$6
  cat >"$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $c
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$cert.crt")
    client-key-data: $(base64 -w0 "$pki/$cert.key")
contexts:
- name: $c
  context:
    cluster: $c
    user: $user
current-context: $c
EOF
  chmod 600 "$f"
}

node_name() { echo "ferry-$1"; }
node_ip() { echo "${POD_NET[$1]}.0.1"; }

cluster_pki() { # REGION
  local r=$1 d=$RUN/k8s/$1/pki node
  node=$(node_name "$r")
  mkdir -p "$d"
  pki_ca "$d"
  pki_cert "$d" apiserver "/CN=kube-apiserver" server \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP"
  pki_cert "$d" admin "/O=system:masters/CN=kubernetes-admin" client
  pki_cert "$d" controller-manager "/CN=system:kube-controller-manager" client
  pki_cert "$d" scheduler "/CN=system:kube-scheduler" client
  pki_cert "$d" kubelet-client "/O=system:nodes/CN=system:node:$node" client
  pki_cert "$d" kubelet-serving "/O=system:nodes/CN=system:node:$node" server "DNS:$node,DNS:localhost,IP:$(node_ip "$r"),IP:127.0.0.1"
  pki_cert "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  if [[ ! -f $d/sa.key ]]; then
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  fi
  chmod 600 "$d"/*.key
  local srv=https://127.0.0.1:${API_PORT[$r]} k=$RUN/k8s/$r
  kubeconfig "$k/admin.kubeconfig" "$r" "$srv" "$d" "admin-$r" admin
  kubeconfig "$k/controller-manager.kubeconfig" "$r" "$srv" "$d" system:kube-controller-manager controller-manager
  kubeconfig "$k/scheduler.kubeconfig" "$r" "$srv" "$d" system:kube-scheduler scheduler
  kubeconfig "$k/kubelet.kubeconfig" "$r" "$srv" "$d" "system:node:$node" kubelet-client
}

write_kubeconfig() {
  local f=$RUN/kubeconfig r
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for r in "${REGIONS[@]}"; do
      printf -- '- name: %s\n  cluster:\n    server: https://127.0.0.1:%s\n    certificate-authority-data: %s\n' \
        "$r" "${API_PORT[$r]}" "$(base64 -w0 "$RUN/k8s/$r/pki/ca.crt")"
    done
    echo "users:"
    for r in "${REGIONS[@]}"; do
      printf -- '- name: admin-%s\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n' \
        "$r" "$(base64 -w0 "$RUN/k8s/$r/pki/admin.crt")" "$(base64 -w0 "$RUN/k8s/$r/pki/admin.key")"
    done
    echo "contexts:"
    for r in "${REGIONS[@]}"; do
      printf -- '- name: %s\n  context:\n    cluster: %s\n    user: admin-%s\n' "$r" "$r" "$r"
    done
    echo "current-context: ${REGIONS[0]}"
  } >"$f.tmp"
  chmod 600 "$f.tmp"
  mv "$f.tmp" "$f"
}

# containerd + CNI + kubelet per region ------------------------------------
containerd_conf() { # REGION
  local r=$1 c=$RUN/k8s/$1/containerd
  mkdir -p "$c"/{root,state,opt,runc} "$RUN/k8s/$r/cni/net.d" "$RUN/k8s/$r/cni/ipam"
  cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$c/containerd.sock"

[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "127.0.0.1:$PRIMARY_PORT/ferry/pause:$PAUSE_TAG"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # this machine has no CAP_SYS_RESOURCE: oom_score_adj cannot go below 0,
  # so clamp (the kubelet asks -998 for sandboxes, -997 for Guaranteed pods)
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$c/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/k8s/$r/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$RUN/containerd-certs.d"
EOF
  local net=${POD_NET[$r]}
  cat >"$RUN/k8s/$r/cni/net.d/10-ferry.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ferry-$r",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE[$r]}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$net.0.0/16", "gateway": "$net.0.1" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$RUN/k8s/$r/cni/ipam"
      }
    }
  ]
}
EOF
}

registry_hosts() {
  local d=$RUN/containerd-certs.d port
  for port in $PRIMARY_PORT "${REGION_PORT[@]}"; do
    mkdir -p "$d/127.0.0.1:$port"
    cat >"$d/127.0.0.1:$port/hosts.toml" <<EOF
server = "http://127.0.0.1:$port"

[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
  done
}

# The node bridge exists before the kubelet starts: its gateway address is
# the node's InternalIP (the kubelet refuses loopback node IPs).
ensure_bridge() {
  local r=$1 br=${BRIDGE[$1]}
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge
  fi
  local addrs
  addrs=$(ip -4 -o addr show dev "$br")
  [[ $addrs == *" $(node_ip "$r")/16 "* ]] || ip addr add "$(node_ip "$r")/16" dev "$br"
  ip link set "$br" up
}

cgroup_root() { echo "/ferry-$1"; }
cgroup_controllers() {
  local c
  for c in /sys/fs/cgroup/*/; do
    c=${c%/}
    [[ $(basename "$c") == unified ]] && continue
    [[ -f $c/cgroup.procs ]] && echo "$c"
  done
}
ensure_cgroups() {
  local r=$1 c
  for c in $(cgroup_controllers); do mkdir -p "$c$(cgroup_root "$r")"; done
  # cpuset children need cpus/mems before tasks can join
  local cs=/sys/fs/cgroup/cpuset$(cgroup_root "$r")
  if [[ -d $cs ]]; then
    [[ -n $(<"$cs/cpuset.cpus") ]] || cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$cs/cpuset.cpus"
    [[ -n $(<"$cs/cpuset.mems") ]] || cat /sys/fs/cgroup/cpuset/cpuset.mems >"$cs/cpuset.mems"
  fi
  if [[ -f /sys/fs/cgroup/memory$(cgroup_root "$r")/memory.use_hierarchy ]]; then
    echo 1 >"/sys/fs/cgroup/memory$(cgroup_root "$r")/memory.use_hierarchy" 2>/dev/null || true
  fi
}

kubelet_conf() {
  local r=$1 k=$RUN/k8s/$1
  mkdir -p "$k/kubelet" "$k/pod-logs"
  cat >"$k/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$r")
port: ${KUBELET_PORT[$r]}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${KUBELET_HEALTHZ[$r]}
tlsCertFile: $k/pki/kubelet-serving.crt
tlsPrivateKeyFile: $k/pki/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $k/pki/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$k/containerd/containerd.sock
imageServiceEndpoint: unix://$k/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $(cgroup_root "$r")
cgroupsPerQOS: true
failSwapOn: false
failCgroupV1: false
evictionHard:
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
imageGCHighThresholdPercent: 100
podLogsDir: $k/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
maxPods: 110
rotateCertificates: false
oomScoreAdj: 0
serverTLSBootstrap: false
EOF
}

etcd_healthy() { [[ $(curl -fsS --max-time 2 "http://127.0.0.1:${ETCD_PORT[$1]}/health") == *'"health":"true"'* ]]; }
api_ready() {
  local p=$RUN/k8s/$1/pki out
  out=$(curl -fsS --max-time 3 --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
    "https://127.0.0.1:${API_PORT[$1]}/readyz") && [[ $out == ok ]]
}
kc() { "$K8S_BIN/kubectl" --kubeconfig "$RUN/kubeconfig" --context "$@"; }

up_cluster() {
  local r=$1 k=$RUN/k8s/$1 b=$K8S_BIN
  local pki=$k/pki
  mkdir -p "$k/etcd"
  chmod 700 "$k/etcd"
  cluster_pki "$r"
  port_free_or_ours "etcd-$r" "${ETCD_PORT[$r]}"
  port_free_or_ours "kube-apiserver-$r" "${API_PORT[$r]}"
  start_bg "etcd-$r" "$b/etcd" --name "$r" --data-dir "$k/etcd" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORT[$r]}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORT[$r]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT[$r]}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT[$r]}" \
    --initial-cluster "$r=http://127.0.0.1:${ETCD_PEER_PORT[$r]}" --initial-cluster-state new \
    --quota-backend-bytes 4294967296 --snapshot-count 10000 --log-level warn
  wait_until 60 "etcd $r" "$LOGS/etcd-$r.log" etcd_healthy "$r"
  start_bg "kube-apiserver-$r" "$b/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:${ETCD_PORT[$r]}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${API_PORT[$r]}" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --api-audiences "https://kubernetes.default.svc.cluster.local" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_until 120 "kube-apiserver $r" "$LOGS/kube-apiserver-$r.log" api_ready "$r"
  start_bg "kube-controller-manager-$r" "$b/kube-controller-manager" \
    --kubeconfig "$k/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$k/controller-manager.kubeconfig" --authorization-kubeconfig "$k/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${KCM_PORT[$r]}" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cluster-name "$r" \
    --leader-elect=false --controllers '*' --v=1
  start_bg "kube-scheduler-$r" "$b/kube-scheduler" \
    --kubeconfig "$k/scheduler.kubeconfig" \
    --authentication-kubeconfig "$k/scheduler.kubeconfig" --authorization-kubeconfig "$k/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "${SCHED_PORT[$r]}" --leader-elect=false --v=1
  # node: containerd + CNI bridge + kubelet
  containerd_conf "$r"
  ensure_bridge "$r"
  ensure_cgroups "$r"
  start_bg "containerd-$r" /usr/bin/containerd --config "$k/containerd/config.toml"
  wait_until 60 "containerd $r" "$LOGS/containerd-$r.log" \
    ctr --address "$k/containerd/containerd.sock" version
  import_pause "$r"
  kubelet_conf "$r"
  start_bg "kubelet-$r" "$b/kubelet" --config "$k/kubelet-config.yaml" \
    --kubeconfig "$k/kubelet.kubeconfig" --root-dir "$k/kubelet" --cert-dir "$k/pki" \
    --hostname-override "$(node_name "$r")" --node-ip "$(node_ip "$r")" --v=1
}

import_pause() {
  local r=$1 sock=$RUN/k8s/$1/containerd/containerd.sock img=127.0.0.1:$PRIMARY_PORT/ferry/pause:$PAUSE_TAG
  local have
  have=$(ctr --address "$sock" -n k8s.io images ls -q)
  if [[ $'\n'$have$'\n' != *$'\n'$img$'\n'* ]]; then
    local tar
    tar=$(ls "$CACHE"/images-"$(images_key)"/pause-docker.tar 2>/dev/null) || die "pause image not built; run: infra.sh up images"
    ctr --address "$sock" -n k8s.io images import --no-unpack=false "$tar" >>"$LOGS/containerd-$r.log" 2>&1 ||
      die "ctr images import pause failed" "$LOGS/containerd-$r.log"
    ctr --address "$sock" -n k8s.io images label "$img" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
    log "imported $img into containerd-$r"
  fi
}

kubelet_healthy() { [[ $(curl -fsS --max-time 2 "http://127.0.0.1:${KUBELET_HEALTHZ[$1]}/healthz") == ok ]]; }
node_ready() {
  kubelet_healthy "$1" || return 1
  [[ $(kc "$1" get node "$(node_name "$1")" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
sa_ready() { kc "$1" -n default get serviceaccount default && kc "$1" -n default get configmap kube-root-ca.crt; }

up_k8s() {
  ((EUID == 0)) || die "the k8s component needs root (cgroups, bridges, containerd); redis, registries and images do not"
  ensure_pkgs containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins ip:iproute2 \
    iptables:iptables conntrack:conntrack socat:socat openssl:openssl curl:curl
  pid_of registry-primary >/dev/null || up_registries
  [[ -f $CACHE/images-$(images_key)/.done ]] || up_images
  build_k8s
  registry_hosts
  local r
  for r in "${REGIONS[@]}"; do up_cluster "$r"; done
  write_kubeconfig
  for r in "${REGIONS[@]}"; do
    wait_until 180 "node $(node_name "$r") Ready" "$LOGS/kubelet-$r.log" node_ready "$r"
    wait_until 120 "default ServiceAccount + kube-root-ca.crt in $r" "$LOGS/kube-controller-manager-$r.log" sa_ready "$r"
    log "cluster $r ready (https://127.0.0.1:${API_PORT[$r]}, node $(node_name "$r"))"
  done
}

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
    "sampleApp": { "repo": "$CACHE/repos/hello-app", "image": "127.0.0.1:$PRIMARY_PORT/ferry/hello-app", "tags": ["v1", "v2", "v3"] }
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
    synapse) synapse_up ;; # matrix
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

# ----------------------------------------------------------------- down --
cri_reset() { # stop and remove all pod sandboxes via CRI (CNI DEL, netns, mounts)
  local r=$1 sock=$RUN/k8s/$1/containerd/containerd.sock
  [[ -S $sock && -x $K8S_BIN/cri-reset ]] || return 0
  pid_of "containerd-$r" >/dev/null || return 0
  "$K8S_BIN/cri-reset" "unix://$sock" >>"$LOGS/containerd-$r.log" 2>&1 || log "cri-reset $r reported errors (see $LOGS/containerd-$r.log)"
}

kill_shims() { # shims are started by our containerd; their pids are in its state dir
  local r=$1 f pid
  for f in "$RUN/k8s/$r/containerd/state"/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [[ -f $f ]] || continue
    pid=$(<"$f")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -qa "$RUN/k8s/$r/containerd" "/proc/$pid/cmdline"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # container processes themselves (runc state holds their init pids)
  for f in "$RUN/k8s/$r/containerd/runc"/*/*/state.json; do
    [[ -f $f ]] || continue
    pid=$(grep -o '"init_process_pid":[0-9]*' "$f" | cut -d: -f2)
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
  done
}

cleanup_mounts() {
  local m
  # deepest first
  awk -v run="$RUN" '$5 == run || index($5, run "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

cleanup_net() {
  local r br l
  for r in "${REGIONS[@]}"; do
    br=${BRIDGE[$r]}
    ip link show "$br" >/dev/null 2>&1 || continue
    for l in $(ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$l" 2>/dev/null || true
    done
    ip link del "$br" 2>/dev/null || true
  done
}

cleanup_cgroups() {
  local r c d
  for r in "${REGIONS[@]}"; do
    for c in $(cgroup_controllers) /sys/fs/cgroup/unified; do
      d=$c$(cgroup_root "$r")
      [[ -d $d ]] || continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
}

down() {
  local r
  local -a kubelets=() containerds=() cp=() apis=() etcds=()
  for r in "${REGIONS[@]}"; do
    kubelets+=("kubelet-$r") containerds+=("containerd-$r") apis+=("kube-apiserver-$r") etcds+=("etcd-$r")
    cp+=("kube-scheduler-$r" "kube-controller-manager-$r")
  done
  stop_procs "${kubelets[@]}"
  for r in "${REGIONS[@]}"; do cri_reset "$r" & done
  wait
  stop_procs "${containerds[@]}"
  for r in "${REGIONS[@]}"; do kill_shims "$r"; done
  stop_procs "${cp[@]}"
  stop_procs "${apis[@]}"
  stop_procs "${etcds[@]}"
  stop_procs registry-primary "${REGIONS[@]/#/registry-}" redis
  down_sentinel
  down_synapse # matrix
  cleanup_mounts
  cleanup_net
  cleanup_cgroups
  log "down: all Ferry infra processes stopped"
}

status() {
  local f name pid
  printf '%-32s %-8s %s\n' COMPONENT PID STATE
  for f in "$PIDS"/*.pid; do
    [[ -f $f ]] || continue
    name=$(basename "$f" .pid)
    if pid=$(pid_of "$name"); then printf '%-32s %-8s running\n' "$name" "$pid"
    else printf '%-32s %-8s DEAD (log %s)\n' "$name" "$(<"$f")" "$LOGS/$name.log"; fi
  done
  [[ -f $RUN/env.sh ]] && echo "env: $RUN/env.sh" && echo "json: $RUN/infra.json"
  return 0
}

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
          redis | registries | images | k8s | sentinel | synapse) comps+=("$a") ;; # matrix: synapse
          *) die "unknown component '$a' (redis, registries, images, k8s, sentinel)" ;;
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
      if [[ ${1:-} == sentinel ]]; then down_sentinel; elif [[ ${1:-} == synapse ]]; then down_synapse; else down; fi # matrix: synapse
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
