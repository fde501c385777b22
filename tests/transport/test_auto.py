"""``transport.kind: auto``: USB while a USB host is there, otherwise the bonded Bluetooth host.

The Bluetooth side is the real :class:`BluetoothHid` on the fake air (tests/transport/test_bluetooth.py's
rig); the USB side a :class:`FakeHidDevice` whose host can be unplugged; text goes through the real
:class:`Typist`, so a text cut on USB is finished over Bluetooth by its host-loss recovery.
"""

import asyncio

from appliance.errors import GadgetError
from appliance.transport.auto import AutoHid
from appliance.transport.base import DeliveryFailed
from appliance.transport.fake import FakeHidDevice
from appliance.transport.typist import Typist
from tests.transport.test_bluetooth import Rig
from tests.transport.test_typist import FAST, host_text, strokes


def run(coro):
    return asyncio.run(coro)


def test_usb_while_its_host_is_there_bluetooth_after_it_leaves_mid_text(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        usb = FakeHidDevice()
        auto = AutoHid(lambda: usb, rig.device)
        result = await Typist(auto, FAST).type(strokes("overusb"))
        assert result.complete
        assert host_text(usb.reports) == "overusb"
        assert rig.host.reports == []  # Bluetooth untouched while USB is there
        usb.unplug_after = usb._writes + 7  # the cable is pulled inside the next text
        result = await Typist(auto, FAST).type(strokes("thenbluetooth"))
        assert result.complete and result.reconnects == 1
        cut = host_text(usb.reports)  # everything the USB host took
        assert cut.startswith("overusb") and len(cut) > len("overusb")
        # each character exactly once, across both hosts
        assert cut[len("overusb"):] + host_text(rig.host.reports) == "thenbluetooth"
        rig.device.close()

    run(scenario())


def test_bluetooth_when_the_gadget_cannot_be_opened_and_usb_once_it_can(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        usb = FakeHidDevice()
        gadget_up = False

        def open_usb() -> FakeHidDevice:
            if not gadget_up:
                raise GadgetError("/dev/hidg0 missing", fix="voicekey gadget up")
            return usb

        auto = AutoHid(open_usb, rig.device)
        assert auto.host_connected()
        assert (await Typist(auto, FAST).type(strokes("bt"))).complete
        assert host_text(rig.host.reports) == "bt"
        gadget_up = True  # the cable plugged in: the gadget appears
        assert (await Typist(auto, FAST).type(strokes("usb"))).complete
        assert host_text(usb.reports) == "usb"
        assert host_text(rig.host.reports) == "bt"
        rig.device.close()

    run(scenario())


def test_no_host_anywhere_is_not_delivered_and_pairing_goes_to_bluetooth(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.device.ready()
        usb = FakeHidDevice()
        usb.connected = False
        auto = AutoHid(lambda: usb, rig.device)
        closed = []
        auto.on_pairing_closed = lambda: closed.append(True)
        assert not auto.host_connected()
        try:
            await auto.write_report(bytes(8))
        except DeliveryFailed as exc:
            assert exc.delivered is False
        else:
            raise AssertionError("a report with no host anywhere was taken as delivered")
        auto.pairing(True)  # the long hold: Bluetooth's window
        await rig.until(lambda: rig.bluez.window_open, "the window to open")
        assert rig.host.pair()
        await rig.host.connect()
        await rig.until(lambda: closed == [True], "the first bonded connection to close the window")
        assert auto.host_connected()
        auto.close()
        assert usb.closed

    run(scenario())
