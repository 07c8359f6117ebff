# shellcheck shell=bash
# The OCI registries: the primary and one per region (optionally a pull-through proxy).
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

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
