#!/usr/bin/env bash
# VoiceKey image, native step after mmdebstrap: install the units and settings, make the root
# read-only-safe (fstab with tmpfs for what is written), and prune what the device never uses.
set -euo pipefail

usage() { echo "Usage: ${0##*/} --root DIR --repo DIR   (called by image/build.sh)"; }
root="" repo=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --repo) repo="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "${0##*/}: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ! -d "$root/etc" ] || [ ! -d "$repo/systemd" ]; then usage >&2; exit 2; fi
files="$repo/image/files"
sysd="$root/etc/systemd/system"

# --- VoiceKey units and scripts -------------------------------------------------------------------
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

# --- nothing listens unless the settings file asks; nothing runs that writes the root ---------------
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

# --- read-only root: fstab ------------------------------------------------------------------------
cat > "$root/etc/fstab" <<'FSTAB'
# VoiceKey: the root is read-only (power-cut safe); what must be written lives in RAM, or on the
# small data partition (VKDATA, kept across reboots). The FAT partition holds the user's settings.
LABEL=RASPIROOT  /                  ext4   ro,noatime                                      0 0
LABEL=RASPIFIRM  /boot/firmware     vfat   ro,nofail,umask=0022                            0 0
LABEL=VKDATA     /var/lib/voicekey  ext4   noatime,nofail                                  0 2
tmpfs            /tmp               tmpfs  mode=1777,nosuid,nodev,size=64M                 0 0
tmpfs            /var/tmp           tmpfs  mode=1777,nosuid,nodev,size=16M                 0 0
tmpfs            /var/log           tmpfs  mode=0755,nosuid,nodev,size=16M                 0 0
tmpfs            /var/lib/systemd   tmpfs  mode=0755,nosuid,nodev,size=8M                  0 0
tmpfs            /var/lib/private   tmpfs  mode=0700,nosuid,nodev,size=8M                  0 0
tmpfs            /var/spool         tmpfs  mode=0755,nosuid,nodev,size=4M                  0 0
FSTAB
mkdir -p "$root/var/lib/voicekey" "$root/var/lib/private" "$root/var/cache/voicekey" "$root/boot/firmware"

# --- the user's settings, on the FAT partition ------------------------------------------------------
install -m 0644 "$repo/config/voicekey.example.yaml" "$root/boot/firmware/voicekey.yaml"
install -m 0644 "$files/voicekey-system.txt" "$root/boot/firmware/voicekey-system.txt"

# --- pruning ------------------------------------------------------------------------------------------
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/var/log/* "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/lintian
# the kernel and initrd are booted from the FAT partition (raspi-firmware copied them there)
rm -f "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-* "$root"/boot/System.map-* "$root"/boot/config-*
rm -f "$root"/vmlinuz* "$root"/initrd.img*
# firmware blobs raspi-firmware already copied to the FAT partition
rm -rf "$root"/usr/lib/raspi-firmware/*.elf "$root"/usr/lib/raspi-firmware/*.dat
# Wi-Fi firmware: only the chips of the Zero 2 W (43436/43430), Pi 3 (43430/43455) and Pi 4 (43455)
find "$root/lib/firmware" \( -path '*/brcm/*' -o -path '*/cypress/*' \) -type f \
  ! -name 'brcmfmac4343*' ! -name 'brcmfmac43455*' ! -name 'cyfmac4343*' ! -name 'cyfmac43455*' -delete 2>/dev/null || true
# kernel modules for hardware a Pi never has
for kdir in "$root"/lib/modules/*; do
  [ -d "$kdir/kernel" ] || continue
  k="$kdir/kernel"
  rm -rf "$k"/drivers/gpu "$k"/drivers/infiniband "$k"/drivers/media "$k"/drivers/scsi/{qla2xxx,lpfc,mpt3sas,be2iscsi,bfa,qedi,qedf,megaraid,aacraid,hisi_sas,smartpqi,csiostor,cxgbi,fnic,snic,bnx2fc,bnx2i,elx} \
         "$k"/drivers/net/ethernet/{mellanox,intel,chelsio,qlogic,cavium,marvell,huawei,hisilicon,amazon,netronome,emulex,broadcom/bnxt,sfc,amd,freescale,mscc,aquantia,ti,qualcomm,mediatek,pensando,socionext,stmicro,rocker,google,microsoft,sun,atheros,realtek,renesas,neterion} \
         "$k"/drivers/net/wireless/{ath,intel,mediatek,realtek,marvell,ralink,rsi,ti,zydas,atmel,intersil,quantenna,microchip,purelifi,st} \
         "$k"/drivers/iio "$k"/drivers/isdn "$k"/drivers/staging/media "$k"/drivers/target "$k"/drivers/nvme "$k"/drivers/md \
         "$k"/fs/{btrfs,xfs,ocfs2,gfs2,nfs,nfsd,ceph,smb,cifs,f2fs,jfs,nilfs2,ubifs,afs,coda,orangefs,dlm,erofs,bcachefs,reiserfs,hfs,hfsplus,udf,ntfs3,ntfs,squashfs,isofs,lockd,nfs_common} \
         "$k"/net/{ceph,sunrpc,rds,tipc,sctp,openvswitch,netfilter,ipv4/netfilter,ipv6/netfilter,bridge/netfilter,dccp,mac80211_hwsim,batman-adv,l2tp,mpls,smc,rxrpc,nfc,ieee802154,wireless/tests} \
         "$k"/sound/pci "$k"/sound/isa "$k"/sound/firewire "$k"/sound/soc/{intel,amd,sof,qcom,mediatek,fsl,rockchip,sunxi,tegra,samsung,sh,ti,uniphier,meson,stm,mxs,apple,loongson}
  kver=$(basename "$kdir")
  depmod -b "$root" "$kver"
done
