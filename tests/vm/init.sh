#!/bin/sh
# /init of the VoiceKey test guest (busybox sh, runs as PID 1 inside the initramfs).
#
# Loads the modules listed in /lib/modules/load.order (dependency order, written by
# tests/vm/build_guest.py), mounts the host root read-only (9p tag "hostroot") at /host and the
# read-write job share (9p tag "jobs") at the same path it has on the host, mounts the kernel
# filesystems inside /host, and runs the job agent chrooted into /host, so the guest sees the
# host's paths unchanged. When the agent exits, the guest powers off.
#
# The share holds boot.env (written by tests/vm/guest.py) with SHARE_PATH, REPO, PYTHON, AGENT.
# Usage: not run by hand; it is the initramfs's /init. `--help` prints this text.
set -eu

if [ "${1:-}" = "--help" ]; then
    sed -n '2,11p' "$0"
    exit 0
fi

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "voicekey-guest: FATAL: $*" >&2
    echo "voicekey-guest: FATAL: $*" > /share/boot.failed 2>/dev/null || true
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r mod; do
    [ -n "$mod" ] || continue
    insmod "/lib/modules/$mod.ko" || fail "insmod $mod failed"
done < /lib/modules/load.order

mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 jobs /share \
    || fail "cannot mount the job share"
# shellcheck source=/dev/null
. /share/boot.env
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host \
    || fail "cannot mount the host root"

mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t configfs configfs /host/sys/kernel/config
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
# The guest needs a writable /tmp and /run, but the checkout may live under one of them on the
# host (CI clones anywhere): keep it visible through the tmpfs. (Test data from elsewhere on the
# host is copied into the job share by the tests.)
for top in /tmp /run; do
    mkdir -p "/orig$top"
    mount --bind "/host$top" "/orig$top"
    mount -t tmpfs tmpfs "/host$top"
    case "$REPO" in
        "$top"/*)
            mkdir -p "/host$REPO"
            mount --bind "/orig$REPO" "/host$REPO" || fail "cannot keep $REPO visible" ;;
    esac
done
mount --bind /share "/host$SHARE_PATH" || fail "cannot bind the share at $SHARE_PATH"

echo "voicekey-guest: modules loaded, starting agent $AGENT"
rc=0
chroot /host "$PYTHON" "$AGENT" --share "$SHARE_PATH" --cwd "$REPO" || rc=$?
echo "voicekey-guest: agent exited with $rc; powering off"
sync
poweroff -f
