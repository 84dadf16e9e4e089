#!/usr/bin/env bash
# The images the end-to-end test runs, built with buildah and no image registry (none is
# reachable from our machines), in buildah storage under the cache:
#   localhost/lark-e2e/python:3.11-bookworm  Debian bookworm (debootstrap, minbase) with its
#                                           python3 (3.11): the Dockerfile's PYTHON_IMAGE,
#                                           standing in for python:3.11-slim
#   localhost/lark-e2e/pause:3.10           the pod sandbox (pause.c, static)
#   localhost/lark-operator:e2e             the project's Dockerfile on that base
# The first two are built once; the operator image every run (buildah's layer cache keeps
# the dependency layer while pyproject.toml and the base are unchanged).
# Writes to OUT: operator.tar and pause.tar (docker-archive, for `ctr images import`),
# operator.id (the image ID the pod must run) and pause (the binary: the node's init).
# Usage: hack/e2e/images.sh OUT          rm -rf ~/.cache/lark-operator/e2e rebuilds everything
set -euo pipefail

# Whatever gets mounted here (debootstrap's /proc in its target, buildah's overlays and RUN
# mounts) stays in a private mount namespace that ends with this script.
if [[ -z ${_LARK_E2E_PRIVATE_MOUNTS:-} ]]; then
  _LARK_E2E_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private -- "$0" "$@"
fi

out=${1:?usage: images.sh OUT}
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${LARK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lark-operator}/e2e"
BASE=localhost/lark-e2e/python:3.11-bookworm
PAUSE=localhost/lark-e2e/pause:3.10
OPERATOR=localhost/lark-operator:e2e
BUILDER=localhost/lark-e2e/operator-builder:latest
mkdir -p "$out" "$cache"
buildah=(buildah --root "$cache/buildah/root" --runroot "$cache/buildah/run" --storage-driver overlay)

t0=$SECONDS
took() { echo "images: $1 took $((SECONDS - t0))s"; t0=$SECONDS; }
have_image() { "${buildah[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# Commit directory $2 as image $1 (a container from scratch; root owns the copy).
commit_dir() {
  local image=$1 dir=$2 c m
  shift 2
  c=$("${buildah[@]}" from scratch)
  m=$("${buildah[@]}" mount "$c")
  cp -a "$dir/." "$m/"
  "${buildah[@]}" umount "$c" >/dev/null
  "${buildah[@]}" config "$@" "$c"
  "${buildah[@]}" commit --quiet --rm "$c" "$image" >/dev/null
}

debian_mirror() {
  local m
  m=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  [[ -n $m ]] || m=$(sed -nE 's/^deb +(\[[^]]*\] +)?([^ ]+) +bookworm .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

if ! have_image "$BASE"; then
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  # As slim images are: no package lists, caches, docs; the host's name and resolver stay out.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/log/* "$rootfs"/etc/hostname
  : >"$rootfs/etc/resolv.conf"
  commit_dir "$BASE" "$rootfs" --env LANG=C.UTF-8 --cmd '["python3"]' \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  rm -rf "$rootfs"
  took "debootstrap + commit $BASE"
fi

if [[ ! -x $cache/pause || $here/pause.c -nt $cache/pause ]] || ! have_image "$PAUSE"; then
  gcc -Os -static -o "$cache/pause.tmp" "$here/pause.c"
  mv "$cache/pause.tmp" "$cache/pause"
  ctx=$(mktemp -d "$cache/pause.XXXXXX")
  install -m 0755 "$cache/pause" "$ctx/pause"
  commit_dir "$PAUSE" "$ctx" --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$ctx"
  took "pause"
fi

# RUN steps download the dependencies through this machine's TLS proxy: its CA bundle and
# pip's configuration are mounted for the build, read-only, and never land in the image.
mounts=()
for f in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
  [[ -f $f ]] && mounts+=(--volume "$f:$f:ro")
done
# Docker format: the docker-archive export then keeps the image ID (the test compares it with
# the one the pods run). chroot isolation: RUN steps need no runtime of their own.
bud=("${buildah[@]}" bud --pull=never --isolation chroot --network host --layers --format docker
  --build-arg PYTHON_IMAGE="$BASE" "${mounts[@]}")
# The builder stage gets a tag of its own, so that pruning keeps its layers (the dependency
# layer above all) for the next build; the second command takes them from the cache.
"${bud[@]}" --target builder --tag "$BUILDER" "$repo"
"${bud[@]}" --tag "$OPERATOR" "$repo"
# Earlier builds' images, untagged now.
"${buildah[@]}" rmi --prune >/dev/null
took "buildah bud $OPERATOR"

rm -f "$out/operator.tar" "$out/pause.tar"
"${buildah[@]}" push --quiet "$OPERATOR" "docker-archive:$out/operator.tar:$OPERATOR"
"${buildah[@]}" push --quiet "$PAUSE" "docker-archive:$out/pause.tar:$PAUSE"
"${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$OPERATOR" >"$out/operator.id"
install -m 0755 "$cache/pause" "$out/pause"
took "export"
