#!/usr/bin/env bash
# Idempotent installs for a fresh machine: Debian packages and npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
# lighttpd, lighttpd-mod-openssl, openssh-server: the git servers the remote-git tests start (test/support/git-servers.ts).
PKGS=(redis-server redis-sentinel docker-registry buildah skopeo containerd runc containernetworking-plugins iproute2 iptables conntrack socat git openssl chromium lighttpd lighttpd-mod-openssl openssh-server openssh-client)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# npm ci only when the lockfile changed since the last install.
stamp=node_modules/.ferry-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -x node_modules/.bin/node || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >/dev/null
  echo "$want" >"$stamp"
fi
