#!/usr/bin/env bash
# Turn a mounted Raspberry Pi OS (Bookworm, arm64) image into a VoiceKey.
#
# Writes only below --boot (the FAT partition, /boot/firmware on the Pi) and --root (the ext4 root).
# Idempotent: running it twice changes nothing the second time.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: provision.sh --boot DIR --root DIR [--repo DIR] [--install-cmd CMD]

  --boot DIR         the image's boot partition (config.txt, cmdline.txt live here)
  --root DIR         the image's root file system
  --repo DIR         VoiceKey checkout to install from (default: this script's repository)
  --install-cmd CMD  command that installs the Python package into the root, run with ROOT and REPO
                     exported (image/build.sh passes a chroot + qemu-user pip install; empty = skip)
  -h, --help         this text

What it does:
  * config.txt: dtoverlay=dwc2 under [all] (USB device mode on the OTG / USB-C port)
  * cmdline.txt: modules-load=dwc2 after rootwait
  * voicekey.yaml on the boot partition (from config/voicekey.example.yaml) unless one exists,
    so the device can be configured from any PC by opening the SD card
  * systemd units + gadget script installed and enabled (gadget early at boot, daemon after it)
USAGE
}

boot="" root="" repo="" install_cmd=""
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
while [ $# -gt 0 ]; do
  case "$1" in
    --boot) boot="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --repo) repo="$2"; shift 2 ;;
    --install-cmd) install_cmd="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "provision.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$boot" ] || [ -z "$root" ]; then
  echo "provision.sh: --boot and --root are required (see --help)" >&2; exit 2
fi
for f in "$boot/config.txt" "$boot/cmdline.txt"; do
  if [ ! -f "$f" ]; then
    echo "provision.sh: $f not found: --boot must be the image's boot (FAT) partition" >&2; exit 2
  fi
done
if [ ! -d "$root/etc" ]; then
  echo "provision.sh: $root/etc not found: --root must be the image's root file system" >&2; exit 2
fi

# config.txt: the dwc2 overlay must apply to every board, so it goes in an [all] section.
if ! grep -qE '^[[:space:]]*dtoverlay=dwc2([,[:space:]]|$)' "$boot/config.txt"; then
  printf '\n[all]\n# VoiceKey: USB device (gadget) mode on the OTG / USB-C port\ndtoverlay=dwc2\n' >> "$boot/config.txt"
fi

# cmdline.txt is one line; modules-load=dwc2 goes right after rootwait.
if ! grep -q 'modules-load=dwc2' "$boot/cmdline.txt"; then
  if grep -q 'rootwait' "$boot/cmdline.txt"; then
    sed -i 's/rootwait/rootwait modules-load=dwc2/' "$boot/cmdline.txt"
  else
    sed -i '1s/$/ modules-load=dwc2/' "$boot/cmdline.txt"
  fi
fi

if [ ! -f "$boot/voicekey.yaml" ]; then
  install -m 0644 "$repo/config/voicekey.example.yaml" "$boot/voicekey.yaml"
fi

install -D -m 0644 "$repo/systemd/voicekey-gadget.service" "$root/etc/systemd/system/voicekey-gadget.service"
install -D -m 0644 "$repo/systemd/voicekey.service" "$root/etc/systemd/system/voicekey.service"
install -D -m 0755 "$repo/gadget/voicekey-gadget.sh" "$root/usr/lib/voicekey/voicekey-gadget.sh"
install -D -m 0644 "$repo/README.md" "$root/usr/share/doc/voicekey/README.md"
mkdir -p "$root/etc/voicekey" "$root/etc/systemd/system/sysinit.target.wants" \
         "$root/etc/systemd/system/multi-user.target.wants"
ln -sfn ../voicekey-gadget.service "$root/etc/systemd/system/sysinit.target.wants/voicekey-gadget.service"
ln -sfn ../voicekey.service "$root/etc/systemd/system/multi-user.target.wants/voicekey.service"

if [ -n "$install_cmd" ]; then
  ROOT="$root" REPO="$repo" bash -c "$install_cmd"
fi
echo "provisioned: boot=$boot root=$root"
