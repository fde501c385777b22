"""The controller and the dictation pipeline, built by the composition root with the test hardware."""

import asyncio
import time

import numpy as np
import pytest

from appliance.compose import Appliance
from appliance.controller import State
from appliance.ui.led import LedPattern
from tests.fakes import FakeHardware, configured, host_screen

SPEECH = np.full(16000, 0.1, np.float32)
SILENCE = np.zeros(16000, np.float32)


def rig_config(**settings):
    base = dict(button__hold_s=0.3, button__double_press_s=0.2, button__pairing_hold_s=5.0,
                transport__rate=0.0, transport__settle_s=0.0, controller__retry_s=0.1)
    return configured(**{**base, **settings})


class Rig:
    """The appliance as ``voicekey run`` builds it (``appliance.compose.Appliance``), on fakes."""

    def __init__(self, clips, texts, busy_press="cancel", fail=False, config=None, config_issues=(),
                 **settings):
        self.hardware = FakeHardware(clips, texts, fail=fail)
        self.config = rig_config(controller__busy_press=busy_press, **settings) if config is None else config
        self.config_issues = config_issues
        self.device = self.hardware.device
        self.recorder = self.hardware.recorder
        self.transcriber = self.hardware.transcriber_
        self.led = self.hardware.led_
        self.notified = []

    async def __aenter__(self):
        self.app = Appliance(self.config, self.hardware, notify=self.notified.append,
                             config_issues=self.config_issues)
        self.controller = self.app.controller
        self.controller.options.error_show_s = 0.2
        self.pipeline = self.app.pipeline
        self.task = asyncio.create_task(self.app.run())
        while self.controller.state is State.STARTING:
            await asyncio.sleep(0.01)
        self.button = self.hardware.button_
        return self

    async def __aexit__(self, *exc):
        self.app.stop()
        await asyncio.wait_for(self.task, 5)

    def hold(self, seconds=1.0):
        t = time.monotonic()
        self.button.press(t)
        self.button.release(t + seconds)

    def tap(self, at=None):
        t = time.monotonic() if at is None else at
        self.button.press(t)
        self.button.release(t + 0.05)

    async def double_press(self):
        """Two taps 0.1 s apart, then wait until what they started is done."""
        t = time.monotonic()
        self.tap(t)
        self.tap(t + 0.1)
        await asyncio.sleep(0.1)
        await self.settle()

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
        async with Rig([SPEECH], ["Keep me."], transport__give_up_s=60.0) as rig:
            rig.device.unplug()
            rig.hold()
            await asyncio.sleep(0.5)
            assert rig.screen == "" and rig.controller.state is State.TYPING
            assert rig.led.pattern is LedPattern.HOST_NOT_CONNECTED
            rig.device.plug()
            await rig.settle()
            assert rig.screen == "Keep me."
    run(go())


def test_host_away_past_give_up_drops_the_text_and_forgets():
    """transport.give_up_s: text kept that long, then dropped (not typed into whatever comes later)."""
    async def go():
        async with Rig([SPEECH, SPEECH], ["Lost words.", "Fresh start."], transport__give_up_s=0.2) as rig:
            rig.device.unplug()
            rig.hold()
            await rig.settle()
            record = rig.controller.records[-1]
            assert record.dropped > 0 and record.typed == ""
            rig.device.plug()
            await asyncio.sleep(0.3)
            rig.hold()
            await rig.settle()
            assert rig.screen == "Fresh start."  # no leading space: the context was forgotten
    run(go())


def test_cancel_mid_dictation_then_scratch_that_keeps_the_users_text():
    """Held-back words ("new" may start "new line") were never typed: after a cancel, "scratch
    that" must not send backspaces for them (it would eat the user's own text)."""
    async def go():
        import threading
        async with Rig([SPEECH, SPEECH], ["Hello new paragraph", "Scratch that."]) as rig:
            rig.transcriber.gate = threading.Event()
            rig.transcriber.stall_after = 2  # " Hello" typed, " new" held back, then the model stalls
            rig.hold()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if rig.screen == "Hello":
                    break
            assert rig.screen == "Hello"
            rig.hold()  # a new dictation cancels the stalled one
            rig.transcriber.gate.set()
            await rig.settle()
            assert rig.screen == "Hello"
            assert not any(r[2] == 0x2A for r in rig.device.reports)  # no Backspace at all
    run(go())


def test_double_press_after_cancel_deletes_exactly_what_the_host_got():
    async def go():
        import threading
        async with Rig([SPEECH, SPEECH, SPEECH], ["Hello new paragraph"]) as rig:
            rig.transcriber.gate = threading.Event()
            rig.transcriber.stall_after = 2
            rig.hold()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if rig.screen == "Hello":
                    break
            rig.tap()  # press while typing: cancel (and starts listening) ...
            rig.tap(time.monotonic() + 0.1)  # ... and the second press of a double: undo
            rig.transcriber.gate.set()
            await asyncio.sleep(0.3)
            await rig.settle()
            backspaces = sum(1 for r in rig.device.reports if r[2] == 0x2A)
            assert rig.screen == "" and backspaces == 5
    run(go())


def test_double_press_undo_works_with_spoken_commands_off():
    async def go():
        async with Rig([SPEECH] * 3, ["One.", "Two."], text__spoken_commands=False) as rig:
            rig.hold()
            await rig.settle()
            rig.hold()
            await rig.settle()
            assert rig.screen == "One. Two."
            await rig.double_press()
            assert rig.screen == "One."
    run(go())


def test_context_is_forgotten_after_idle_time():
    async def go():
        async with Rig([SPEECH] * 3, ["One.", "Two."], text__forget_after_s=0.3) as rig:
            rig.hold()
            await rig.settle()
            await asyncio.sleep(0.5)
            await rig.double_press()  # an undo after the pause deletes nothing: the cursor may have moved
            assert rig.screen == "One."
            rig.hold()
            await rig.settle()
            assert rig.screen == "One.Two."  # a new text: no joining space
    run(go())


def test_context_is_forgotten_when_the_host_reconnects():
    async def go():
        async with Rig([SPEECH] * 2, ["One.", "Two."]) as rig:
            rig.hold()
            await rig.settle()
            rig.device.unplug()
            await asyncio.sleep(0.4)
            rig.device.plug()
            await asyncio.sleep(0.4)
            rig.hold()
            await rig.settle()
            assert rig.screen == "One.Two."
    run(go())


def test_long_hold_opens_the_pairing_window_which_times_out():
    async def go():
        async with Rig([SPEECH], ["x"], button__pairing_hold_s=1.0) as rig:
            rig.controller.options.pairing_s = 0.3
            rig.button.press(time.monotonic())
            for _ in range(100):
                await asyncio.sleep(0.02)
                if rig.controller.state is State.PAIRING:
                    break
            rig.button.release(time.monotonic())
            assert rig.controller.state is State.PAIRING and rig.led.pattern is LedPattern.PAIRING
            assert rig.recorder.cancelled == 1
            await asyncio.sleep(0.6)
            assert rig.controller.state is State.READY
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


def test_long_hold_while_talking_is_a_long_dictation_not_pairing():
    """Holding past pairing_hold_s while speech is heard keeps dictating; the release types it."""
    async def go():
        async with Rig([SPEECH], ["A long sentence."], button__pairing_hold_s=1.0) as rig:
            rig.button.press(time.monotonic())
            for _ in range(50):
                await asyncio.sleep(0.02)
                if rig.controller.state is State.LISTENING:
                    break
            rig.recorder.sink_speech()  # the endpointer hears speech
            await asyncio.sleep(1.3)  # past pairing_hold_s
            assert rig.controller.state is State.LISTENING
            rig.button.release(time.monotonic())
            await rig.settle()
            assert rig.screen == "A long sentence."
    run(go())


def test_a_press_during_the_post_roll_does_not_jam_live_dictation():
    """Cancelled while the recorder was still finishing its post-roll: the live typing of that
    dictation must end too, or it keeps the pipeline forever."""
    async def go():
        async with Rig([SPEECH] * 3, ["Lost.", "Second.", "Third."]) as rig:
            rig.recorder.post_roll_s = 0.3
            rig.hold()
            await asyncio.sleep(0.1)  # released; the post-roll is still being recorded
            rig.hold()  # busy press: cancels the first and dictates again
            await rig.settle()
            rig.hold()
            await rig.settle()  # jammed, this would time out: the old typing task held the pipeline
            assert rig.screen.count(".") == 2 and rig.controller.state is State.READY
    run(go())


def test_after_an_undo_the_next_dictation_joins_with_a_space():
    async def go():
        async with Rig([SPEECH] * 4, ["One.", "Two.", "Three."]) as rig:
            rig.hold()
            await rig.settle()
            rig.hold()
            await rig.settle()
            await rig.double_press()
            assert rig.screen == "One."
            rig.hold()
            await rig.settle()
            assert rig.screen == "One. Three."
    run(go())


def test_two_undos_delete_two_dictations():
    async def go():
        async with Rig([SPEECH] * 5, ["One.", "Two."]) as rig:
            for _ in range(2):
                rig.hold()
                await rig.settle()
            for _ in range(2):
                await rig.double_press()
                await asyncio.sleep(0.3)
            assert rig.screen == ""
    run(go())


def test_host_back_after_the_give_up_is_seen_as_back():
    async def go():
        async with Rig([SPEECH], ["Dropped."], transport__give_up_s=0.1) as rig:
            rig.device.unplug()
            rig.hold()
            await rig.settle()
            rig.device.plug()
            await asyncio.sleep(0.6)
            assert rig.led.pattern is LedPattern.READY
            assert rig.controller._host_present
    run(go())


def test_a_release_after_the_speech_ended_skips_the_post_roll():
    """The post-roll catches a last syllable cut by an early release; when the VAD saw the speech
    end well before the release, it is skipped and the text comes that much sooner."""
    pytest.importorskip("piper")
    from appliance.audio.piper_source import synthesize
    from appliance.audio.vad import VoiceActivityDetector

    spoken = synthesize("Please type this sentence into the document.", deterministic=True)
    voiced_end = len(spoken) - int(VoiceActivityDetector().trailing_silence_s(spoken) * 16000)
    finished = np.concatenate([spoken, SILENCE])  # released a second after the last word
    cut_short = spoken[:voiced_end]               # released on the last voiced sound

    async def go():
        async with Rig([finished, cut_short], ["Please type this.", "Into the document."]) as rig:
            rig.hold()
            await rig.settle()
            rig.hold()
            await rig.settle()
            assert rig.recorder.post_rolls == [False, True]
            assert rig.screen == "Please type this. Into the document."
    run(go())
