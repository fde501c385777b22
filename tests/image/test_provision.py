import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "image" / "provision.sh"


@pytest.fixture
def parts(tmp_path):
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    (root / "etc").mkdir(parents=True)
    (boot / "config.txt").write_text("[pi4]\narm_boost=1\n\n[all]\ndtparam=audio=on\n")
    (boot / "cmdline.txt").write_text("console=serial0,115200 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait quiet\n")
    return boot, root


def provision(boot, root):
    return subprocess.run(["bash", str(SCRIPT), "--boot", str(boot), "--root", str(root)],
                          capture_output=True, text=True, check=True)


def snapshot(*dirs):
    return {str(p): (p.read_bytes() if p.is_file() else None) for d in dirs for p in sorted(d.rglob("*"))}


def test_provisions_boot_and_root(parts):
    boot, root = parts
    provision(boot, root)
    config = (boot / "config.txt").read_text()
    assert "dtoverlay=dwc2" in config.split("[all]")[-1]
    cmdline = (boot / "cmdline.txt").read_text()
    assert "rootwait modules-load=dwc2 quiet" in cmdline and cmdline.count("\n") == 1
    assert (boot / "voicekey.yaml").read_text() == (REPO / "config" / "voicekey.example.yaml").read_text()
    sysd = root / "etc" / "systemd" / "system"
    assert (sysd / "voicekey.service").read_text() == (REPO / "systemd" / "voicekey.service").read_text()
    assert (sysd / "sysinit.target.wants" / "voicekey-gadget.service").resolve() == (sysd / "voicekey-gadget.service").resolve()
    assert (sysd / "multi-user.target.wants" / "voicekey.service").resolve() == (sysd / "voicekey.service").resolve()
    script = root / "usr" / "lib" / "voicekey" / "voicekey-gadget.sh"
    assert script.stat().st_mode & 0o111


def test_idempotent_and_keeps_user_config(parts):
    boot, root = parts
    provision(boot, root)
    (boot / "voicekey.yaml").write_text("keyboard:\n  layout: de\n")
    before = snapshot(boot, root)
    provision(boot, root)
    assert snapshot(boot, root) == before


def test_wrong_partition_is_explained(tmp_path):
    r = subprocess.run(["bash", str(SCRIPT), "--boot", str(tmp_path), "--root", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "boot (FAT) partition" in r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    scripts = sorted((REPO / "image").glob("*.sh")) + sorted((REPO / "image" / "files").glob("*.sh"))
    subprocess.run(["shellcheck", *map(str, scripts)], check=True)
