"""Create, bind, inspect and remove the VoiceKey USB HID gadget through configfs.

Kernel documentation for every attribute written here:
Documentation/usb/gadget_configfs.rst and Documentation/ABI/testing/configfs-usb-gadget-hid.
The configfs and sysfs roots are parameters so tests can point them at temporary directories; all
file-system access goes through a :class:`ConfigFs` so a fake can mimic configfs semantics.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from appliance.errors import GadgetError
from appliance.hid.report import BOOT_KEYBOARD_DESCRIPTOR

log = logging.getLogger(__name__)

#: Bump whenever BOOT_KEYBOARD_DESCRIPTOR (or any descriptor field below) changes: Windows and macOS
#: cache descriptors per (idVendor, idProduct, bcdDevice) and would otherwise keep the old one.
#: tests/gadget/test_configfs.py pins the descriptor hash to this revision.
DESCRIPTOR_REVISION = 0x0101

FUNCTION = "hid.usb0"
CONFIG = "c.1"
LANG = "0x409"
DWC2_FIX = ("enable the USB device controller: add `dtoverlay=dwc2` to /boot/firmware/config.txt "
            "(and `modules-load=dwc2` after rootwait in cmdline.txt), reboot, and plug the Pi into the "
            "computer with its OTG/USB-C data port (Zero 2 W: the port marked USB, not PWR)")


@dataclass(frozen=True)
class GadgetSettings:
    """What the gadget announces to the host."""

    name: str = "voicekey"
    """Directory name under usb_gadget/."""
    id_vendor: int = 0x1D6B
    """USB vendor id (default: Linux Foundation)."""
    id_product: int = 0x0104
    """USB product id (default: Multifunction Composite Gadget)."""
    manufacturer: str = "VoiceKey"
    product: str = "VoiceKey voice keyboard"
    serial: str | None = None
    """USB serial number (config ``transport.serial``); None: :func:`device_serial`, so that two
    VoiceKeys on one host are told apart (hosts key per-device settings on it)."""
    max_power_ma: int = 100
    """bMaxPower in mA: what the Pi asks the host for (a Zero 2 W needs a separate supply above this)."""


#: Serial used when neither the board nor the machine id gives one (every such device shares it).
FALLBACK_SERIAL = "voicekey-unknown"
#: The label the machine id is hashed with: the USB serial is not the machine id, and a different
#: product on the same Pi hashing the same id gets an unrelated value.
_SERIAL_LABEL = b"voicekey usb serial number"
_SERIAL_CHARS = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("ascii", "replace")
    except OSError:
        return None


def _usable_serial(raw: str | None) -> str | None:
    """A board serial as read (device-tree strings end in NUL), or None if absent, odd or all zero."""
    if raw is None:
        return None
    text = raw.strip("\x00 \t\r\n")
    if not _SERIAL_CHARS.fullmatch(text) or not text.strip("0"):
        return None
    return text


def board_serial(proc_root: Path = Path("/proc"), sysfs_root: Path = Path("/sys")) -> str | None:
    """The board's serial number, or None.

    Read from the device tree (``/proc/device-tree/serial-number``, the same node as
    ``/sys/firmware/devicetree/base/serial-number``; the Raspberry Pi firmware puts the SoC serial
    there) or else the ``Serial`` line of ``/proc/cpuinfo`` (Raspberry Pi kernels). All-zero
    serials (boards without one, some emulators) count as none.
    """
    for path in (Path(proc_root) / "device-tree" / "serial-number",
                 Path(sysfs_root) / "firmware" / "devicetree" / "base" / "serial-number"):
        serial = _usable_serial(_read_text(path))
        if serial:
            return serial
    for line in (_read_text(Path(proc_root) / "cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Serial":
            serial = _usable_serial(value)
            if serial:
                return serial
    return None


def machine_serial(etc_root: Path = Path("/etc")) -> str | None:
    """16 hex digits derived from ``/etc/machine-id``, or None when there is no usable machine id.

    The machine id itself is meant to stay private (see machine-id(5)): like systemd's
    ``sd_id128_get_machine_app_specific()``, only an HMAC-SHA256 keyed with it over a VoiceKey
    label leaves the device, so the same Pi always gets the same serial and the id cannot be
    recovered from it.
    """
    raw = (_read_text(Path(etc_root) / "machine-id") or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", raw) or not raw.strip("0"):
        return None  # missing, empty or "uninitialized" (first boot before systemd wrote it)
    return hmac.new(raw.encode(), _SERIAL_LABEL, hashlib.sha256).hexdigest()[:16]


def device_serial(proc_root: Path = Path("/proc"), sysfs_root: Path = Path("/sys"),
                  etc_root: Path = Path("/etc")) -> str:
    """The USB serial number for this device when the config sets none.

    The board serial (:func:`board_serial`), else a hash of the machine id (:func:`machine_serial`),
    else :data:`FALLBACK_SERIAL`. Stable across reboots; different between devices.
    """
    serial = board_serial(proc_root, sysfs_root)
    if serial:
        log.debug("USB serial: the board serial number")
        return serial
    serial = machine_serial(etc_root)
    if serial:
        log.debug("USB serial: derived from the machine id")
        return serial
    log.warning("no board serial number and no machine id: using the USB serial %r; set "
                "transport.serial in the config to tell several VoiceKeys apart", FALLBACK_SERIAL)
    return FALLBACK_SERIAL


@dataclass(frozen=True)
class GadgetStatus:
    """What ``voicekey gadget status`` reports."""

    exists: bool
    udc: str | None
    udc_state: str | None
    device: str | None
    bcd_device: int | None

    @property
    def configured(self) -> bool:
        """True when a host has enumerated and configured the keyboard."""
        return self.udc_state == "configured"


class ConfigFs:
    """Thin file-system edge over configfs. The fake in tests overrides the configfs-specific parts."""

    def mkdir(self, path: Path) -> None:
        path.mkdir(exist_ok=True)

    def write(self, path: Path, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        log.debug("configfs write %s <- %r", path, raw)
        with open(path, "wb", buffering=0) as f:
            f.write(raw)

    def read(self, path: Path) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def symlink(self, target: Path, link: Path) -> None:
        if not link.is_symlink():
            link.symlink_to(target)

    def unlink(self, link: Path) -> None:
        if link.is_symlink():
            link.unlink()

    def rmdir(self, path: Path) -> None:
        if path.is_dir():
            path.rmdir()


def _hexword(value: int) -> str:
    return f"0x{value:04x}"


class Gadget:
    """The VoiceKey gadget under ``configfs_root/usb_gadget/<name>``."""

    def __init__(self, configfs_root: Path | str = "/sys/kernel/config",
                 sysfs_root: Path | str = "/sys", settings: GadgetSettings = GadgetSettings(),
                 fs: ConfigFs | None = None, *, proc_root: Path | str = "/proc",
                 etc_root: Path | str = "/etc") -> None:
        self.configfs_root = Path(configfs_root)
        self.sysfs_root = Path(sysfs_root)
        self.proc_root = Path(proc_root)
        self.etc_root = Path(etc_root)
        self.settings = settings
        self.fs = fs or ConfigFs()
        self.root = self.configfs_root / "usb_gadget" / settings.name

    @cached_property
    def serial(self) -> str:
        """The USB serial number written: ``settings.serial``, or :func:`device_serial`."""
        if self.settings.serial is not None:
            return self.settings.serial
        return device_serial(self.proc_root, self.sysfs_root, self.etc_root)

    # ---- inspection -------------------------------------------------------------------------
    def available_udcs(self) -> list[str]:
        """UDC names the kernel offers (``/sys/class/udc``), sorted."""
        udc_dir = self.sysfs_root / "class" / "udc"
        try:
            return sorted(p.name for p in udc_dir.iterdir())
        except FileNotFoundError:
            return []

    def bound_udc(self) -> str | None:
        """The UDC this gadget is bound to, or None."""
        try:
            value = self.fs.read(self.root / "UDC").decode().strip()
        except FileNotFoundError:
            return None
        return value or None

    def udc_state_file(self, udc: str | None = None) -> Path | None:
        """``/sys/class/udc/<udc>/state``: "configured" while a host is using the keyboard."""
        udc = udc or self.bound_udc()
        return None if udc is None else self.sysfs_root / "class" / "udc" / udc / "state"

    def udc_state(self, udc: str | None = None) -> str | None:
        path = self.udc_state_file(udc)
        if path is None:
            return None
        try:
            return path.read_text().strip()
        except OSError:
            return None

    def device_path(self, dev_root: Path | str = "/dev") -> str | None:
        """The character device of the HID function (``/dev/hidgN``), from its major:minor."""
        try:
            majmin = self.fs.read(self.root / "functions" / FUNCTION / "dev").decode().strip()
        except OSError:
            return None
        uevent = self.sysfs_root / "dev" / "char" / majmin / "uevent"
        try:
            for line in uevent.read_text().splitlines():
                if line.startswith("DEVNAME="):
                    return str(Path(dev_root) / line.split("=", 1)[1])
        except OSError:
            pass
        return None

    def status(self) -> GadgetStatus:
        exists = self.root.is_dir()
        bcd = None
        if exists:
            try:
                bcd = int(self.fs.read(self.root / "bcdDevice").decode().strip(), 0)
            except (OSError, ValueError):
                bcd = None
        udc = self.bound_udc() if exists else None
        return GadgetStatus(exists=exists, udc=udc, udc_state=self.udc_state(udc),
                            device=self.device_path() if exists else None, bcd_device=bcd)

    # ---- set-up / teardown ------------------------------------------------------------------
    def _preflight(self) -> None:
        if not (self.configfs_root / "usb_gadget").is_dir():
            raise GadgetError(
                f"configfs USB gadget support not found at {self.configfs_root / 'usb_gadget'}",
                fix="load the gadget framework and mount configfs: `modprobe libcomposite` and "
                    f"`mount -t configfs none {self.configfs_root}` (the voicekey-gadget unit does both)")

    def _pick_udc(self, udc: str | None) -> str:
        udcs = self.available_udcs()
        if udc is not None:
            if udc not in udcs:
                raise GadgetError(f"USB device controller {udc!r} not found (available: {udcs or 'none'})",
                                  fix="omit --udc to use the first one, or " + DWC2_FIX)
            return udc
        if not udcs:
            raise GadgetError(f"no USB device controller (UDC) in {self.sysfs_root / 'class' / 'udc'}",
                              fix=DWC2_FIX)
        return udcs[0]

    def _write_attrs(self) -> bool:
        """Write all descriptors. Returns True if anything differed from what was there."""
        s, fs, root = self.settings, self.fs, self.root
        fn = root / "functions" / FUNCTION
        wanted: list[tuple[Path, bytes]] = [
            (root / "idVendor", _hexword(s.id_vendor).encode()),
            (root / "idProduct", _hexword(s.id_product).encode()),
            (root / "bcdDevice", _hexword(DESCRIPTOR_REVISION).encode()),
            (root / "bcdUSB", b"0x0200"),
            (root / "strings" / LANG / "manufacturer", s.manufacturer.encode()),
            (root / "strings" / LANG / "product", s.product.encode()),
            (root / "strings" / LANG / "serialnumber", self.serial.encode()),
            (root / "configs" / CONFIG / "MaxPower", str(s.max_power_ma).encode()),
            (root / "configs" / CONFIG / "bmAttributes", b"0x80"),
            (root / "configs" / CONFIG / "strings" / LANG / "configuration", b"Boot keyboard"),
            (fn / "protocol", b"1"),  # boot interface protocol 1 = keyboard
            (fn / "subclass", b"1"),  # boot interface subclass
            (fn / "report_length", b"8"),
            (fn / "report_desc", BOOT_KEYBOARD_DESCRIPTOR),
        ]
        changed = False
        for path, value in wanted:
            try:
                current = fs.read(path)
            except FileNotFoundError:
                current = None
            if current is not None and _same(current, value):
                continue
            fs.write(path, value)
            changed = True
        return changed

    def up(self, udc: str | None = None) -> GadgetStatus:
        """Create (or repair) the gadget and bind it to ``udc`` (default: the first UDC). Idempotent."""
        self._preflight()
        chosen = self._pick_udc(udc)
        fs, root = self.fs, self.root
        try:
            created = not root.is_dir()
            for d in (root, root / "strings" / LANG, root / "configs" / CONFIG,
                      root / "configs" / CONFIG / "strings" / LANG, root / "functions" / FUNCTION):
                fs.mkdir(d)
            bound = self.bound_udc()
            if bound and bound != chosen:
                self._unbind()
                bound = None
            if bound:
                # Attributes cannot change while bound: compare first, rebind only if needed.
                if self._needs_update():
                    log.info("gadget descriptors changed; rebinding %s", bound)
                    self._unbind()
                    bound = None
            if not bound:
                self._write_attrs()
                fs.symlink(root / "functions" / FUNCTION, root / "configs" / CONFIG / FUNCTION)
                fs.write(root / "UDC", chosen)
                log.info("gadget %s %s and bound to %s", self.settings.name,
                         "created" if created else "updated", chosen)
        except PermissionError as exc:
            raise GadgetError(f"permission denied writing {exc.filename}",
                              fix="run as root (sudo voicekey gadget up)") from exc
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise GadgetError(f"UDC {chosen} is busy: another gadget is bound to it ({exc})",
                                  fix="unbind the other gadget (echo '' > its UDC file) or pass --udc") from exc
            raise GadgetError(f"configfs write failed: {exc}",
                              fix="check that usb_f_hid is available (`modprobe usb_f_hid`) and see dmesg") from exc
        return self.status()

    def _needs_update(self) -> bool:
        s, root = self.settings, self.root
        fn = root / "functions" / FUNCTION
        checks = [(root / "bcdDevice", _hexword(DESCRIPTOR_REVISION).encode()),
                  (root / "idVendor", _hexword(s.id_vendor).encode()),
                  (root / "idProduct", _hexword(s.id_product).encode()),
                  (root / "strings" / LANG / "serialnumber", self.serial.encode()),
                  (fn / "report_desc", BOOT_KEYBOARD_DESCRIPTOR)]
        for path, value in checks:
            try:
                if not _same(self.fs.read(path), value):
                    return True
            except FileNotFoundError:
                return True
        return False

    def _unbind(self) -> None:
        if self.bound_udc():
            self.fs.write(self.root / "UDC", "\n")

    def down(self) -> None:
        """Unbind and remove the gadget, in the order configfs requires. Idempotent."""
        root, fs = self.root, self.fs
        if not root.is_dir():
            return
        try:
            self._unbind()
            fs.unlink(root / "configs" / CONFIG / FUNCTION)
            fs.rmdir(root / "configs" / CONFIG / "strings" / LANG)
            fs.rmdir(root / "configs" / CONFIG)
            fs.rmdir(root / "functions" / FUNCTION)
            fs.rmdir(root / "strings" / LANG)
            fs.rmdir(root)
        except PermissionError as exc:
            raise GadgetError(f"permission denied removing {exc.filename}",
                              fix="run as root (sudo voicekey gadget down)") from exc
        log.info("gadget %s removed", self.settings.name)


def _same(current: bytes, wanted: bytes) -> bool:
    """configfs echoes numbers in its own format (e.g. 0x1d6b, trailing newline): compare meaningfully."""
    if current == wanted:
        return True
    a, b = current.strip(), wanted.strip()
    if a == b:
        return True
    try:
        return int(a, 0) == int(b, 0)
    except ValueError:
        return False


def descriptor_digest() -> str:
    """SHA-256 of the report descriptor (tests pin it to DESCRIPTOR_REVISION)."""
    return hashlib.sha256(BOOT_KEYBOARD_DESCRIPTOR).hexdigest()


def is_root() -> bool:
    return os.geteuid() == 0
