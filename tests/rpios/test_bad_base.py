"""image/build-rpios.sh refuses a wrong --base, saying what is wrong and how to fix it.

Each base here is a small image made in a few seconds (no Debian image needed): the script stops at
its checks, before it fetches or builds anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image" / "build-rpios.sh"
TOOLS = ["sfdisk", "mkfs.vfat", "mcopy", "mke2fs", "debugfs", "xz", "zstd", "bmaptool", "dpkg-scanpackages"]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="build-rpios.sh needs root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="image tools missing (make image-system)"),
]
FIX = "download Raspberry Pi OS Lite (64-bit, bookworm)"


def build(base: Path | str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--base", str(base), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)


def elf(machine: int) -> bytes:
    """The first bytes of a 64-bit little-endian ELF executable for ``machine``."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


def make_image(tmp_path: Path, *, label: str = "dos", types: tuple[str, ...] = ("c", "83"), codename: str = "bookworm",
               machine: int = 0xB7, boot_files: tuple[str, ...] = ("config.txt", "cmdline.txt")) -> Path:
    """A small disk image shaped like Raspberry Pi OS's (FAT 64 MiB + ext4 16 MiB), with one thing wrong."""
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    for name in boot_files:
        (boot / name).write_text("rootwait\n")
    for d in ("usr/lib", "usr/bin", "etc"):
        (root / d).mkdir(parents=True)
    (root / "usr/lib/os-release").write_text(f'ID=debian\nVERSION_CODENAME={codename}\n')
    (root / "usr/bin/dpkg").write_bytes(elf(machine))
    fat, ext = tmp_path / "boot.vfat", tmp_path / "root.ext4"
    subprocess.run(["truncate", "-s", "64M", str(fat)], check=True)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "bootfs", str(fat)], check=True, capture_output=True)
    subprocess.run(["mcopy", "-s", "-i", str(fat), *map(str, boot.iterdir()), "::/"], check=True,
                   env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "rootfs", "-d", str(root), str(ext), "16M"], check=True,
                   capture_output=True)
    image = tmp_path / "base.img"
    subprocess.run(["truncate", "-s", f"{(8192 + 131072 + 32768) * 512 + 2 * 1024 * 1024}", str(image)], check=True)
    table = f"label: {label}\n" + "".join(
        f"start={start}, size={size}, type={t}\n"
        for start, size, t in zip((8192, 8192 + 131072), (131072, 32768), types))
    if label == "gpt":
        table = table.replace("type=c", "type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7").replace(
            "type=83", "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4")
    subprocess.run(["sfdisk", "-q", str(image)], input=table, text=True, check=True)
    for part, start in ((fat, 8192), (ext, 8192 + 131072)):
        subprocess.run(["dd", f"if={part}", f"of={image}", "bs=512", f"seek={start}", "conv=notrunc", "status=none"],
                       check=True)
    return image


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("build-rpios.sh: --base") or message.startswith("build-rpios.sh:"), message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_missing_file(tmp_path):
    assert_refused(build(tmp_path / "nope.img.xz", tmp_path), "no such file", FIX)


def test_no_base_given(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert_refused(proc, "--base PATH is required", FIX)


def test_not_a_disk_image(tmp_path):
    junk = tmp_path / "notes.img"
    junk.write_bytes(b"hello\n" * 100000)
    assert_refused(build(junk, tmp_path), "no partition table", "FAT boot partition 1", FIX)


def test_gpt_image(tmp_path):
    assert_refused(build(make_image(tmp_path, label="gpt"), tmp_path), "'gpt', not MBR", FIX)


def test_second_partition_not_linux(tmp_path):
    assert_refused(build(make_image(tmp_path, types=("c", "c")), tmp_path), "partition 2 has type c", FIX)


def test_boot_partition_without_config_txt(tmp_path):
    image = make_image(tmp_path, boot_files=("cmdline.txt",))
    assert_refused(build(image, tmp_path), "no config.txt", FIX)


def test_32_bit_image(tmp_path):
    assert_refused(build(make_image(tmp_path, machine=0x28), tmp_path), "32-bit (armhf)", "Lite (64-bit)")


def test_not_bookworm(tmp_path):
    assert_refused(build(make_image(tmp_path, codename="trixie"), tmp_path), "'trixie', not bookworm", FIX)


def test_compressed_base_is_read(tmp_path):
    """An .img.xz (as Raspberry Pi publishes it) is unpacked first; its content is then checked."""
    image = make_image(tmp_path, machine=0x3E)  # x86-64
    subprocess.run(["xz", "-0", "-T0", str(image)], check=True)
    assert_refused(build(image.with_suffix(".img.xz"), tmp_path), "not arm64")
