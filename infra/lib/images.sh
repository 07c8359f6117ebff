# shellcheck shell=bash
# Base, stack and sample-app images built with buildah and pushed to the primary; the sample app's git repo.
# Sourced by infra/infra.sh, which sets the settings (ports, regions, paths) these use;
# every up_/ensure_ function here is idempotent: it does only what is missing.

# --------------------------------------------------------------- images --
# Everything is built offline: static binaries from Debian packages and Go's
# standard library, assembled with buildah, cached as OCI archives under
# $CACHE/images-<hash of infra/images>, then pushed to the primary registry.
images_key() {
  (cd "$INFRA_DIR/images" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$PAUSE_TAG $IMAGES_TAG") |
    sha256sum | cut -c1-12
}

registry_has() { # HOST:PORT/REPO:TAG exists?
  local host=${1%%/*} rest=${1#*/}
  curl -fsS -o /dev/null -I --max-time 5 \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$host/v2/${rest%:*}/manifests/${rest##*:}"
}

bud() { # bud LOG TAG CONTEXT [extra buildah args]
  local logf=$1 tag=$2 ctx=$3
  shift 3
  buildah bud --layers --timestamp 0 --isolation chroot --pull=never --tls-verify=false \
    -t "$tag" "$@" "$ctx" >>"$logf" 2>&1 || die "buildah bud $tag failed" "$logf"
}

build_images() {
  local out=$1 logf=$LOGS/images-build.log work=$1.work
  rm -rf "$work"
  mkdir -p "$work"
  log "building images (log $logf)"
  : >"$logf"
  # pause: static C binary
  mkdir -p "$work/pause"
  gcc -Os -static -o "$work/pause/pause" "$INFRA_DIR/images/pause/pause.c" >>"$logf" 2>&1 || die "gcc pause failed" "$logf"
  strip "$work/pause/pause"
  cp "$INFRA_DIR/images/pause/Dockerfile" "$work/pause/"
  bud "$logf" localhost/ferry/pause:$PAUSE_TAG "$work/pause"
  # base: busybox-static + minimal /etc, language independent
  local root=$work/base/rootfs
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var/tmp,run}
  cp /bin/busybox "$root/bin/busybox"
  local app dir
  for app in $(/bin/busybox --list-full); do
    [[ $app == bin/busybox ]] && continue
    dir=$(dirname "$app")
    mkdir -p "$root/$dir"
    ln -sf /bin/busybox "$root/$app"
  done
  cp -r "$INFRA_DIR/images/base/etc/." "$root/etc/"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp "$INFRA_DIR/images/base/Dockerfile" "$work/base/"
  bud "$logf" localhost/ferry/base:$IMAGES_TAG "$work/base"
  # The archive's manifest goes to the registry byte for byte, so its digest is
  # the one the registry serves: the stack records it as its base.
  buildah push "localhost/ferry/base:$IMAGES_TAG" "oci-archive:$work/base.tar:ferry/base:$IMAGES_TAG" >>"$logf" 2>&1 ||
    die "buildah push oci-archive base failed" "$logf"
  local base_digest
  base_digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$work/base.tar" 2>>"$logf") ||
    die "skopeo inspect base archive failed" "$logf"
  # stack-shell: the "app server" runtime (static Go, stdlib only) + layout
  mkdir -p "$work/stack-shell"
  cp -r "$INFRA_DIR/images/stack-shell/." "$work/stack-shell/"
  (cd "$work/stack-shell/ferry-run" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=auto \
    GOCACHE=$CACHE/go-build go build -trimpath -ldflags '-s -w' -o ../ferry-run.bin .) >>"$logf" 2>&1 ||
    die "go build ferry-run failed" "$logf"
  bud "$logf" localhost/ferry/stack-shell:$IMAGES_TAG "$work/stack-shell" \
    --build-arg BASE=localhost/ferry/base:$IMAGES_TAG \
    --build-arg BASE_NAME=ferry/base --build-arg BASE_DIGEST="$base_digest"
  local img
  for img in pause:$PAUSE_TAG stack-shell:$IMAGES_TAG; do
    buildah push "localhost/ferry/$img" "oci-archive:$work/${img%%:*}.tar:ferry/$img" >>"$logf" 2>&1 ||
      die "buildah push oci-archive $img failed" "$logf"
  done
  buildah push "localhost/ferry/pause:$PAUSE_TAG" \
    "docker-archive:$work/pause-docker.tar:127.0.0.1:$PRIMARY_PORT/ferry/pause:$PAUSE_TAG" >>"$logf" 2>&1 ||
    die "buildah push docker-archive pause failed" "$logf"
  mv "$work"/*.tar "$out/"
  rm -rf "$work"
}

# The sample app: a real git repository with tags v1..v3 whose Dockerfile
# starts FROM the stack image in the primary registry.
make_app_repo() {
  local repo=$CACHE/repos/hello-app src=$INFRA_DIR/images/hello-app
  local want
  want=$( (cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12)
  if [[ -f $repo/.ferry-src && $(<"$repo/.ferry-src") == "$want" ]] && git -C "$repo" rev-parse -q --verify v3 >/dev/null; then
    return 0
  fi
  log "creating sample app repository $repo"
  rm -rf "$repo"
  mkdir -p "$repo"
  local g=(git -C "$repo" -c user.name="Ferry Infra" -c user.email=infra@ferry.local -c commit.gpgsign=false -c init.defaultBranch=main)
  "${g[@]}" init -q
  local v n=0
  for v in v1 v2 v3 v4; do # v4: the bad version (issue 18)
    n=$((n + 1))
    find "$repo" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
    cp -r "$src/common/." "$repo/"
    cp -r "$src/$v/." "$repo/"
    sed -i "s/@REGISTRY@/127.0.0.1:$PRIMARY_PORT/; s/@STACK_TAG@/$IMAGES_TAG/" "$repo/Dockerfile"
    "${g[@]}" add -A
    GIT_AUTHOR_DATE="2024-01-0${n}T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0${n}T12:00:00Z" \
      "${g[@]}" commit -q -m "hello-app $v"
    "${g[@]}" tag -a "$v" -m "release $v"
  done
  echo "$want" >"$repo/.ferry-src"
  echo .ferry-src >"$repo/.git/info/exclude"
}

up_images() {
  ((EUID == 0)) || die "the images component needs root (buildah with overlay storage)"
  ensure_pkgs buildah:buildah skopeo:skopeo gcc:gcc /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev \
    /bin/busybox:busybox-static git:git strip:binutils
  ensure_go
  pid_of registry-primary >/dev/null || up_registries
  local key out
  key=$(images_key)
  out=$CACHE/images-$key
  if [[ ! -f $out/.done ]]; then
    local t0=$SECONDS
    mkdir -p "$out"
    build_images "$out"
    echo $((SECONDS - t0)) >"$out/.build-seconds"
    touch "$out/.done"
    log "images built in $((SECONDS - t0))s -> $out"
  fi
  local p=127.0.0.1:$PRIMARY_PORT img
  for img in pause:$PAUSE_TAG base:$IMAGES_TAG stack-shell:$IMAGES_TAG; do
    if ! registry_has "$p/ferry/$img"; then
      skopeo copy -q --dest-tls-verify=false "oci-archive:$out/${img%%:*}.tar" "docker://$p/ferry/$img" >>"$LOGS/images.log" 2>&1 ||
        die "push ferry/$img failed" "$LOGS/images.log"
      skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$p/ferry/$img" "docker://$p/ferry/${img%%:*}:latest" >>"$LOGS/images.log" 2>&1
      log "pushed $p/ferry/$img"
    fi
  done
  make_app_repo
  local repo=$CACHE/repos/hello-app v
  for v in v1 v2 v3 v4; do # v4: the bad version (issue 18)
    if registry_has "$p/ferry/hello-app:$v"; then continue; fi
    local ctx=$CACHE/repos/.build-hello-app-$v
    rm -rf "$ctx"
    git clone -q --branch "$v" "$repo" "$ctx" 2>>"$LOGS/images.log"
    bud "$LOGS/images.log" "$p/ferry/hello-app:$v" "$ctx" --pull=missing --label "org.opencontainers.image.revision=$(git -C "$ctx" rev-parse HEAD)"
    buildah push -q --tls-verify=false "$p/ferry/hello-app:$v" "docker://$p/ferry/hello-app:$v" >>"$LOGS/images.log" 2>&1 ||
      die "buildah push hello-app:$v failed" "$LOGS/images.log"
    rm -rf "$ctx"
    log "built and pushed $p/ferry/hello-app:$v"
  done
}
