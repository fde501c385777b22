"""A virtual input device with one key, made through /dev/uinput. Runs IN the guest (needs evdev).

This host has no /dev/uinput; the guest kernel has one, so the guest is where
:class:`appliance.ui.input_key.InputKeyButton` meets the real evdev backend and a real kernel
input device (EVIOCGRAB, EVIOCSCLOCKID, ENODEV on removal).

* :func:`virtual_key` - context manager: a uinput device with ``key``; ``.path``, ``.press()``,
  ``.release()``, ``.repeat()``, ``.unplug()``.
* :func:`exercise_button` - press, autorepeat, release and unplug one through a real
  ``InputKeyButton`` on a real asyncio loop; returns what happened as a dict.
* ``python -m tests.vm.uinput_key [KEY]`` prints that dict as JSON (exit 0 if it all matched).
* ``python -m tests.vm.uinput_key serve [--key KEY] --control FIFO`` keeps a virtual key alive for
  a daemon to use as its ``trigger.device``: prints ``READY {"path": ..., "key": ...}`` once the
  device exists, then acts on the lines written to the FIFO (created in the guest's tmpfs):
  ``press``, ``release``, ``quit``, each answered by a ``DONE <n> <command>`` line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class VirtualKey:
    """A live uinput device with one key."""

    def __init__(self, key: str, name: str) -> None:
        import evdev

        self._ecodes = evdev.ecodes
        self.key = key
        self.code = evdev.ecodes.ecodes[key]
        self._ui = evdev.UInput({evdev.ecodes.EV_KEY: [self.code]}, name=name)
        self.path = Path(self._ui.device.path)
        """The /dev/input/eventN the kernel made for it."""

    def _send(self, value: int) -> None:
        self._ui.write(self._ecodes.EV_KEY, self.code, value)
        self._ui.syn()

    def press(self) -> None:
        self._send(1)

    def release(self) -> None:
        self._send(0)

    def repeat(self, n: int = 3) -> None:
        for _ in range(n):
            self._send(2)

    def unplug(self) -> None:
        """Destroy the device, as if its cable was pulled (readers get ENODEV)."""
        if self._ui is not None:
            self._ui.close()
            self._ui = None


@contextlib.contextmanager
def virtual_key(key: str = "KEY_F13", name: str = "VoiceKey test pedal") -> Iterator[VirtualKey]:
    """A uinput device with ``key`` for the duration of the block."""
    vk = VirtualKey(key, name)
    try:
        # the kernel announces the device before devtmpfs/udev has the node ready for everyone
        deadline = time.monotonic() + 5
        while not vk.path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield vk
    finally:
        vk.unplug()


async def _edges_until(edges, n: int, timeout: float = 5.0) -> list:
    return [await asyncio.wait_for(edges.queue.get(), timeout) for _ in range(n)]


async def _exercise(key: str) -> dict:
    from appliance.ui.button import EdgeQueue
    from appliance.ui.input_key import InputKeyButton, probe

    edges = EdgeQueue()
    with virtual_key(key) as vk:
        found = probe(vk.path, key)
        button = InputKeyButton(vk.path, key, edges, grab=True)
        start = time.monotonic()
        vk.press()
        vk.repeat(5)
        vk.release()
        vk.press()
        got = await _edges_until(edges, 3)
        vk.unplug()  # while the key is down: the button must push the release itself
        got += await _edges_until(edges, 1)
        for _ in range(100):
            if button.failed is not None:
                break
            await asyncio.sleep(0.01)
        end = time.monotonic()
        button.close()
    pressed = [e.pressed for e in got]
    times_ok = all(start - 0.5 <= e.t <= end + 0.5 for e in got)
    return {"device": str(vk.path), "name": found.name, "keys": list(found.keys), "edges": pressed,
            "times_monotonic": times_ok, "failed": str(button.failed) if button.failed else None,
            "ok": pressed == [True, False, True, False] and times_ok and button.failed is not None}


def exercise_button(key: str = "KEY_F13") -> dict:
    """Drive a real InputKeyButton through a uinput device; see the module docstring."""
    return asyncio.run(_exercise(key))


def serve(key: str, control: Path, name: str = "VoiceKey test pedal") -> int:
    """The ``serve`` sub-command (see the module docstring). Returns after ``quit``."""
    with virtual_key(key, name) as vk:
        control.unlink(missing_ok=True)
        os.mkfifo(control)
        try:
            print("READY " + json.dumps({"path": str(vk.path), "key": key}), flush=True)
            # O_RDWR: the FIFO never reports end-of-file when a writer closes it.
            with open(os.open(control, os.O_RDWR), encoding="utf-8") as fifo:
                for n, line in enumerate(fifo, 1):
                    word = line.strip()
                    if word == "press":
                        vk.press()
                    elif word == "release":
                        vk.release()
                    elif word == "quit":
                        print(f"DONE {n} quit", flush=True)
                        return 0
                    else:
                        print(f"ERROR {n} unknown command {word!r}", flush=True)
                        continue
                    print(f"DONE {n} {word}", flush=True)
        finally:
            control.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="python -m tests.vm.uinput_key serve",
                                         description="keep a virtual key for a daemon's trigger.device")
        parser.add_argument("--key", default="KEY_F13", help="the key (default: %(default)s)")
        parser.add_argument("--control", type=Path, required=True, help="FIFO to create for commands")
        opts = parser.parse_args(args[1:])
        return serve(opts.key, opts.control)
    result = exercise_button(args[0] if args else "KEY_F13")
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
