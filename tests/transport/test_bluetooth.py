"""The Bluetooth transport's logic against fake BlueZ, L2CAP and host (the real kernel and BlueZ:
tests/vm/test_bluetooth_vm.py)."""

import asyncio

import pytest

from appliance.errors import TransportError
from appliance.hid.report import LED_CAPS_LOCK, RELEASE_ALL
from appliance.transport.bluetooth import BluetoothHid, BluetoothOptions, LastHost
from appliance.transport.bt_fake import FakeAir, FakeBluez, FakeHost, FakeLinks
from appliance.transport.hidp import PSM_CONTROL
from appliance.transport.typist import Typist
from tests.transport.test_typist import CAPS, FAST, host_text, strokes

OPTIONS = BluetoothOptions(name="VoiceKey test", connect_timeout_s=1.0, backoff_s=(0.01, 0.02), send_timeout_s=1.0,
                           bond_check_s=0.01)


class Rig:
    """One device, one host, in one event loop."""

    def __init__(self, tmp_path, last_host: str | None = None) -> None:
        self.air = FakeAir()
        self.bluez = FakeBluez()
        self.links = FakeLinks(self.air)
        self.host = FakeHost(self.air, self.bluez)
        self.closed_windows = 0
        path = tmp_path / "last-host"
        if last_host:
            path.write_text(last_host + "\n")
        self.last_host_file = path
        self.device = BluetoothHid(self.bluez, self.links, LastHost(path), OPTIONS,
                                   on_pairing_closed=self._window_closed)

    def _window_closed(self) -> None:
        self.closed_windows += 1

    async def until(self, condition, what: str, limit: int = 2000) -> None:
        for _ in range(limit):
            if condition():
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"never happened: {what}")

    async def paired_and_connected(self) -> None:
        await self.device.ready()
        self.device.pairing(True)
        await self.until(lambda: self.bluez.window_open, "window open")
        assert self.host.pair()
        await self.host.connect()
        await self.until(self.device.host_connected, "host connected")


def run(coro):
    return asyncio.run(coro)


def test_pairs_only_inside_the_window_and_the_connection_closes_it(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.device.ready()
        assert rig.bluez.name == "VoiceKey test" and "0x1124" in rig.bluez.record
        assert not rig.host.pair()  # window closed: refused
        assert rig.bluez.bonds == set()
        await rig.paired_and_connected()
        assert rig.bluez.bonds == {rig.host.address}
        await rig.until(lambda: not rig.bluez.window_open, "window closed by the connection")
        assert rig.closed_windows == 1 and not rig.device.pairing_open
        assert rig.last_host_file.read_text().strip() == rig.host.address
        rig.device.close()

    run(scenario())


def test_an_unbonded_host_is_refused_outside_the_window(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.device.ready()
        await rig.host.connect()
        await rig.until(lambda: rig.host.ctrl.closed, "control channel closed by the device")
        assert not rig.device.host_connected()
        rig.device.close()

    run(scenario())


def test_text_with_caps_lock_on_the_host_comes_out_as_written(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        await rig.host.set_leds(LED_CAPS_LOCK)
        await rig.until(lambda: rig.device.leds == LED_CAPS_LOCK, "LED report seen")
        result = await Typist(rig.device, FAST, capslock=CAPS).type(strokes("HelloWorld"))
        assert result.complete and result.typed == "HelloWorld"
        caps_toggles = [i for i, r in enumerate(rig.host.reports) if 0x39 in r[2:]]
        assert len(caps_toggles) == 2  # off before the text, on again after
        assert rig.host.leds == LED_CAPS_LOCK
        text_reports = rig.host.reports[caps_toggles[0] + 1:caps_toggles[1]]
        assert host_text(text_reports) == "HelloWorld"
        assert rig.host.reports[-1] == RELEASE_ALL
        rig.device.close()

    run(scenario())


def test_host_away_mid_text_gets_everything_once_after_the_device_reconnects(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        text = "abcdefghijKLMNOPqrst"
        typist = Typist(rig.device, FAST)
        rig.host.in_range = False
        dropped = False

        def maybe_drop():
            nonlocal dropped
            if not dropped and len(rig.host.reports) == 17:
                dropped = True
                rig.host.drop()

        async def watch():
            while not dropped:
                maybe_drop()
                await asyncio.sleep(0)
            await asyncio.sleep(0.05)  # a few failed reconnects while out of range
            rig.host.in_range = True

        watcher = asyncio.get_running_loop().create_task(watch())
        result = await typist.type(strokes(text))
        await watcher
        assert dropped and result.complete and result.reconnects == 1
        assert host_text(rig.host.reports) == text
        assert rig.host.reports[-1] == RELEASE_ALL
        assert rig.links.connects.count((rig.host.address, PSM_CONTROL)) >= 2  # retried with backoff
        rig.device.close()

    run(scenario())


def test_reconnects_to_the_last_host_after_a_restart(tmp_path):
    async def scenario():
        rig = Rig(tmp_path, last_host="00:BB:02:00:00:01")
        rig.bluez.bonds.add("00:BB:02:00:00:01")
        await rig.until(rig.device.host_connected, "reconnected by the device")
        assert rig.host.connected
        result = await Typist(rig.device, FAST).type(strokes("ok"))
        assert result.complete and host_text(rig.host.reports) == "ok"
        rig.device.close()

    run(scenario())


def test_the_host_reconnecting_by_itself_is_accepted(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        rig.host.accepts_reconnect = False  # only the host may open the link
        rig.host.drop()
        await rig.until(lambda: not rig.device.host_connected(), "drop seen")
        await rig.host.connect()
        await rig.until(rig.device.host_connected, "host reconnected")
        result = await Typist(rig.device, FAST).type(strokes("back"))
        assert host_text(rig.host.reports) == "back" and result.complete
        rig.device.close()

    run(scenario())


def test_virtual_cable_unplug_forgets_the_host(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        await rig.host.control(bytes([0x15]))
        await rig.until(lambda: not rig.bluez.bonds, "bond removed")
        assert not rig.device.host_connected()
        assert not rig.last_host_file.exists()
        rig.device.close()

    run(scenario())


def test_control_requests_are_answered(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        await rig.host.control(bytes([0x70]))  # SET_PROTOCOL boot
        await rig.host.control(bytes([0x60]))  # GET_PROTOCOL
        await rig.host.control(bytes([0x90]))  # unsupported
        await rig.until(lambda: len(rig.host.control_replies) == 3, "three replies")
        assert rig.host.control_replies == [bytes([0x00]), bytes([0xA0, 0x00]), bytes([0x03])]
        rig.device.close()

    run(scenario())


def test_forget_all(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.paired_and_connected()
        rig.bluez.bonds.add("00:BB:02:00:00:99")
        rig.device.forget_all()
        await rig.until(lambda: not rig.bluez.bonds, "all bonds removed")
        assert not rig.device.host_connected() and not rig.last_host_file.exists()
        rig.device.close()

    run(scenario())


def test_a_failed_set_up_is_the_parts_fault(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        rig.bluez.fail = OSError(2, "org.bluez not on the bus")
        device = BluetoothHid(rig.bluez, rig.links, LastHost(None), OPTIONS)
        with pytest.raises(TransportError, match="Bluetooth set-up failed"):
            await device.ready()
        with pytest.raises(TransportError, match="doctor"):
            device.check()
        device.close()
        rig.device.close()

    run(scenario())


def test_a_bond_made_outside_the_window_is_removed_and_its_connection_refused(tmp_path):
    async def scenario():
        rig = Rig(tmp_path)
        await rig.device.ready()
        assert rig.host.pair(behind_our_back=True)  # the controller bonded without asking
        await rig.until(lambda: not rig.bluez.bonds, "the bond removed")
        await rig.host.connect()
        await rig.until(lambda: rig.host.ctrl.closed, "the connection refused")
        assert not rig.device.host_connected()
        rig.device.close()

    run(scenario())
