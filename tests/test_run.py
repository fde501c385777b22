"""``voicekey run --config FILE``: the exact function systemd starts, in-process, with a real config file,
the real Pi adapters (GpioButton and GpioLed on gpiozero's MockFactory pins, the sounddevice capture on
the fake audio backend, HidgDevice on a file standing in for /dev/hidg0), the real VAD and the real
tiny.en model. What reached the "host" is decoded with libxkbcommon, not with our own tables.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gpiozero")
pytest.importorskip("xkbcommon")
pytest.importorskip("faster_whisper")

from gpiozero.pins.mock import MockFactory  # noqa: E402

from appliance.audio.fakes import FakeAudioBackend, FakeDevice  # noqa: E402
from appliance.audio.format import FRAME_SAMPLES, SAMPLE_RATE  # noqa: E402
from appliance.cli import build_parser  # noqa: E402
from appliance.commands import run_cmd  # noqa: E402
from appliance.compose import PiHardware  # noqa: E402
from appliance.controller import State  # noqa: E402
from appliance.ui.input_key import FakeInputBackend, FakeInputDevice  # noqa: E402
from appliance.ui.led import LedPattern  # noqa: E402
from bench.wer import word_errors  # noqa: E402
from tests.oracle.xkb import decode_reports  # noqa: E402

pytestmark = pytest.mark.model

BUTTON, LED = 17, 27
PEDAL = "/dev/input/by-id/usb-Fake_foot_pedal-event-kbd"
SENTENCE = "The quick brown fox jumps over the lazy dog."
MAX_WER = 0.35
BACKSPACE = 0x2A


class Room:
    """The microphone's surroundings: plays silence, or a clip when asked, into the fake audio
    backend's open stream in real time (30 ms blocks), like a real microphone."""

    def __init__(self, backend: FakeAudioBackend) -> None:
        self.backend = backend
        self._queue: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.playing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="room", daemon=True)
        self._thread.start()

    def say(self, clip: np.ndarray) -> None:
        with self._lock:
            self._queue.append(clip)
        self.playing.set()

    def wait_said(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while self.playing.is_set() and time.monotonic() < end:
            time.sleep(0.01)

    def _run(self) -> None:
        block = FRAME_SAMPLES
        current = np.zeros(0, np.float32)
        next_t = time.monotonic()
        while not self._stop.is_set():
            if current.size == 0:
                with self._lock:
                    if self._queue:
                        current = self._queue.pop(0)
                    else:
                        self.playing.clear()
            chunk = current[:block] if current.size else np.zeros(block, np.float32)
            current = current[block:]
            if chunk.size < block:
                chunk = np.concatenate([chunk, np.zeros(block - chunk.size, np.float32)])
            stream = self.backend.streams[-1] if self.backend.streams else None
            if stream is not None and stream.active:
                stream.feed(chunk)
            next_t += block / SAMPLE_RATE
            time.sleep(max(0.0, next_t - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class Daemon:
    """``voicekey run --config FILE`` in a thread; the test drives the pins and the room."""

    def __init__(self, config: Path, hidg: Path, mic: FakeDevice, bluetooth_backend=None) -> None:  # noqa: ANN001
        self.factory = MockFactory()
        self.backend = FakeAudioBackend([mic])
        self.pedal = FakeInputDevice(("KEY_F13", "KEY_A"), name="Fake foot pedal")
        self.inputs = FakeInputBackend({PEDAL: self.pedal})
        self.room = Room(self.backend)
        self.hidg = hidg
        self.app = None
        self.exit_code: int | None = None
        started = threading.Event()

        def on_started(app) -> None:  # noqa: ANN001
            import asyncio

            self.app = app
            self.loop = asyncio.get_running_loop()
            started.set()

        args = build_parser("run").parse_args(["run", "--config", str(config)])
        hardware = PiHardware(pin_factory=self.factory, audio_backend=self.backend, input_backend=self.inputs,
                              bluetooth_backend=bluetooth_backend)

        def main() -> None:
            self.exit_code = run_cmd.run(args, hardware, on_started=on_started)

        self.thread = threading.Thread(target=main, name="voicekey-run", daemon=True)
        self.thread.start()
        assert started.wait(60), "voicekey run did not start"

    @property
    def controller(self):  # noqa: ANN201
        return self.app.controller

    def wait(self, cond, timeout: float = 60.0, what: str = "") -> None:  # noqa: ANN001
        end = time.monotonic() + timeout
        while not cond():
            assert self.thread.is_alive(), f"voicekey run exited ({self.exit_code}) while waiting for {what}"
            assert time.monotonic() < end, f"timed out waiting for {what}; state {self.controller.state}"
            time.sleep(0.02)

    def wait_state(self, *states: State, timeout: float = 60.0) -> None:
        self.wait(lambda: self.controller.state in states, timeout, f"state in {states}")

    def press(self) -> None:
        self.factory.pin(BUTTON).drive_low()  # pull-up button: pressed pulls the pin to ground

    def release(self) -> None:
        self.factory.pin(BUTTON).drive_high()

    def reports(self) -> list[bytes]:
        data = self.hidg.read_bytes() if self.hidg.exists() else b""
        return [data[i:i + 8] for i in range(0, len(data) - len(data) % 8, 8)]

    def typed(self) -> str:
        return decode_reports(self.reports(), "us")

    def dictations(self) -> int:
        return len(self.controller.records)

    def settle(self, records: int, timeout: float = 90.0) -> None:
        self.wait(lambda: self.dictations() >= records, timeout, f"{records} dictation(s)")
        self.wait(lambda: self.controller.state in (State.READY, State.ERROR, State.PAIRING) and not any(
            t is not None and not t.done() for t in [self.controller._work, *self.controller._work_queue]),
            timeout, "the dictation to be typed")

    def led(self) -> LedPattern | None:
        return self.app.led.pattern

    def stop(self) -> None:
        if self.app is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.app.stop)  # as SIGTERM does
        self.thread.join(20)
        self.room.close()
        assert not self.thread.is_alive(), "voicekey run did not stop"
        assert self.exit_code == 0


def _write_config(path: Path, **sections: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(sections))
    return path


def _base_config(tmp: Path, hidg: Path, **overrides: dict) -> dict:
    sections = {
        "button": {"pin": BUTTON, "hold_s": 0.4, "double_press_s": 0.3, "pairing_hold_s": 1.5},
        "led": {"pin": LED},
        "audio": {"device": "USB mic", "pre_roll_ms": 300, "post_roll_ms": 300},
        "vad": {"endpoint_silence_ms": 600},
        "stt": {"model": "tiny.en", "cache_dir": str(tmp / "model-cache")},
        "transport": {"device": str(hidg), "settle_s": 0.0, "rate": 0,
                      "configfs_root": str(tmp / "configfs"), "sysfs_root": str(tmp / "sys")},
        "controller": {"retry_s": 0.2},
        "trigger": {"device": PEDAL, "key": "KEY_F13"},
        "logging": {"level": "INFO"},
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return sections


@pytest.fixture(scope="module")
def sentence() -> np.ndarray:
    pytest.importorskip("piper")
    from appliance.audio.piper_source import synthesize

    return synthesize(SENTENCE, deterministic=True)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp("run")
    hidg = tmp / "hidg0"
    hidg.write_bytes(b"")
    config = _write_config(tmp / "voicekey.yaml", **_base_config(tmp, hidg))
    d = Daemon(config, hidg, FakeDevice("USB mic", samplerate=16000, channels=1))
    d.wait_state(State.READY, timeout=120)
    yield d
    d.stop()


def _check_typed(text: str) -> None:
    errors = word_errors(SENTENCE, text)
    assert errors.wer <= MAX_WER, f"typed {text!r} for {SENTENCE!r}: WER {errors.wer:.2f}"


def test_hold_to_talk_types_what_was_said(daemon: Daemon, sentence: np.ndarray) -> None:
    assert daemon.led() is LedPattern.READY
    before = daemon.dictations()
    daemon.press()
    daemon.wait_state(State.LISTENING, timeout=5)
    daemon.room.say(sentence)
    daemon.room.wait_said()
    daemon.release()
    daemon.settle(before + 1)
    _check_typed(daemon.typed())
    assert daemon.reports()[-1] == bytes(8)  # every burst ends with all keys up


def test_a_foot_pedal_key_is_a_second_button(daemon: Daemon, sentence: np.ndarray) -> None:
    typed_before = daemon.typed()
    before = daemon.dictations()
    daemon.pedal.press()
    daemon.wait_state(State.LISTENING, timeout=5)
    daemon.room.say(sentence)
    daemon.room.wait_said()
    daemon.pedal.release()
    daemon.settle(before + 1)
    _check_typed(daemon.typed()[len(typed_before):])
    assert daemon.pedal.grabbed  # its keys do nothing else on the Pi


LONG_TEXT = ("Live dictation types the words while you are still speaking. It waits for a pause, or for two "
             "guesses that agree, before a word goes out. Nothing that was typed is ever taken back, "
             "and the rest follows as soon as you let go of the button.")


def test_a_long_hold_is_typed_live_and_matches_the_batch_result(daemon: Daemon) -> None:
    from appliance.stt.whisper import WhisperTranscriber

    long_clip = __import__("appliance.audio.piper_source", fromlist=["synthesize"]).synthesize(
        LONG_TEXT, deterministic=True)
    typed_before = daemon.typed()
    before = daemon.dictations()
    daemon.press()
    daemon.wait_state(State.LISTENING, timeout=5)
    daemon.room.say(long_clip)
    daemon.room.wait_said(timeout=120)
    typed_while_speaking = daemon.typed()[len(typed_before):]
    daemon.release()
    daemon.settle(before + 1, timeout=180)
    record = daemon.controller.records[-1]
    live_text = daemon.typed()[len(typed_before):]
    assert typed_while_speaking.strip(), "nothing was typed before the release"
    assert live_text.startswith(typed_while_speaking)  # nothing typed was taken back
    assert not any(r[2] == BACKSPACE for r in daemon.reports()[-4 * len(live_text):])
    assert record.live is not None and record.live.words_live > 0
    batch = WhisperTranscriber("tiny.en").transcribe(long_clip).text
    errors = word_errors(batch, live_text)
    assert errors.wer <= 0.15, f"live {live_text!r} vs batch {batch!r}: WER {errors.wer:.2f}"
    assert word_errors(LONG_TEXT, live_text).wer <= MAX_WER


def test_tap_is_hands_free_and_ends_on_silence(daemon: Daemon, sentence: np.ndarray) -> None:
    typed_before = daemon.typed()
    before = daemon.dictations()
    daemon.press()
    time.sleep(0.05)
    daemon.release()  # a tap: hands-free, no second press
    daemon.wait(lambda: daemon.controller.mode.value == "hands_free", 5, "hands-free mode")
    daemon.room.say(sentence)  # ... then silence: the endpointer ends the dictation by itself
    daemon.settle(before + 1)
    added = daemon.typed()[len(typed_before):]
    assert added.startswith(" ")  # joins the previous dictation
    _check_typed(added)


def test_double_press_when_idle_deletes_the_last_dictation(daemon: Daemon) -> None:
    typed_before = daemon.typed()
    last = daemon.controller.records[-1].typed
    before = daemon.dictations()
    for _ in range(2):
        daemon.press()
        time.sleep(0.05)
        daemon.release()
        time.sleep(0.1)
    daemon.settle(before + 1)
    assert daemon.controller.records[-1].kind == "undo"
    assert daemon.typed() == typed_before[:len(typed_before) - len(last)]
    backspaces = sum(1 for r in daemon.reports() if r[2] == BACKSPACE)
    assert backspaces == len(last)


def test_double_press_cancels_a_hands_free_dictation(daemon: Daemon, sentence: np.ndarray) -> None:
    typed_before = daemon.typed()
    before = daemon.dictations()
    daemon.press()
    time.sleep(0.05)
    daemon.release()
    daemon.wait(lambda: daemon.controller.mode.value == "hands_free", 5, "hands-free mode")
    daemon.room.say(sentence[: SAMPLE_RATE])
    for _ in range(2):  # a double press while listening: cancel
        daemon.press()
        time.sleep(0.05)
        daemon.release()
        time.sleep(0.1)
    daemon.wait_state(State.READY, timeout=10)
    daemon.room.wait_said()
    time.sleep(1.0)  # no late dictation from the cancelled recording
    assert daemon.dictations() == before and daemon.typed() == typed_before


def test_long_hold_enters_pairing_mode(daemon: Daemon) -> None:
    daemon.press()
    daemon.wait_state(State.PAIRING, timeout=10)
    assert daemon.led() is LedPattern.PAIRING
    daemon.release()
    time.sleep(0.2)
    assert daemon.controller.state is State.PAIRING
    daemon.press()  # a press closes the window
    daemon.wait_state(State.READY, timeout=5)
    daemon.release()


def test_start_without_model_hid_device_or_microphone_shows_each_code_and_recovers(
        tmp_path: Path, sentence: np.ndarray) -> None:
    from appliance.stt.models import ModelStore, resolve_model

    hidg = tmp_path / "hidg0"  # not there yet: the gadget is not up
    model_dir = tmp_path / "models" / "tiny.en"  # not there yet either
    config = _write_config(tmp_path / "voicekey.yaml", **_base_config(
        tmp_path, hidg, stt={"model": str(model_dir)}))
    mic = FakeDevice("USB mic", samplerate=16000, channels=1, plugged=False)
    d = Daemon(config, hidg, mic)
    try:
        d.wait(lambda: d.controller.state is State.ERROR, 60, "the error state")
        assert d.thread.is_alive()  # no exit into a restart loop
        assert d.led() is LedPattern.ERROR_MODEL
        shutil.copytree(resolve_model("tiny.en", ModelStore()).path, model_dir)
        d.wait(lambda: d.led() is LedPattern.ERROR_MICROPHONE, 60, "the model to be loaded")
        mic.plugged = True
        d.backend.rescan()
        d.wait(lambda: d.led() is LedPattern.ERROR_HID, 30, "the microphone to be opened")
        hidg.write_bytes(b"")
        d.wait(lambda: d.led() is LedPattern.READY, 30, "the HID device to be opened")
        assert d.controller.state is State.READY
        d.press()
        d.wait_state(State.LISTENING, timeout=5)
        d.room.say(sentence)
        d.room.wait_said()
        d.release()
        d.settle(1)
        _check_typed(d.typed())
    finally:
        d.stop()


if os.environ.get("VOICEKEY_SKIP_MODEL_TESTS"):
    pytestmark = [pytestmark, pytest.mark.skip("VOICEKEY_SKIP_MODEL_TESTS set")]


def _voicekey(*args: str, stdin: str = "", timeout: float = 300):  # noqa: ANN202
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("voicekey")
    return subprocess.run([str(exe), *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_simulate_types_a_file_on_the_simulated_host(tmp_path: Path, sentence: np.ndarray) -> None:
    """``voicekey run --simulate``: Enter presses, Enter releases, end of input quits once typed."""
    import wave

    wav = tmp_path / "sentence.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(sentence, -1, 1) * 32767).astype("<i2").tobytes())
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("voicekey")
    proc = subprocess.Popen([str(exe), "run", "--simulate", "--audio", str(wav)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("\n")  # press ...
        proc.stdin.flush()
        time.sleep(len(sentence) / SAMPLE_RATE + 0.5)
        proc.stdin.write("\n")  # ... and release after the sentence: a hold
        proc.stdin.flush()
        out, err = proc.communicate(timeout=300)  # closes stdin: end of input, quit once typed
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    _check_typed(out.split("Ctrl-D quits.", 1)[1])


def test_demo_runs_the_whole_pipeline() -> None:
    result = _voicekey("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "host typed:" in result.stdout and "WER" in result.stdout
