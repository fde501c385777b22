"""Issue-level faults handled by the appliance itself (the kernel-level ones are in tests/vm)."""

import asyncio
import time

import numpy as np

from appliance.app import RecorderAdapter, build
from appliance.audio.capture import SoundDeviceSource
from appliance.audio.fakes import FakeAudioBackend, FakeDevice
from appliance.config import load_config
from appliance.controller import ControllerOptions, State
from appliance.transport.fake import FakeHidDevice
from appliance.ui.button import EdgeQueue, FakeButton
from appliance.ui.led import FakeLed, LedPattern
from tests.fakes import EnergyGate, ScriptedTranscriber
from tests.test_controller import SPEECH, Rig


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 30))


async def wait_for(cond, seconds=5.0):
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def test_microphone_absent_at_start_shows_error_retries_and_recovers():
    async def go():
        backend = FakeAudioBackend([FakeDevice("USB mic", plugged=False)])
        source = SoundDeviceSource("USB mic", backend=backend, stall_timeout_s=None)
        rig = Rig([], ["unused"])
        rig.stages.recorder = RecorderAdapter(source)
        rig.controller.options = ControllerOptions(timing=rig.controller.options.timing, audio_retry_s=0.05)
        async with rig:
            await wait_for(lambda: rig.controller.state is State.ERROR)
            assert rig.led.pattern is LedPattern.ERROR_MICROPHONE
            rig.hold()  # pressing without a microphone: still the error code, nothing typed
            await asyncio.sleep(0.1)
            assert rig.led.pattern is LedPattern.ERROR_MICROPHONE and rig.device.reports[-1:] != [b"x"]
            backend.plug("USB mic")
            await wait_for(lambda: rig.controller.state is State.READY)
            assert rig.led.pattern is LedPattern.READY
            assert backend.streams and backend.stream.active  # the device was opened
            # and it records again: press -> listening
            rig.button.press(time.monotonic())
            await wait_for(lambda: rig.controller.state is State.LISTENING)
            rig.button.release(time.monotonic())
    run(go())


def test_microphone_unplugged_while_idle_is_noticed_and_recovered():
    async def go():
        backend = FakeAudioBackend([FakeDevice("USB mic")])
        source = SoundDeviceSource("USB mic", backend=backend, stall_timeout_s=None)
        rig = Rig([], ["unused"])
        rig.stages.recorder = RecorderAdapter(source)
        rig.controller.options = ControllerOptions(timing=rig.controller.options.timing, audio_retry_s=0.05)
        async with rig:
            await wait_for(lambda: backend.streams and backend.stream.active)
            backend.unplug("USB mic")
            await wait_for(lambda: rig.led.pattern is LedPattern.ERROR_MICROPHONE)
            backend.plug("USB mic")
            await wait_for(lambda: rig.led.pattern is LedPattern.READY)
            assert source.reopened >= 1
    run(go())


def test_invalid_config_runs_on_defaults_with_error_code(tmp_path):
    bad = tmp_path / "voicekey.yaml"
    bad.write_text("button:\n  pin: 99\nkeyboard:\n  layout: klingon\ntransport:\n  rate: 250\n")
    loaded = load_config([bad])
    assert {i.key for i in loaded.issues} == {"button.pin", "keyboard.layout"}
    assert loaded.config.button.pin == 17 and loaded.config.keyboard.layout == "us"
    assert loaded.config.transport.rate == 250  # the good key still applies

    async def go():
        led, device = FakeLed(), FakeHidDevice()
        parts = build(loaded.config, recorder=_Recorder(), transcriber=ScriptedTranscriber(["Still works."]),
                      gate=EnergyGate(), device=device, led=led)
        from appliance.commands.run_cmd import report_config_issues
        report_config_issues(parts.controller, loaded)
        edges = EdgeQueue()
        task = asyncio.create_task(parts.controller.run(edges.queue))
        await asyncio.sleep(0.05)
        assert led.pattern is LedPattern.ERROR_CONFIG
        t = time.monotonic()
        FakeButton(edges).press(t)
        FakeButton(edges).release(t + 1)
        await asyncio.sleep(0.05)
        await parts.controller.idle()
        parts.controller.stop()
        await task
        from tests.fakes import host_screen
        assert host_screen(device.reports) == "Still works."
    run(go())


class _Recorder:
    def start(self):
        pass

    def stop(self):
        return np.array(SPEECH)

    def cancel(self):
        pass
