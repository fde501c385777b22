"""A fake HID device for tests and the simulator: records reports, plays a host that can vanish."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from appliance.hid.report import LED_CAPS_LOCK, REPORT_LENGTH, parse_report
from appliance.transport.base import DeliveryFailed

CAPS_LOCK_USAGE = 0x39


class FakeHidDevice:
    """Records every report the host took in ``.reports``.

    ``unplug_after`` / ``delivered_on_unplug`` script a host that disappears on the n-th write;
    ``replug_after_polls`` brings it back after that many ``host_connected()`` checks. A fake host
    toggles its Caps Lock LED when it sees the Caps Lock key, like a real one.
    """

    def __init__(self, leds: int = 0) -> None:
        self.reports: list[bytes] = []
        self.connected = True
        self._leds = leds
        self.unplug_after: int | None = None
        self.delivered_on_unplug = False
        self.replug_after_polls: int | None = None
        self.on_report: Callable[[bytes], None] | None = None
        self.closed = False
        self._writes = 0
        self._polls = 0
        self._caps_down = False

    # -- scripting helpers --
    def unplug(self) -> None:
        self.connected = False
        self._polls = 0

    def plug(self) -> None:
        self.connected = True

    @property
    def held(self) -> tuple[int, tuple[int, ...]]:
        """(modifiers, keys) of the last report the host took: what it thinks is pressed now."""
        return parse_report(self.reports[-1]) if self.reports else (0, ())

    # -- HidDevice --
    async def write_report(self, report: bytes) -> None:
        assert len(report) == REPORT_LENGTH
        await asyncio.sleep(0)
        if not self.connected:
            raise DeliveryFailed("fake host not connected", delivered=False)
        self._writes += 1
        if self.unplug_after is not None and self._writes == self.unplug_after:
            self.unplug_after = None
            if self.delivered_on_unplug:
                self._take(report)
            self.unplug()
            raise DeliveryFailed("fake host unplugged", delivered=self.delivered_on_unplug)
        self._take(report)

    def _take(self, report: bytes) -> None:
        self.reports.append(bytes(report))
        _, keys = parse_report(report)
        caps = CAPS_LOCK_USAGE in keys
        if caps and not self._caps_down:
            self._leds ^= LED_CAPS_LOCK
        self._caps_down = caps
        if self.on_report:
            self.on_report(report)

    def host_connected(self) -> bool:
        if not self.connected and self.replug_after_polls is not None:
            self._polls += 1
            if self._polls >= self.replug_after_polls:
                self.connected = True
        return self.connected

    @property
    def leds(self) -> int:
        return self._leds

    async def wait_leds_changed(self, timeout: float) -> int:
        await asyncio.sleep(0)
        return self._leds

    def close(self) -> None:
        self.closed = True
