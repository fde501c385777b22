"""The systemd units and the gadget shell entry point."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
SCRIPT = REPO / "gadget" / "voicekey-gadget.sh"
GADGET_UNIT = SYSTEMD / "voicekey-gadget.service"
DAEMON_UNIT = SYSTEMD / "voicekey.service"
INSTALLED_SCRIPT = "/usr/lib/voicekey/voicekey-gadget.sh"
INSTALLED_CLI = "/usr/bin/voicekey"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat, e.g. DeviceAllow)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: setting outside a section: {line}"
        assert "=" in line, f"{path}: not key=value: {line}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict, section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, (section, key, values)
    return values[0]


def words(unit: dict, section: str, key: str) -> set[str]:
    return {w for v in unit[section].get(key, []) for w in v.split()}


def test_gadget_unit_is_an_early_oneshot():
    u = parse_unit(GADGET_UNIT)
    assert one(u, "Service", "Type") == "oneshot"
    assert one(u, "Service", "RemainAfterExit") == "yes"
    assert one(u, "Unit", "DefaultDependencies") == "no"
    assert {"sys-kernel-config.mount", "local-fs.target"} <= words(u, "Unit", "After")
    assert "voicekey.service" in words(u, "Unit", "Before")
    # without default dependencies it must be stopped explicitly at shutdown
    assert "shutdown.target" in words(u, "Unit", "Conflicts") and "shutdown.target" in words(u, "Unit", "Before")
    assert one(u, "Service", "ExecStart") == INSTALLED_SCRIPT
    assert one(u, "Service", "ExecStop") == f"{INSTALLED_CLI} gadget down"
    assert INSTALLED_SCRIPT in GADGET_UNIT.read_text().split("[Unit]")[0]  # install path documented
    assert u["Install"]["WantedBy"]


def test_daemon_unit_notify_watchdog_restart_release():
    u = parse_unit(DAEMON_UNIT)
    assert one(u, "Service", "Type") == "notify"
    assert one(u, "Service", "NotifyAccess") == "main"
    assert one(u, "Service", "WatchdogSec") == "30"
    assert one(u, "Service", "Restart") == "on-failure"
    assert one(u, "Service", "RestartSec") == "2"
    assert one(u, "Service", "ExecStart") == f"{INSTALLED_CLI} run"
    assert one(u, "Service", "ExecStopPost") == f"{INSTALLED_CLI} release"
    # Wants, not Requires: a failed gadget unit must not keep the daemon (and its blink code) down
    assert not words(u, "Unit", "Requires")
    assert {"voicekey-gadget.service", "sound.target"} <= words(u, "Unit", "Wants")
    assert {"voicekey-gadget.service", "sound.target"} <= words(u, "Unit", "After")
    assert "multi-user.target" in words(u, "Install", "WantedBy")


def test_daemon_unit_hardening():
    u = parse_unit(DAEMON_UNIT)
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "DevicePolicy": "closed"}.items():
        assert one(u, "Service", key) == value, key
    allowed = set(u["Service"]["DeviceAllow"])
    assert {"/dev/hidg0 rw", "char-alsa rw", "/dev/gpiochip0 rw", "/dev/gpiomem rw", "char-input rw"} <= allowed
    assert not words(u, "Service", "SupplementaryGroups")  # root needs none; Debian has no gpio group
    # the model cache is the only writable place, and it is where XDG_CACHE_HOME points
    assert any(p.lstrip("-") == "/var/cache/voicekey" for p in words(u, "Service", "ReadWritePaths"))
    assert "XDG_CACHE_HOME=/var/cache" in u["Service"]["Environment"]
    assert one(u, "Service", "CacheDirectory") == "voicekey"
    # exactly one capability: L2CAP PSMs 0x11/0x13 (Bluetooth HID) are below 0x1001
    assert one(u, "Service", "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    assert one(u, "Service", "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    # lgpio needs a writable directory for its pipes: the runtime directory, named by LG_WD
    assert one(u, "Service", "RuntimeDirectory") == "voicekey"
    assert "LG_WD=/run/voicekey" in u["Service"]["Environment"]


def _installed_copies(tmp_path: Path) -> list[Path]:
    """Copies of the units whose binaries point at executables that exist in tmp_path."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("voicekey", "voicekey-gadget.sh"):
        exe = bindir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    out = []
    for unit in (GADGET_UNIT, DAEMON_UNIT):
        text = unit.read_text().replace(INSTALLED_SCRIPT, str(bindir / "voicekey-gadget.sh"))
        text = text.replace(INSTALLED_CLI, str(bindir / "voicekey"))
        copy = units / unit.name
        copy.write_text(text)
        out.append(copy)
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    copies = _installed_copies(tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", *map(str, copies)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines()
            if "voicekey" in line or str(tmp_path) in line]
    assert proc.returncode == 0 and ours == [], proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_verify_would_catch_a_typo(tmp_path):
    """The verify test above is only meaningful if systemd-analyze reports unknown keys."""
    copies = _installed_copies(tmp_path)
    copies[1].write_text(copies[1].read_text().replace("WatchdogSec=", "WatchdogSecs="))
    proc = subprocess.run(["systemd-analyze", "verify", str(copies[1])], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert "WatchdogSecs" in proc.stdout + proc.stderr


# ---- gadget/voicekey-gadget.sh ------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_gadget_script_is_shellcheck_clean():
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout


def test_gadget_script_is_executable_and_strict():
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


@pytest.fixture
def stubs(tmp_path):
    """modprobe, mount, mountpoint and voicekey stand-ins that log their arguments."""
    bindir = tmp_path / "stubs"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("modprobe", "mount", "voicekey", "sleep"):
        (bindir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
    # mountpoint: "mounted" only if the directory holds a .mounted marker
    (bindir / "mountpoint").write_text('#!/bin/sh\n[ -e "$2/.mounted" ]\n')
    for exe in bindir.iterdir():
        exe.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    return env, log


def run_script(env, *args):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_gadget_script_help():
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("Usage:") and "--udc-wait" in proc.stdout


def test_gadget_script_loads_mounts_then_hands_over(tmp_path, stubs):
    env, log = stubs
    cfs, sysfs = tmp_path / "cfs", tmp_path / "sys"
    (cfs / "usb_gadget").mkdir(parents=True)
    (sysfs / "class" / "udc" / "dummy_udc.0").mkdir(parents=True)
    proc = run_script(env, "--configfs-root", str(cfs), "--sysfs-root", str(sysfs), "--udc", "dummy_udc.0")
    assert proc.returncode == 0, proc.stderr
    assert calls(log) == ["modprobe libcomposite", f"mount -t configfs none {cfs}",
                          f"voicekey gadget up --configfs-root {cfs} --sysfs-root {sysfs} --udc dummy_udc.0"]


def test_gadget_script_skips_what_is_already_done(tmp_path, stubs):
    env, log = stubs
    cfs, sysfs = tmp_path / "cfs", tmp_path / "sys"
    (cfs / "usb_gadget").mkdir(parents=True)
    (cfs / ".mounted").touch()
    (sysfs / "module" / "libcomposite").mkdir(parents=True)
    (sysfs / "class" / "udc" / "dummy_udc.0").mkdir(parents=True)
    proc = run_script(env, "--configfs-root", str(cfs), "--sysfs-root", str(sysfs))
    assert proc.returncode == 0, proc.stderr
    assert calls(log) == [f"voicekey gadget up --configfs-root {cfs} --sysfs-root {sysfs}"]


def test_gadget_script_waits_for_the_udc_then_lets_voicekey_report(tmp_path, stubs):
    env, log = stubs
    cfs, sysfs = tmp_path / "cfs", tmp_path / "sys"
    (cfs / "usb_gadget").mkdir(parents=True)
    (cfs / ".mounted").touch()
    (sysfs / "module" / "libcomposite").mkdir(parents=True)
    proc = run_script(env, "--configfs-root", str(cfs), "--sysfs-root", str(sysfs), "--udc-wait", "3")
    assert proc.returncode == 0, proc.stderr
    assert calls(log) == ["sleep 1"] * 3 + [f"voicekey gadget up --configfs-root {cfs} --sysfs-root {sysfs}"]


def test_gadget_script_fails_when_configfs_has_no_gadget_support(tmp_path, stubs):
    env, log = stubs
    cfs = tmp_path / "cfs"
    cfs.mkdir()
    proc = run_script(env, "--configfs-root", str(cfs), "--sysfs-root", str(tmp_path / "sys"))
    assert proc.returncode == 1 and "usb_gadget missing" in proc.stderr
    assert not any(c.startswith("voicekey") for c in calls(log))


@pytest.mark.parametrize("args,words", [(["--bogus"], "unknown argument"), (["--udc"], "needs a value"),
                                        (["--udc-wait", "soon"], "whole number")])
def test_gadget_script_rejects_bad_arguments(stubs, args, words):
    env, log = stubs
    proc = run_script(env, *args)
    assert proc.returncode == 1 and words in proc.stderr and calls(log) == []
