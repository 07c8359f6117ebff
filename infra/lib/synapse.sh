# shellcheck shell=bash
# A real Matrix homeserver for Ferry's Matrix adapter: Synapse from PyPI in a
# virtualenv under Ferry's cache, on SQLite, listening on 127.0.0.1 only.
# Optional: only `infra/infra.sh up synapse` starts it (the default `up` does
# not), `infra/infra.sh down synapse` stops just this part. Sourced by
# infra.sh, which provides log, die, start_bg, stop_procs, pid_of, wait_until,
# port_free_or_ours and http_ok.
#
# Idempotent: the virtualenv is keyed by the Synapse version (a second `up`
# installs nothing), the config and signing key are generated once, users that
# exist are left alone. Users are registered through the shared-secret admin
# API (what `register_new_matrix_user` does): the bot `@ferry`, and the
# example config's people alice, bob, carol, dave, erin, frank — each with the
# password `ferry-<name>` (a local development homeserver, loopback only).
#
# $RUN/synapse/synapse.json describes it (URL, server name, shared secret,
# users); $RUN/synapse/env.sh exports MATRIX_HOMESERVER_URL and friends.

SYNAPSE_VERSION=1.163.2
SYNAPSE_PORT=8008
SYNAPSE_SERVER_NAME=ferry.local
SYNAPSE_USERS=(ferry alice bob carol dave erin frank)

synapse_venv() { echo "$CACHE/synapse-$SYNAPSE_VERSION"; }
synapse_url() { echo "http://127.0.0.1:$SYNAPSE_PORT"; }

# The virtualenv, once per version. The wall time of the cold install is kept
# next to it (.install-seconds) for the README.
synapse_install() {
  local venv t0
  venv=$(synapse_venv)
  [[ -f $venv/.done ]] && return 0
  ensure_pkgs python3:python3 python3-venv:python3-venv
  log "installing matrix-synapse $SYNAPSE_VERSION into $venv (pip, once)"
  t0=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  "$venv/bin/pip" install --quiet "matrix-synapse==$SYNAPSE_VERSION" >>"$LOGS/synapse-install.log" 2>&1 ||
    die "pip install matrix-synapse==$SYNAPSE_VERSION failed" "$LOGS/synapse-install.log"
  echo $((SECONDS - t0)) >"$venv/.install-seconds"
  touch "$venv/.done"
  log "matrix-synapse $SYNAPSE_VERSION installed in $((SECONDS - t0))s"
}

# homeserver.yaml, written once per run dir: the shared secret and the signing
# key must survive restarts (clients hold tokens and the database references
# the server's key).
synapse_config() {
  local d=$RUN/synapse venv secret
  venv=$(synapse_venv)
  mkdir -p "$d/media"
  if [[ ! -f $d/registration-secret ]]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/registration-secret"
    chmod 600 "$d/registration-secret"
  fi
  secret=$(<"$d/registration-secret")
  if [[ ! -f $d/signing.key ]]; then
    "$venv/bin/generate_signing_key" -o "$d/signing.key" ||
      die "generate_signing_key failed"
  fi
  cat >"$d/log.yaml" <<'YAML'
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: WARNING
  handlers: [console]
disable_existing_loggers: false
YAML
  # Rate limits: Synapse's defaults (0.2 messages/s per user) would make a
  # release card crawl; raised here, and a test that wants a 429 lowers them for
  # its own user with the admin API (override_ratelimit).
  cat >"$d/homeserver.yaml" <<YAML
server_name: "$SYNAPSE_SERVER_NAME"
public_baseurl: "$(synapse_url)/"
pid_file: "$d/homeserver.pid"
listeners:
  - port: $SYNAPSE_PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "$d/homeserver.db"
log_config: "$d/log.yaml"
media_store_path: "$d/media"
signing_key_path: "$d/signing.key"
registration_shared_secret: "$secret"
enable_registration: false
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
presence:
  enabled: false
url_preview_enabled: false
max_upload_size: 50M
rc_message:
  per_second: 100
  burst_count: 200
rc_registration:
  per_second: 100
  burst_count: 200
rc_login:
  address: { per_second: 100, burst_count: 200 }
  account: { per_second: 100, burst_count: 200 }
  failed_attempts: { per_second: 100, burst_count: 200 }
rc_joins:
  local: { per_second: 100, burst_count: 200 }
rc_invites:
  per_room: { per_second: 100, burst_count: 200 }
  per_user: { per_second: 100, burst_count: 200 }
rc_admin_redaction:
  per_second: 100
  burst_count: 200
YAML
}

# Register NAME through the shared-secret admin API unless it exists
# (Synapse answers 400 M_USER_IN_USE then).
synapse_register() { # NAME PASSWORD ADMIN(true|false)
  local venv
  venv=$(synapse_venv)
  "$venv/bin/python" - "$(synapse_url)" "$(<"$RUN/synapse/registration-secret")" "$@" <<'PY'
import hashlib, hmac, json, sys, urllib.request, urllib.error
url, secret, name, password, admin = sys.argv[1:6]
def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
_, nonce = call("GET", "/_synapse/admin/v1/register")
# the MAC the admin API expects: HMAC-SHA1 over nonce, user, password and role, NUL-separated
parts = (nonce["nonce"], name, password, "admin" if admin == "true" else "notadmin")
mac = hmac.new(secret.encode(), b"\x00".join(p.encode() for p in parts), hashlib.sha1).hexdigest()
status, body = call("POST", "/_synapse/admin/v1/register", {
    "nonce": nonce["nonce"], "username": name, "password": password,
    "admin": admin == "true", "mac": mac})
if status == 200:
    print(f"registered @{name}")
elif body.get("errcode") == "M_USER_IN_USE":
    print(f"@{name} exists")
else:
    sys.exit(f"registering @{name} failed: {status} {body}")
PY
}

up_synapse() {
  local d=$RUN/synapse venv u
  venv=$(synapse_venv)
  synapse_install
  synapse_config
  port_free_or_ours synapse "$SYNAPSE_PORT"
  start_bg synapse "$venv/bin/python" -m synapse.app.homeserver --config-path "$d/homeserver.yaml"
  wait_until 180 "synapse on :$SYNAPSE_PORT" "$LOGS/synapse.log" \
    http_ok "$(synapse_url)/health"
  for u in "${SYNAPSE_USERS[@]}"; do
    # the bot is a server admin: the tests lower one user's rate limit through it
    if [[ $u == ferry ]]; then synapse_register "$u" "ferry-$u" true >>"$LOGS/synapse.log" || die "registering @$u failed" "$LOGS/synapse.log"
    else synapse_register "$u" "ferry-$u" false >>"$LOGS/synapse.log" || die "registering @$u failed" "$LOGS/synapse.log"; fi
  done
  local users=
  for u in "${SYNAPSE_USERS[@]}"; do users+="${users:+, }\"$u\": {\"userId\": \"@$u:$SYNAPSE_SERVER_NAME\", \"password\": \"ferry-$u\"}"; done
  cat >"$d/synapse.json.tmp" <<JSON
{
  "version": "$SYNAPSE_VERSION",
  "url": "$(synapse_url)",
  "serverName": "$SYNAPSE_SERVER_NAME",
  "python": "$venv/bin/python",
  "registrationSecret": "$(<"$d/registration-secret")",
  "coldInstallSeconds": $(cat "$venv/.install-seconds" 2>/dev/null || echo null),
  "botUser": "@ferry:$SYNAPSE_SERVER_NAME",
  "users": { $users }
}
JSON
  mv "$d/synapse.json.tmp" "$d/synapse.json"
  cat >"$d/env.sh" <<ENV
export MATRIX_HOMESERVER_URL=$(synapse_url)
export MATRIX_SERVER_NAME=$SYNAPSE_SERVER_NAME
export MATRIX_USER=@ferry:$SYNAPSE_SERVER_NAME
export MATRIX_PASSWORD=ferry-ferry
ENV
  log "synapse ready: $(synapse_url) (server name $SYNAPSE_SERVER_NAME; users ${SYNAPSE_USERS[*]}, password ferry-<name>; $d/synapse.json)"
}

synapse_up() { pid_of synapse >/dev/null && [[ -f $RUN/synapse/synapse.json ]]; }

down_synapse() { stop_procs synapse; }
