"""Watch, from the guest's host side, the keyboard our USB gadget became. Runs IN the guest.

Standard library only. Sub-commands (``python tests/vm/guest_events.py --help``):

``find``            print the /dev/input/eventN of the gadget's keyboard (waits for it to appear).
``record OUT``      append every EV_KEY event as a JSON line ``{"code", "value", "time"}`` to OUT
                    until SIGTERM/SIGINT. Prints ``READY <device>`` once listening. On SIGUSR1 it
                    taps the end-of-stream sentinel key (F12) through ``--hidg`` and exits once
                    the sentinel's release arrived: every event before it has been recorded.
                    If the device goes away (unplug) it writes a ``{"gone": ...}`` line, synthetic
                    releases (``"synthetic": true``) for keys still held — what a host's input stack
                    does when a keyboard vanishes — and waits for the keyboard to come back.
``held``            print ``{"device": ..., "held": [codes]}``: keys the kernel believes are held
                    (EVIOCGKEY).
``leds``            print ``{"device": ..., "leds": [codes]}``: LEDs lit on the keyboard (EVIOCGLED;
                    1 = LED_CAPSL).
``hold-kill PID``   watch the held keys (EVIOCGKEY, every millisecond) and SIGKILL PID the moment any
                    key is held; prints ``{"held": [codes]}`` as seen at that moment.
``tap USAGE``       write a press and a release report of one HID usage to the gadget's hidg
                    device (for Caps Lock or an end-of-stream sentinel key).

The gadget's input device is found through sysfs: the input device whose sysfs path runs through
the dummy_hcd host controller (the only thing plugged into it is our gadget), optionally also
matching ``--vid``/``--pid`` (``/sys/class/input/eventN/device/id/{vendor,product}``).

The host side of this module (:func:`read_events`) parses the JSON lines back.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import queue
import select
import signal
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: struct input_event on 64-bit Linux: struct timeval (two longs), __u16 type, __u16 code, __s32 value.
INPUT_EVENT = struct.Struct("llHHi")
EV_SYN = 0x00
EV_KEY = 0x01
SYN_DROPPED = 3
#: The end-of-stream sentinel: HID usage F12 (0x45) = evdev KEY_F12 (88); it types no text.
SENTINEL_USAGE = 0x45
SENTINEL_CODE = 88
KEY_MAX = 0x2FF
_KEY_BYTES = KEY_MAX // 8 + 1
# EVIOCGKEY(len) = _IOC(_IOC_READ, 'E', 0x18, len)   (include/uapi/linux/input.h)
_IOC_READ = 2
EVIOCGKEY = (_IOC_READ << 30) | (_KEY_BYTES << 16) | (ord("E") << 8) | 0x18
LED_MAX = 0x0F
_LED_BYTES = LED_MAX // 8 + 1
# EVIOCGLED(len) = _IOC(_IOC_READ, 'E', 0x19, len)
EVIOCGLED = (_IOC_READ << 30) | (_LED_BYTES << 16) | (ord("E") << 8) | 0x19
LED_CAPSL = 0x01


@dataclass(frozen=True)
class KeyEvent:
    """One EV_KEY event: evdev ``code``, ``value`` (1 press, 0 release, 2 autorepeat), time in s."""

    code: int
    value: int
    time: float
    synthetic: bool = False


class EventsDropped(AssertionError):
    """The kernel dropped events because the recorder read too slowly (a harness problem)."""


def read_events(path: Path | str, allow_dropped: bool = False) -> list[KeyEvent]:
    """Parse a ``record`` output file (host or guest side); non-key lines are skipped.

    Raises :class:`EventsDropped` if the recorder saw SYN_DROPPED, unless ``allow_dropped``.
    """
    events = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if "dropped" in item and not allow_dropped:
            raise EventsDropped(f"the kernel dropped key events before the recorder read them "
                                f"({path}): the guest was too slow; the decoded text would be "
                                "meaningless")
        if "code" in item:
            events.append(KeyEvent(item["code"], item["value"], item["time"],
                                    bool(item.get("synthetic"))))
    return events


def find_keyboard(sysfs: Path = Path("/sys"), vid: int | None = None,
                  pid: int | None = None) -> Path | None:
    """The /dev/input/eventN of the keyboard on the dummy_hcd bus, or None if there is none yet."""
    for node in sorted((sysfs / "class" / "input").glob("event*")):
        real = str(node.resolve())
        if "dummy_hcd" not in real:
            continue
        dev = node / "device"
        try:
            if not (dev / "capabilities" / "key").read_text().strip().strip("0 "):
                continue
            if vid is not None and int((dev / "id" / "vendor").read_text(), 16) != vid:
                continue
            if pid is not None and int((dev / "id" / "product").read_text(), 16) != pid:
                continue
        except (FileNotFoundError, ValueError):
            continue
        return Path("/dev/input") / node.name
    return None


def wait_keyboard(timeout: float | None, vid: int | None = None, pid: int | None = None,
                  stop: list[bool] | None = None, poll: float = 0.02) -> Path | None:
    """Poll :func:`find_keyboard` until the device node exists (``timeout`` None: forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found = find_keyboard(vid=vid, pid=pid)
        if found is not None and found.exists():
            return found
        if stop and stop[0]:
            return None
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(poll)


def _bits(fd: int, request: int, size: int) -> list[int]:
    buf = bytearray(size)
    fcntl.ioctl(fd, request, buf, True)
    return [bit for bit in range(size * 8) if buf[bit // 8] >> (bit % 8) & 1]


def held_keys(device: Path) -> list[int]:
    """Key codes the kernel reports as currently down on ``device`` (EVIOCGKEY)."""
    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return _bits(fd, EVIOCGKEY, _KEY_BYTES)
    finally:
        os.close(fd)


def lit_leds(device: Path) -> list[int]:
    """LED codes (LED_CAPSL = 1, ...) currently on for ``device`` (EVIOCGLED)."""
    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return _bits(fd, EVIOCGLED, _LED_BYTES)
    finally:
        os.close(fd)


def hold_kill(device: Path, pid: int, timeout: float) -> list[int]:
    """SIGKILL ``pid`` as soon as any key is held on ``device``; return the keys held then."""
    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            held = _bits(fd, EVIOCGKEY, _KEY_BYTES)
            if held:
                os.kill(pid, signal.SIGKILL)
                return held
            time.sleep(0.001)
    finally:
        os.close(fd)
    raise TimeoutError(f"no key was held within {timeout} s")


def _realtime_priority() -> None:
    """Run the recorder ahead of the typist: evdev drops events when a client reads too slowly."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, OSError):
        pass


def record(out_path: Path, vid: int | None, pid: int | None, wait: float,
           hidg: Path = Path("/dev/hidg0")) -> int:
    """The ``record`` sub-command (see module docstring).

    Reading is kept hot: a writer thread writes the lines to ``out_path`` (possibly on 9p, slow)
    while this thread, at real-time priority, only reads the device. If the
    kernel still had to drop events (EV_SYN/SYN_DROPPED: this reader was too slow) a
    ``{"dropped": ...}`` line says so, so a test can tell a harness overflow from a typing bug.
    """
    stop = [False]
    finish = [False]

    def on_signal(signum: int, frame: object) -> None:
        stop[0] = True

    def on_finish(signum: int, frame: object) -> None:
        finish[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, on_finish)
    _realtime_priority()
    tapped = False
    device = wait_keyboard(wait, vid, pid)
    if device is None:
        print(f"no keyboard on the dummy_hcd bus after {wait} s", file=sys.stderr)
        return 1
    pressed: set[int] = set()
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def writer() -> None:
        # Writing (to 9p, which is slow) happens here so the reading loop never waits on it.
        with open(out_path, "a", encoding="utf-8") as out:
            while True:
                batch = [lines.get()]
                while True:
                    try:
                        batch.append(lines.get_nowait())
                    except queue.Empty:
                        break
                done = batch[-1] is None
                out.write("".join(line for line in batch if line is not None))
                out.flush()
                if done:
                    return

    writer_thread = threading.Thread(target=writer, name="writer")
    writer_thread.start()

    def emit(item: dict[str, object]) -> None:
        lines.put(json.dumps(item) + "\n")

    try:
        ready_printed = False
        while device is not None:
            fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
            emit({"device": str(device), "time": time.time()})
            if not ready_printed:
                print(f"READY {device}", flush=True)
                ready_printed = True
            gone = False
            pending = b""
            while True:
                if finish[0] and not tapped:
                    tap(hidg, SENTINEL_USAGE)
                    tapped = True
                if not stop[0]:
                    try:
                        readable = select.select([fd], [], [], 0.05)[0]
                    except InterruptedError:
                        continue
                    if not readable:
                        continue
                try:
                    data = os.read(fd, INPUT_EVENT.size * 256)
                except BlockingIOError:
                    if stop[0]:
                        break  # drained after the stop request
                    continue
                except OSError as exc:
                    if exc.errno in (errno.ENODEV, errno.EIO, errno.ENOENT):
                        gone = True
                        break
                    raise
                if not data:
                    gone = True
                    break
                pending += data
                while len(pending) >= INPUT_EVENT.size:
                    sec, usec, etype, code, value = INPUT_EVENT.unpack_from(pending)
                    pending = pending[INPUT_EVENT.size:]
                    if etype == EV_SYN and code == SYN_DROPPED:
                        emit({"dropped": str(device), "time": sec + usec / 1e6})
                    if etype != EV_KEY:
                        continue
                    if value == 1:
                        pressed.add(code)
                    elif value == 0:
                        pressed.discard(code)
                    emit({"code": code, "value": value, "time": sec + usec / 1e6})
                    if tapped and code == SENTINEL_CODE and value == 0:
                        stop[0] = True
            os.close(fd)
            if not gone:
                break
            now = time.time()
            emit({"gone": str(device), "time": now})
            for code in sorted(pressed):
                emit({"code": code, "value": 0, "time": now, "synthetic": True})
            pressed.clear()
            # Poll fast: the typist resumes soon after the host is back (its settle time), and
            # events that arrive before we reopen the device would not be seen.
            device = wait_keyboard(None, vid, pid, stop, poll=0.002)
        emit({"stopped": True, "time": time.time()})
    finally:
        lines.put(None)
        writer_thread.join()
    return 0


def tap(device: Path, usage: int, modifiers: int = 0) -> None:
    """Write a press report of one usage and an all-zero report to a hidg device."""
    fd = os.open(device, os.O_WRONLY)
    try:
        os.write(fd, bytes([modifiers, 0, usage, 0, 0, 0, 0, 0]))
        os.write(fd, bytes(8))
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vid", type=lambda s: int(s, 16), default=None,
                        help="USB vendor id in hex (default: any device on dummy_hcd)")
    parser.add_argument("--pid", type=lambda s: int(s, 16), default=None,
                        help="USB product id in hex")
    parser.add_argument("--wait", type=float, default=60,
                        help="seconds to wait for the keyboard to appear (default: %(default)s)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("find", help="print the keyboard's /dev/input/eventN")
    rec = sub.add_parser("record", help="record EV_KEY events as JSON lines until SIGTERM")
    rec.add_argument("out", type=Path)
    rec.add_argument("--hidg", type=Path, default=Path("/dev/hidg0"),
                     help="gadget device for the sentinel key (default: %(default)s)")
    sub.add_parser("held", help="print the keys the kernel believes are held")
    sub.add_parser("leds", help="print the LEDs lit on the keyboard")
    hk = sub.add_parser("hold-kill", help="SIGKILL PID as soon as a key is held")
    hk.add_argument("target_pid", type=int)
    hk.add_argument("--timeout", type=float, default=60)
    tap_p = sub.add_parser("tap", help="press and release one HID usage through a hidg device")
    tap_p.add_argument("usage", type=lambda s: int(s, 0))
    tap_p.add_argument("--modifiers", type=lambda s: int(s, 0), default=0)
    tap_p.add_argument("--device", type=Path, default=Path("/dev/hidg0"))
    args = parser.parse_args(argv)

    if args.cmd == "record":
        return record(args.out, args.vid, args.pid, args.wait, args.hidg)
    if args.cmd == "tap":
        tap(args.device, args.usage, args.modifiers)
        return 0
    device = wait_keyboard(args.wait, args.vid, args.pid)
    if device is None:
        print(f"no keyboard on the dummy_hcd bus after {args.wait} s", file=sys.stderr)
        return 1
    if args.cmd == "find":
        print(device)
    elif args.cmd == "leds":
        print(json.dumps({"device": str(device), "leds": lit_leds(device)}))
    elif args.cmd == "hold-kill":
        print(json.dumps({"device": str(device),
                          "held": hold_kill(device, args.target_pid, args.timeout)}))
    else:
        print(json.dumps({"device": str(device), "held": held_keys(device)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
