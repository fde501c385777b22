#!/usr/bin/env bash
# Build the VoiceKey SD card image for the Raspberry Pi 5 from a Raspberry Pi OS Lite image.
#
# The Pi 5's USB-C port does USB device mode only with the Raspberry Pi kernel, so this flavour
# customises a user-supplied Raspberry Pi OS Lite (bookworm, 64-bit) image into the same product as
# image/build.sh's Debian image: the same Python environment in /opt/voicekey (the same wheel cache
# and image/chroot-setup.sh, run through qemu-user in a chroot), the same units, settings files and
# read-only root (image/common.sh has what both flavours share), plus a VKDATA partition.
#
# No loop devices and no mounts: the partition table is read with sfdisk --json, the partitions are
# cut out with dd, the FAT partition is edited in place with mtools (the Raspberry Pi boot files
# stay as they are), the ext4 root is copied out with debugfs (image/ext4tree.py puts back what
# rdump loses), customised, written anew with mke2fs -d, and the three partitions joined with
# sfdisk + dd.
set -euo pipefail
# The whole script is one block, read before it runs: editing this file during a build is safe.
{

usage() {
  cat <<'USAGE'
Usage: image/build-rpios.sh --base PATH [--out DIR] [--cache DIR] [--mirror URL] [--offline] [--keep-work]

Build build/voicekey-VERSION-rpios-arm64.img.zst (+ .sha256, .bmap, .sizes) for the Raspberry Pi 5
from a Raspberry Pi OS Lite (64-bit, bookworm) image. Needs root (owners in the copied root, the
qemu-user chroot) and the Debian packages in image/packages-host.txt (`make image-rpios` installs
them).

  --base PATH   the Raspberry Pi OS Lite image: .img, .img.xz or .img.zst, e.g.
                2024-11-19-raspios-bookworm-arm64-lite.img.xz (Raspberry Pi's download page,
                "Raspberry Pi OS Lite", 64-bit, bookworm). Only read, never changed.
  --out DIR     where the image goes (default: build/ in the repository)
  --cache DIR   download cache shared with image/build.sh (default: $VOICEKEY_IMAGE_CACHE, else
                ~/.cache/voicekey-image): aarch64 wheels, and Debian packages installed into the
                root when the base lacks one that the Debian image has (python3-venv, ...)
  --mirror URL  Debian mirror for such packages when the cache has none (default:
                http://deb.debian.org/debian)
  --offline     use the cache as it is (no wheel download, no mirror): after a `make image`
  --keep-work   keep OUT/work-rpios (the copied root, the partitions) for inspection
  -h, --help    this text

What changes on the base:
  bootfs (FAT): config.txt gets dtoverlay=dwc2,dr_mode=peripheral under [all] (USB device mode on
      the USB-C port); cmdline.txt gets ro modules-load=dwc2 fsck.mode=skip and loses Raspberry Pi
      OS's first-boot init= (resize, new PARTUUIDs) and any systemd.run= first-run script;
      voicekey.yaml and voicekey-system.txt are added. Nothing else on it is touched.
  rootfs (ext4): /opt/voicekey, VoiceKey's units and settings, a read-only fstab (tmpfs for what is
      written), the first-boot user wizard (userconfig), swap file, ssh key regeneration,
      NetworkManager and avahi masked: the first boot needs no keyboard and no network.
  a third partition VKDATA (ext4, /var/lib/voicekey) after the root. The disk identifier, and so
  the PARTUUIDs that cmdline.txt and fstab use, stay those of the base.
USAGE
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
out="$repo/build"
cache="${VOICEKEY_IMAGE_CACHE:-$HOME/.cache/voicekey-image}"
base=""
mirror="http://deb.debian.org/debian"
keep_work=0
offline=0
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="${2-}"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cache) cache="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --keep-work) keep_work=1; shift ;;
    --offline) offline=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-rpios.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build-rpios.sh: $*" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$here/common.sh"

get_it="download Raspberry Pi OS Lite (64-bit, bookworm), e.g. 2024-11-19-raspios-bookworm-arm64-lite.img.xz, and pass it as --base"
[ -n "$base" ] || die "--base PATH is required: $get_it (see --help)"
[ -e "$base" ] || die "--base $base: no such file: $get_it"
{ [ -f "$base" ] && [ -r "$base" ]; } || die "--base $base: not a readable file: $get_it"
[ "$(id -u)" = 0 ] || die "needs root (owners in the copied root, the arm64 chroot): run 'sudo make image-rpios BASE=$base'"
py="${VOICEKEY_BUILD_PYTHON:-$repo/.venv/bin/python}"
[ -x "$py" ] || die "$py not found: run 'make venv' first, or set VOICEKEY_BUILD_PYTHON to a Python with pip, setuptools and wheel"
for tool in sfdisk dd mcopy mdir mtype debugfs mke2fs zstd xz bmaptool python3 dpkg-scanpackages; do
  command -v "$tool" >/dev/null || die "$tool not found: install the packages in image/packages-host.txt (make image-rpios does)"
done
[ -x /usr/bin/qemu-aarch64-static ] || die "/usr/bin/qemu-aarch64-static not found: apt-get install qemu-user-static"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n1)
[ -n "$version" ] || die "no version in $repo/pyproject.toml"
name="voicekey-$version-rpios-arm64"
start=$(date +%s)
export MTOOLS_SKIP_CHECK=1

work="$out/work-rpios"
rm -rf "$work"
mkdir -p "$work" "$cache/debs"
root="$work/root"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { [ "$keep_work" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# --- the base image: partition table, partitions, what it is -------------------------------------
log "base $base"
case "$base" in
  *.xz) xz -dc -T0 "$base" > "$work/base.img" || die "--base $base: xz could not decompress it: $get_it"; img="$work/base.img" ;;
  *.zst) zstd -dc "$base" > "$work/base.img" || die "--base $base: zstd could not decompress it: $get_it"; img="$work/base.img" ;;
  *.zip|*.gz|*.7z) die "--base $base: unpack it first (or pass the .img.xz that Raspberry Pi publishes)" ;;
  *) img="$base" ;;
esac
not_rpios="is not a Raspberry Pi OS image (expected an MBR partition table with a FAT boot partition 1 and an ext4 root partition 2): $get_it"
table=$(sfdisk --json "$img" 2>/dev/null) || die "--base $base: no partition table found; it $not_rpios"
# label, disk identifier, then "start size type" per partition
mapfile -t layout < <(python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
print(t.get("label", ""), t.get("id", ""))
for p in t.get("partitions", []):
    print(p["start"], p["size"], p["type"])
' <<<"$table")
read -r label disk_id <<<"${layout[0]}"
[ "$label" = dos ] || die "--base $base: its partition table is '$label', not MBR (dos); it $not_rpios"
[ ${#layout[@]} -ge 3 ] || die "--base $base: has $(( ${#layout[@]} - 1 )) partition(s), needs 2; it $not_rpios"
read -r p1_start p1_size p1_type <<<"${layout[1]}"
read -r p2_start p2_size p2_type <<<"${layout[2]}"
case "$p1_type" in b|c|e) ;; *) die "--base $base: partition 1 has type $p1_type, not FAT (b/c/e); it $not_rpios" ;; esac
[ "$p2_type" = 83 ] || die "--base $base: partition 2 has type $p2_type, not Linux (83); it $not_rpios"
disk_id=${disk_id#0x}
[[ "$disk_id" =~ ^[0-9a-f]{8}$ ]] || die "--base $base: disk identifier '$disk_id' is not an MBR one; it $not_rpios"

dd if="$img" of="$work/boot.vfat" bs=512 skip="$p1_start" count="$p1_size" conv=sparse status=none
dd if="$img" of="$work/root.ext4" bs=512 skip="$p2_start" count="$p2_size" conv=sparse status=none
# partition 3 of an image this script made (a rebuild from its own output) is made anew; a base
# with other partitions is not one we know
if [ ${#layout[@]} -ge 4 ]; then
  read -r p3_start p3_size _ <<<"${layout[3]}"
  dd if="$img" of="$work/old-data.ext4" bs=512 skip="$p3_start" count="$p3_size" conv=sparse status=none 2>/dev/null || true
  { [ ${#layout[@]} -eq 4 ] && [ "$(debugfs -R 'stats' "$work/old-data.ext4" 2>/dev/null | sed -n 's/^Filesystem volume name: *//p')" = VKDATA ]; } \
    || die "--base $base: has $(( ${#layout[@]} - 1 )) partitions; Raspberry Pi OS has 2 (a VoiceKey image 3, the third VKDATA): $get_it"
  rm -f "$work/old-data.ext4"
fi
[ "$img" = "$base" ] || rm -f "$img"

mdir -i "$work/boot.vfat" ::/ >/dev/null 2>&1 || die "--base $base: partition 1 is not a FAT file system; it $not_rpios"
for f in config.txt cmdline.txt; do
  mtype -i "$work/boot.vfat" "::/$f" > "$work/$f" 2>/dev/null \
    || die "--base $base: the boot partition has no $f; it $not_rpios"
done
root_uuid=$(debugfs -R stats "$work/root.ext4" 2>/dev/null | sed -n 's/^Filesystem UUID: *//p')
[ -n "$root_uuid" ] || die "--base $base: partition 2 is not an ext4 file system; it $not_rpios"

# what the root is: bookworm, arm64
os_release=$(debugfs -R 'cat /usr/lib/os-release' "$work/root.ext4" 2>/dev/null || true)
[ -n "$os_release" ] || os_release=$(debugfs -R 'cat /etc/os-release' "$work/root.ext4" 2>/dev/null || true)
codename=$(sed -n 's/^VERSION_CODENAME=//p' <<<"$os_release" | tr -d '"')
[ -n "$codename" ] || die "--base $base: no /usr/lib/os-release in its root; it $not_rpios"
[ "$codename" = bookworm ] || die "--base $base: is based on Debian '$codename', not bookworm: VoiceKey's image needs bookworm (Python 3.11, as the Debian image): $get_it"
debugfs -R "dump /usr/bin/dpkg $work/dpkg" "$work/root.ext4" >/dev/null 2>&1 || true
elf_machine=$( [ -s "$work/dpkg" ] && od -An -tx1 -j18 -N2 "$work/dpkg" | tr -d ' \n' )
rm -f "$work/dpkg"
case "$elf_machine" in
  b700) ;;
  2800) die "--base $base: is a 32-bit (armhf) image: the VoiceKey image needs 64-bit: download Raspberry Pi OS Lite (64-bit), e.g. 2024-11-19-raspios-bookworm-arm64-lite.img.xz" ;;
  "") die "--base $base: no /usr/bin/dpkg in its root; it $not_rpios" ;;
  *) die "--base $base: its programs are not arm64 (ELF machine $elf_machine); $get_it" ;;
esac
log "base: MBR $disk_id, bootfs $((p1_size / 2048)) MiB, rootfs $((p2_size / 2048)) MiB ($codename, arm64)"

# --- what the chroot needs from the cache ---------------------------------------------------------
vk_register_binfmt || die "could not register qemu-aarch64 with binfmt_misc"
log "wheels (aarch64, cache $cache/wheels)"
if [ "$offline" = 0 ]; then
  vk_fetch_wheels "$py" "$cache" "$repo" || die "could not download the aarch64 wheels (or use --offline with a cache that 'make image' filled)"
fi
vk_build_voicekey_wheel "$py" "$cache" "$repo" || die "could not build the VoiceKey wheel (needs setuptools and wheel for $py)"
for s in lgpio evdev; do
  compgen -G "$cache/built-wheels/${s}-*.whl" >/dev/null \
    || die "no aarch64 wheel of $s in $cache/built-wheels: run 'make image' once (it builds lgpio and evdev inside Debian's arm64 root and keeps them in the cache)"
done

# --- the root, copied out -------------------------------------------------------------------------
log "copying the root out (debugfs)"
python3 "$here/ext4tree.py" extract "$work/root.ext4" "$root"
rm -f "$work/root.ext4"

# device nodes a chroot needs, without mounting /dev (removed again before the file system is made)
made_nodes=()
mknode() { [ -e "$root/dev/$1" ] || { mknod -m "$2" "$root/dev/$1" c "$3" "$4"; made_nodes+=("$root/dev/$1"); }; }
mkdir -p "$root/dev"
mknode null 666 1 3; mknode zero 666 1 5; mknode random 666 1 8; mknode urandom 666 1 9; mknode tty 666 5 0
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root "$@"; }

# the image's own files for the root (rootfs/), less those only Debian's kernel packages read
tar -C "$here/rootfs" -c --exclude=etc/default/raspi-firmware --exclude=etc/default/raspi-extra-cmdline \
  --exclude=etc/initramfs-tools --exclude=usr/share/initramfs-tools . | tar -C "$root" -x --no-same-owner --no-overwrite-dir

# --- Debian packages the Debian image has and the base lacks, from the cache ------------------------
# (not the kernel, firmware or initramfs: the base's own Raspberry Pi kernel stays)
mapfile -t wanted < <(grep -v '^\s*#' "$here/packages-device.txt" | sed '/^\s*$/d' \
  | grep -vxE 'linux-image-.*|raspi-firmware|initramfs-tools|firmware-.*')
mapfile -t missing < <(awk -v want="${wanted[*]}" '
  BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) need[w[i]] = 1 }
  /^Package: / { p = $2 } /^Status: .* installed$/ { have[p] = 1 }
  END { for (p in need) if (!(p in have)) print p }' "$root/var/lib/dpkg/status" | sort)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing from the cache: ${missing[*]}"
  compgen -G "$cache/debs/*.deb" >/dev/null \
    || die "the base lacks ${missing[*]} and $cache/debs has no Debian packages: run 'make image' once (it fills the cache), or install them on the base"
  apt_dir="$root/tmp/vk-apt"
  mkdir -p "$apt_dir/debs" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
  cp "$cache/debs/"*.deb "$apt_dir/debs/"
  (cd "$apt_dir/debs" && dpkg-scanpackages -m . > Packages 2>/dev/null)
  echo "deb [trusted=yes] file:/tmp/vk-apt/debs ./" > "$apt_dir/sources.list"
  # what the cache lacks (e.g. a package added to packages-device.txt since the last `make image`)
  # comes from Debian's mirror, checked with the base's Debian archive keyring
  uncached=()
  for p in "${missing[@]}"; do grep -qx "Package: $p" "$apt_dir/debs/Packages" || uncached+=("$p"); done
  resolv_saved=""
  if [ ${#uncached[@]} -gt 0 ] && [ "$offline" = 1 ]; then
    die "the base lacks ${uncached[*]} and the cache has no such Debian package (--offline): run 'make image' (it fills the cache), or drop --offline"
  fi
  if [ ${#uncached[@]} -gt 0 ]; then
    log "not in the cache, from $mirror: ${uncached[*]}"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main non-free-firmware" >> "$apt_dir/sources.list"
    if [ -e "$root/etc/resolv.conf" ] || [ -L "$root/etc/resolv.conf" ]; then
      resolv_saved="$work/resolv.conf.base"; mv "$root/etc/resolv.conf" "$resolv_saved"
    fi
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  fi
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
  apt_opts=(-o Dir::Etc::SourceList=/tmp/vk-apt/sources.list -o Dir::Etc::SourceParts=/tmp/vk-apt/parts
            -o Dir::State::Lists=/tmp/vk-apt/lists -o Dir::Cache=/tmp/vk-apt/cache -o APT::Sandbox::User=root
            -o Debug::NoLocking=1 -o Acquire::AllowInsecureRepositories=1)
  in_root apt-get "${apt_opts[@]}" -qq update >/dev/null 2>"$work/apt.log" \
    || die "apt-get update of the cached packages failed: $(tail -n3 "$work/apt.log")"
  if ! DEBIAN_FRONTEND=noninteractive in_root apt-get "${apt_opts[@]}" -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold install "${missing[@]}" > "$work/apt.log" 2>&1; then
    die "could not install ${missing[*]} from the cache${uncached:+ and $mirror} into the base (a version the base's packages conflict with?): $(grep -E '^E:|Depends:' "$work/apt.log" | head -n5) -- install them on the base, or run 'make image' with a fresh cache"
  fi
  rm -f "$root/usr/sbin/policy-rc.d"
  if [ ${#uncached[@]} -gt 0 ]; then
    rm -f "$root/etc/resolv.conf"
    [ -z "$resolv_saved" ] || mv "$resolv_saved" "$root/etc/resolv.conf"
    cp -n "$apt_dir"/cache/archives/*.deb "$cache/debs/" 2>/dev/null || true  # next time from the cache
  fi
  rm -rf "$apt_dir"
fi

# --- the Python environment: the same chroot-setup.sh as the Debian image --------------------------
log "python environment (qemu-user chroot)"
rm -rf "$root/opt/voicekey" "$root/var/cache/voicekey" "$root/usr/share/voicekey"  # a rebuild starts clean
for d in "${vk_chroot_cache_dirs[@]}"; do cp -r "$cache/$d" "$root/tmp/$d"; done
for f in "${vk_chroot_repo_files[@]}"; do cp "$here/$f" "$root/tmp/$f"; done
# chroot-setup.sh's bash needs /proc (/dev/fd for its process substitutions), as in mmdebstrap's
# chroot: mounted inside a private mount namespace that ends with the chroot (never on the host;
# the image itself is never mounted)
mkdir -p "$root/proc"
# shellcheck disable=SC2016  # $1 is expanded by the inner sh
unshare --mount --propagation private sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/root /bin/bash /tmp/chroot-setup.sh' sh "$root" \
  || die "chroot-setup.sh failed in the base's root (see the output above)"
cp -n "$root"/tmp/built-wheels/*.whl "$cache/built-wheels/" 2>/dev/null || true
find "$root/tmp" -mindepth 1 -delete
[ -x "$root/opt/voicekey/bin/voicekey" ] || die "the root was not finished (see the output above)"

# --- the product: the same steps as the Debian image (image/common.sh) -------------------------------
log "units, read-only root, first boot without keyboard or network"
part="PARTUUID=$disk_id"
vk_install_units "$root" "$repo"
vk_quiet_system "$root"
vk_write_fstab "$root" "$part-02" "$part-01" "$part-03"
vk_prune_common "$root"
# Raspberry Pi OS's own first-boot and background writers: masked (the root is read-only; the
# first boot needs no keyboard, no network; nothing listens unless voicekey-system.txt asks)
sysd="$root/etc/systemd/system"
for unit in userconfig.service dphys-swapfile.service regenerate_ssh_host_keys.service sshswitch.service \
            rpi-resize-swap-file.service NetworkManager.service NetworkManager-wait-online.service \
            NetworkManager-dispatcher.service ModemManager.service avahi-daemon.service avahi-daemon.socket \
            apt-daily.timer apt-daily-upgrade.timer man-db.timer; do
  [ -e "$root/lib/systemd/system/$unit" ] || [ -e "$root/usr/lib/systemd/system/$unit" ] || continue
  find "$sysd" -type l \( -name "$unit" -o -lname "*/$unit" \) -delete
  ln -s /dev/null "$sysd/$unit"
done
for n in "${made_nodes[@]}"; do rm -f "$n"; done

# --- the boot partition, edited in place --------------------------------------------------------------
log "boot partition (config.txt, cmdline.txt, settings)"
python3 "$here/rpios-boot.py" --disk-id "$disk_id" "$work/config.txt" "$work/cmdline.txt"
mcopy -o -i "$work/boot.vfat" "$work/config.txt" "$work/cmdline.txt" ::/
mkdir -p "$work/settings"
vk_install_settings "$work/settings" "$repo"
mcopy -o -i "$work/boot.vfat" "$work/settings/"* ::/

# --- partitions and the image -------------------------------------------------------------------------
log "partitions"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
vk_mkfs_root "$root" "$work/root.ext4" rootfs "$root_uuid"
vk_mkfs_data "$work/data.ext4" "$disk_id-0000-4000-8000-000000000003" 64
vk_join "$out/$name.img" "0x$disk_id" "$work/boot.vfat" "$work/root.ext4" "$work/data.ext4"
echo "image: $out/$name.img ($vk_image_mib MiB: bootfs $((p1_size / 2048)) MiB, rootfs $vk_root_mib MiB, VKDATA 64 MiB)"

log "compressing"
vk_release "$out" "$name" "$root" "$start"
log "wrote $out/$name.img.zst"
exit 0
}
