"""image/build-rpios.sh, the Raspberry Pi 5 flavour of the SD image, on a stand-in Raspberry Pi OS Lite.

The stand-in (tests/rpios/standin.py) has Raspberry Pi OS's partition layout, boot files and a real
Debian bookworm arm64 root. The result is checked as a Pi 5 would read it: the partition table and
the PARTUUIDs that cmdline.txt and fstab name, the boot files, the root read-only, the units, and
the Python environment run through qemu-user in a chroot of the copied root (no mounts). It cannot
be booted here: Raspberry Pi OS's Pi 5 kernel does not run on QEMU's machines.

Needs the Debian image (``make image``; ``make test`` builds it first) and root.
``VOICEKEY_SKIP_IMAGE=1`` skips these tests; ``VOICEKEY_RPIOS_OUT=DIR`` checks an earlier
build-rpios.sh output of the same stand-in instead of building anew.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.imageboot.image_guest import image_path, version
from tests.rpios import standin

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image" / "build-rpios.sh"
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


def fat_files(fat: Path) -> dict[str, bytes]:
    """Every file on a FAT image: path -> bytes (mtools)."""
    listing = subprocess.run(["mdir", "-/", "-b", "-i", str(fat), "::/"], check=True, capture_output=True,
                             text=True, env=MTOOLS).stdout.split()
    files = {}
    for entry in listing:
        if entry.endswith("/"):
            continue
        data = subprocess.run(["mtype", "-i", str(fat), entry], check=True, capture_output=True, env=MTOOLS).stdout
        files[entry.removeprefix("::/")] = data
    return files


def run_build(base: Path, out: Path) -> subprocess.CompletedProcess:
    """build-rpios.sh on the cache `make image` just used (--offline); zstd -3 to save test time."""
    return subprocess.run(["bash", str(SCRIPT), "--base", str(base), "--out", str(out), "--offline"],
                          capture_output=True, text=True, timeout=1800, env={**os.environ, "VOICEKEY_ZSTD_LEVEL": "3"})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The stand-in, build-rpios.sh run on it, and the result's partitions and root copied out."""
    if os.environ.get("VOICEKEY_SKIP_IMAGE") == "1":
        pytest.skip("VOICEKEY_SKIP_IMAGE=1: image tests skipped")
    if os.geteuid() != 0:
        pytest.skip("build-rpios.sh needs root")
    debian = image_path()
    if not debian.is_file():
        pytest.fail(f"{debian} not found: run `make image` (as root) first (VOICEKEY_SKIP_IMAGE=1 skips "
                    "these tests)", pytrace=False)
    t0 = time.monotonic()
    base = standin.standin_image(debian)
    standin_s = time.monotonic() - t0
    t0 = time.monotonic()
    if os.environ.get("VOICEKEY_RPIOS_OUT"):  # reuse a build of this stand-in (developing the tests)
        out = Path(os.environ["VOICEKEY_RPIOS_OUT"])
    else:
        out = tmp_path_factory.mktemp("rpios")
        proc = run_build(base, out)
        assert proc.returncode == 0, f"build-rpios.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    build_s = time.monotonic() - t0
    image = out / f"voicekey-{version()}-rpios-arm64.img"
    disk_id, parts = standin.partitions(image)
    work = tmp_path_factory.mktemp("rpios-parts")
    boot = standin.cut(image, parts[0], work / "boot.vfat")
    rootfs = standin.cut(image, parts[1], work / "root.ext4")
    root = work / "root"
    subprocess.run(["python3", str(REPO / "image" / "ext4tree.py"), "extract", str(rootfs), str(root)],
                   check=True, capture_output=True)
    base_id, base_parts = standin.partitions(base)
    base_boot = standin.cut(base, base_parts[0], work / "base-boot.vfat")
    print(f"\nrpios stand-in: made/reused in {standin_s:.0f} s; build-rpios.sh {build_s:.0f} s")
    print((out / f"voicekey-{version()}-rpios-arm64.sizes").read_text())
    yield {"image": image, "out": out, "disk_id": disk_id, "parts": parts, "boot": boot, "rootfs": rootfs,
           "root": root, "base": base, "base_id": base_id, "base_parts": base_parts, "base_boot": base_boot,
           }


def test_partitions_and_partuuids_agree(built):
    """MBR with the base's disk identifier; bootfs, rootfs, VKDATA; cmdline.txt and fstab name them."""
    disk_id, parts = built["disk_id"], built["parts"]
    assert disk_id == built["base_id"] == standin.DISK_ID
    assert [p["type"] for p in parts] == ["c", "83", "83"]
    assert parts[0]["start"] == 8192 and parts[0]["size"] == built["base_parts"][0]["size"]
    assert parts[1]["start"] == parts[0]["start"] + parts[0]["size"]
    assert parts[2]["start"] == parts[1]["start"] + parts[1]["size"]
    labels = []
    for i, p in enumerate(parts):
        f = standin.cut(built["image"], p, built["out"] / f"p{i + 1}")
        if i == 0:
            info = subprocess.run(["minfo", "-i", str(f)], capture_output=True, text=True, env=MTOOLS).stdout
            labels.append(re.search(r"disk label=\"?([^\"\s]+)", info)[1])
        else:
            stats = subprocess.run(["debugfs", "-R", "stats", str(f)], capture_output=True, text=True).stdout
            labels.append(re.search(r"Filesystem volume name:\s*(\S+)", stats)[1])
        f.unlink()
    assert labels == ["bootfs", "rootfs", "VKDATA"]
    cmdline = fat_files(built["boot"])["cmdline.txt"].decode()
    assert f"root=PARTUUID={disk_id}-02" in cmdline.split()
    fstab = {line.split()[1]: line.split() for line in (built["root"] / "etc/fstab").read_text().splitlines()
             if line and not line.startswith("#")}
    assert fstab["/"][0] == f"PARTUUID={disk_id}-02" and "ro" in fstab["/"][3].split(",")
    assert fstab["/boot/firmware"][0] == f"PARTUUID={disk_id}-01"
    assert fstab["/var/lib/voicekey"][0] == f"PARTUUID={disk_id}-03"
    assert {"/tmp", "/var/log", "/var/lib/systemd"} <= {m for m, f in fstab.items() if f[0] == "tmpfs"}


def test_boot_files_edited_once_and_otherwise_untouched(built):
    """config.txt gets the overlay once, cmdline.txt the read-only/dwc2 words; nothing else changes."""
    before, after = fat_files(built["base_boot"]), fat_files(built["boot"])
    for name in standin.BOOT_FILES:
        assert after[name] == before[name], f"{name} changed"
    assert set(after) == set(before) | {"voicekey.yaml", "voicekey-system.txt"}
    config = after["config.txt"].decode()
    assert config == standin.CONFIG_TXT + ("# VoiceKey: USB device (gadget) mode on the USB-C port\n"
                                           "dtoverlay=dwc2,dr_mode=peripheral\n")
    assert config.count("dtoverlay=dwc2,dr_mode=peripheral") == 1
    assert after["cmdline.txt"].decode() == (
        f"console=serial0,115200 console=tty1 root=PARTUUID={standin.DISK_ID}-02 rootfstype=ext4 "
        "fsck.repair=yes rootwait ro modules-load=dwc2 fsck.mode=skip quiet\n")
    assert after["voicekey.yaml"] == (REPO / "config/voicekey.example.yaml").read_bytes()
    assert after["voicekey-system.txt"] == (REPO / "image/files/voicekey-system.txt").read_bytes()


def test_boot_edits_are_idempotent(built, tmp_path):
    """The edits run again on the result's own config.txt and cmdline.txt change nothing."""
    after = fat_files(built["boot"])
    for name in ("config.txt", "cmdline.txt"):
        (tmp_path / name).write_bytes(after[name])
    subprocess.run(["python3", str(REPO / "image" / "rpios-boot.py"), "--disk-id", built["disk_id"],
                    str(tmp_path / "config.txt"), str(tmp_path / "cmdline.txt")], check=True)
    for name in ("config.txt", "cmdline.txt"):
        assert (tmp_path / name).read_bytes() == after[name]


def in_root(root: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run an arm64 command in a chroot of the copied root (qemu-user through binfmt_misc, no mounts)."""
    node = root / "dev/null"
    made = not node.exists()
    if made:
        os.mknod(node, 0o20666, os.makedev(1, 3))
    try:
        return subprocess.run(["chroot", str(root), "/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "HOME=/root", *cmd],
                              capture_output=True, text=True, timeout=300)
    finally:
        if made:
            node.unlink()


def test_python_environment_runs_and_matches_the_debian_image(built):
    root = built["root"]
    proc = in_root(root, "/opt/voicekey/bin/voicekey", "--version")
    assert proc.returncode == 0, proc.stderr
    assert version() in proc.stdout
    proc = in_root(root, "/opt/voicekey/bin/python", "-c",
                   "import ctranslate2, lgpio, evdev, sounddevice, soxr, webrtcvad, gpiozero; print('ok')")
    assert proc.stdout.strip() == "ok", proc.stderr
    assert os.readlink(root / "usr/bin/voicekey") == "/opt/voicekey/bin/voicekey"
    site = next((root / "opt/voicekey/lib").glob("python3*/site-packages"))
    debian = (standin.cache_root() / standin.standin_key(image_path()) / "site-packages.txt").read_text()
    assert "\n".join(sorted(p.name for p in site.glob("*.dist-info"))) + "\n" == debian
    # the int8 model copy, hash-checked at build time, as in the Debian image
    int8 = (root / "usr/share/voicekey/model-int8.path").read_text().strip()
    assert (root / int8.lstrip("/") / "model.bin").is_file()
    # the packages the stand-in lacked came from the cache
    status = (root / "var/lib/dpkg/status").read_text()
    for pkg in standin.REMOVED_PACKAGES:
        assert re.search(rf"^Package: {re.escape(pkg)}\nStatus: install ok installed$", status, re.MULTILINE), pkg


def test_units_enabled_and_first_boot_needs_no_keyboard(built):
    sysd = built["root"] / "etc/systemd/system"
    for link, unit in [("sysinit.target.wants/voicekey-gadget.service", "voicekey-gadget.service"),
                       ("multi-user.target.wants/voicekey.service", "voicekey.service"),
                       ("multi-user.target.wants/voicekey-system.service", "voicekey-system.service")]:
        assert os.readlink(sysd / link) == f"../{unit}"
        assert (sysd / unit).read_bytes() == next(
            p for p in [REPO / "systemd" / unit, REPO / "image/files" / unit] if p.exists()).read_bytes()
    for unit in standin.RPIOS_UNITS:
        assert os.readlink(sysd / unit) == "/dev/null", f"{unit} not masked"
        assert not list(sysd.glob(f"*.wants/{unit}")), f"{unit} still wanted"
    assert not (sysd / "dbus-org.freedesktop.Avahi.service").exists()
    root = built["root"]
    assert (root / "etc/hostname").read_text() == "voicekey\n"
    assert (root / "etc/machine-id").read_text() == ""
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert (root / "etc/systemd/journald.conf.d/voicekey.conf").is_file()
    assert not (root / "etc/default/raspi-firmware").exists()  # Debian's kernel hook only


def test_root_copied_whole(built):
    """Set-user-ID bits, capabilities and hard links of the base survive the copy and rebuild."""
    root = built["root"]
    assert os.getxattr(root / standin.CAP_FILE, "security.capability")
    assert os.stat(root / standin.LINK_A).st_ino == os.stat(root / standin.LINK_B).st_ino
    su = os.stat(root / "usr/bin/su")
    assert su.st_mode & stat.S_ISUID and su.st_uid == 0


def test_release_files(built):
    out, name = built["out"], f"voicekey-{version()}-rpios-arm64"
    subprocess.run(["sha256sum", "--quiet", "-c", f"{name}.img.zst.sha256"], cwd=out, check=True)
    assert f"<ImageSize> {built['image'].stat().st_size} </ImageSize>" in (out / f"{name}.img.bmap").read_text()
    sizes = dict(line.split("=") for line in (out / f"{name}.sizes").read_text().split())
    assert int(sizes["compressed_bytes"]) < int(sizes["image_bytes"])
    # the .zst holds the image (its frame header records the size; zstd -t checks every block)
    listing = subprocess.run(["zstd", "-lv", str(out / f"{name}.img.zst")], capture_output=True, text=True).stdout
    assert f"({built['image'].stat().st_size} B)" in listing.replace(",", "")
    subprocess.run(["zstd", "-tq", str(out / f"{name}.img.zst")], check=True)
