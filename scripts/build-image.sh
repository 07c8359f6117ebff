#!/usr/bin/env bash
# Builds Ferry's own image with buildah, the way Ferry builds apps
# (src/build/builder.ts: `buildah bud --layers --timestamp 0 --isolation chroot`,
# then `buildah push`), and pushes it to the primary registry.
#
#   bash scripts/build-image.sh [TAG]     default tag: the package.json version
#
# Env: FERRY_IMAGE_REGISTRY (default 127.0.0.1:5000), FERRY_IMAGE_REPO
# (default ferry/ferry), FERRY_IMAGE_BASE (default <registry>/ferry/base:1,
# built by infra/infra.sh up images), FERRY_IMAGE_INSECURE (default 1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
registry=${FERRY_IMAGE_REGISTRY:-127.0.0.1:5000}
repo=${FERRY_IMAGE_REPO:-ferry/ferry}
tag=${1:-$(node -p "require('$root/package.json').version")}
base=${FERRY_IMAGE_BASE:-$registry/ferry/base:1}
tls=$([[ ${FERRY_IMAGE_INSECURE:-1} == 1 ]] && echo false || echo true)
cache=${FERRY_CACHE:-$HOME/.cache/ferry}/ferry-image
storage=(--root "$cache/storage/overlay/root" --runroot "$cache/storage/overlay/run" --storage-driver overlay)
image=$registry/$repo:$tag

ctx=$(mktemp -d "${TMPDIR:-/tmp}/ferry-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
app=$ctx/rootfs/app
mkdir -p "$app" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"

# 1. Ferry's sources and its production dependencies only.
cp -r "$root/bin" "$root/src" "$root/commands" "$root/jobs" "$root/package.json" "$root/package-lock.json" "$app/"
# --ignore-scripts: the `node` package's install script fetches a binary; the
# pinned one is copied below instead. The npm cache makes this work offline.
(cd "$app" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
rm -rf "$app/node_modules/node" "$app/node_modules/.bin/node"
# Type declarations and source maps are for editors and debuggers, not for running.
find "$app/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

# 2. The pinned Node.js binary and the shared libraries it loads.
node_bin=$(readlink -f "$root/node_modules/node/bin/node")
[[ -x $node_bin ]] || { echo "build-image: no $root/node_modules/node/bin/node; run npm ci" >&2; exit 1; }
want=$(node -p "require('$root/node_modules/node/package.json').version")
have=$("$node_bin" --version)
[[ $have == "v$want" ]] || { echo "build-image: $node_bin is $have, package.json pins $want" >&2; exit 1; }
cp "$node_bin" "$ctx/rootfs/usr/local/bin/node"
strip --strip-unneeded "$ctx/rootfs/usr/local/bin/node" 2>/dev/null || true
# The shared libraries the binary and the production dependencies' native addons load (resvg for the
# thread charts needs librt, which Node itself does not).
{
  ldd "$node_bin"
  find "$app/node_modules" -name '*.node' -type f -exec ldd {} \;
} 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u | while read -r lib; do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done

# 3. Build and push, as Ferry's builder does.
cp "$root/deploy/image/Containerfile" "$ctx/Containerfile"
mkdir -p "$cache"
buildah "${storage[@]}" bud --layers --timestamp 0 --isolation chroot --tls-verify="$tls" \
  --pull=true --build-arg "BASE=$base" -f "$ctx/Containerfile" -t "$image" "$ctx" >&2
buildah "${storage[@]}" push --tls-verify="$tls" --digestfile "$ctx/digest" "$image" "docker://$image" >&2
echo "$image@$(cat "$ctx/digest")"
