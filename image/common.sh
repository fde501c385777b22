# shellcheck shell=bash
# VoiceKey image: the steps both SD image flavours share, sourced by image/build.sh and
# image/finish-root.sh (Debian bookworm, Pi Zero 2 W/3/4) and image/build-rpios.sh (a Raspberry
# Pi OS Lite image customised, Pi 5). Functions only; nothing runs when this file is sourced.

# The files chroot-setup.sh expects in the root's /tmp (cache dirs first, then repository files).
# shellcheck disable=SC2034  # used by the scripts that source this file
vk_chroot_cache_dirs=(wheels sdists built-wheels voicekey-wheel)
# shellcheck disable=SC2034
vk_chroot_repo_files=(chroot-setup.sh requirements-device.txt models.sha256)

# arm64 programs through qemu-user: binfmt_misc, registered here (needs root).
vk_register_binfmt() {
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    if command -v update-binfmts >/dev/null && [ -e /usr/share/binfmts/qemu-aarch64 ]; then
      update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
      update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    fi
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    # magic/mask of an aarch64 ELF executable; F: the interpreter is opened now (works in chroots)
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
      > /proc/sys/fs/binfmt_misc/register
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]
}

# Python wheels for aarch64, downloaded natively into CACHE. Usage: vk_fetch_wheels PYTHON CACHE REPO
# Only what the device runs: faster-whisper is installed without its dependencies (PyAV,
# onnxruntime, tokenizers, huggingface-hub): VoiceKey loads only its numpy feature extractor.
vk_fetch_wheels() {
  local py=$1 cache=$2 repo=$3
  mkdir -p "$cache/wheels" "$cache/sdists" "$cache/built-wheels"
  vk_pip_download() {
    "$py" -m pip download -q --disable-pip-version-check -d "$cache/wheels" \
      --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
      --platform linux_aarch64 --python-version 3.11 --implementation cp --only-binary=:all: "$@"
  }
  local reqs
  mapfile -t reqs < <(grep -v '^\s*#' "$repo/image/requirements-device.txt" | sed '/^\s*$/d')
  vk_pip_download "${reqs[@]}" pip
  vk_pip_download --no-deps 'faster-whisper>=1.1,<2'
  # build back-end for the two source packages below
  vk_pip_download setuptools wheel
  # No aarch64 wheels exist for these: their source is built once inside the arm64 root (cached).
  local sdists=("lgpio>=0.2,<0.3" "evdev>=1.7,<3")
  "$py" -m pip download -q --disable-pip-version-check -d "$cache/sdists" --no-deps --no-binary=:all: "${sdists[@]}"
}

# VoiceKey itself, as a wheel built from a clean copy of REPO's sources (pure Python), into
# CACHE/voicekey-wheel. Usage: vk_build_voicekey_wheel PYTHON CACHE REPO
vk_build_voicekey_wheel() {
  local py=$1 cache=$2 repo=$3
  rm -rf "$cache/voicekey-wheel" "$cache/voicekey-src" && mkdir -p "$cache/voicekey-wheel" "$cache/voicekey-src"
  tar -C "$repo" --exclude=__pycache__ -c pyproject.toml README.md appliance | tar -C "$cache/voicekey-src" -x
  "$py" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$cache/voicekey-wheel" "$cache/voicekey-src"
}

# VoiceKey's units, scripts and enablement links. Usage: vk_install_units ROOT REPO
vk_install_units() {
  local root=$1 repo=$2
  local files="$repo/image/files" sysd="$root/etc/systemd/system" d u
  install -D -m 0644 "$repo/systemd/voicekey-gadget.service" "$sysd/voicekey-gadget.service"
  install -D -m 0644 "$repo/systemd/voicekey.service" "$sysd/voicekey.service"
  # drop-ins next to the units (e.g. Bluetooth), if the repository has any
  for d in "$repo"/systemd/*.d; do
    [ -d "$d" ] || continue
    mkdir -p "$sysd/$(basename "$d")"
    install -m 0644 "$d"/*.conf "$sysd/$(basename "$d")/"
  done
  install -D -m 0755 "$repo/gadget/voicekey-gadget.sh" "$root/usr/lib/voicekey/voicekey-gadget.sh"
  install -D -m 0755 "$files/voicekey-system-settings.sh" "$root/usr/lib/voicekey/voicekey-system-settings.sh"
  for u in voicekey-system.service voicekey-wifi.service voicekey-ssh.service; do
    install -m 0644 "$files/$u" "$sysd/$u"
  done
  install -D -m 0644 "$repo/README.md" "$root/usr/share/doc/voicekey/README.md"
  mkdir -p "$sysd/sysinit.target.wants" "$sysd/multi-user.target.wants" "$root/etc/voicekey"
  ln -sfn ../voicekey-gadget.service "$sysd/sysinit.target.wants/voicekey-gadget.service"
  ln -sfn ../voicekey.service "$sysd/multi-user.target.wants/voicekey.service"
  ln -sfn ../voicekey-system.service "$sysd/multi-user.target.wants/voicekey-system.service"
}

# Nothing listens unless the settings file asks; nothing runs that writes the root; no identity
# baked in. Usage: vk_quiet_system ROOT
vk_quiet_system() {
  local root=$1
  local sysd="$root/etc/systemd/system"
  rm -f "$sysd/multi-user.target.wants/ssh.service" "$sysd/sshd.service" \
        "$sysd/sockets.target.wants/ssh.socket" \
        "$sysd/multi-user.target.wants/wpa_supplicant.service" \
        "$sysd/timers.target.wants/"{apt-daily,apt-daily-upgrade,e2scrub_all,fstrim,dpkg-db-backup}.timer \
        "$sysd/multi-user.target.wants/e2scrub_reap.service"
  # host keys made at install would be the same on every card: sshd makes its own on first use
  rm -f "$root"/etc/ssh/ssh_host_*
  # a new machine-id per boot (kept in /run: the root is read-only)
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  echo voicekey > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tvoicekey\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
}

# The read-only root's fstab. Usage: vk_write_fstab ROOT ROOT_DEV BOOT_DEV DATA_DEV
# (devices as fstab names them: LABEL=..., PARTUUID=...)
vk_write_fstab() {
  local root=$1 root_dev=$2 boot_dev=$3 data_dev=$4
  {
    echo "# VoiceKey: the root is read-only (power-cut safe); what must be written lives in RAM, or on the"
    echo "# small data partition (VKDATA, kept across reboots). The FAT partition holds the user's settings."
    printf '%-16s %s\n' \
      "$root_dev" '/                  ext4   ro,noatime                                      0 0' \
      "$boot_dev" '/boot/firmware     vfat   ro,nofail,umask=0022                            0 0' \
      "$data_dev" '/var/lib/voicekey  ext4   noatime,nofail                                  0 2' \
      tmpfs '/tmp               tmpfs  mode=1777,nosuid,nodev,size=64M                 0 0' \
      tmpfs '/var/tmp           tmpfs  mode=1777,nosuid,nodev,size=16M                 0 0' \
      tmpfs '/var/log           tmpfs  mode=0755,nosuid,nodev,size=16M                 0 0' \
      tmpfs '/var/lib/systemd   tmpfs  mode=0755,nosuid,nodev,size=8M                  0 0' \
      tmpfs '/var/lib/private   tmpfs  mode=0700,nosuid,nodev,size=8M                  0 0' \
      tmpfs '/var/spool         tmpfs  mode=0755,nosuid,nodev,size=4M                  0 0'
  } > "$root/etc/fstab"
  mkdir -p "$root/var/lib/voicekey" "$root/var/lib/private" "$root/var/cache/voicekey" "$root/boot/firmware"
}

# The user's settings files, for the FAT partition. Usage: vk_install_settings DIR REPO
vk_install_settings() {
  local dir=$1 repo=$2
  install -m 0644 "$repo/config/voicekey.example.yaml" "$dir/voicekey.yaml"
  install -m 0644 "$repo/image/files/voicekey-system.txt" "$dir/voicekey-system.txt"
}

# What no flavour needs on the device: package lists and caches, logs, manuals.
# Usage: vk_prune_common ROOT
vk_prune_common() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
         "$root"/var/log/* "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/lintian
}

# The read-only root's ext4 made from a directory: sized to its content + 15 % (read-only: no room
# for growth needed) + inode room, no journal. Sets vk_root_mib.
# Usage: vk_mkfs_root DIR FILE LABEL UUID
vk_mkfs_root() {
  local dir=$1 file=$2 label=$3 uuid=$4 used_kib
  used_kib=$(du -s -k --apparent-size "$dir" | cut -f1)
  vk_root_mib=$(( (used_kib * 115 / 100) / 1024 + 64 ))
  mke2fs -q -t ext4 -L "$label" -U "$uuid" -E root_owner=0:0 -m 0 \
    -O ^has_journal -N $(( $(find "$dir" | wc -l) + 4096 )) -d "$dir" "$file" "${vk_root_mib}M"
}

# The small persistent data partition (/var/lib/voicekey), empty. Usage: vk_mkfs_data FILE UUID MIB
vk_mkfs_data() {
  mke2fs -q -t ext4 -L VKDATA -U "$2" -m 0 "$1" "${3}M"
}

# Join the three partition files into an MBR disk image, one after the other from sector 8192
# (4 MiB): 1 FAT (bootable), 2 root, 3 data. Partition i's PARTUUID is LABEL_ID-0i.
# Usage: vk_join IMG LABEL_ID(0x........) BOOT_FILE ROOT_FILE DATA_FILE
vk_join() {
  local img=$1 label_id=$2 boot=$3 rootfs=$4 data=$5
  vk_sectors() { echo $(( $(stat -c %s "$1") / 512 )); }
  local b_start=8192 r_start d_start total
  r_start=$(( b_start + $(vk_sectors "$boot") ))
  d_start=$(( r_start + $(vk_sectors "$rootfs") ))
  total=$(( d_start + $(vk_sectors "$data") ))
  rm -f "$img"
  truncate -s $(( total * 512 )) "$img"
  sfdisk -q "$img" <<SFDISK
label: dos
label-id: $label_id
start=$b_start, size=$(vk_sectors "$boot"), type=c, bootable
start=$r_start, size=$(vk_sectors "$rootfs"), type=83
start=$d_start, size=$(vk_sectors "$data"), type=83
SFDISK
  dd if="$boot" of="$img" bs=512 seek=$b_start conv=notrunc,sparse status=none
  dd if="$rootfs" of="$img" bs=512 seek=$r_start conv=notrunc,sparse status=none
  dd if="$data" of="$img" bs=512 seek=$d_start conv=notrunc,sparse status=none
  # shellcheck disable=SC2034  # for the caller's summary
  vk_image_mib=$(( total / 2048 ))
}

# The image's release files next to it: zstd, its sha256, a bmap, the sizes and build time.
# Usage: vk_release OUT NAME ROOT_DIR START_SECONDS   (VOICEKEY_ZSTD_LEVEL: zstd level, default 10)
vk_release() {
  local out=$1 name=$2 root=$3 start=$4
  zstd -q -T0 "-${VOICEKEY_ZSTD_LEVEL:-10}" -f "$out/$name.img" -o "$out/$name.img.zst"
  (cd "$out" && sha256sum "$name.img.zst" > "$name.img.zst.sha256")
  bmaptool create -o "$out/$name.img.bmap" "$out/$name.img"
  local end
  end=$(date +%s)
  {
    echo "root_bytes=$(du -sb --apparent-size "$root" | cut -f1)"
    echo "image_bytes=$(stat -c %s "$out/$name.img")"
    echo "image_used_bytes=$(du -B1 "$out/$name.img" | cut -f1)"
    echo "compressed_bytes=$(stat -c %s "$out/$name.img.zst")"
    echo "build_seconds=$((end - start))"
  } > "$out/$name.sizes"
  cat "$out/$name.sizes"
}
