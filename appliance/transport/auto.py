"""``transport.kind: auto``: USB while a USB host has the keyboard configured, otherwise Bluetooth.

One :class:`~appliance.transport.base.HidDevice` over both: each report goes to whichever host is
there when it is sent (USB first), so text interrupted on one is finished on the other only if the
typist's host-loss recovery sees the new one — exactly as after a reconnect on the same transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from appliance.errors import VoiceKeyError
from appliance.transport.base import DeliveryFailed, HidDevice

log = logging.getLogger(__name__)


class AutoHid:
    """USB (opened on demand: the gadget may come later) or else the Bluetooth device."""

    def __init__(self, open_usb: Callable[[], HidDevice], bluetooth: HidDevice) -> None:
        self.open_usb = open_usb
        self.bluetooth = bluetooth
        self.usb: HidDevice | None = None
        self._last: str | None = None

    def _usb(self) -> HidDevice | None:
        if self.usb is None:
            try:
                self.usb = self.open_usb()
            except VoiceKeyError as exc:
                log.debug("USB keyboard not available: %s", exc)
                return None
        return self.usb

    def _current(self) -> HidDevice | None:
        usb = self._usb()
        if usb is not None and usb.host_connected():
            chosen, name = usb, "usb"
        elif self.bluetooth.host_connected():
            chosen, name = self.bluetooth, "bluetooth"
        else:
            return None
        if name != self._last:
            log.info("typing over %s", name)
            self._last = name
        return chosen

    def __getattr__(self, name: str):  # noqa: ANN204 - pairing(), forget_all(), on_pairing_closed
        return getattr(self.bluetooth, name)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "on_pairing_closed":
            setattr(self.bluetooth, name, value)
        else:
            super().__setattr__(name, value)

    def check(self) -> None:
        check = getattr(self.bluetooth, "check", None)
        if check is not None:
            check()
        if self.usb is not None and getattr(self.usb, "replaced", lambda: False)():
            self.usb.close()
            self.usb = None

    async def write_report(self, report: bytes) -> None:
        device = self._current()
        if device is None:
            raise DeliveryFailed("no USB or Bluetooth host connected", delivered=False)
        await device.write_report(report)

    def host_connected(self) -> bool:
        return self._current() is not None

    @property
    def leds(self) -> int:
        device = self._current()
        return device.leds if device is not None else 0

    async def wait_leds_changed(self, timeout: float) -> int:
        device = self._current()
        if device is None:
            await asyncio.sleep(min(timeout, 0.05))
            return 0
        return await device.wait_leds_changed(timeout)

    def close(self) -> None:
        if self.usb is not None:
            self.usb.close()
        self.bluetooth.close()
