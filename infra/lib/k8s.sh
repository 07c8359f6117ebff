# shellcheck shell=bash
# The two Kubernetes clusters (etcd, apiserver, controller-manager, scheduler, containerd + kubelet per region), built by lib/build-k8s.sh.
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

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
  start_kubelet "$r" "$b/kubelet" --config "$k/kubelet-config.yaml" \
    --kubeconfig "$k/kubelet.kubeconfig" --root-dir "$k/kubelet" --cert-dir "$k/pki" \
    --hostname-override "$(node_name "$r")" --node-ip "$(node_ip "$r")" --v=1
}

# start_kubelet REGION CMD... — the kubelet exits at once when containerd's CRI service is not
# initialized yet ("server is not initialized yet"), which can lag `ctr version` answering by a moment
# (seen on a clean-clone CI run). It is started again, a few times, as a supervisor would; any other
# early exit is left to the Ready wait to report.
start_kubelet() {
  local r=$1 try
  shift
  for try in 1 2 3 4 5; do
    start_bg "kubelet-$r" "$@"
    sleep 2
    pid_of "kubelet-$r" >/dev/null && return 0
    tail -n 5 "$LOGS/kubelet-$r.log" | grep -q 'server is not initialized yet' || return 0
    log "kubelet-$r exited: containerd's CRI was not initialized yet; starting it again ($try)"
  done
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
  node_cpu_weight # infra/lib/node-cpu.sh: pods get CPU like the host's processes (issue 16)
}
