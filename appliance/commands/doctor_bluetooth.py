"""``voicekey doctor`` checks for the Bluetooth keyboard (transport.kind bluetooth or auto): the
adapter, bluetoothd without its input plugin, the daemon's capability, the paired hosts.

Each check reads files only (sysfs, /proc, the unit, /var/lib/bluetooth); the roots are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.commands.doctor_cmd import Check, Status
from appliance.config import Config


@dataclass(frozen=True)
class BluetoothPaths:
    sysfs_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    unit: Path = Path("/etc/systemd/system/voicekey.service")
    bluez_state: Path = Path("/var/lib/bluetooth")


def check_adapter(sysfs_root: Path, adapter: str) -> Check:
    node = sysfs_root / "class" / "bluetooth" / adapter
    if node.exists():
        return Check("bluetooth adapter", Status.OK, f"{adapter} present")
    found = sorted(p.name for p in (sysfs_root / "class" / "bluetooth").glob("hci*"))
    return Check("bluetooth adapter", Status.FAIL, f"no Bluetooth adapter {adapter}"
                 + (f" (found: {', '.join(found)})" if found else ""),
                 fix="set bluetooth.adapter to one found" if found else
                 "enable the Pi's Bluetooth (no `dtoverlay=disable-bt` in config.txt; `hciuart` "
                 "service) or plug in a USB adapter; check `dmesg | grep -i bluetooth`")


def _bluetoothd_cmdline(proc_root: Path) -> list[str] | None:
    for pid in proc_root.glob("[0-9]*"):
        try:
            if (pid / "comm").read_text().strip() != "bluetoothd":
                continue
            return [a for a in (pid / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
        except OSError:
            continue
    return None


def check_bluetoothd(proc_root: Path) -> Check:
    args = _bluetoothd_cmdline(proc_root)
    if args is None:
        return Check("bluetoothd", Status.FAIL, "bluetoothd is not running",
                     fix="`sudo systemctl enable --now bluetooth` (package bluez)")
    joined = " ".join(args)
    if "--noplugin=input" in joined or "-P input" in joined or "--noplugin input" in joined:
        return Check("bluetoothd", Status.OK, "running without the input plugin")
    return Check("bluetoothd", Status.FAIL, "bluetoothd runs with its input plugin: it holds the HID "
                 "channels VoiceKey needs (PSM 0x11/0x13)",
                 fix="install systemd/bluetooth.service.d/voicekey.conf as "
                     "/etc/systemd/system/bluetooth.service.d/voicekey.conf, then "
                     "`sudo systemctl daemon-reload && sudo systemctl restart bluetooth`",
                 details=(joined,))


def check_capability(unit: Path) -> Check:
    try:
        text = unit.read_text()
    except OSError:
        return Check("bluetooth capability", Status.WARN, f"{unit} not found: cannot tell whether the "
                     "daemon may listen on the HID PSMs",
                     fix="install systemd/voicekey.service (it grants CAP_NET_BIND_SERVICE)")
    lines = [line.strip() for line in text.splitlines()]
    ambient = any(line.startswith("AmbientCapabilities=") and "CAP_NET_BIND_SERVICE" in line for line in lines)
    bounding = [line for line in lines if line.startswith("CapabilityBoundingSet=")]
    if ambient and all("CAP_NET_BIND_SERVICE" in line for line in bounding):
        return Check("bluetooth capability", Status.OK, "the unit grants CAP_NET_BIND_SERVICE")
    return Check("bluetooth capability", Status.FAIL, f"{unit} does not grant CAP_NET_BIND_SERVICE: "
                 "listening on L2CAP PSM 0x11/0x13 fails with EACCES",
                 fix="install the current systemd/voicekey.service (AmbientCapabilities= and "
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE)")


def check_bonds(bluez_state: Path) -> Check:
    try:
        infos = list(bluez_state.glob("*/*/info"))
    except PermissionError:
        return Check("bluetooth hosts", Status.WARN, f"cannot read {bluez_state}",
                     fix="run `sudo voicekey doctor`, or see `voicekey bluetooth status`")
    hosts = []
    for info in infos:
        try:
            if "[LinkKey]" in info.read_text():
                hosts.append(info.parent.name)
        except OSError:
            continue
    if not hosts:
        return Check("bluetooth hosts", Status.WARN, "no paired host",
                     fix="hold the button 8 s (double blink) or run `voicekey bluetooth pair`, then pair "
                         "VoiceKey from the computer's Bluetooth settings")
    return Check("bluetooth hosts", Status.OK, f"{len(hosts)} paired host(s)", details=tuple(sorted(hosts)))


def bluetooth_checks(config: Config, paths: BluetoothPaths = BluetoothPaths()) -> list[Check]:
    """Every Bluetooth check, in order."""
    return [check_adapter(paths.sysfs_root, config.bluetooth.adapter), check_bluetoothd(paths.proc_root),
            check_capability(paths.unit), check_bonds(paths.bluez_state)]
