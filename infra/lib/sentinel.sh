# shellcheck shell=bash
# Redis high availability for Ferry, the setup BullMQ documents: one primary,
# two replicas and three Sentinels (quorum 2) on 127.0.0.1. Optional: only
# `infra/infra.sh up sentinel` starts it (the default `up` does not), and
# `infra/infra.sh down sentinel` stops just this part. Sourced by infra.sh,
# which provides ensure_pkgs, start_bg, stop_procs, wait_until, port_free_or_ours.
#
# Persistence and replication are the production ones: AOF with fsync every
# second, asynchronous replication. Point Ferry at it with
#   REDIS_SENTINELS=127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392 REDIS_SENTINEL_NAME=ferry
# (or REDIS_URL=redis+sentinel://127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392/ferry);
# $RUN/sentinel/env.sh holds those lines.

SENTINEL_MASTER=ferry
SENTINEL_REDIS_PORTS=(6391 6392 6393) # the first starts as the primary
SENTINEL_PORTS=(26390 26391 26392)

sentinel_redis_conf() { # PORT DIR [PRIMARY_PORT]
  cat <<CONF
bind 127.0.0.1
protected-mode yes
port $1
daemonize no
dir $2
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
save ""
logfile ""
${3:+replicaof 127.0.0.1 $3}
CONF
}

up_sentinel() {
  # redis-sentinel is redis-server --sentinel; the Debian package ships the command and its defaults.
  ensure_pkgs redis-server:redis-server redis-sentinel:redis-sentinel
  local d=$RUN/sentinel i port primary=${SENTINEL_REDIS_PORTS[0]}
  mkdir -p "$d"
  for i in "${!SENTINEL_REDIS_PORTS[@]}"; do
    port=${SENTINEL_REDIS_PORTS[$i]}
    mkdir -p "$d/redis-$port"
    # Keep the config of a running member: after a failover the sentinels rewrote who replicates whom.
    if ! pid_of "redis-ha-$port" >/dev/null; then
      if ((i == 0)); then sentinel_redis_conf "$port" "$d/redis-$port" >"$d/redis-$port.conf"
      else sentinel_redis_conf "$port" "$d/redis-$port" "$primary" >"$d/redis-$port.conf"; fi
    fi
    port_free_or_ours "redis-ha-$port" "$port"
    start_bg "redis-ha-$port" /usr/bin/redis-server "$d/redis-$port.conf"
    wait_until 30 "redis on :$port" "$LOGS/redis-ha-$port.log" \
      bash -c "[[ \$(redis-cli -p $port ping) == PONG ]]"
  done
  for port in "${SENTINEL_PORTS[@]}"; do
    # Sentinels rewrite their own config (the current primary, known replicas and peers).
    if ! pid_of "sentinel-$port" >/dev/null; then
      cat >"$d/sentinel-$port.conf" <<CONF
bind 127.0.0.1
port $port
daemonize no
dir $d
logfile ""
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $primary 2
sentinel down-after-milliseconds $SENTINEL_MASTER 5000
sentinel failover-timeout $SENTINEL_MASTER 30000
sentinel parallel-syncs $SENTINEL_MASTER 1
CONF
    fi
    port_free_or_ours "sentinel-$port" "$port"
    start_bg "sentinel-$port" /usr/bin/redis-sentinel "$d/sentinel-$port.conf"
    wait_until 30 "sentinel on :$port" "$LOGS/sentinel-$port.log" \
      bash -c "redis-cli -p $port sentinel get-master-addr-by-name $SENTINEL_MASTER | grep -q 127.0.0.1"
  done
  local hosts
  hosts=$(printf '127.0.0.1:%s,' "${SENTINEL_PORTS[@]}")
  hosts=${hosts%,}
  cat >"$d/env.sh" <<ENV
export REDIS_SENTINELS=$hosts
export REDIS_SENTINEL_NAME=$SENTINEL_MASTER
ENV
  log "redis sentinel ready: redis+sentinel://$hosts/$SENTINEL_MASTER (env: $d/env.sh)"
}

sentinel_up() { # component check
  local port
  for port in "${SENTINEL_REDIS_PORTS[@]}"; do pid_of "redis-ha-$port" >/dev/null || return 1; done
  for port in "${SENTINEL_PORTS[@]}"; do pid_of "sentinel-$port" >/dev/null || return 1; done
}

down_sentinel() {
  stop_procs "${SENTINEL_PORTS[@]/#/sentinel-}"
  stop_procs "${SENTINEL_REDIS_PORTS[@]/#/redis-ha-}"
}
