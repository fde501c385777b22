"""A stand-in for the HID device that may be missing: the typist talks to it, whatever is behind it.

While no device is open (the gadget is not set up yet, ``/dev/hidg0`` is missing or was re-created)
it behaves like a keyboard whose host is away: the typist keeps the text and waits. When the device
node was replaced under an open descriptor, it is re-opened on the spot, so typing goes on.
"""

from __future__ import annotations

import asyncio
import logging

from appliance.parts import Part
from appliance.transport.base import DeliveryFailed, HidDevice

log = logging.getLogger(__name__)


class HidSlot:
    """:class:`~appliance.transport.base.HidDevice` over the supervised HID part."""

    def __init__(self, part: Part[HidDevice]) -> None:
        self.part = part

    def _device(self) -> HidDevice | None:
        device = self.part.value
        replaced = getattr(device, "replaced", None)
        if device is not None and replaced is not None and replaced():
            log.info("%s: device node re-created; opening it again", self.part.name)
            self.part.discard()
            self.part.attempt()
            device = self.part.value
        return device

    async def write_report(self, report: bytes) -> None:
        device = self.part.value
        if device is None:
            raise DeliveryFailed("no HID device open", delivered=False)
        await device.write_report(report)

    def host_connected(self) -> bool:
        device = self._device()
        return device is not None and device.host_connected()

    @property
    def leds(self) -> int:
        device = self.part.value
        return device.leds if device is not None else 0

    async def wait_leds_changed(self, timeout: float) -> int:
        device = self.part.value
        if device is None:
            await asyncio.sleep(min(timeout, 0.05))
            return 0
        return await device.wait_leds_changed(timeout)

    def close(self) -> None:
        self.part.discard()
