"""The USB serial number: configured, else the board's, else derived from the machine id."""

import argparse
import logging

import pytest

from appliance.cli import main
from appliance.commands import gadget_cmd
from appliance.commands.gadget_cmd import gadget_from_args
from appliance.config import Config, TransportConfig
from appliance.gadget.configfs import FALLBACK_SERIAL, LANG, Gadget, GadgetSettings, device_serial
from tests.gadget.fake_configfs import FakeConfigFs

MACHINE_ID = "5f3e1c0a9b8d4e7f8a6b5c4d3e2f1a0b"
CPUINFO = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n\n"
           "Hardware\t: BCM2835\nRevision\t: 902120\nSerial\t\t: {serial}\nModel\t\t: Raspberry Pi Zero 2 W Rev 1.0\n")


@pytest.fixture
def roots(tmp_path):
    proc, sys_, etc = tmp_path / "proc", tmp_path / "sys", tmp_path / "etc"
    for d in (proc, sys_, etc):
        d.mkdir()
    return proc, sys_, etc


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def test_pi_device_tree_serial_is_used_without_its_nul(roots):
    proc, sys_, etc = roots
    write(proc / "device-tree" / "serial-number", b"00000000a1b2c3d4\x00")
    write(proc / "cpuinfo", CPUINFO.format(serial="00000000ffffffff"))
    write(etc / "machine-id", MACHINE_ID + "\n")
    assert device_serial(proc, sys_, etc) == "00000000a1b2c3d4"


def test_sysfs_device_tree_serial_when_proc_has_none(roots):
    proc, sys_, etc = roots
    write(sys_ / "firmware" / "devicetree" / "base" / "serial-number", b"10000000deadbeef\x00")
    assert device_serial(proc, sys_, etc) == "10000000deadbeef"


def test_cpuinfo_serial_when_there_is_no_device_tree(roots):
    proc, sys_, etc = roots
    write(proc / "cpuinfo", CPUINFO.format(serial="00000000c0ffee42"))
    write(etc / "machine-id", MACHINE_ID + "\n")
    assert device_serial(proc, sys_, etc) == "00000000c0ffee42"


def test_all_zero_serials_are_ignored(roots):
    proc, sys_, etc = roots
    write(proc / "device-tree" / "serial-number", b"0000000000000000\x00")
    write(proc / "cpuinfo", CPUINFO.format(serial="0000000000000000"))
    write(etc / "machine-id", MACHINE_ID + "\n")
    serial = device_serial(proc, sys_, etc)
    assert serial != "0000000000000000"
    assert len(serial) == 16 and int(serial, 16) >= 0


def test_machine_id_fallback_is_a_stable_hash_not_the_id(roots):
    proc, sys_, etc = roots
    write(proc / "cpuinfo", "processor\t: 0\nmodel name\t: Some x86 CPU\n")  # no Serial line
    write(etc / "machine-id", MACHINE_ID + "\n")
    serial = device_serial(proc, sys_, etc)
    assert serial == device_serial(proc, sys_, etc)
    assert len(serial) == 16 and all(c in "0123456789abcdef" for c in serial)
    assert serial not in MACHINE_ID and MACHINE_ID[:8] not in serial


def test_two_machine_ids_give_two_serials(tmp_path):
    serials = set()
    for i, machine_id in enumerate((MACHINE_ID, "0123456789abcdef0123456789abcdef")):
        etc = tmp_path / f"etc{i}"
        write(etc / "machine-id", machine_id + "\n")
        serials.add(device_serial(tmp_path / "noproc", tmp_path / "nosys", etc))
    assert len(serials) == 2


@pytest.mark.parametrize("machine_id", [None, "", "uninitialized\n", "0" * 32 + "\n", "not hex at all"])
def test_clear_fallback_without_serial_or_machine_id(roots, machine_id, caplog):
    proc, sys_, etc = roots
    if machine_id is not None:
        write(etc / "machine-id", machine_id)
    with caplog.at_level(logging.WARNING, logger="appliance.gadget.configfs"):
        assert device_serial(proc, sys_, etc) == FALLBACK_SERIAL
    assert "transport.serial" in caplog.text


# ---- wiring: config -> gadget -> configfs -------------------------------------------------------
@pytest.fixture
def gadget_roots(tmp_path):
    cfg, sys_ = tmp_path / "configfs", tmp_path / "gadget-sys"
    (sys_ / "class" / "udc" / "dummy_udc.0").mkdir(parents=True)
    (sys_ / "class" / "udc" / "dummy_udc.0" / "state").write_text("not attached\n")
    return cfg, sys_


def serial_file(gadget):
    return (gadget.root / "strings" / LANG / "serialnumber").read_bytes()


def test_gadget_writes_the_derived_serial(gadget_roots, roots):
    cfg, sys_ = gadget_roots
    proc, _, etc = roots
    write(proc / "device-tree" / "serial-number", b"00000000a1b2c3d4\x00")
    g = Gadget(cfg, sys_, fs=FakeConfigFs(cfg, sys_), proc_root=proc, etc_root=etc)
    g.up()
    assert serial_file(g) == b"00000000a1b2c3d4"


def test_configured_serial_overrides_the_board(gadget_roots, roots):
    cfg, sys_ = gadget_roots
    proc, _, etc = roots
    write(proc / "device-tree" / "serial-number", b"00000000a1b2c3d4\x00")
    args = argparse.Namespace(configfs_root=cfg, sysfs_root=sys_, gadget_name="voicekey")
    g = gadget_from_args(args, Config(transport=TransportConfig(serial="desk-left")))
    assert g.settings.serial == "desk-left" and g.serial == "desk-left"
    g.fs = FakeConfigFs(cfg, sys_)
    g.up()
    assert serial_file(g) == b"desk-left"


def test_changed_serial_rebinds(gadget_roots):
    cfg, sys_ = gadget_roots
    fs = FakeConfigFs(cfg, sys_)
    Gadget(cfg, sys_, GadgetSettings(serial="one"), fs=fs).up()
    again = Gadget(cfg, sys_, GadgetSettings(serial="one"), fs=fs)
    before = len(fs.writes)
    again.up()
    assert len(fs.writes) == before  # same serial: nothing rewritten
    changed = Gadget(cfg, sys_, GadgetSettings(serial="two"), fs=fs)
    changed.up()
    assert serial_file(changed) == b"two"
    assert ("UDC", b"\n") in fs.writes[before:] and fs.writes[-1] == ("UDC", b"dummy_udc.0")


def test_gadget_up_reads_transport_serial_from_the_config(gadget_roots, tmp_path, capsys, monkeypatch):
    cfg, sys_ = gadget_roots
    monkeypatch.setattr(gadget_cmd, "Gadget",
                        lambda c, s, settings: Gadget(c, s, settings, fs=FakeConfigFs(c, s)))
    config = tmp_path / "voicekey.yaml"
    config.write_text("transport:\n  serial: desk-left\n")
    assert main(["gadget", "up", "--config", str(config), "--configfs-root", str(cfg),
                 "--sysfs-root", str(sys_)]) == 0
    assert (cfg / "usb_gadget" / "voicekey" / "strings" / LANG / "serialnumber").read_bytes() == b"desk-left"
    assert "serial desk-left" in capsys.readouterr().out
