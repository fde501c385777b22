"""A stand-in for a Raspberry Pi OS Lite (bookworm, 64-bit) image, made here without a download.

Raspberry Pi OS cannot be downloaded on this machine, so the test of image/build-rpios.sh runs on an
image with Raspberry Pi OS's shape:

* MBR, disk identifier ``4e8f2d1a``; partition 1 FAT32 labelled ``bootfs`` at sector 8192 (4 MiB),
  512 MiB, type c; partition 2 ext4 labelled ``rootfs`` right after it, type 83 (as
  ``2024-11-19-raspios-bookworm-arm64-lite.img`` has them);
* on bootfs, ``config.txt`` and ``cmdline.txt`` in Raspberry Pi OS's default form (first-boot
  ``init=``, ``root=PARTUUID=4e8f2d1a-02``) and the Pi 5's boot files by name: ``kernel8.img``,
  ``kernel_2712.img``, ``bcm2712-rpi-5-b.dtb``, ``overlays/`` (their bytes are stand-ins: nothing
  here boots a Pi 5 kernel);
* on rootfs, a real Debian bookworm arm64 root: the one of the Debian image that ``make image``
  builds, with VoiceKey taken out again, Raspberry Pi OS's fstab, hostname and first-boot pieces
  (``/usr/lib/raspberrypi-sys-mods/firstboot``; ``userconfig``, ``dphys-swapfile``,
  ``NetworkManager``, ``avahi-daemon`` units enabled, as stubs), and without ``python3-venv`` and
  ``libportaudio2`` (Raspberry Pi OS Lite may lack what the Debian image has: build-rpios.sh must
  install them from the cache). A file with a capability, a set-user-ID file and a hard link check
  that the root is copied whole.

It is made once per Debian image and version of this file, and kept in
``$VOICEKEY_IMAGE_CACHE/rpios-standin/KEY/`` (default ``~/.cache/voicekey-image``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DISK_ID = "4e8f2d1a"
BOOT_START, BOOT_SECTORS = 8192, 512 * 2048
NAME = "raspios-standin-bookworm-arm64-lite.img"

CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Additional overlays and parameters are documented
# /boot/firmware/overlays/README

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
# This line should be removed if the legacy DWC2 controller is required
# (e.g. for USB device mode) or if USB support is not required.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
"""
CMDLINE_TXT = (f"console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID}-02 rootfstype=ext4 "
               "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
FSTAB = f"""\
proc            /proc           proc    defaults          0       0
PARTUUID={DISK_ID}-01  /boot/firmware  vfat    defaults          0       2
PARTUUID={DISK_ID}-02  /               ext4    defaults,noatime  0       1
"""
#: Raspberry Pi OS units the VoiceKey image must not run (stubs here), with the target that wants them
RPIOS_UNITS = {
    "userconfig.service": "multi-user.target",
    "dphys-swapfile.service": "multi-user.target",
    "regenerate_ssh_host_keys.service": "multi-user.target",
    "NetworkManager.service": "multi-user.target",
    "avahi-daemon.service": "multi-user.target",
}
#: Boot files of a Raspberry Pi OS bootfs (stand-in bytes), and what the Pi 5 boots from
BOOT_FILES = ["kernel8.img", "kernel_2712.img", "initramfs8", "initramfs_2712", "bcm2712-rpi-5-b.dtb",
              "bcm2711-rpi-4-b.dtb", "bcm2710-rpi-zero-2-w.dtb", "overlays/README", "overlays/dwc2.dtbo",
              "overlays/vc4-kms-v3d-pi5.dtbo", "overlays/overlay_map.dtb", "issue.txt", "LICENCE.broadcom"]
#: Packages the stand-in root lacks (the build must bring them from the cache)
REMOVED_PACKAGES = ["python3-venv", "python3.11-venv", "libportaudio2"]
#: Probes of a whole copy: a file capability (as iputils-ping's), a hard link
CAP_FILE, LINK_A, LINK_B = "usr/bin/vk-standin-ping", "usr/bin/vk-standin-a", "usr/bin/vk-standin-b"


def cache_root() -> Path:
    return Path(os.environ.get("VOICEKEY_IMAGE_CACHE", Path.home() / ".cache" / "voicekey-image")) / "rpios-standin"


def run(*cmd: str | os.PathLike, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def partitions(image: Path) -> tuple[str, list[dict]]:
    """(disk identifier without 0x, partitions) of an MBR image."""
    table = json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]
    return table["id"].removeprefix("0x"), table["partitions"]


def cut(image: Path, part: dict, dest: Path) -> Path:
    run("dd", f"if={image}", f"of={dest}", "bs=512", f"skip={part['start']}", f"count={part['size']}",
        "conv=sparse", "status=none")
    return dest


def standin_key(debian_image: Path) -> str:
    """Inputs of the stand-in: the Debian image (its inputs hash, else size and mtime) and this file."""
    inputs = debian_image.with_suffix(".inputs")
    source = inputs.read_text() if inputs.is_file() else f"{debian_image.stat().st_size}:{debian_image.stat().st_mtime_ns}"
    return hashlib.sha256((source + Path(__file__).read_text()).encode()).hexdigest()[:16]


def standin_image(debian_image: Path) -> Path:
    """The stand-in image for ``debian_image``, made now if the cache has none for it."""
    key = standin_key(debian_image)
    folder = cache_root() / key
    image = folder / NAME
    if image.is_file():
        return image
    if cache_root().is_dir():  # only the newest stand-in is kept (1.5 GB each)
        for old in cache_root().iterdir():
            shutil.rmtree(old, ignore_errors=True)
    work = cache_root() / f"{key}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        build(debian_image, work)
        folder.mkdir(parents=True)
        for name in (NAME, "site-packages.txt"):
            (work / name).rename(folder / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def build(debian_image: Path, work: Path) -> None:
    _, parts = partitions(debian_image)
    root = work / "root"
    run("python3", REPO / "image" / "ext4tree.py", "extract", cut(debian_image, parts[1], work / "deb-root.ext4"), root)
    (work / "deb-root.ext4").unlink()
    # the Debian image's Python environment, for comparing with what build-rpios.sh makes
    site = next((root / "opt/voicekey/lib").glob("python3*/site-packages"))
    (work / "site-packages.txt").write_text("\n".join(sorted(p.name for p in site.glob("*.dist-info"))) + "\n")
    strip_voicekey(root)
    make_rpios_like(root)
    remove_packages(root, REMOVED_PACKAGES)

    used_kib = int(run("du", "-s", "-k", "--apparent-size", root).stdout.split()[0])
    root_mib = used_kib * 11 // 10 // 1024 + 256
    run("mke2fs", "-q", "-t", "ext4", "-L", "rootfs", "-U", "93e4b3f1-7c4a-4a7a-9f5e-3b1f5a0c2d01",
        "-d", root, work / "rootfs.ext4", f"{root_mib}M")
    shutil.rmtree(root)

    boot = work / "bootfs"
    for name in BOOT_FILES:
        path = boot / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.sha256(name.encode()).digest() * 2048)  # 64 KiB of stand-in bytes
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(CMDLINE_TXT)
    run("truncate", "-s", f"{BOOT_SECTORS * 512}", work / "bootfs.vfat")
    run("mkfs.vfat", "-F", "32", "-n", "bootfs", "-i", "1d6c8e20", work / "bootfs.vfat")
    run("mcopy", "-s", "-p", "-m", "-i", work / "bootfs.vfat", *sorted(boot.iterdir()), "::/")

    root_start = BOOT_START + BOOT_SECTORS
    root_sectors = (work / "rootfs.ext4").stat().st_size // 512
    image = work / NAME
    run("truncate", "-s", f"{(root_start + root_sectors) * 512}", image)
    subprocess.run(["sfdisk", "-q", str(image)], check=True, text=True, input=(
        f"label: dos\nlabel-id: 0x{DISK_ID}\n"
        f"start={BOOT_START}, size={BOOT_SECTORS}, type=c\n"
        f"start={root_start}, size={root_sectors}, type=83\n"))
    for part, start in (("bootfs.vfat", BOOT_START), ("rootfs.ext4", root_start)):
        run("dd", f"if={work / part}", f"of={image}", "bs=512", f"seek={start}", "conv=notrunc,sparse", "status=none")
        (work / part).unlink()


def strip_voicekey(root: Path) -> None:
    """Take the VoiceKey product out of the Debian image's root again."""
    for rel in ["opt/voicekey", "usr/lib/voicekey", "usr/share/voicekey", "var/cache/voicekey", "etc/voicekey",
                "usr/share/doc/voicekey", "var/lib/voicekey", "etc/systemd/journald.conf.d/voicekey.conf",
                "etc/udev/rules.d/60-voicekey-gpio.rules", "etc/systemd/network/50-voicekey-wlan.network",
                "etc/default/raspi-firmware", "etc/default/raspi-extra-cmdline",
                "etc/initramfs-tools/conf.d/voicekey.conf", "usr/share/initramfs-tools/modules.d/voicekey"]:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    (root / "usr/bin/voicekey").unlink(missing_ok=True)
    for unit in (root / "etc/systemd/system").rglob("voicekey*"):
        unit.unlink()


def make_rpios_like(root: Path) -> None:
    """Raspberry Pi OS's fstab, hostname and first-boot pieces (stubs), and probes of a whole copy."""
    (root / "etc/fstab").write_text(FSTAB)
    (root / "etc/hostname").write_text("raspberrypi\n")
    (root / "etc/rpi-issue").write_text("Raspberry Pi reference 2024-11-19 (VoiceKey test stand-in)\n")
    firstboot = root / "usr/lib/raspberrypi-sys-mods/firstboot"
    firstboot.parent.mkdir(parents=True, exist_ok=True)
    firstboot.write_text("#!/bin/sh\n# stand-in for Raspberry Pi OS's first boot (resize, new PARTUUIDs)\nexit 1\n")
    firstboot.chmod(0o755)
    for unit, target in RPIOS_UNITS.items():
        (root / "lib/systemd/system" / unit).write_text(
            f"[Unit]\nDescription=stand-in for Raspberry Pi OS's {unit}\n\n[Service]\nExecStart=/bin/false\n\n"
            f"[Install]\nWantedBy={target}\n")
        wants = root / "etc/systemd/system" / f"{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit).symlink_to(f"/lib/systemd/system/{unit}")
    (root / "etc/systemd/system/dbus-org.freedesktop.Avahi.service").symlink_to("/lib/systemd/system/avahi-daemon.service")
    shutil.copy2(root / "usr/bin/true", root / CAP_FILE)
    run("setcap", "cap_net_raw+ep", root / CAP_FILE)
    shutil.copy2(root / "usr/bin/true", root / LINK_A)
    os.link(root / LINK_A, root / LINK_B)


def remove_packages(root: Path, packages: list[str]) -> None:
    """dpkg --purge in the arm64 root (qemu-user chroot; device nodes made and removed, no mounts)."""
    made = []
    for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("urandom", 1, 9)):
        node = root / "dev" / name
        if not node.exists():
            os.mknod(node, 0o20666, os.makedev(major, minor))
            made.append(node)
    try:
        run("chroot", root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "dpkg", "--purge", *packages)
    finally:
        for node in made:
            node.unlink()
