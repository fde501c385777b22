#!/usr/bin/env bash
# VoiceKey image: apply the system settings from the FAT partition at boot (voicekey-system.service).
#
# Reads KEY=VALUE lines from /boot/firmware/voicekey-system.txt (see that file for the keys):
#   hostname, wifi_ssid, wifi_psk, wifi_country, ssh_authorized_key (repeatable).
# The root is read-only: everything it writes goes to /run. Nothing listens on the network unless
# Wi-Fi (systemd-networkd, wpa_supplicant) or an ssh key (sshd) is set.
set -euo pipefail

settings=/boot/firmware/voicekey-system.txt
run=/run/voicekey-system
dry_run=0

usage() {
  cat <<USAGE
Usage: ${0##*/} [--settings FILE] [--run-dir DIR] [--dry-run]

Apply hostname, Wi-Fi and ssh settings from FILE (default $settings), writing to DIR (default $run).
--dry-run writes the files but changes nothing on the running system.
USAGE
}
while [ $# -gt 0 ]; do
  case "$1" in
    --settings) settings="$2"; shift 2 ;;
    --run-dir) run="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "${0##*/}: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

act() { if [ "$dry_run" = 1 ]; then echo "would run: $*"; else "$@"; fi; }

mkdir -p "$run"
chmod 0700 "$run"
: > "$run/authorized_keys"
hostname="" ssid="" psk="" country=""
if [ -f "$settings" ]; then
  lineno=0
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line=${line%$'\r'}
    case "$line" in ''|'#'*) continue ;; esac
    if [[ "$line" != *=* ]]; then
      echo "$settings line $lineno: expected KEY=VALUE, got: $line (ignored)" >&2; continue
    fi
    key=${line%%=*} value=${line#*=}
    key=${key//[[:space:]]/}
    case "$key" in
      hostname)
        if [[ "$value" =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]]; then hostname=$value
        else echo "$settings line $lineno: hostname '$value' is not valid: letters, digits and '-', at most 63 (ignored)" >&2; fi ;;
      wifi_ssid) ssid=$value ;;
      wifi_psk) psk=$value ;;
      wifi_country)
        if [[ "$value" =~ ^[A-Z]{2}$ ]]; then country=$value
        else echo "$settings line $lineno: wifi_country '$value' must be a two-letter code such as GB or DE (ignored)" >&2; fi ;;
      ssh_authorized_key)
        if [[ "$value" =~ ^(ssh-|ecdsa-|sk-) ]]; then printf '%s\n' "$value" >> "$run/authorized_keys"
        else echo "$settings line $lineno: ssh_authorized_key must be one public key line (ssh-ed25519 AAAA...) (ignored)" >&2; fi ;;
      *) echo "$settings line $lineno: unknown key '$key' (known: hostname wifi_ssid wifi_psk wifi_country ssh_authorized_key)" >&2 ;;
    esac
  done < "$settings"
fi

if [ -n "$hostname" ]; then
  act hostname "$hostname"
  echo "hostname: $hostname"
fi

if [ -n "$ssid" ]; then
  if [ -n "$psk" ] && { [ ${#psk} -lt 8 ] || [ ${#psk} -gt 63 ]; }; then
    echo "$settings: wifi_psk must be 8-63 characters (Wi-Fi not started)" >&2
  else
    {
      echo "ctrl_interface=DIR=$run/wpa GROUP=root"
      [ -z "$country" ] || echo "country=$country"
      echo "network={"
      printf '  ssid="%s"\n' "${ssid//\"/}"
      if [ -n "$psk" ]; then printf '  psk="%s"\n' "${psk//\"/}"; else echo "  key_mgmt=NONE"; fi
      echo "}"
    } > "$run/wpa_supplicant.conf"
    chmod 0600 "$run/wpa_supplicant.conf"
    act systemctl --no-block start voicekey-wifi.service systemd-networkd.service
    echo "Wi-Fi: $ssid"
  fi
fi

if [ -s "$run/authorized_keys" ]; then
  chmod 0600 "$run/authorized_keys"
  act systemctl --no-block start voicekey-ssh.service
  echo "ssh: $(wc -l < "$run/authorized_keys") key(s)"
fi
