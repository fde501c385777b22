"""The HID device edge: one report per write, plus the host's LED state."""

from __future__ import annotations

from typing import Protocol

from appliance.errors import HostNotConnected


class HidDevice(Protocol):
    """A keyboard endpoint towards the host (``/dev/hidg0``, a Bluetooth HID channel, or a fake)."""

    async def write_report(self, report: bytes) -> None:
        """Send one 8-byte report and wait until the host has taken it.

        Raises :class:`DeliveryFailed` when the host went away; its ``delivered`` flag says whether
        this very report reached the host before that.
        """

    def host_connected(self) -> bool:
        """True while a host has the keyboard configured (USB: UDC state ``configured``)."""

    @property
    def leds(self) -> int:
        """The host's last LED output report (``LED_*`` bits); 0 until the host sends one."""

    async def wait_leds_changed(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for a new LED report; return the LED bits (unchanged on timeout)."""

    def close(self) -> None:
        """Release the device."""


class DeliveryFailed(HostNotConnected):
    """The host disappeared while a report was in flight."""

    def __init__(self, message: str, delivered: bool, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.delivered = delivered
