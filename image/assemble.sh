#!/usr/bin/env bash
# VoiceKey image, last step: partitions written as files and joined into one image, with no loop
# device and no mount. Layout (MBR, like Raspberry Pi OS and Debian's raspi images):
#   1  FAT32 "RASPIFIRM"  /boot/firmware  firmware, kernel, initrd, config.txt, cmdline.txt, settings
#   2  ext4  "RASPIROOT"  /               read-only root
#   3  ext4  "VKDATA"     /var/lib/voicekey  small persistent data (later: Bluetooth bonds)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$here/common.sh"

usage() { echo "Usage: ${0##*/} --root DIR --repo DIR --out IMG [--boot-mib N] [--data-mib N]   (called by image/build.sh)"; }
root="" repo="" out="" boot_mib=256 data_mib=64
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --repo) repo="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --boot-mib) boot_mib="$2"; shift 2 ;;
    --data-mib) data_mib="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "${0##*/}: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ! -d "$root/boot/firmware" ] || [ -z "$out" ]; then usage >&2; exit 2; fi
[ -f "$root/boot/firmware/config.txt" ] || { echo "${0##*/}: $root/boot/firmware/config.txt missing: raspi-firmware did not run" >&2; exit 2; }
parts="$out.parts"
rm -rf "$parts" && mkdir -p "$parts"
# same bytes for the same inputs where the tools allow it
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH

# 1: FAT, from the root's /boot/firmware (then emptied in the root: it is the mount point)
truncate -s "${boot_mib}M" "$parts/boot.vfat"
mkfs.vfat -F 32 -n RASPIFIRM -i 5643b007 "$parts/boot.vfat" >/dev/null
mcopy -s -p -m -i "$parts/boot.vfat" "$root/boot/firmware/"* ::/
boot_stage="$parts/boot-stage"
mkdir -p "$boot_stage"
mv "$root/boot/firmware" "$boot_stage/firmware"
mkdir -p "$root/boot/firmware"

# 2: root, sized to its content + 15 % (read-only: no room for growth needed) + inode room
vk_mkfs_root "$root" "$parts/root.ext4" RASPIROOT 5643b007-0000-4000-8000-000000000002
root_mib=$vk_root_mib
# put the FAT content back so the root directory is whole again (for --keep-root inspection)
rmdir "$root/boot/firmware" && mv "$boot_stage/firmware" "$root/boot/firmware"

# 3: data, empty
vk_mkfs_data "$parts/data.ext4" 5643b007-0000-4000-8000-000000000003 "$data_mib"

# join: 4 MiB alignment, one partition after the other
vk_join "$out" 0x5643b007 "$parts/boot.vfat" "$parts/root.ext4" "$parts/data.ext4"
rm -rf "$parts"
echo "image: $out ($vk_image_mib MiB: boot ${boot_mib} MiB, root ${root_mib} MiB, data ${data_mib} MiB)"
