# shellcheck shell=bash
# Stopping what infra.sh started (by pid) and cleaning up mounts, network and cgroups.
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

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
  down_prometheus
  down_synapse
  cleanup_mounts
  cleanup_net
  cleanup_cgroups
  log "down: all Ferry infra processes stopped"
}
