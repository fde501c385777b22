"""Composition root of the appliance: builds the real (or simulated) adapters from the config and
joins them through the controller. The only module that knows every stage."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from appliance.config import Config
from appliance.controller import Controller, ControllerOptions, Stages
from appliance.hid.encoder import EncoderOptions, backspace_strokes, capslock_stroke, encode
from appliance.hid.layouts import Layout, load_layout
from appliance.hid.stroke import Stroke
from appliance.text.shaping import Shaper, ShapingOptions
from appliance.transport.base import HidDevice
from appliance.transport.typist import Typist, TypingOptions
from appliance.ui.gestures import GestureTiming
from appliance.ui.led import Led

log = logging.getLogger(__name__)


class LayoutEncoder:
    """The controller's view of the keystroke encoder: text -> strokes for one host layout."""

    def __init__(self, layout: Layout, options: EncoderOptions) -> None:
        self.layout = layout
        self.options = options

    def text(self, text: str) -> list[Stroke]:
        result = encode(text, self.layout, self.options)
        for skipped in result.skipped:
            log.info("not typed (%s) at %d", skipped.reason, skipped.index)
        return result.strokes

    def backspaces(self, n: int) -> list[Stroke]:
        return backspace_strokes(n)


class RecorderAdapter:
    """Adapts an ``appliance.audio`` source to the controller: cancel, and live frames for hands-free."""

    def __init__(self, source) -> None:
        self.source = source
        self._sub = None

    def start(self) -> None:
        self.source.start()

    def stop(self) -> np.ndarray:
        return self.source.stop()

    def check(self) -> None:
        """AudioError while the device is missing; re-open a dead or unplugged device when it is back."""
        if getattr(self.source, "failed", False):
            self.source.recover()
        else:
            self.source.open()

    def cancel(self) -> None:
        # The post-roll wait would block the loop: finish the utterance in the background and drop it.
        threading.Thread(target=self.source.stop, name="recorder-cancel", daemon=True).start()

    def live_frames(self, sink: Callable[[np.ndarray], None] | None) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if sink is None:
            return
        sub = self._sub = self.source.frames()

        def pump() -> None:
            for frame in sub:
                sink(frame)

        threading.Thread(target=pump, name="endpointer", daemon=True).start()


@dataclass
class Parts:
    """Everything built for one run (kept for the demo and tests)."""

    controller: Controller
    stages: Stages
    device: HidDevice


def shaping_options(config: Config) -> ShapingOptions:
    from appliance.text.shaping import Replacement

    return ShapingOptions(commands=config.text.spoken_commands,
                          vocabulary=tuple(config.text.vocabulary),
                          replacements=tuple(Replacement(k, v) for k, v in config.text.replacements.items()))


def build_transcriber(config: Config, gate=None):
    """The Whisper transcriber from ``stt.*`` (loads and warms the model: seconds)."""
    from appliance.stt.models import ModelStore, resolve_model
    from appliance.stt.whisper import WhisperSettings, WindowPolicy, WhisperTranscriber

    store_kw = {"allow_download": config.stt.allow_hub_download}
    if config.stt.model_dir:
        store_kw["model_dirs"] = (config.stt.model_dir,)
    if config.stt.cache_dir:
        store_kw["cache_dir"] = config.stt.cache_dir
    model = resolve_model(config.stt.model, ModelStore(**store_kw))
    settings = WhisperSettings(compute_type=config.stt.compute_type, threads=config.stt.threads,
                               window=WindowPolicy(mode="short" if config.stt.short_window else "padded"))
    return WhisperTranscriber(model, settings)


def build_gate(config: Config):
    from appliance.audio.vad import VoiceActivityDetector

    return VoiceActivityDetector(aggressiveness=config.vad.aggressiveness,
                                 min_speech_ms=config.vad.min_speech_ms)


def build(config: Config, *, recorder, transcriber, gate, device: HidDevice, led: Led,
          on_pairing: Callable[[], None] | None = None) -> Parts:
    """Join the stages through the controller."""
    from appliance.audio.vad import Endpointer

    layout = load_layout(config.keyboard.layout)
    encoder = LayoutEncoder(layout, EncoderOptions(unmapped=config.keyboard.unmapped,
                                                   host_os=config.keyboard.host_os,
                                                   allow_newline=config.keyboard.allow_newline,
                                                   allow_tab=config.keyboard.allow_tab))
    typist = Typist(device, TypingOptions(rate=config.transport.rate, give_up_s=config.transport.give_up_s,
                                          settle_s=config.transport.settle_s),
                    capslock=capslock_stroke())
    adapter = recorder if hasattr(recorder, "cancel") else RecorderAdapter(recorder)
    stages = Stages(
        recorder=adapter, gate=gate, transcriber=transcriber, shaper=Shaper(shaping_options(config)),
        encoder=encoder, typist=typist, led=led,
        endpointer_factory=lambda: Endpointer(gate, end_silence_ms=config.vad.endpoint_silence_ms,
                                              max_utterance_ms=int(config.audio.max_utterance_s * 1000)),
        live_frames=getattr(adapter, "live_frames", None))
    b = config.button
    controller = Controller(stages, ControllerOptions(
        timing=GestureTiming(hold_s=b.hold_s, double_press_s=b.double_press_s, pairing_hold_s=b.pairing_hold_s),
        busy_press=config.controller.busy_press), on_pairing=on_pairing)
    return Parts(controller=controller, stages=stages, device=device)


async def watchdog(notify: Callable[[str], None], controller: Controller, period_s: float) -> None:
    """Tell systemd we are alive while the loop turns (WatchdogSec in voicekey.service)."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(period_s)
