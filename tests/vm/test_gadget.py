"""`voicekey gadget up/status/down` against the real kernel: configfs + dummy_hcd + usbhid."""

from __future__ import annotations

import pytest

from tests.vm.guest import Guest
from tests.vm.keyboard import EVENTS, UDC

pytestmark = pytest.mark.vm

STATE = f"/sys/class/udc/{UDC}/state"


def _keyboard_on_host(guest: Guest) -> str:
    """The host-side keyboard's event device ('' if there is none)."""
    result = guest.run(f"python {EVENTS} --wait 0 find")
    return result.stdout.strip() if result.rc == 0 else ""


def _wait_keyboard(guest: Guest) -> str:
    result = guest.run(f"python {EVENTS} --wait 60 find")
    assert result.rc == 0, f"no keyboard enumerated on the dummy_hcd host side: {result.stderr}"
    return result.stdout.strip()


def test_up_enumerates_a_keyboard_status_down_and_up_again(guest: Guest) -> None:
    guest.run("voicekey gadget down")  # start from no gadget, whatever ran before
    assert _keyboard_on_host(guest) == ""

    guest.run("voicekey gadget up").check()
    device = _wait_keyboard(guest)
    assert device.startswith("/dev/input/event")
    assert guest.run(f"cat {STATE}").check().stdout.strip() == "configured"
    # The host side really sees a USB HID keyboard with the gadget's ids.
    devices = guest.run("cat /proc/bus/input/devices").check().stdout
    block = next(b for b in devices.split("\n\n") if "dummy_hcd" in b)
    assert "Vendor=1d6b Product=0104" in block
    assert "kbd" in block and device.rsplit("/", 1)[1] in block
    assert (guest.run("cat /sys/kernel/config/usb_gadget/voicekey/UDC").check().stdout.strip()
            == UDC)
    assert guest.run("test -c /dev/hidg0").rc == 0

    status = guest.run("voicekey gadget status").check().stdout
    assert UDC in status and "configured" in status and "/dev/hidg0" in status

    # Idempotent: a second `up` keeps the same, still-enumerated keyboard.
    guest.run("voicekey gadget up").check()
    assert guest.run(f"cat {STATE}").check().stdout.strip() == "configured"
    assert _wait_keyboard(guest) == device
    listing = guest.run("ls /sys/kernel/config/usb_gadget").check().stdout.split()
    assert listing == ["voicekey"]

    # Down removes it cleanly: no keyboard on the host, no gadget directory, no hidg node.
    guest.run("voicekey gadget down").check()
    assert _keyboard_on_host(guest) == ""
    assert guest.run("ls /sys/kernel/config/usb_gadget").check().stdout.split() == []
    assert guest.run("test -e /dev/hidg0").rc != 0
    assert "not set up" in guest.run("voicekey gadget status").stdout
    guest.run("voicekey gadget down").check()  # down twice is fine too

    # And up again works.
    guest.run("voicekey gadget up").check()
    assert _wait_keyboard(guest).startswith("/dev/input/event")
    assert guest.run(f"cat {STATE}").check().stdout.strip() == "configured"
