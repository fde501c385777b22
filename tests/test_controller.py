import asyncio
import time

import numpy as np
import pytest

from appliance.controller import Controller, ControllerOptions, Stages, State
from appliance.text.shaping import Shaper
from appliance.transport.fake import FakeHidDevice
from appliance.transport.typist import Typist, TypingOptions
from appliance.ui.button import EdgeQueue, FakeButton
from appliance.ui.gestures import GestureTiming
from appliance.ui.led import FakeLed, LedPattern
from tests.fakes import EnergyGate, LettersEncoder, ScriptedRecorder, ScriptedTranscriber, host_screen

SPEECH = np.full(16000, 0.1, np.float32)
SILENCE = np.zeros(16000, np.float32)
TIMING = GestureTiming(hold_s=0.3, double_press_s=0.2, pairing_hold_s=5.0)


class Rig:
    def __init__(self, clips, texts, busy_press="cancel", fail=False):
        self.device = FakeHidDevice()
        self.recorder = ScriptedRecorder(clips)
        self.transcriber = ScriptedTranscriber(texts, fail=fail)
        self.led = FakeLed()
        self.stages = Stages(recorder=self.recorder, gate=EnergyGate(), transcriber=self.transcriber,
                             shaper=Shaper(), encoder=LettersEncoder(),
                             typist=Typist(self.device, TypingOptions(rate=0, settle_s=0, host_poll_s=0.01)),
                             led=self.led)
        self.controller = Controller(self.stages, ControllerOptions(timing=TIMING, busy_press=busy_press,
                                                                    error_show_s=0.2))

    async def __aenter__(self):
        self.edges = EdgeQueue()
        self.button = FakeButton(self.edges)
        self.task = asyncio.create_task(self.controller.run(self.edges.queue))
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc):
        self.controller.stop()
        await asyncio.wait_for(self.task, 5)

    def hold(self, seconds=1.0):
        t = time.monotonic()
        self.button.press(t)
        self.button.release(t + seconds)

    async def settle(self):
        await asyncio.sleep(0.05)
        await asyncio.wait_for(self.controller.idle(), 10)

    @property
    def screen(self):
        return host_screen(self.device.reports)


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 30))


def test_push_to_talk_types_the_words():
    async def go():
        async with Rig([SPEECH], ["Hello world."]) as rig:
            rig.hold()
            await rig.settle()
            assert rig.screen == "Hello world."
            assert rig.controller.state is State.READY
            rec = rig.controller.records[0]
            assert rec.first_key_at is not None and rec.first_key_at >= rec.released_at
            assert LedPattern.LISTENING in rig.led.history and LedPattern.TYPING in rig.led.history
            assert rig.led.pattern is LedPattern.READY
    run(go())


def test_consecutive_dictations_join_and_scratch_that():
    async def go():
        async with Rig([SPEECH] * 3, ["Hello there.", "How are you?", "Scratch that."]) as rig:
            for _ in range(3):
                rig.hold()
                await rig.settle()
            assert rig.screen == "Hello there."
    run(go())


def test_silence_types_nothing():
    async def go():
        async with Rig([SILENCE], ["should never be used"]) as rig:
            rig.hold()
            await rig.settle()
            assert rig.screen == "" and rig.transcriber.calls == 0
    run(go())


def test_tap_goes_hands_free_and_next_tap_ends():
    async def go():
        async with Rig([SPEECH], ["Hands free."]) as rig:
            t = time.monotonic()
            rig.button.press(t)
            rig.button.release(t + 0.05)
            await asyncio.sleep(0.4)  # past the double-press window
            assert rig.controller.state is State.LISTENING
            t = time.monotonic()
            rig.button.press(t)
            rig.button.release(t + 0.05)
            await asyncio.sleep(0.4)
            await rig.settle()
            assert rig.screen == "Hands free."
    run(go())


def test_double_press_cancels_then_undoes_when_idle():
    async def go():
        async with Rig([SPEECH, SPEECH, SPEECH], ["One.", "Two."]) as rig:
            rig.hold()
            await rig.settle()
            assert rig.screen == "One."
            t = time.monotonic()  # double press while idle: undo "One."
            for dt in (0, 0.1):
                rig.button.press(t + dt)
                rig.button.release(t + dt + 0.05)
            await asyncio.sleep(0.1)
            await rig.settle()
            assert rig.screen == ""
            assert rig.recorder.cancelled == 1  # the first press's recording was dropped
    run(go())


def test_press_while_typing_cancels_cleanly():
    async def go():
        import threading
        async with Rig([SPEECH, SPEECH], ["alpha beta gamma delta", "New."]) as rig:
            rig.transcriber.gate = threading.Event()  # model stalls after the first word
            rig.hold()
            await asyncio.sleep(0.2)
            assert rig.controller.state in (State.TYPING, State.TRANSCRIBING)
            rig.hold()  # new dictation: cancels the stalled one
            rig.transcriber.gate.set()
            await rig.settle()
            assert rig.device.reports[-1] == bytes(8)
            assert rig.screen.lower().endswith("new.") and "gamma" not in rig.screen
    run(go())


def test_host_away_keeps_text_until_back():
    async def go():
        async with Rig([SPEECH], ["Keep me."]) as rig:
            rig.stages.typist.options = TypingOptions(rate=0, settle_s=0, host_poll_s=0.01, give_up_s=0.05)
            rig.device.unplug()
            rig.hold()
            await rig.settle()
            assert rig.screen == "" and rig.controller.backlog
            rig.device.plug()
            for _ in range(40):
                await asyncio.sleep(0.05)
                if not rig.controller.backlog and rig.controller.state is State.READY:
                    break
            await rig.settle()
            assert rig.screen == "Keep me."
    run(go())


def test_model_failure_shows_error_and_recovers():
    async def go():
        async with Rig([SPEECH], ["x"], fail=True) as rig:
            rig.hold()
            await rig.settle()
            assert LedPattern.ERROR_MODEL in rig.led.history
            assert rig.controller.state is State.READY
            rig.transcriber.fail = False
            rig.transcriber.texts = ["Works again."]
            rig.recorder.clips = [SPEECH]
            rig.hold()
            await rig.settle()
            assert rig.screen == "Works again."
    run(go())


def test_missing_microphone_shows_error_code():
    async def go():
        async with Rig([SPEECH], ["x"]) as rig:
            rig.recorder.present = False
            rig.hold()
            await rig.settle()
            assert LedPattern.ERROR_MICROPHONE in rig.led.history
            assert rig.screen == ""
    run(go())


@pytest.mark.parametrize("policy", ["queue"])
def test_press_while_busy_can_queue(policy):
    async def go():
        import threading
        async with Rig([SPEECH, SPEECH], ["First one.", "Second."], busy_press=policy) as rig:
            rig.transcriber.gate = threading.Event()
            rig.hold()
            await asyncio.sleep(0.2)
            rig.hold()
            await asyncio.sleep(0.1)
            rig.transcriber.gate.set()
            await rig.settle()
            assert rig.screen == "First one. Second."
    run(go())
