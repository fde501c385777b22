"""The typist: sends strokes through a :class:`HidDevice` with pacing, host-loss recovery and Caps
Lock compensation.

Guarantees:
- every call starts and ends with an all-zero report (also on error and on cancellation);
- when the host goes away mid-text (cable out, host asleep, USB reset) typing pauses and keeps the
  unsent text; when the host is back it resumes exactly at the first key press the host has not
  taken, so nothing is lost or typed twice; after ``give_up_s`` without a host it stops and returns
  what is still unsent;
- when the host's Caps Lock LED is on, Caps Lock is toggled off for the burst and on again after,
  so text comes out as written on any layout and OS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appliance.config import TransportConfig
from appliance.errors import HostNotConnected
from appliance.hid.report import LED_CAPS_LOCK, RELEASE_ALL, keyboard_report, parse_report
from appliance.hid.stroke import Stroke
from appliance.transport.base import DeliveryFailed, HidDevice

log = logging.getLogger(__name__)

#: How far ahead of the pacing schedule a report may go (see :meth:`Typist._send`).
PACING_SLACK_S = 0.002


@dataclass(frozen=True)
class TypingOptions:
    """How reports are paced and how long to wait for a missing host.

    ``rate``, ``give_up_s`` and ``settle_s`` are the config settings ``transport.rate``,
    ``transport.give_up_s`` and ``transport.settle_s``; their defaults come from the config schema
    (:class:`appliance.config.TransportConfig`), where they are defined and checked once.
    """

    rate: float = TransportConfig.rate
    """Reports per second at most; 0 = as fast as the host polls (USB full speed: ~1 per ms)."""
    give_up_s: float = TransportConfig.give_up_s
    """How long to keep unsent text while the host is away before giving up."""
    host_poll_s: float = 0.1
    """How often to look for the host while it is away."""
    settle_s: float = TransportConfig.settle_s
    """Pause after the host (re)appears, so its input stack is ready before the first key: a host
    that has just enumerated the keyboard drops keys until its driver and consumers are attached."""
    caps_lock_compensation: bool = True
    """Toggle the host's Caps Lock off while typing (and back on after) when its LED is lit."""
    led_wait_s: float = 0.3
    """How long to wait for the host's LED report after toggling Caps Lock."""


@dataclass
class TypingResult:
    """What happened to a typing request."""

    typed: str = ""
    """Text the host has taken."""
    pending: list[Stroke] = field(default_factory=list)
    """Strokes not delivered (host absent past the give-up time, or cancelled)."""
    reconnects: int = 0
    reports: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.pending


class Typist:
    """Drives one :class:`HidDevice`. Not re-entrant: one ``type()`` at a time."""

    def __init__(self, device: HidDevice, options: TypingOptions = TypingOptions(),
                 capslock: Stroke | None = None, clock: Callable[[], float] = time.monotonic,
                 on_host_change: Callable[[bool], None] | None = None) -> None:
        self.device = device
        self.options = options
        self.capslock = capslock
        self.clock = clock
        self.on_host_change = on_host_change
        self._next_write = 0.0
        self.current: TypingResult | None = None
        """The result of the ``type()`` call in progress (or the last one): what the host has taken
        so far, readable when that call is cancelled."""

    async def _send(self, report: bytes) -> None:
        if self.options.rate > 0:
            # A schedule of one slot per 1/rate s. Waits shorter than PACING_SLACK_S are not slept:
            # the loop's timers cannot sleep that little (a 0.2 ms sleep costs a whole
            # millisecond), which would halve the rate; the schedule still holds the average.
            now = self.clock()
            if self._next_write - now > PACING_SLACK_S:
                await asyncio.sleep(self._next_write - now)
            self._next_write = max(now, self._next_write) + 1.0 / self.options.rate
        await self.device.write_report(report)

    async def _wait_for_host(self, deadline: float) -> bool:
        if self.on_host_change:
            self.on_host_change(False)
        while not self.device.host_connected():
            if self.clock() >= deadline:
                return False
            await asyncio.sleep(self.options.host_poll_s)
        await asyncio.sleep(self.options.settle_s)
        if self.on_host_change:
            self.on_host_change(True)
        return True

    async def _release_all(self) -> None:
        try:
            await self._send(RELEASE_ALL)
        except HostNotConnected:
            log.debug("release-all not delivered: host not connected")

    async def _toggle_capslock(self) -> bool:
        """Press Caps Lock once; return the LED state's caps bit afterwards."""
        assert self.capslock is not None
        for report in self.capslock.reports:
            await self._send(report)
        leds = await self.device.wait_leds_changed(self.options.led_wait_s)
        return bool(leds & LED_CAPS_LOCK)

    async def type(self, strokes: Sequence[Stroke]) -> TypingResult:
        """Type ``strokes``; returns what was typed and what is still pending."""
        result = self.current = TypingResult()
        start = self.clock()
        si, ri = 0, 0          # next stroke / report to send
        resume = False         # a modifier-only report must precede the next key report
        caps_off_by_us = False
        caps_given_up = False
        try:
            await self._release_all()
            while si < len(strokes):
                stroke = strokes[si]
                if ri == 0 and self.options.caps_lock_compensation and self.capslock is not None \
                        and not caps_off_by_us and not caps_given_up \
                        and self.device.leds & LED_CAPS_LOCK:
                    if await self._toggle_capslock():
                        log.warning("host Caps Lock LED did not go off; typing without compensation")
                        caps_given_up = True
                    else:
                        caps_off_by_us = True
                report = stroke.reports[ri]
                try:
                    if resume:
                        resume = False
                        mods, keys = parse_report(report)
                        if mods and keys:
                            await self._send(keyboard_report(mods))
                    await self._send(report)
                    result.reports += 1
                except DeliveryFailed as exc:
                    if exc.delivered:
                        ri += 1
                    log.info("host went away at stroke %d/%d: %s", si, len(strokes), exc.message)
                    if not await self._wait_for_host(start + self._elapsed_budget(start)):
                        break
                    result.reconnects += 1
                    caps_off_by_us = False  # a fresh host session: look at its LEDs again
                    await self._release_all()
                    resume = True
                    if ri >= len(stroke.reports):
                        result.typed += stroke.text
                        si, ri = si + 1, 0
                    continue
                ri += 1
                if ri == len(stroke.reports):
                    result.typed += stroke.text
                    si, ri = si + 1, 0
        finally:
            result.pending = list(strokes[si:])
            await self._release_all()
            if caps_off_by_us:
                try:
                    await self._toggle_capslock()
                except HostNotConnected:
                    pass
            result.seconds = self.clock() - start
        return result

    def _elapsed_budget(self, start: float) -> float:
        # The give-up clock runs from when the host went away, not from the start of the text.
        return (self.clock() - start) + self.options.give_up_s
