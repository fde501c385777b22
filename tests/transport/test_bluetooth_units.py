"""The BlueZ integration files the SD image installs: systemd/bluetooth.service.d/ (installed by
image/finish-root.sh like every drop-in folder in systemd/) and image/rootfs/etc/bluetooth/main.conf."""

import configparser
from pathlib import Path

from tests.doctor.test_units import one, parse_unit

REPO = Path(__file__).resolve().parents[2]
DROP_INS = REPO / "systemd" / "bluetooth.service.d"
MAIN_CONF = REPO / "image" / "rootfs" / "etc" / "bluetooth" / "main.conf"


def test_bluetoothd_drop_in_runs_without_the_input_plugin():
    u = parse_unit(DROP_INS / "voicekey.conf")
    starts = u["Service"]["ExecStart"]
    assert starts[0] == ""  # clears the packaged ExecStart first
    assert starts[1].split()[-1] == "--noplugin=input"


def test_main_conf_class_repairing_and_classic_only():
    conf = configparser.ConfigParser()
    assert conf.read(MAIN_CONF)
    general = conf["General"]
    assert general["Class"] == "0x000540"
    assert general["JustWorksRepairing"] == "confirm"
    assert general["ControllerMode"] == "bredr"


def test_daemon_unit_orders_after_bluetooth():
    u = parse_unit(Path(__file__).resolve().parents[2] / "systemd" / "voicekey.service")
    assert "bluetooth.service" in one(u, "Unit", "After").split()
    assert one(u, "Service", "StateDirectory") == "voicekey"
