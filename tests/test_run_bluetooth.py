"""``voicekey run`` with ``transport.kind: bluetooth``: the composition root builds the Bluetooth
keyboard (on fake BlueZ and L2CAP, with a fake host in range); pairing through the button, a
dictation typed over it and decoded with libxkbcommon, forget-all through the button. The real
kernel and BlueZ: tests/vm/test_bluetooth_vm.py."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from appliance.controller import State
from appliance.transport.bt_fake import FakeAir, FakeBluez, FakeHost, FakeLinks
from appliance.ui.led import LedPattern
from tests.test_run import Daemon, FakeDevice, _base_config, _check_typed, _write_config, sentence  # noqa: F401
from tests.oracle.xkb import decode_reports

pytestmark = pytest.mark.model


class Air:
    def __init__(self) -> None:
        self.air = FakeAir()
        self.bluez = FakeBluez()
        self.host = FakeHost(self.air, self.bluez)

    def backend(self, config):  # noqa: ANN001, ANN201 - PiHardware's bluetooth_backend
        return self.bluez, FakeLinks(self.air)


@pytest.fixture(scope="module")
def bt(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp("run-bt")
    hidg = tmp / "hidg0-unused"
    air = Air()
    config = _write_config(tmp / "voicekey.yaml", **_base_config(
        tmp, hidg, transport={"kind": "bluetooth"}, bluetooth={"state_dir": str(tmp / "state"), "name": "VK test"}))
    d = Daemon(config, hidg, FakeDevice("USB mic", samplerate=16000, channels=1), bluetooth_backend=air.backend)
    d.wait_state(State.READY, timeout=120)
    d.air = air
    yield d
    d.stop()


def _in_loop(d: Daemon, coro) -> None:  # noqa: ANN001
    asyncio.run_coroutine_threadsafe(coro, d.loop).result(10)


def test_pairing_by_the_button_then_a_dictation_over_bluetooth(bt: Daemon, sentence: np.ndarray) -> None:
    air = bt.air
    assert air.bluez.name == "VK test"
    assert not air.host.pair()  # the window is closed
    bt.press()
    bt.wait_state(State.PAIRING, timeout=10)
    assert bt.led() is LedPattern.PAIRING
    bt.release()
    bt.wait(lambda: air.bluez.window_open, 5, "the pairing window to open in BlueZ")
    assert air.host.pair()
    _in_loop(bt, air.host.connect())
    bt.wait_state(State.READY, timeout=5)  # the first bonded connection closes the window
    bt.wait(lambda: not air.bluez.window_open, 5, "the window to close in BlueZ")
    before = bt.dictations()
    bt.press()
    bt.wait_state(State.LISTENING, timeout=5)
    bt.room.say(sentence)
    bt.room.wait_said()
    bt.release()
    bt.settle(before + 1)
    _check_typed(decode_reports(air.host.reports, "us"))
    assert air.host.reports[-1] == bytes(8)


def test_holding_on_after_a_press_in_the_window_forgets_every_host(bt: Daemon) -> None:
    air = bt.air
    air.bluez.bonds.add("00:BB:02:00:00:42")
    bt.press()
    bt.wait_state(State.PAIRING, timeout=10)
    bt.release()
    time.sleep(0.1)
    bt.press()  # closes the window ... and held for pairing_hold_s: forget all, pair anew
    bt.wait(lambda: not air.bluez.bonds, 10, "every bond to be removed")
    bt.wait_state(State.PAIRING, timeout=5)
    bt.wait(lambda: bt.led() is LedPattern.HOSTS_FORGOTTEN, 5, "the forgotten-hosts flash")
    bt.release()
    bt.wait(lambda: bt.led() is LedPattern.PAIRING, 10, "the pairing blink after the flash")
    assert not air.host.connected
    bt.press()
    bt.wait_state(State.READY, timeout=5)
    bt.release()
