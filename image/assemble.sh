#!/usr/bin/env bash
# VoiceKey image, last step: partitions written as files and joined into one image, with no loop
# device and no mount. Layout (MBR, like Raspberry Pi OS and Debian's raspi images):
#   1  FAT32 "RASPIFIRM"  /boot/firmware  firmware, kernel, initrd, config.txt, cmdline.txt, settings
#   2  ext4  "RASPIROOT"  /               read-only root
#   3  ext4  "VKDATA"     /var/lib/voicekey  small persistent data (later: Bluetooth bonds)
set -euo pipefail

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
used_kib=$(du -s -k --apparent-size "$root" | cut -f1)
root_mib=$(( (used_kib * 115 / 100) / 1024 + 64 ))
mke2fs -q -t ext4 -L RASPIROOT -U 5643b007-0000-4000-8000-000000000002 -E root_owner=0:0 -m 0 \
  -O ^has_journal -N $(( $(find "$root" | wc -l) + 4096 )) -d "$root" "$parts/root.ext4" "${root_mib}M"
# put the FAT content back so the root directory is whole again (for --keep-root inspection)
rmdir "$root/boot/firmware" && mv "$boot_stage/firmware" "$root/boot/firmware"

# 3: data, empty
mke2fs -q -t ext4 -L VKDATA -U 5643b007-0000-4000-8000-000000000003 -m 0 "$parts/data.ext4" "${data_mib}M"

# join: 4 MiB alignment; partition sizes in 512-byte sectors
s() { echo $(( $(stat -c %s "$1") / 512 )); }
b_start=8192
r_start=$(( b_start + $(s "$parts/boot.vfat") ))
d_start=$(( r_start + $(s "$parts/root.ext4") ))
total=$(( d_start + $(s "$parts/data.ext4") ))
rm -f "$out"
truncate -s $(( total * 512 )) "$out"
sfdisk -q "$out" <<SFDISK
label: dos
label-id: 0x5643b007
start=$b_start, size=$(s "$parts/boot.vfat"), type=c, bootable
start=$r_start, size=$(s "$parts/root.ext4"), type=83
start=$d_start, size=$(s "$parts/data.ext4"), type=83
SFDISK
dd if="$parts/boot.vfat" of="$out" bs=512 seek=$b_start conv=notrunc,sparse status=none
dd if="$parts/root.ext4" of="$out" bs=512 seek=$r_start conv=notrunc,sparse status=none
dd if="$parts/data.ext4" of="$out" bs=512 seek=$d_start conv=notrunc,sparse status=none
rm -rf "$parts"
echo "image: $out ($(( total / 2048 )) MiB: boot ${boot_mib} MiB, root ${root_mib} MiB, data ${data_mib} MiB)"
