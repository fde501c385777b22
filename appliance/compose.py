"""The composition root: the one place that builds every stage and adapter and knows their order.

    config + hardware factory -> Appliance (supervised parts, dictation pipeline, controller)

``voicekey run`` (the systemd service) builds :class:`Appliance` with :class:`PiHardware`;
``voicekey run --simulate`` and ``voicekey demo`` with :class:`SimulatedHardware`; the tests with
fakes handed in through the same hardware interface. Nothing else wires stages.

The hardware factory makes the adapters at the edges (GPIO button and LED, input-device trigger,
microphone, HID device, speech model). Each may fail, at start or later: the part is then a fault
(the controller shows its blink code), retried every ``controller.retry_s``, and the device recovers
without a restart when the part is back.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance import service
from appliance.config import Config, ConfigIssue
from appliance.controller import Controller, ControllerOptions, Stages, State
from appliance.dictation import DictationPipeline, PipelineOptions
from appliance.errors import ButtonError, ModelError, TransportError
from appliance.hid.encoder import EncoderOptions, backspace_strokes, capslock_stroke, encode
from appliance.hid.layouts import Layout, load_layout
from appliance.hid.stroke import Stroke
from appliance.live import LiveOptions
from appliance.parts import Part, Supervisor
from appliance.stt.base import SpeechGate, Transcriber
from appliance.text.shaping import Replacement, Shaper, ShapingOptions
from appliance.transport.base import HidDevice
from appliance.transport.slot import HidSlot
from appliance.transport.typist import Typist, TypingOptions
from appliance.ui.button import EdgeQueue
from appliance.ui.gestures import GestureTiming
from appliance.ui.led import FakeLed, Led, LedPattern

log = logging.getLogger(__name__)


# ---- stage adapters ----------------------------------------------------------------------------
class LayoutEncoder:
    """The pipeline's view of the keystroke encoder: text -> strokes for one host layout."""

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
    """Adapts an ``appliance.audio`` source to the controller: cancel, health, live frames."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._sub: Any = None

    def start(self) -> None:
        self.source.start()

    def stop(self, post_roll: bool = True) -> np.ndarray:
        return self.source.stop(post_roll)

    def snapshot(self) -> np.ndarray:
        return self.source.snapshot()

    def check(self) -> None:
        """AudioError while the device is missing; re-open a dead or unplugged device when it is back."""
        if getattr(self.source, "failed", False):
            self.source.recover()
        else:
            self.source.open()

    def cancel(self) -> None:
        # Drop it at once (no post-roll wait): a stop() left running in the background would take
        # the frames of the next recording when it ends.
        self.source.cancel()

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

    def close(self) -> None:
        self.source.close()


# ---- options from the config (each setting is defined once, in appliance/config.py) -------------
def shaping_options(config: Config) -> ShapingOptions:
    return ShapingOptions(commands=config.text.spoken_commands,
                          vocabulary=tuple(config.text.vocabulary),
                          replacements=tuple(Replacement(k, v) for k, v in config.text.replacements.items()),
                          numbers_min=config.text.numbers_min,
                          enter_after=config.text.enter_after)


def encoder_options(config: Config) -> EncoderOptions:
    k = config.keyboard
    return EncoderOptions(unmapped=k.unmapped, host_os=k.host_os, allow_newline=k.allow_newline,
                          allow_tab=k.allow_tab)


def typing_options(config: Config) -> TypingOptions:
    t = config.transport
    return TypingOptions(rate=t.rate, give_up_s=t.give_up_s, settle_s=t.settle_s)


def capture_options(config: Config):  # noqa: ANN201 - appliance.audio.source.CaptureOptions
    from appliance.audio.source import CaptureOptions

    a = config.audio
    return CaptureOptions(pre_roll_ms=a.pre_roll_ms, post_roll_ms=a.post_roll_ms,
                          max_utterance_s=a.max_utterance_s)


def live_options(config: Config) -> LiveOptions:
    v = config.live
    return LiveOptions(enabled=v.enabled, after_s=v.after_s, pause_ms=v.pause_ms, pass_s=v.pass_s)


def build_gate(config: Config) -> SpeechGate:
    from appliance.audio.vad import VoiceActivityDetector

    return VoiceActivityDetector(aggressiveness=config.vad.aggressiveness,
                                 min_speech_ms=config.vad.min_speech_ms)


def build_transcriber(config: Config) -> Transcriber:
    """The Whisper transcriber from ``stt.*`` and ``text.vocabulary`` (loads and warms the model)."""
    from appliance.stt.models import ModelStore, resolve_model
    from appliance.stt.whisper import WhisperTranscriber, settings_from_config

    store_kw: dict[str, Any] = {"allow_download": config.stt.allow_hub_download}
    if config.stt.model_dir:
        store_kw["model_dirs"] = (config.stt.model_dir,)
    if config.stt.cache_dir:
        store_kw["cache_dir"] = config.stt.cache_dir
    model = resolve_model(config.stt.model, ModelStore(**store_kw))
    return WhisperTranscriber(model, settings_from_config(config.stt, config.text))


# ---- hardware factories ------------------------------------------------------------------------
class Closeable(Protocol):
    def close(self) -> None: ...


class Hardware(Protocol):
    """Makes the adapters at the hardware edges. Any method may raise (a missing or broken part)."""

    def led(self, config: Config) -> Led: ...

    def button(self, config: Config, edges: EdgeQueue) -> Closeable | None:
        """The push button, delivering edges (None: the device has none)."""

    def trigger(self, config: Config, edges: EdgeQueue) -> Closeable | None:
        """The input-device key (``trigger.*``; None when not configured)."""

    def microphone(self, config: Config) -> RecorderAdapter: ...

    def hid_device(self, config: Config) -> HidDevice: ...

    def transcriber(self, config: Config) -> Transcriber: ...

    def gate(self, config: Config) -> SpeechGate: ...


class PiHardware:
    """The real device: gpiozero pins, evdev input devices, sounddevice, ``/dev/hidg0``, Whisper.

    ``pin_factory`` (gpiozero), ``audio_backend`` (appliance.audio.capture) and ``input_backend``
    (appliance.ui.input_key) default to the real ones; tests pass gpiozero's ``MockFactory`` and the
    audio/input fakes to run this same class."""

    def __init__(self, *, pin_factory: Any = None, audio_backend: Any = None, input_backend: Any = None,
                 bluetooth_backend: Callable[[Config], tuple[Any, Any]] | None = None) -> None:
        """``bluetooth_backend(config) -> (bluez, links)`` defaults to BlueZ over D-Bus and real
        L2CAP sockets (tests pass ``appliance.transport.bt_fake``'s)."""
        self.pin_factory = pin_factory
        self.audio_backend = audio_backend
        self.input_backend = input_backend
        self.bluetooth_backend = bluetooth_backend

    def led(self, config: Config) -> Led:
        if config.led.pin is None:
            return FakeLed()
        from appliance.ui.led import GpioLed

        return GpioLed(config.led.pin, config.led.active_high, pin_factory=self.pin_factory)

    def button(self, config: Config, edges: EdgeQueue) -> Closeable | None:
        from appliance.ui.button import GpioButton

        b = config.button
        return GpioButton(b.pin, edges, pull_up=b.pull_up, bounce_s=b.bounce_s, pin_factory=self.pin_factory)

    def trigger(self, config: Config, edges: EdgeQueue) -> Closeable | None:
        if config.trigger.device is None:
            return None
        from appliance.ui.input_key import InputKeyButton

        t = config.trigger
        return InputKeyButton(t.device, t.key, edges, grab=t.grab, backend=self.input_backend)

    def microphone(self, config: Config) -> RecorderAdapter:
        from appliance.audio.capture import SoundDeviceSource

        from appliance.audio.capture import SoundDeviceBackend

        a = config.audio
        backend = self.audio_backend if self.audio_backend is not None else SoundDeviceBackend(a.latency_s)
        return RecorderAdapter(SoundDeviceSource(a.device, capture_options(config), backend=backend,
                                                 rate=a.sample_rate, block_ms=a.block_ms,
                                                 stall_timeout_s=a.stall_timeout_s))

    def hid_device(self, config: Config) -> HidDevice:
        kind = config.transport.kind
        if kind == "bluetooth":
            return self._bluetooth(config)
        if kind == "auto":
            from appliance.transport.auto import AutoHid

            return AutoHid(lambda: self._usb(config), self._bluetooth(config))
        return self._usb(config)

    def _bluetooth(self, config: Config) -> HidDevice:
        from appliance.transport.bluetooth import BluetoothHid, BluetoothOptions, LastHost

        b = config.bluetooth
        if self.bluetooth_backend is not None:
            bluez, links = self.bluetooth_backend(config)
        else:
            from appliance.transport.bluez import BluezDbus
            from appliance.transport.l2cap import L2capLinks

            bluez, links = BluezDbus(b.adapter), L2capLinks()
        options = BluetoothOptions(name=b.name, pairing_s=config.controller.pairing_s,
                                   connect_timeout_s=b.reconnect_timeout_s)
        return BluetoothHid(bluez, links, LastHost(b.state_dir / f"last-host-{b.adapter}"), options)

    def _usb(self, config: Config) -> HidDevice:
        t = config.transport
        from appliance.gadget.configfs import Gadget
        from appliance.transport.usb import HidgDevice

        gadget = Gadget(t.configfs_root, t.sysfs_root)
        state_file = gadget.udc_state_file()
        if state_file is None and Path(t.device).is_char_device():
            # /dev/hidg0 exists before `gadget up` binds it: without the UDC's state the device
            # could not tell a host that is away from one that is there. Try again later.
            raise TransportError(f"{t.device} exists but the gadget is not bound to a USB controller yet",
                                 fix="`sudo voicekey gadget up` (voicekey-gadget.service does it at boot)")
        return HidgDevice(t.device, udc_state_file=state_file)

    def transcriber(self, config: Config) -> Transcriber:
        return build_transcriber(config)

    def gate(self, config: Config) -> SpeechGate:
        return build_gate(config)


class SimulatedHardware(PiHardware):
    """A dev machine (``voicekey run --simulate``, ``voicekey demo``): a simulated host that prints
    what it receives, the LED as log lines, and the button on the terminal (Enter toggles it) or
    driven by the caller (``button="none"``; push edges into :attr:`Appliance.edges`).

    ``audio``: ``"mic"`` (the default microphone), a file path, ``"say:TEXT"`` (Piper TTS), or a
    float32 16 kHz array played once per dictation."""

    def __init__(self, audio: str | np.ndarray = "mic", *, button: str = "terminal",
                 echo: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.audio = audio
        self.button_kind = button
        self.echo = echo
        self.host: Any = None
        self.on_end_of_input: Callable[[], None] | None = None
        """Called (from the terminal thread) when the terminal button's input ends (Ctrl-D)."""

    def led(self, config: Config) -> Led:
        return FakeLed()

    def button(self, config: Config, edges: EdgeQueue) -> Closeable | None:
        if self.button_kind == "terminal":
            return TerminalButton(edges, on_end=lambda: self.on_end_of_input and self.on_end_of_input())
        return None

    def trigger(self, config: Config, edges: EdgeQueue) -> Closeable | None:
        return None

    def microphone(self, config: Config) -> RecorderAdapter:
        from appliance.audio.source import ArraySource

        audio = self.audio
        if isinstance(audio, np.ndarray):
            return RecorderAdapter(ArraySource([audio] * 100, options=capture_options(config)))
        if audio == "mic":
            return super().microphone(config)
        if audio.startswith("say:"):
            from appliance.audio.piper_source import synthesize

            clip = synthesize(audio[4:])
        else:
            from appliance.audio.files import load_audio

            clip = load_audio(audio)
        return RecorderAdapter(ArraySource([clip] * 100, options=capture_options(config)))

    def hid_device(self, config: Config) -> HidDevice:
        from appliance.transport.simulated import SimulatedHost

        self.host = SimulatedHost(load_layout(config.keyboard.layout), echo=self.echo)
        return self.host


class TerminalButton:
    """Enter on the terminal toggles the button (press, release); end of input releases it."""

    def __init__(self, edges: EdgeQueue, stream: Any = None, on_end: Callable[[], object] | None = None) -> None:
        stream = stream if stream is not None else sys.stdin

        def reader() -> None:
            down = False
            for _ in stream:
                down = not down
                edges.push(down)
            if down:
                edges.push(False)
            if on_end is not None:
                on_end()

        threading.Thread(target=reader, name="terminal-button", daemon=True).start()

    def close(self) -> None:
        pass


# ---- the appliance -----------------------------------------------------------------------------
def _button_check(button: Any) -> None:
    failed = getattr(button, "failed", None)
    if failed:
        raise failed if isinstance(failed, BaseException) else ButtonError(str(failed))


def _close(thing: Any) -> None:
    close = getattr(thing, "close", None)
    if close is not None:
        close()


class Appliance:
    """Everything one run of the device is made of; ``await run()`` until :meth:`stop`.

    Build it inside the event loop (the LED plays its patterns on it)."""

    def __init__(self, config: Config, hardware: Hardware, *, config_issues: Sequence[ConfigIssue] = (),
                 notify: Callable[[str], object] = service.notify, watchdog_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.hardware = hardware
        self.config_issues = list(config_issues)
        self.notify = notify
        self.watchdog_s = watchdog_s
        self.clock = clock
        self.startup_wait_s = 60.0
        """At most this long before READY=1 (the unit's TimeoutStartSec is 120 s)."""
        self.edges = EdgeQueue()
        try:
            self.led = hardware.led(config)
        except Exception as exc:  # noqa: BLE001 - no LED is no reason not to type
            log.error("status LED unusable, running without it: %s", exc)
            self.led = FakeLed()
        self.led.show(LedPattern.STARTING)
        self.recorder = hardware.microphone(config)
        self.vad = build_gate(config)
        """The real VAD for what is heard live (pauses, end of speech); its state lives in its users."""
        self.parts = self._parts()
        typist = Typist(HidSlot(self.parts["hid"]), typing_options(config), capslock=capslock_stroke())
        self.pipeline = DictationPipeline(
            gate=hardware.gate(config), transcriber=self._transcriber,
            shaper=Shaper(shaping_options(config)),
            encoder=LayoutEncoder(load_layout(config.keyboard.layout), encoder_options(config)),
            typist=typist, options=PipelineOptions(forget_after_s=config.text.forget_after_s,
                                                  post_roll_unless_silent_ms=config.audio.post_roll_unless_silent_ms),
            clock=clock,
            live=live_options(config), trailing_silence=self.vad.trailing_silence_s)
        self.controller = Controller(Stages(
            recorder=self.recorder, pipeline=self.pipeline, typist=typist, led=self.led,
            endpointer_factory=self._endpointer, live_frames=self.recorder.live_frames,
            faults=self.parts.faults,
            pairing=self._pairing if config.transport.kind != "usb" else None,
            forget_all=self._forget_all if config.transport.kind != "usb" else None,
        ), ControllerOptions(
            timing=GestureTiming(hold_s=config.button.hold_s, double_press_s=config.button.double_press_s,
                                 pairing_hold_s=config.button.pairing_hold_s),
            busy_press=config.controller.busy_press, pairing_s=config.controller.pairing_s,
        ), clock=clock)
        self._stopped = asyncio.Event()

    def _parts(self) -> Supervisor:
        config, hw, edges = self.config, self.hardware, self.edges
        parts: list[Part] = [
            Part("speech model", LedPattern.ERROR_MODEL, open=lambda: hw.transcriber(config)),
            Part("microphone", LedPattern.ERROR_MICROPHONE, open=self._open_microphone,
                 check=lambda r: r.check()),
            Part("hid", LedPattern.ERROR_HID, open=self._open_hid,
                 check=lambda d: getattr(d, "check", lambda: None)(), close=_close, blocks_dictation=False,
                 inline=True, check_while_busy=True),
            Part("button", LedPattern.ERROR_BUTTON, open=lambda: hw.button(config, edges) or _Absent(),
                 check=_button_check, close=_close, blocks_dictation=False),
        ]
        if config.trigger.device is not None:
            parts.append(Part("trigger", LedPattern.ERROR_BUTTON, open=lambda: hw.trigger(config, edges),
                              check=_button_check, close=_close, blocks_dictation=False))
        busy = (State.LISTENING, State.TRANSCRIBING, State.TYPING)
        return Supervisor(parts, retry_s=config.controller.retry_s,
                          busy=lambda: self.controller.state in busy)

    def _open_hid(self) -> HidDevice:
        device = self.hardware.hid_device(self.config)
        if hasattr(device, "pairing"):  # Bluetooth: a host that paired and connected ends the window
            device.on_pairing_closed = lambda: self.controller.pairing_closed()  # type: ignore[attr-defined]
        return device

    def _bluetooth_device(self) -> Any:
        device = self.parts["hid"].value
        if device is None or not hasattr(device, "pairing"):
            log.warning("Bluetooth is not set up (yet): see the HID part's error")
            return None
        return device

    def _pairing(self, open_: bool) -> None:
        device = self._bluetooth_device()
        if device is not None:
            device.pairing(open_)

    def _forget_all(self) -> None:
        device = self._bluetooth_device()
        if device is not None:
            device.forget_all()

    def _open_microphone(self) -> RecorderAdapter:
        self.recorder.check()
        return self.recorder

    def _transcriber(self) -> Transcriber:
        model = self.parts["speech model"].value
        if model is None:
            raise ModelError("the speech model is not loaded", fix="see the error logged when it was loaded")
        return model

    def _endpointer(self) -> object:
        from appliance.audio.vad import Endpointer

        return Endpointer(self.vad, end_silence_ms=self.config.vad.endpoint_silence_ms,  # type: ignore[arg-type]
                          max_utterance_ms=int(self.config.audio.max_utterance_s * 1000))

    async def run(self) -> None:
        """Open the parts, tell systemd we are up, and serve until :meth:`stop`. Never raises for a
        failing part: that is shown, retried and recovered from."""
        watchdog = None
        try:
            # systemd waits TimeoutStartSec (120 s) for READY: a slower first model load goes on
            # after it, shown as "starting" (a model download or a big model on a Zero 2 W)
            await self.parts.first_round(timeout_s=self.startup_wait_s)
            self.parts.start()
            if self.config_issues:
                self.controller.show_error(LedPattern.ERROR_CONFIG, f"{len(self.config_issues)} config issue(s); "
                                           "running on defaults for them (see `voicekey doctor`)")
            faults = self.parts.faults()
            self.notify("READY=1")
            self.notify("STATUS=" + ("ready" if not faults else
                                     "waiting for: " + ", ".join(f.part for f in faults)))
            if self.watchdog_s:
                watchdog = asyncio.get_running_loop().create_task(self._watchdog(self.watchdog_s))
            await self.controller.run(self.edges.queue)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            await self.parts.stop()
            _close(self.recorder)
            self.led.close()

    def stop(self) -> None:
        self.controller.stop()

    async def stop_when_idle(self) -> None:
        """Stop once the dictations in progress are typed (the simulator's end of input)."""
        await asyncio.sleep(0.2)  # let the last edges reach the controller
        await self.controller.idle()
        self.stop()

    async def _watchdog(self, period_s: float) -> None:
        """Feed systemd's watchdog only while the controller loop keeps turning."""
        while True:
            stalled = self.clock() - self.controller.last_tick
            if stalled < max(2 * period_s, 2.0):
                self.notify("WATCHDOG=1")
            else:
                log.error("controller loop stalled for %.0f s: not feeding the watchdog", stalled)
            await asyncio.sleep(period_s)


class _Absent:
    """Stands for a part the hardware does not have (e.g. the simulator's button)."""

    def close(self) -> None:
        pass
