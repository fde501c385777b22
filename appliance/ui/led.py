"""LED patterns: what the one LED shows in each state, and the adapters that show them."""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Protocol

log = logging.getLogger(__name__)

# A pattern is a loop of (on, seconds) steps; an empty tuple = off, ((True, 0),) = steady on.
Steps = tuple[tuple[bool, float], ...]


def _code(n: int) -> Steps:
    """Error blink code: n short blinks, then a long pause."""
    return tuple(s for _ in range(n) for s in ((True, 0.2), (False, 0.25))) + ((False, 1.2),)


class LedPattern(enum.Enum):
    """(README's LED table is generated from these descriptions.)"""

    STARTING = (((True, 0.05), (False, 0.05)), "fast flicker: starting up, loading the model")
    READY = (((True, 0.0),), "steady on: ready, hold the button and speak")
    LISTENING = (((True, 0.5), (False, 0.1)), "on with short dips: listening")
    TRANSCRIBING = (((True, 0.1), (False, 0.1)), "fast blink: transcribing")
    TYPING = (((True, 0.03), (False, 0.12)), "flicker: typing on the host")
    HOST_NOT_CONNECTED = (((True, 1.0), (False, 1.0)), "slow blink: no host (USB cable / host asleep)")
    PAIRING = (((True, 0.1), (False, 0.1), (True, 0.1), (False, 0.7)), "double blink: Bluetooth pairing")
    HOSTS_FORGOTTEN = ((((True, 0.05), (False, 0.05)) * 3 + ((False, 0.5),)),
                       "triple flash (3 s, then the double blink): every paired computer forgotten")
    ERROR_CONFIG = (_code(2), "2 blinks + pause: config error, running on defaults for the bad keys")
    ERROR_MICROPHONE = (_code(3), "3 blinks + pause: no microphone / audio device failed (retrying)")
    ERROR_MODEL = (_code(4), "4 blinks + pause: speech model missing or failed to load")
    ERROR_HID = (_code(5), "5 blinks + pause: USB gadget / HID device not available")
    ERROR_BUTTON = (_code(6), "6 blinks + pause: button (GPIO) or trigger input device not available")
    OFF = ((), "off: not running")

    @property
    def steps(self) -> Steps:
        return self.value[0]

    @property
    def description(self) -> str:
        return self.value[1]


class Led(Protocol):
    """Shows one pattern at a time; ``show`` replaces the current one."""

    def show(self, pattern: LedPattern) -> None: ...

    def close(self) -> None: ...


class FakeLed:
    """Records the patterns shown (``.history``, ``.pattern``)."""

    def __init__(self) -> None:
        self.history: list[LedPattern] = []

    @property
    def pattern(self) -> LedPattern | None:
        return self.history[-1] if self.history else None

    def show(self, pattern: LedPattern) -> None:
        if self.pattern is not pattern:
            self.history.append(pattern)

    def close(self) -> None:
        self.show(LedPattern.OFF)


class GpioLed:
    """An LED on a GPIO pin via gpiozero; patterns are played by an asyncio task on the main loop."""

    def __init__(self, pin: int, active_high: bool = True, pin_factory=None) -> None:
        from gpiozero import LED  # only the adapters import gpiozero

        self._led = LED(pin, active_high=active_high, pin_factory=pin_factory)
        self._task: asyncio.Task | None = None
        self.pattern: LedPattern | None = None

    def show(self, pattern: LedPattern) -> None:
        if pattern is self.pattern:
            return
        self.pattern = pattern
        if self._task is not None:
            self._task.cancel()
            self._task = None
        steps = pattern.steps
        if not steps:
            self._led.off()
        elif len(steps) == 1:
            self._led.on() if steps[0][0] else self._led.off()
        else:
            self._task = asyncio.get_running_loop().create_task(self._play(steps))

    async def _play(self, steps: Steps) -> None:
        while True:
            for on, seconds in steps:
                self._led.on() if on else self._led.off()
                await asyncio.sleep(seconds)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._led.off()
        self._led.close()
