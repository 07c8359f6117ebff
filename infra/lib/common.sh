# shellcheck shell=bash
# Helpers every component uses: logging, packages, Go, background processes by pid file, waits, ports.
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

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
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
  echo "$exe" >"$PIDS/$name.exe"
  # $! is the forked shell until it has exec'd setsid and then the daemon: pid_of, which checks the
  # executable, would call a daemon that is merely still starting "exited" (seen on a busy machine:
  # kube-apiserver reported dead while it came up). Wait, briefly, until the pid runs the daemon.
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$exe")" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  log "started $name (pid $pid, log $LOGS/$name.log)"
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
