#!/usr/bin/env bash
# VoiceKey USB gadget set-up, run once at boot by voicekey-gadget.service.
# Installed as /usr/lib/voicekey/voicekey-gadget.sh (see systemd/voicekey-gadget.service).
#
# 1. load the USB gadget framework (libcomposite) unless it is already loaded,
# 2. mount configfs unless it is already mounted,
# 3. wait (briefly) for a USB device controller: dwc2 may probe after this unit starts,
# 4. hand over to `voicekey gadget up`, which creates the HID keyboard gadget idempotently.
#    Everything the host sees (descriptors, USB serial number) is decided there, in Python: the
#    serial is transport.serial from the config files, or derived from the board's serial number.
set -euo pipefail

configfs_root=/sys/kernel/config
sysfs_root=/sys
udc_wait=10
voicekey=${VOICEKEY:-voicekey}
extra=()

usage() {
    cat <<EOF
Usage: ${0##*/} [--configfs-root DIR] [--sysfs-root DIR] [--udc-wait SECONDS] [--udc NAME]

Set up the VoiceKey USB keyboard gadget: modprobe libcomposite, mount configfs if needed,
wait up to --udc-wait seconds (default ${udc_wait}) for a USB device controller, then run
\`voicekey gadget up\`. Needs root. Safe to run again (everything is idempotent).
The USB serial number is transport.serial from the config (default: derived from the board).

Options:
  --configfs-root DIR   configfs mount point (default ${configfs_root})
  --sysfs-root DIR      sysfs mount point (default ${sysfs_root})
  --udc-wait SECONDS    how long to wait for /sys/class/udc to list a controller (default ${udc_wait})
  --udc NAME            bind to this controller instead of the first one
  -h, --help            show this help

Environment:
  VOICEKEY              the voicekey command to run (default: voicekey from PATH)
EOF
}

die() {
    echo "voicekey-gadget: $*" >&2
    exit 1
}

while (($# > 0)); do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --configfs-root | --sysfs-root | --udc-wait | --udc)
            (($# >= 2)) || die "$1 needs a value (see --help)"
            case "$1" in
                --configfs-root) configfs_root=$2 ;;
                --sysfs-root) sysfs_root=$2 ;;
                --udc-wait) udc_wait=$2 ;;
                --udc) extra+=(--udc "$2") ;;
            esac
            shift 2
            ;;
        *)
            die "unknown argument: $1 (see --help)"
            ;;
    esac
done

[[ $udc_wait =~ ^[0-9]+$ ]] || die "--udc-wait must be a whole number of seconds, not '$udc_wait'"

if [[ ! -d $sysfs_root/module/libcomposite ]]; then
    modprobe libcomposite || die "cannot load libcomposite: is this kernel built with USB gadget support?"
fi

if ! mountpoint -q "$configfs_root"; then
    mount -t configfs none "$configfs_root" || die "cannot mount configfs at $configfs_root"
fi

[[ -d $configfs_root/usb_gadget ]] ||
    die "$configfs_root/usb_gadget missing after loading libcomposite"

# dwc2 (the Pi's device controller) is loaded by modules-load and may register its UDC a moment
# after this unit starts; give it a few seconds before `voicekey gadget up` reports it missing.
waited=0
while [[ -z $(ls -A "$sysfs_root/class/udc" 2>/dev/null) ]] && ((waited < udc_wait)); do
    sleep 1
    waited=$((waited + 1))
done

exec "$voicekey" gadget up --configfs-root "$configfs_root" --sysfs-root "$sysfs_root" "${extra[@]}"
