#!/usr/bin/env bash
# Build the VoiceKey SD card image (Raspberry Pi Zero 2 W, 3, 4) from Debian bookworm arm64.
#
# No loop devices and no mounts of the image: the root is made by mmdebstrap (arm64 programs run
# through qemu-user-static + binfmt_misc), the partitions are written as files (mkfs.vfat + mcopy,
# mke2fs -d) and joined with sfdisk + dd. Everything downloaded (Debian packages, aarch64 wheels) is
# kept in a cache outside the repository, so a second build downloads nothing.
set -euo pipefail
# The whole script is one block, read before it runs: editing this file during a build is safe.
{

usage() {
  cat <<'USAGE'
Usage: image/build.sh [--out DIR] [--cache DIR] [--mirror URL] [--keep-root]

Build build/voicekey-VERSION-arm64.img.zst (+ .sha256, .bmap) from Debian bookworm arm64.
Needs root (mmdebstrap's root mode, binfmt_misc) and the Debian packages listed in
image/packages-host.txt (`make image` installs them).

  --out DIR     where the image goes (default: build/ in the repository)
  --cache DIR   download cache (default: $VOICEKEY_IMAGE_CACHE, else ~/.cache/voicekey-image)
  --mirror URL  Debian mirror (default: http://deb.debian.org/debian)
  --keep-root   keep the unpacked root directory (OUT/work/root) for inspection
  --force       build even if nothing that goes into the image changed since the last build
  -h, --help    this text

Outputs, in OUT:
  voicekey-VERSION-arm64.img       the raw image (kept for the boot test; sparse)
  voicekey-VERSION-arm64.img.zst   what users flash (bmaptool / dd / Raspberry Pi Imager)
  voicekey-VERSION-arm64.img.zst.sha256, voicekey-VERSION-arm64.img.bmap
  voicekey-VERSION-arm64.sizes     root / image / compressed sizes and build time
USAGE
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
out="$repo/build"
cache="${VOICEKEY_IMAGE_CACHE:-$HOME/.cache/voicekey-image}"
mirror="http://deb.debian.org/debian"
keep_root=0
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --keep-root) keep_root=1; shift ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build.sh: $*" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$here/common.sh"

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap root mode and binfmt_misc): run 'sudo make image'"
py="${VOICEKEY_BUILD_PYTHON:-$repo/.venv/bin/python}"
[ -x "$py" ] || die "$py not found: run 'make venv' first, or set VOICEKEY_BUILD_PYTHON to a Python with pip, setuptools and wheel"
for tool in mmdebstrap mkfs.vfat mcopy mmd mke2fs sfdisk zstd bmaptool; do
  command -v "$tool" >/dev/null || die "$tool not found: install the packages in image/packages-host.txt (make image does)"
done
[ -x /usr/bin/qemu-aarch64-static ] || die "/usr/bin/qemu-aarch64-static not found: apt-get install qemu-user-static"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n1)
[ -n "$version" ] || die "no version in $repo/pyproject.toml"
name="voicekey-$version-arm64"
start=$(date +%s)

# --- incremental: nothing to do when no input of the image changed -------------------------------
inputs_hash() {
  (cd "$repo" && find image systemd gadget appliance config/voicekey.example.yaml pyproject.toml README.md \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -d' ' -f1
}
inputs=$(inputs_hash)
if [ "$force" = 0 ] && [ -f "$out/$name.img" ] && [ -f "$out/$name.img.zst" ] \
   && [ "$(cat "$out/$name.inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "build.sh: $out/$name.img.zst is up to date (no input changed; --force rebuilds)"
  exit 0
fi
rm -f "$out/$name.inputs"
mkdir -p "$out" "$cache/debs" "$cache/wheels" "$cache/sdists" "$cache/built-wheels"

# --- arm64 programs through qemu-user: binfmt_misc, registered here (needs root) -----------------
vk_register_binfmt || die "could not register qemu-aarch64 with binfmt_misc"

# --- Python wheels for aarch64, downloaded natively; VoiceKey's own wheel --------------------------
log "wheels (aarch64, cache $cache/wheels)"
vk_fetch_wheels "$py" "$cache" "$repo" || die "could not download the aarch64 wheels"
vk_build_voicekey_wheel "$py" "$cache" "$repo" \
  || die "could not build the VoiceKey wheel (needs setuptools and wheel for $py)"

# --- the root file system ---------------------------------------------------------------------
work="$out/work"
rm -rf "$work"
mkdir -p "$work"
root="$work/root"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { [ "$keep_root" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

mapfile -t pkgs < <(grep -v '^\s*#' "$here/packages-device.txt" | sed '/^\s*$/d')
log "mmdebstrap bookworm arm64 (${#pkgs[@]} packages)"
# shellcheck disable=SC2016  # "$1" in the hooks is the root directory, expanded by mmdebstrap
# The hooks: settings that package scripts read while installing (raspi-firmware, initramfs) go in
# first; downloaded .debs are synced with the cache before and after (mmdebstrap's own mechanism).
mmdebstrap --arch=arm64 --variant=minbase --mode=root --format=directory \
  --components="main non-free-firmware" \
  --include="$(IFS=,; echo "${pkgs[*]}")" \
  --dpkgopt='force-confold' --dpkgopt='force-confdef' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --skip=download/empty \
  --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
  --setup-hook="sync-in '$cache/debs' /var/cache/apt/archives" \
  --setup-hook="copy-in '$here/rootfs/etc' /" \
  --setup-hook="copy-in '$here/rootfs/usr' /" \
  --customize-hook="sync-out /var/cache/apt/archives '$cache/debs'" \
  --customize-hook="copy-in $(printf "'$cache/%s' " "${vk_chroot_cache_dirs[@]}")/tmp" \
  --customize-hook="copy-in $(printf "'$here/%s' " "${vk_chroot_repo_files[@]}")/tmp" \
  --customize-hook='chroot "$1" /bin/bash /tmp/chroot-setup.sh' \
  --customize-hook="sync-out /tmp/built-wheels '$cache/built-wheels'" \
  --customize-hook='rm -rf "$1"/tmp/* "$1"/var/cache/apt/archives/*.deb' \
  bookworm "$root" "$mirror" 2>&1 | grep -v '^I: \(installing\|running\|downloading\|Get\)' || true
[ -x "$root/opt/voicekey/bin/voicekey" ] || die "the root was not finished (see the output above)"

# --- native post-processing: settings files, pruning, read-only root --------------------------
log "pruning and settings"
bash "$here/finish-root.sh" --root "$root" --repo "$repo"

# --- partitions and the image --------------------------------------------------------------------
log "partitions"
bash "$here/assemble.sh" --root "$root" --repo "$repo" --out "$out/$name.img"

log "compressing"
vk_release "$out" "$name" "$root" "$start"
echo "$inputs" > "$out/$name.inputs"
log "wrote $out/$name.img.zst"
exit 0
}
