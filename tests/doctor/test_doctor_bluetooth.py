"""``voicekey doctor``'s Bluetooth checks on fake /sys, /proc, unit and /var/lib/bluetooth trees."""

from pathlib import Path

from appliance.commands.doctor_bluetooth import (check_adapter, check_bluetoothd, check_bonds,
                                                 check_capability)
from appliance.commands.doctor_cmd import Status

REPO = Path(__file__).resolve().parents[2]


def _proc(tmp_path: Path, *cmdline: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "comm").write_text("systemd\n")
    (proc / "1" / "cmdline").write_bytes(b"/sbin/init\0")
    if cmdline:
        (proc / "77").mkdir()
        (proc / "77" / "comm").write_text("bluetoothd\n")
        (proc / "77" / "cmdline").write_bytes("\0".join(cmdline).encode() + b"\0")
    return proc


def test_adapter(tmp_path):
    (tmp_path / "class" / "bluetooth" / "hci1").mkdir(parents=True)
    assert check_adapter(tmp_path, "hci1").status is Status.OK
    missing = check_adapter(tmp_path, "hci0")
    assert missing.status is Status.FAIL and "hci1" in missing.summary and "bluetooth.adapter" in missing.fix


def test_bluetoothd_must_run_without_the_input_plugin(tmp_path):
    assert check_bluetoothd(_proc(tmp_path)).status is Status.FAIL
    with_plugin = check_bluetoothd(_proc(tmp_path / "a", "/usr/libexec/bluetooth/bluetoothd"))
    assert with_plugin.status is Status.FAIL and "bluetooth.service.d/voicekey.conf" in with_plugin.fix
    ok = check_bluetoothd(_proc(tmp_path / "b", "/usr/libexec/bluetooth/bluetoothd", "--noplugin=input"))
    assert ok.status is Status.OK


def test_capability_of_the_shipped_unit_and_of_an_old_one(tmp_path):
    assert check_capability(REPO / "systemd" / "voicekey.service").status is Status.OK
    old = tmp_path / "voicekey.service"
    old.write_text("[Service]\nCapabilityBoundingSet=\nAmbientCapabilities=\n")
    assert check_capability(old).status is Status.FAIL
    assert check_capability(tmp_path / "absent.service").status is Status.WARN


def test_bonds(tmp_path):
    assert check_bonds(tmp_path).status is Status.WARN
    host = tmp_path / "00:AA:01:00:00:00" / "00:BB:02:00:00:01"
    host.mkdir(parents=True)
    (host / "info").write_text("[General]\nName=host\n\n[LinkKey]\nKey=00\n")
    (tmp_path / "00:AA:01:00:00:00" / "cache").mkdir()
    bonds = check_bonds(tmp_path)
    assert bonds.status is Status.OK and bonds.details == ("00:BB:02:00:00:01",)
