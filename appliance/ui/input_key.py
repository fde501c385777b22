"""A second trigger: one key of a Linux input device (foot pedal, presenter remote, keyboard).

:class:`InputKeyButton` turns presses and releases of that key into the same :class:`~.button.Edge`
stream as the GPIO button, so everything downstream (gestures, controller) cannot tell them apart.

Hardware goes through a small backend (:class:`InputBackend` opening :class:`InputDevice` objects):
:class:`EvdevBackend` is the real one and the only code that imports ``evdev`` (lazily);
:class:`FakeInputBackend` / :class:`FakeInputDevice` stand in for it in tests. The fake has a real
file descriptor (a pipe), so the same ``loop.add_reader`` path runs in tests as on the device.

Kernel facts relied on (Documentation/input/input.rst, event-codes.rst):

* ``EV_KEY`` values are 1 (down), 0 (up) and 2 (autorepeat, sent while a key is held);
* after ``SYN_DROPPED`` the client's buffer overflowed: events up to the next ``SYN_REPORT`` are
  incomplete and the key state must be read again with ``EVIOCGKEY``;
* event timestamps use CLOCK_REALTIME unless ``EVIOCSCLOCKID`` selects CLOCK_MONOTONIC, which is the
  clock of :func:`time.monotonic` on Linux;
* reading a device that was unplugged fails with ENODEV.
"""

from __future__ import annotations

import asyncio
import collections
import difflib
import errno
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.errors import ButtonError
from appliance.ui.button import EdgeQueue

log = logging.getLogger(__name__)

#: How many of a device's keys an error message lists.
LISTED_KEYS = 12
#: An event timestamp further than this from ``time.monotonic()`` is not trusted (wrong clock).
MAX_CLOCK_SKEW_S = 5.0


# ---- backend interface -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyEvent:
    """One ``EV_KEY`` event, or a resync marker after the kernel dropped events."""

    code: int
    """Linux key code (KEY_F13 = 183); -1 for :data:`RESYNC`."""
    value: int
    """1 down, 0 up, 2 autorepeat."""
    t: float | None = None
    """When it happened on the ``time.monotonic()`` clock, or None if unknown."""


#: Marker returned by :meth:`InputDevice.read` after ``SYN_DROPPED``: the key state must be re-read.
RESYNC = KeyEvent(-1, -1)


class InputDevice(Protocol):
    """An open input device as the backend presents it."""

    fd: int
    """A non-blocking file descriptor that becomes readable when events (or an unplug) arrive."""
    name: str
    """The device's name, e.g. ``PCsensor FootSwitch``."""

    def key_codes(self) -> frozenset[int]:
        """The key codes the device can send (its ``EV_KEY`` capabilities)."""

    def read(self) -> list[KeyEvent]:
        """The pending key events ([] if none). Raises OSError (ENODEV) when the device is gone."""

    def held(self) -> frozenset[int]:
        """The keys down right now (``EVIOCGKEY``)."""

    def grab(self) -> None:
        """Take the device exclusively (``EVIOCGRAB``); OSError EBUSY if someone else holds it."""

    def ungrab(self) -> None:
        """Give the exclusive grab back."""

    def close(self) -> None:
        """Close the file descriptor."""


class InputBackend(Protocol):
    """Opens input devices and knows the key names."""

    def open(self, path: Path) -> InputDevice:
        """Open a device; raises FileNotFoundError, PermissionError or another OSError."""

    def key_codes_by_name(self) -> Mapping[str, int]:
        """Every known KEY_*/BTN_* name (aliases included) and its code."""


# ---- the trigger -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TriggerProbe:
    """What :func:`probe` found: the device's name and its keys."""

    device: Path
    name: str
    key: str
    code: int
    keys: tuple[str, ...]


def _open_checked(device: Path, key: str, backend: InputBackend) -> tuple[InputDevice, int, tuple[str, ...]]:
    """Resolve the key name, open the device and check it has the key. Raises ButtonError."""
    device = Path(device)
    names = backend.key_codes_by_name()
    key = key.strip().upper()
    code = names.get(key)
    if code is None:
        close = difflib.get_close_matches(key, list(names), n=4, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ButtonError(f"trigger.key {key} is not a Linux key name",
                          fix=hint + f"run `evtest {device}` and press the key to see its name "
                              "(e.g. KEY_F13, KEY_PAUSE, BTN_LEFT)")
    try:
        dev = backend.open(device)
    except FileNotFoundError:
        raise ButtonError(f"input device {device} does not exist (unplugged?)",
                          fix="plug it in; `ls -l /dev/input/by-id/` lists the connected devices: set "
                              "trigger.device to the one ending in -event-kbd (or null for no second "
                              "trigger)") from None
    except PermissionError:
        raise ButtonError(f"cannot open input device {device}: permission denied (uid {os.geteuid()})",
                          fix="the voicekey service needs `SupplementaryGroups=input` and "
                              "`DeviceAllow=char-input r` in its unit (sudo systemctl edit voicekey); "
                              "run by hand: add yourself to the input group or use sudo") from None
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL):
            raise ButtonError(f"{device} is not an input event device ({exc.strerror})",
                              fix="point trigger.device at an event device: /dev/input/by-id/...-event-kbd "
                                  "or /dev/input/eventN") from None
        raise ButtonError(f"cannot open input device {device}: {exc.strerror or exc}",
                          fix="check the device with `evtest`, or replug it") from exc
    try:
        have = dev.key_codes()
        listed = _key_listing(have, names)
        if code not in have:
            more = f" and {len(listed) - LISTED_KEYS} more" if len(listed) > LISTED_KEYS else ""
            shown = ", ".join(listed[:LISTED_KEYS]) + more if listed else "no keys at all"
            raise ButtonError(f"input device {device} ({dev.name}) has no key {key}; it has {shown}",
                              fix="set trigger.key to one of its keys; `evtest` shows which key a press "
                                  "sends")
    except BaseException:
        dev.close()
        raise
    return dev, code, listed


def _key_listing(codes: Iterable[int], names: Mapping[str, int]) -> tuple[str, ...]:
    """One name per code, in code order, preferring a real key name over an alias like KEY_MIN_INTERESTING."""
    by_code: dict[int, list[str]] = collections.defaultdict(list)
    for name, code in names.items():
        by_code[code].append(name)

    def rank(name: str) -> tuple[bool, str]:
        return ("MIN_INTERESTING" in name or name.endswith(("_MAX", "_CNT")), name)

    return tuple(min(by_code[c], key=rank) if by_code.get(c) else f"key {c}" for c in sorted(codes))


def probe(device: Path, key: str, backend: InputBackend | None = None) -> TriggerProbe:
    """Open the device without grabbing it, check it has ``key``, close it (``voicekey doctor``).

    Raises :class:`~appliance.errors.ButtonError` with a fix for everything that is wrong.
    """
    backend = backend or EvdevBackend()
    dev, code, listed = _open_checked(device, key, backend)
    try:
        return TriggerProbe(Path(device), dev.name, key.strip().upper(), code, listed)
    finally:
        dev.close()


class InputKeyButton:
    """One key of an input device as the push button: press/release edges into an :class:`EdgeQueue`.

    Opens (and by default grabs) the device at construction and reads it from the event loop of
    ``edges`` with ``loop.add_reader``, so it never blocks the loop. Autorepeat is ignored. If the
    device goes away (unplugged), reading stops, a release is pushed if the key was down and
    :attr:`failed` is set; the owner notices it and creates a new button later.

    Raises :class:`~appliance.errors.ButtonError` (message and fix) when the key name is unknown,
    the device is missing, not readable, not an input device, lacks the key, or is grabbed by
    another program.
    """

    def __init__(self, device: Path, key: str, edges: EdgeQueue, *, grab: bool = True,
                 backend: InputBackend | None = None) -> None:
        self.device = Path(device)
        self.key = key.strip().upper()
        self.edges = edges
        self.failed: ButtonError | None = None
        """Why reading stopped (device unplugged or unreadable), or None while it works."""
        self.pressed = False
        """Whether the key is down (as far as edges were pushed)."""
        self._dev: InputDevice | None = None
        self._grabbed = False
        self._reading = False
        dev, self.code, self.keys = _open_checked(self.device, self.key, backend or EvdevBackend())
        self.name = dev.name
        self._dev = dev
        try:
            if grab:
                try:
                    dev.grab()
                except OSError as exc:
                    if exc.errno == errno.EBUSY:
                        raise ButtonError(f"input device {self.device} ({dev.name}) is grabbed by another "
                                          "program", fix="stop the other program (another voicekey, "
                                          "a key remapper), or set trigger.grab: false") from None
                    raise ButtonError(f"cannot grab input device {self.device}: {exc.strerror or exc}",
                                      fix="set trigger.grab: false") from exc
                self._grabbed = True
            self._in_loop(self._start)
        except BaseException:
            self._release_device()
            raise
        log.info("trigger: %s on %s (%s)%s", self.key, self.device, self.name, ", grabbed" if grab else "")

    # -- loop plumbing ------------------------------------------------------------------------------
    def _in_loop(self, fn) -> None:
        """Run ``fn`` in the edges' loop: now if we are in it, else scheduled thread-safely."""
        loop = self.edges.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def _start(self) -> None:
        if self._dev is None or self._reading:
            return
        self.edges.loop.add_reader(self._dev.fd, self._on_readable)
        self._reading = True

    def _stop_reading(self) -> None:
        if self._reading and self._dev is not None:
            self.edges.loop.remove_reader(self._dev.fd)
        self._reading = False

    # -- events -------------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        dev = self._dev
        if dev is None:
            return
        try:
            events = dev.read()
            for ev in events:
                if ev is RESYNC or ev.code == RESYNC.code:
                    self._set(self.code in dev.held(), None)
                elif ev.code == self.code and ev.value in (0, 1):  # 2 = autorepeat
                    self._set(ev.value == 1, ev.t)
        except OSError as exc:
            self._fail(exc)

    def _set(self, pressed: bool, t: float | None) -> None:
        if pressed == self.pressed:
            return  # e.g. a resync that changed nothing
        self.pressed = pressed
        now = time.monotonic()
        if t is None or abs(t - now) > MAX_CLOCK_SKEW_S:
            t = now
        self.edges.push(pressed, t)

    def _fail(self, exc: OSError) -> None:
        if exc.errno == errno.ENODEV:
            self.failed = ButtonError(f"input device {self.device} ({self.name}) was unplugged",
                                      fix="plug it back in; VoiceKey picks it up again")
        else:
            self.failed = ButtonError(f"reading input device {self.device} failed: {exc.strerror or exc}",
                                      fix="replug the device")
        log.warning("trigger: %s", self.failed.message)
        self._grabbed = False  # a vanished device cannot be ungrabbed; its grab went with it
        self._release_device()
        if self.pressed:
            self.pressed = False
            self.edges.push(False)

    # -- lifetime -----------------------------------------------------------------------------------
    def _release_device(self) -> None:
        dev, self._dev = self._dev, None
        if dev is None:
            return
        if self._reading:
            try:
                self.edges.loop.remove_reader(dev.fd)
            except (RuntimeError, ValueError, OSError):  # loop already closed
                pass
            self._reading = False
        if self._grabbed:
            try:
                dev.ungrab()
            except OSError:
                pass
            self._grabbed = False
        try:
            dev.close()
        except OSError:
            pass

    def close(self) -> None:
        """Stop reading, ungrab and close the device (idempotent). A held key is released first."""
        if self.pressed:
            self.pressed = False
            try:
                self.edges.push(False)
            except RuntimeError:  # loop closed: nobody is listening any more
                pass
        if self._dev is not None:
            self._in_loop(self._release_device)

    def __enter__(self) -> InputKeyButton:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the real backend (python-evdev) ---------------------------------------------------------------
# EVIOCSCLOCKID = _IOW('E', 0xa0, int) from linux/input.h
_EVIOCSCLOCKID = (1 << 30) | (4 << 16) | (ord("E") << 8) | 0xA0


class EvdevBackend:
    """Input devices through python-evdev (imported on first use)."""

    def __init__(self) -> None:
        self._evdev = None
        self._names: dict[str, int] | None = None

    @property
    def evdev(self):
        """The evdev module; ButtonError when it is not installed."""
        if self._evdev is None:
            try:
                import evdev  # only this module imports evdev
            except ImportError as exc:
                raise ButtonError(f"python-evdev is not available ({exc})",
                                  fix="pip install 'evdev>=1.7' (Linux only; needs the kernel headers, "
                                      "apt-get install linux-libc-dev)") from None
            self._evdev = evdev
        return self._evdev

    def key_codes_by_name(self) -> Mapping[str, int]:
        if self._names is None:
            ecodes = self.evdev.ecodes.ecodes
            self._names = {n: c for n, c in ecodes.items() if n.startswith(("KEY_", "BTN_"))}
        return self._names

    def open(self, path: Path) -> EvdevDevice:
        return EvdevDevice(self.evdev, self.evdev.InputDevice(str(path)))


class EvdevDevice:
    """An :class:`InputDevice` on top of ``evdev.InputDevice``."""

    def __init__(self, evdev, device) -> None:
        self._evdev = evdev
        self._device = device
        self.fd: int = device.fd
        self.name: str = device.name
        self.monotonic = _set_monotonic_clock(self.fd)
        """Whether event timestamps are on the monotonic clock (else they are not used)."""
        self._dropping = False

    def key_codes(self) -> frozenset[int]:
        return frozenset(self._device.capabilities().get(self._evdev.ecodes.EV_KEY, ()))

    def read(self) -> list[KeyEvent]:
        ec = self._evdev.ecodes
        out: list[KeyEvent] = []
        try:
            raw = list(self._device.read())
        except BlockingIOError:
            return out
        for ev in raw:
            if ev.type == ec.EV_SYN:
                if ev.code == ec.SYN_DROPPED:
                    self._dropping = True
                elif ev.code == ec.SYN_REPORT and self._dropping:
                    self._dropping = False
                    out.append(RESYNC)
            elif ev.type == ec.EV_KEY and not self._dropping:
                out.append(KeyEvent(ev.code, ev.value, ev.sec + ev.usec / 1e6 if self.monotonic else None))
        return out

    def held(self) -> frozenset[int]:
        return frozenset(self._device.active_keys())

    def grab(self) -> None:
        self._device.grab()

    def ungrab(self) -> None:
        self._device.ungrab()

    def close(self) -> None:
        self._device.close()


def _set_monotonic_clock(fd: int) -> bool:
    import fcntl
    import struct

    try:
        fcntl.ioctl(fd, _EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))
    except (OSError, AttributeError):  # old kernel, or time.CLOCK_MONOTONIC missing off Linux
        return False
    return True


# ---- fakes -----------------------------------------------------------------------------------------
#: A few real Linux key codes (linux/input-event-codes.h), enough for tests and the simulator.
FAKE_KEY_CODES: Mapping[str, int] = {
    "KEY_ESC": 1, "KEY_1": 2, "KEY_2": 3, "KEY_3": 4, "KEY_A": 30, "KEY_B": 48, "KEY_C": 46,
    "KEY_SPACE": 57, "KEY_F1": 59, "KEY_F5": 63, "KEY_F12": 88, "KEY_PAGEUP": 104, "KEY_PAGEDOWN": 109,
    "KEY_MUTE": 113, "KEY_MIN_INTERESTING": 113, "KEY_PAUSE": 119, "KEY_F13": 183, "KEY_F14": 184,
    "KEY_F15": 185, "BTN_LEFT": 272, "BTN_MOUSE": 272, "BTN_RIGHT": 273, "BTN_MIDDLE": 274,
}


class FakeInputDevice:
    """An input device driven by the test: ``press()``, ``release()``, ``repeat()``, ``unplug()``.

    ``fd`` is the read end of a pipe; every queued event writes a byte to it, so ``add_reader``
    fires exactly as for a real device.
    """

    def __init__(self, keys: Iterable[str] = ("KEY_F13",), name: str = "Fake foot pedal", *,
                 codes: Mapping[str, int] = FAKE_KEY_CODES, grabbed_elsewhere: bool = False) -> None:
        self.name = name
        self.codes = dict(codes)
        keys = list(keys)
        self.keys = frozenset(self.codes[k] for k in keys)
        self.default_key = keys[0] if keys else None
        """What ``press()`` etc. use when no key is named: the first of ``keys``."""
        self.grabbed = False
        """Whether we hold the grab right now."""
        self.grabbed_elsewhere = grabbed_elsewhere
        """Another program holds the grab: ``grab()`` fails with EBUSY."""
        self.grab_count = 0
        self.ungrab_count = 0
        self.opened = 0
        self.closed = False
        self.unplugged = False
        self._down: set[int] = set()
        self._pending: collections.deque[KeyEvent] = collections.deque()
        self._r = self._w = -1

    # -- test side ----------------------------------------------------------------------------------
    def _code(self, key: str | None) -> int:
        return self.codes[key or self.default_key]

    def _queue(self, *events: KeyEvent) -> None:
        self._pending.extend(events)
        if self._w >= 0:
            os.write(self._w, b"e")

    def press(self, key: str | None = None, t: float | None = None) -> None:
        """Key down (``key`` defaults to :attr:`default_key`)."""
        self._down.add(self._code(key))
        self._queue(KeyEvent(self._code(key), 1, t))

    def release(self, key: str | None = None, t: float | None = None) -> None:
        """Key up."""
        self._down.discard(self._code(key))
        self._queue(KeyEvent(self._code(key), 0, t))

    def repeat(self, key: str | None = None, n: int = 3) -> None:
        """``n`` autorepeat events, as the kernel sends while a key is held."""
        self._queue(*[KeyEvent(self._code(key), 2)] * n)

    def overflow(self, *, held: Iterable[str] = ()) -> None:
        """The kernel dropped events (SYN_DROPPED); afterwards exactly ``held`` are down."""
        self._pending.clear()
        self._down = {self.codes[k] for k in held}
        self._queue(RESYNC)

    def unplug(self) -> None:
        """The device goes away: the fd becomes readable and reading fails with ENODEV."""
        self.unplugged = True
        self._queue()

    def _open(self) -> FakeInputDevice:
        if self.unplugged:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        if self._r >= 0:
            self._close_pipe()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.opened += 1
        self.closed = False
        return self

    # -- InputDevice side ---------------------------------------------------------------------------
    @property
    def fd(self) -> int:
        return self._r

    def key_codes(self) -> frozenset[int]:
        return self.keys

    def read(self) -> list[KeyEvent]:
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        try:
            os.read(self._r, 4096)
        except BlockingIOError:
            pass
        events = list(self._pending)
        self._pending.clear()
        return events

    def held(self) -> frozenset[int]:
        return frozenset(self._down)

    def grab(self) -> None:
        if self.grabbed_elsewhere or self.grabbed:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True
        self.grab_count += 1

    def ungrab(self) -> None:
        if not self.grabbed:
            raise OSError(errno.EINVAL, "Invalid argument")
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        self.grabbed = False
        self.ungrab_count += 1

    def close(self) -> None:
        self.closed = True
        self.grabbed = False  # like the kernel: closing the fd ends its grab
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1


class FakeInputBackend:
    """Serves :class:`FakeInputDevice` objects by path; other paths do not exist.

    ``denied`` paths fail with PermissionError, ``not_input`` paths with ENOTTY (a plain file).
    """

    def __init__(self, devices: Mapping[str | Path, FakeInputDevice] | None = None, *,
                 denied: Iterable[str | Path] = (), not_input: Iterable[str | Path] = (),
                 codes: Mapping[str, int] = FAKE_KEY_CODES) -> None:
        self.devices = {Path(p): d for p, d in (devices or {}).items()}
        self.denied = {Path(p) for p in denied}
        self.not_input = {Path(p) for p in not_input}
        self.codes = dict(codes)

    def key_codes_by_name(self) -> Mapping[str, int]:
        return self.codes

    def open(self, path: Path) -> FakeInputDevice:
        path = Path(path)
        if path in self.denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        if path in self.not_input:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device", str(path))
        if path not in self.devices:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        return self.devices[path]._open()
