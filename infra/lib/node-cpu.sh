# shellcheck shell=bash
# The CPU weight of each local node (the kubelet's cgroup root /ferry-<region>).
#
# Why: with cgroup v1, every runnable task in the root cgroup weighs 1024, and
# the node's cgroup /ferry-<region> also weighs 1024 in all — so on a busy
# machine (tsc, vitest and builds of several people: a load of 60–70 on 2
# cores) all the pods of a region together get the CPU of one host process.
# Ferry's own pods (deploy/overlays/local: 7 Node.js processes) then need
# minutes just to start, and probes time out. A real node has its CPUs to
# itself; here the weight of a few processes is the closest:
#
#   infra/lib/node-cpu.sh [SHARES]        default 8192 (8 host processes' worth)
#
# Idempotent; cgroup v1 (cpu.shares) and v2 (cpu.weight, scaled) both; a
# missing cgroup (cluster not up) is skipped. Sourced by infra.sh
# (node_cpu_weight) or run on its own.

node_cpu_weight() { # [SHARES]
  local shares=${1:-8192} region dir
  for region in eu-west us-east; do
    for dir in "/sys/fs/cgroup/cpu/ferry-$region" "/sys/fs/cgroup/cpu,cpuacct/ferry-$region"; do
      [[ -f $dir/cpu.shares ]] && echo "$shares" >"$dir/cpu.shares"
    done
    dir=/sys/fs/cgroup/ferry-$region
    # cgroup v2: weight 100 is the default of shares 1024
    [[ -f $dir/cpu.weight ]] && echo $((shares * 100 / 1024)) >"$dir/cpu.weight"
  done
  return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  node_cpu_weight "$@"
fi
