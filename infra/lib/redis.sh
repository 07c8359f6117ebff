# shellcheck shell=bash
# Redis for Ferry's state and queues (one redis-server on $REDIS_PORT, AOF).
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

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
