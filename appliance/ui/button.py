"""The push button: gpiozero adapter and a fake, both delivering timestamped edges to the loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    pressed: bool
    t: float


class EdgeQueue:
    """Thread-safe hand-over of edges from gpiozero's callback thread to the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue[Edge] = asyncio.Queue()

    def push(self, pressed: bool, t: float | None = None) -> None:
        edge = Edge(pressed, time.monotonic() if t is None else t)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, edge)


class GpioButton:
    """A momentary button between a GPIO pin and ground (pull-up) or 3V3 (pull-down).

    Keep a reference for as long as the button is used: gpiozero closes a device (and stops its
    callbacks) when the object is garbage-collected. The composition root's supervisor keeps it."""

    failed = None
    """Always None: a GPIO line does not go away at run time (the input-device trigger can)."""

    def __init__(self, pin: int, edges: EdgeQueue, pull_up: bool = True, bounce_s: float = 0.02,
                 pin_factory=None) -> None:
        from gpiozero import Button  # only the adapters import gpiozero
        from gpiozero.exc import GPIOZeroError

        from appliance.errors import ButtonError

        try:
            self._button = Button(pin, pull_up=pull_up, bounce_time=bounce_s or None,
                                  pin_factory=pin_factory)
        except (GPIOZeroError, OSError) as exc:
            raise ButtonError(f"button on GPIO {pin} unusable: {exc}",
                              fix="check button.pin in the config and that no other program uses "
                                  "that GPIO (`voicekey doctor` checks it)") from exc
        self._button.when_pressed = lambda: edges.push(True)
        self._button.when_released = lambda: edges.push(False)

    def close(self) -> None:
        self._button.close()


class FakeButton:
    """Drives edges directly: ``press()``, ``release()``, ``click()``."""

    def __init__(self, edges: EdgeQueue) -> None:
        self.edges = edges

    def press(self, t: float | None = None) -> None:
        self.edges.push(True, t)

    def release(self, t: float | None = None) -> None:
        self.edges.push(False, t)

    def close(self) -> None:
        pass
