"""HidgDevice against stand-ins: a plain file for /dev/hidg0 (as TinyPilot's tests do) and a temp
file for the UDC state. The real character device is exercised in tests/vm."""

import asyncio

import pytest

from appliance.errors import TransportError
from appliance.hid.report import RELEASE_ALL, keyboard_report
from appliance.transport.usb import HidgDevice, release_all_now


def test_one_write_per_report_to_a_stand_in_file(tmp_path):
    dev_path = tmp_path / "hidg0"
    dev_path.write_bytes(b"")
    dev = HidgDevice(dev_path)

    async def go():
        for r in (keyboard_report(0, [4]), RELEASE_ALL):
            await dev.write_report(r)

    asyncio.run(go())
    dev.close()
    assert dev_path.read_bytes() == keyboard_report(0, [4]) + RELEASE_ALL


def test_rejects_wrong_length(tmp_path):
    (tmp_path / "hidg0").write_bytes(b"")
    dev = HidgDevice(tmp_path / "hidg0")
    with pytest.raises(ValueError):
        asyncio.run(dev.write_report(b"\0" * 9))
    dev.close()


def test_udc_state_is_reread_each_time(tmp_path):
    (tmp_path / "hidg0").write_bytes(b"")
    state = tmp_path / "state"
    state.write_text("configured\n")
    dev = HidgDevice(tmp_path / "hidg0", udc_state_file=state)
    assert dev.host_connected()
    state.write_text("not attached\n")
    assert not dev.host_connected() and dev.udc_state() == "not attached"
    dev.close()
    gone = HidgDevice(tmp_path / "hidg0", udc_state_file=tmp_path / "no-such-udc" / "state")
    assert gone.udc_state() is None and gone.host_connected()  # unknown UDC: assume present
    gone.close()


def test_missing_device_says_run_gadget_up(tmp_path):
    with pytest.raises(TransportError) as e:
        HidgDevice(tmp_path / "nope")
    assert "voicekey gadget up" in e.value.fix


def test_release_all_now(tmp_path):
    p = tmp_path / "hidg0"
    p.write_bytes(b"")
    assert release_all_now(p)
    assert p.read_bytes() == RELEASE_ALL
    assert release_all_now(tmp_path / "absent") is False
