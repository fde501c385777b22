#!/usr/bin/env bash
# VoiceKey image, native step after mmdebstrap: install the units and settings, make the root
# read-only-safe (fstab with tmpfs for what is written), and prune what the device never uses.
# The steps the Raspberry Pi OS flavour (image/build-rpios.sh) shares are in image/common.sh.
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
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$here/common.sh"

# --- shared with the Raspberry Pi OS flavour (image/common.sh) ---------------------------------------
vk_install_units "$root" "$repo"
vk_quiet_system "$root"
vk_write_fstab "$root" LABEL=RASPIROOT LABEL=RASPIFIRM LABEL=VKDATA
vk_install_settings "$root/boot/firmware" "$repo"
vk_prune_common "$root"

# --- pruning: what only Debian's kernel and firmware packages brought -------------------------------
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
