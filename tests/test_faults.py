"""Faults handled by the appliance itself: parts missing at start or failing later are shown with
their blink code, retried, and recovered from without a restart (the kernel-level ones are in
tests/vm). Built by the composition root with the test hardware."""

import asyncio
import dataclasses
import time

from appliance.audio.capture import SoundDeviceSource
from appliance.audio.fakes import FakeAudioBackend, FakeDevice
from appliance.compose import RecorderAdapter
from appliance.config import load_config
from appliance.controller import State
from appliance.ui.led import LedPattern
from tests.test_controller import SPEECH, Rig, rig_config


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 30))


async def wait_for(cond, seconds=5.0):
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def _with_sounddevice(rig, backend):
    source = SoundDeviceSource("USB mic", backend=backend, stall_timeout_s=None)
    rig.hardware.recorder = RecorderAdapter(source)
    return source


def test_microphone_absent_at_start_shows_error_retries_and_recovers():
    async def go():
        backend = FakeAudioBackend([FakeDevice("USB mic", plugged=False)])
        rig = Rig([], ["unused"])
        _with_sounddevice(rig, backend)
        async with rig:
            assert rig.controller.state is State.ERROR
            assert rig.led.pattern is LedPattern.ERROR_MICROPHONE
            rig.hold()  # pressing without a microphone: still the error code, nothing typed
            await asyncio.sleep(0.1)
            assert rig.led.pattern is LedPattern.ERROR_MICROPHONE and rig.controller.state is State.ERROR
            backend.plug("USB mic")
            await wait_for(lambda: rig.controller.state is State.READY)
            assert rig.led.pattern is LedPattern.READY
            assert backend.streams and backend.stream.active  # the device was opened
            rig.button.press(time.monotonic())  # and it records again
            await wait_for(lambda: rig.controller.state is State.LISTENING)
            rig.button.release(time.monotonic())
    run(go())


def test_microphone_unplugged_while_idle_is_noticed_and_recovered():
    async def go():
        backend = FakeAudioBackend([FakeDevice("USB mic")])
        rig = Rig([], ["unused"])
        source = _with_sounddevice(rig, backend)
        async with rig:
            await wait_for(lambda: backend.streams and backend.stream.active)
            backend.unplug("USB mic")
            await wait_for(lambda: rig.led.pattern is LedPattern.ERROR_MICROPHONE)
            backend.plug("USB mic")
            await wait_for(lambda: rig.led.pattern is LedPattern.READY)
            assert source.reopened >= 1
    run(go())


def test_model_missing_at_start_shows_its_code_and_recovers_when_it_appears():
    async def go():
        rig = Rig([SPEECH], ["Back again."])
        rig.hardware.model_missing = True
        async with rig:
            assert rig.notified[0] == "READY=1"  # systemd is told we are up: no restart loop
            assert "speech model" in rig.notified[1]
            assert rig.controller.state is State.ERROR and rig.led.pattern is LedPattern.ERROR_MODEL
            rig.hold()  # a press cannot dictate without a model
            await asyncio.sleep(0.1)
            assert rig.controller.state is State.ERROR and rig.recorder.started == 0
            rig.hardware.model_missing = False
            await wait_for(lambda: rig.controller.state is State.READY)
            assert rig.hardware.opened["model"] >= 2  # retried
            rig.hold()
            await rig.settle()
            assert rig.screen == "Back again."
    run(go())


def test_hid_device_missing_at_start_keeps_the_text_until_it_appears():
    async def go():
        rig = Rig([SPEECH], ["Kept for later."], transport__give_up_s=60.0)
        rig.hardware.hid_missing = True
        async with rig:
            assert rig.controller.state is State.ERROR and rig.led.pattern is LedPattern.ERROR_HID
            rig.hold()
            await asyncio.sleep(0.3)
            assert rig.screen == ""
            rig.hardware.hid_missing = False
            await rig.settle()
            assert rig.screen == "Kept for later."
            assert rig.controller.state is State.READY
    run(go())


def test_model_failure_mid_dictation_shows_error_and_recovers():
    async def go():
        async with Rig([SPEECH, SPEECH], ["x", "Works again."], fail=True) as rig:
            rig.hold()
            await rig.settle()
            assert LedPattern.ERROR_MODEL in rig.led.history
            rig.transcriber.fail = False
            rig.transcriber.texts = ["Works again."]
            rig.hold()
            await rig.settle()
            assert rig.screen == "Works again."
    run(go())


def test_watchdog_is_fed_only_while_the_controller_loop_turns():
    async def go():
        rig = Rig([], ["unused"])
        app = rig.app = __import__("appliance.compose", fromlist=["Appliance"]).Appliance(
            rig.config, rig.hardware, notify=rig.notified.append)
        offset = [0.0]
        app.clock = lambda: time.monotonic() + offset[0]
        dog = asyncio.create_task(app._watchdog(0.02))
        await asyncio.sleep(0.1)
        assert rig.notified.count("WATCHDOG=1") >= 2
        offset[0] = 60.0  # the controller loop has not turned for a minute
        await asyncio.sleep(0.03)
        stalled_from = rig.notified.count("WATCHDOG=1")
        await asyncio.sleep(0.1)
        assert rig.notified.count("WATCHDOG=1") == stalled_from
        dog.cancel()
    run(go())


def test_invalid_config_runs_on_defaults_with_error_code(tmp_path):
    bad = tmp_path / "voicekey.yaml"
    bad.write_text("button:\n  pin: 99\nkeyboard:\n  layout: klingon\ntransport:\n  rate: 250\n")
    loaded = load_config([bad])
    assert {i.key for i in loaded.issues} == {"button.pin", "keyboard.layout"}
    assert loaded.config.button.pin == 17 and loaded.config.keyboard.layout == "us"
    assert loaded.config.transport.rate == 250  # the good key still applies
    config = dataclasses.replace(loaded.config, button=rig_config().button,
                                 transport=dataclasses.replace(loaded.config.transport, settle_s=0.0))

    async def go():
        async with Rig([SPEECH], ["Still works."], config=config, config_issues=loaded.issues) as rig:
            await asyncio.sleep(0.05)
            assert rig.led.pattern is LedPattern.ERROR_CONFIG
            rig.hold()
            await rig.settle()
            assert rig.screen == "Still works."
    run(go())
