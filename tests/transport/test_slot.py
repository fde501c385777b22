"""The HID device behind the supervisor: missing = host away; re-created = re-opened on the spot."""

import asyncio

import pytest

from appliance.parts import Part
from appliance.transport.base import DeliveryFailed
from appliance.transport.slot import HidSlot
from appliance.transport.usb import HidgDevice
from appliance.ui.led import LedPattern

REPORT = bytes([0, 0, 4, 0, 0, 0, 0, 0])


def _slot(path):
    part = Part("hid", LedPattern.ERROR_HID, open=lambda: HidgDevice(path), close=lambda d: d.close(),
                check=lambda d: d.check(), inline=True)
    part.attempt()
    return part, HidSlot(part)


def test_missing_device_is_a_host_that_is_away_until_it_appears(tmp_path):
    path = tmp_path / "hidg0"
    part, slot = _slot(path)
    assert part.fault() is not None and "does not exist" in part.fault().message
    assert not slot.host_connected()
    with pytest.raises(DeliveryFailed):
        asyncio.run(slot.write_report(REPORT))
    path.write_bytes(b"")
    assert part.attempt() and part.ok
    assert slot.host_connected()
    asyncio.run(slot.write_report(REPORT))
    assert path.read_bytes() == REPORT


def test_device_node_recreated_under_an_open_descriptor_is_reopened(tmp_path):
    """`voicekey gadget down && voicekey gadget up` re-creates /dev/hidg0: the old descriptor would
    write into the void."""
    path = tmp_path / "hidg0"
    path.write_bytes(b"")
    part, slot = _slot(path)
    asyncio.run(slot.write_report(REPORT))
    old = part.value
    path.unlink()
    path.write_bytes(b"")  # a new node at the same path
    assert old.replaced()
    assert slot.host_connected()  # noticed and re-opened here, on the loop's thread
    assert part.value is not old and old.fd == -1
    asyncio.run(slot.write_report(REPORT))
    assert path.read_bytes() == REPORT


def test_supervisor_check_notices_a_removed_device(tmp_path):
    path = tmp_path / "hidg0"
    path.write_bytes(b"")
    part, _ = _slot(path)
    path.unlink()
    assert part.attempt()  # health changed
    assert part.fault() is not None and part.fault().pattern is LedPattern.ERROR_HID
    path.write_bytes(b"")
    assert part.attempt() and part.ok
