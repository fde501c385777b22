"""Run the whole appliance in the QEMU test guest, with a mock GPIO button the test drives. Runs IN the guest.

Sub-commands (``python tests/vm/appliance_driver.py --help``):

``run``    build the appliance with the real composition (:func:`appliance.app.build`): the
           sounddevice capture of the snd-aloop loopback, the real VAD and Whisper transcriber, the
           real ``/dev/hidg0`` transport, a :class:`~appliance.ui.led.FakeLed`, and the button as
           :class:`~appliance.ui.button.GpioButton` on gpiozero's ``MockFactory``. Commands are read,
           one per line, from a FIFO (``--control``, created in the guest's tmpfs):

           ``press`` / ``release``  drive the mock pin low / high (the button is pull-up: low = pressed);
           after ``release`` the driver waits for the dictation to be typed and prints ``DONE {json}``;
           ``rate N``               type at most N reports per second from now on (0: unpaced);
           ``quit``                 stop the controller and exit.

           Output on stdout, one line each, flushed: ``READY {json}`` once the model is loaded and the
           capture stream is open (its device, native rate and channel count), ``STATE <state>`` on every
           controller state change, ``DONE {json}`` per dictation (typed text, transcript, timings).

``play``   play a WAV file into the loopback's playback side through sounddevice, at the rate and
           channel count the capture side was opened with (snd-aloop requires both sides to agree).
           Prints ``PLAYING {json}`` just before the (silent) lead-in starts and
           ``PLAYED {json}`` when the last sample has been played.

``device`` print the sounddevice names of the loopback's playback and capture devices as JSON.

snd-aloop pairs ``hw:<card>,0,<n>`` (playback) with ``hw:<card>,1,<n>`` (capture). PortAudio opens
``hw:<card>,<dev>`` with the first free substream, so with one capture and one player open they are
substream 0 of each side.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("appliance_driver")

BUTTON_PIN = 17
DEFAULT_CONTROL = Path("/tmp/voicekey-driver.ctl")


def _emit(tag: str, payload: object | None = None) -> None:
    line = tag if payload is None else f"{tag} {payload if isinstance(payload, str) else json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def loopback_card(proc_cards: Path = Path("/proc/asound/cards")) -> int:
    """Index of the snd-aloop card (``Loopback``) in ``/proc/asound/cards``.

    Raises RuntimeError saying how to get one when the module is not loaded.
    """
    try:
        text = proc_cards.read_text()
    except FileNotFoundError as exc:
        raise RuntimeError(f"{proc_cards} does not exist: ALSA is not in this kernel") from exc
    for line in text.splitlines():
        match = re.match(r"\s*(\d+)\s+\[Loopback\s*\]", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"no Loopback card in {proc_cards} (is snd-aloop loaded? the guest's /init "
                       f"loads it from tests/vm/build_guest.py WANTED_MODULES):\n{text}")


def loopback_devices() -> dict[str, str]:
    """sounddevice names of the loopback's playback (device 0) and capture (device 1) sides."""
    card = loopback_card()
    return {"playback": f"Loopback: PCM (hw:{card},0)", "capture": f"Loopback: PCM (hw:{card},1)"}


# --- run ---------------------------------------------------------------------------------------

def _config(args: argparse.Namespace):  # noqa: ANN202 - appliance.config.Config
    from appliance.config import Config

    config = Config()
    return dataclasses.replace(
        config,
        keyboard=dataclasses.replace(config.keyboard, layout=args.layout),
        transport=dataclasses.replace(config.transport, rate=args.rate),
        stt=dataclasses.replace(config.stt, model=args.model),
        # Under TCG a guest stall can stretch a 5 s hold past the 8 s pairing hold; this test is
        # about dictation, so the pairing gesture is moved out of the way.
        button=dataclasses.replace(config.button, pairing_hold_s=args.pairing_hold_s),
        led=dataclasses.replace(config.led, pin=None))


class _StatusCounter(logging.Handler):
    """Collects the capture's PortAudio status messages (input overflow = audio lost)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("audio status"):
            self.messages.append(record.getMessage())

    def take(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.messages:
            counts[message] = counts.get(message, 0) + 1
        self.messages = []
        return counts


class _FixedRateBackend:
    """The real sounddevice backend, reporting ``rate`` as every input's default sample rate.

    :class:`SoundDeviceSource` opens a device at its default rate (44.1 kHz for snd-aloop) and
    resamples to 16 kHz in the audio callback; in the emulated guest that is slower than real time
    and PortAudio reports input overflows. snd-aloop takes any rate, so the guest opens it at
    ``rate`` instead (16 kHz: no resampling), with a ``latency`` s ALSA buffer. Otherwise this is
    the real backend.
    """

    def __init__(self, rate: int, latency: float) -> None:
        from appliance.audio.capture import SoundDeviceBackend

        self.real = SoundDeviceBackend()
        self.rate = rate
        self.latency = latency

    def _fix(self, info):  # noqa: ANN001, ANN202 - InputDeviceInfo
        return dataclasses.replace(info, default_samplerate=float(self.rate))

    def query_input(self, device):  # noqa: ANN001, ANN201
        return self._fix(self.real.query_input(device))

    def list_inputs(self):  # noqa: ANN201
        return [self._fix(info) for info in self.real.list_inputs()]

    def open_input(self, *, device, samplerate, channels, blocksize, callback,  # noqa: ANN001, ANN201
                   finished_callback):
        # As SoundDeviceBackend.open_input, plus a large ALSA buffer: the emulated guest's vCPU is
        # descheduled for long stretches, and PortAudio's default low-latency buffer overflows then.
        sd = self.real.sd
        try:
            return sd.InputStream(device=device, samplerate=samplerate, channels=channels,
                                  dtype="float32", blocksize=blocksize, callback=callback,
                                  finished_callback=finished_callback, latency=self.latency)
        except sd.PortAudioError as exc:
            raise OSError(str(exc)) from exc

    def rescan(self) -> None:
        self.real.rescan()


class _SavingSource:
    """Wraps the capture source: each utterance is also written to a WAV file (for diagnosis).

    Everything else is delegated, so ``RecorderAdapter`` drives the real source unchanged.
    """

    def __init__(self, source: object, save_dir: Path | None) -> None:
        self.source = source
        self.save_dir = save_dir
        self.count = 0
        self.last_s = 0.0
        self.last_path: str | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.source, name)

    def stop(self):  # noqa: ANN201 - np.ndarray
        audio = self.source.stop()
        self.count += 1
        self.last_s = round(audio.size / 16000, 3)
        if self.save_dir is not None:
            import wave

            import numpy as np

            path = self.save_dir / f"utterance-{os.getpid()}-{self.count}.wav"
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16000)
                out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
            self.last_path = str(path)
        return audio


async def _run(args: argparse.Namespace) -> int:
    from gpiozero.pins.mock import MockFactory

    from appliance.app import RecorderAdapter, build, build_gate, build_transcriber
    from appliance.audio.capture import SoundDeviceSource
    from appliance.audio.source import CaptureOptions
    from appliance.gadget.configfs import Gadget
    from appliance.transport.usb import HidgDevice
    from appliance.ui.button import EdgeQueue, GpioButton
    from appliance.ui.led import FakeLed

    config = _config(args)
    capture_name = args.capture or loopback_devices()["capture"]
    t0 = time.monotonic()
    transcriber = await asyncio.to_thread(build_transcriber, config)
    model_s = time.monotonic() - t0
    options = CaptureOptions(pre_roll_ms=config.audio.pre_roll_ms, post_roll_ms=config.audio.post_roll_ms,
                             max_utterance_s=config.audio.max_utterance_s)
    # The stall detector would re-open the stream whenever the (slow, emulated) guest starves the
    # audio thread for 2 s; this test is about the pipeline, not about microphone unplugs.
    backend = _FixedRateBackend(args.capture_rate, args.capture_latency) if args.capture_rate else None
    source = SoundDeviceSource(capture_name, options, backend=backend, channels=args.channels,
                               block_ms=args.block_ms, stall_timeout_s=None)
    source.open()
    overflows = _StatusCounter()
    logging.getLogger("appliance.audio.capture").addHandler(overflows)
    logging.getLogger("appliance.audio.capture").setLevel(logging.DEBUG)
    saving = _SavingSource(source, args.save_dir)
    gadget = Gadget(config.transport.configfs_root, config.transport.sysfs_root)
    device = HidgDevice(args.hidg, udc_state_file=gadget.udc_state_file())
    edges = EdgeQueue()
    factory = MockFactory()
    button = GpioButton(BUTTON_PIN, edges, pull_up=config.button.pull_up,
                        bounce_s=config.button.bounce_s, pin_factory=factory)
    pin = factory.pin(BUTTON_PIN)
    parts = build(config, recorder=RecorderAdapter(saving), transcriber=transcriber,
                  gate=build_gate(config), device=device, led=FakeLed())
    controller = parts.controller
    loop = asyncio.get_running_loop()

    async def report_states() -> None:
        while True:
            state = await controller.state_changes.get()
            _emit("STATE", state.value)

    async def report_done(before: int) -> None:
        deadline = time.monotonic() + 30
        while len(controller.records) <= before:  # the release edge becomes a record
            if time.monotonic() > deadline:
                _emit("DONE", {"error": "the release did not end a dictation", "state": controller.state.value})
                return
            await asyncio.sleep(0.02)
        await controller.idle()
        record = controller.records[-1]
        transcript = record.transcript
        _emit("DONE", {
            "n": len(controller.records), "typed": record.typed, "cancelled": record.cancelled,
            "captured_s": saving.last_s, "captured_wav": saving.last_path,
            "audio_status_messages": overflows.take(),
            "transcript": transcript.text if transcript else None,
            "dropped": transcript.dropped if transcript else None,
            "audio_s": transcript.audio_s if transcript else None,
            "transcribe_ms": transcript.timings.total_ms if transcript else None,
            "release_to_first_key_ms": (1000 * (record.first_key_at - record.released_at)
                                        if record.first_key_at is not None else None),
            "release_to_done_ms": 1000 * (controller.clock() - record.released_at),
        })

    def command(line: str) -> None:  # the FIFO reader thread
        word, _, rest = line.strip().partition(" ")
        if word == "press":
            pin.drive_low()
        elif word == "release":
            before = len(controller.records)
            pin.drive_high()
            asyncio.run_coroutine_threadsafe(report_done(before), loop)
        elif word == "rate":
            typist = parts.stages.typist
            typist.options = dataclasses.replace(typist.options, rate=float(rest))
            _emit("OK", f"rate {typist.options.rate:g}")
        elif word == "quit":
            loop.call_soon_threadsafe(controller.stop)
        elif word:
            _emit("ERROR", f"unknown command {word!r}")

    def read_commands() -> None:
        # O_RDWR: the FIFO never reports end-of-file when a writer closes it.
        with open(os.open(args.control, os.O_RDWR), encoding="utf-8") as fifo:
            for line in fifo:
                command(line)

    args.control.unlink(missing_ok=True)
    os.mkfifo(args.control)
    threading.Thread(target=read_commands, name="driver-commands", daemon=True).start()
    states = asyncio.create_task(report_states())
    overflows.take()  # count from here on
    _emit("READY", {"capture": capture_name, "rate": source.native_rate, "channels": source.channels,
                    "model": config.stt.model, "model_load_s": round(model_s, 2), "pid": os.getpid()})
    try:
        await controller.run(edges.queue)
    finally:
        states.cancel()
        button.close()
        device.close()
        source.close()
        args.control.unlink(missing_ok=True)
    return 0


# --- play --------------------------------------------------------------------------------------

def play(args: argparse.Namespace) -> int:
    """The ``play`` sub-command (see the module docstring)."""
    import numpy as np
    import sounddevice as sd

    from appliance.audio.files import load_audio

    samples = load_audio(args.wav, sample_rate=args.rate)
    lead = np.zeros(int(args.lead_s * args.rate), dtype=np.float32)
    tail = np.zeros(int(args.tail_s * args.rate), dtype=np.float32)
    mono = np.concatenate([lead, samples, tail]).astype(np.float32)
    frames = np.repeat(mono[:, None], args.channels, axis=1)
    device = args.device or loopback_devices()["playback"]
    sd.check_output_settings(device=device, channels=args.channels, samplerate=args.rate)
    # The caller presses the button when it sees this; the leading silence covers its latency.
    _emit("PLAYING", {"device": device, "lead_s": args.lead_s})
    t0 = time.monotonic()
    sd.play(frames, samplerate=args.rate, device=device, blocking=True, latency="high")
    _emit("PLAYED", {"device": device, "seconds": round(frames.shape[0] / args.rate, 3),
                     "wall_s": round(time.monotonic() - t0, 3)})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG (transcripts too)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the appliance; commands come from the --control FIFO")
    run.add_argument("--control", type=Path, default=DEFAULT_CONTROL,
                     help="FIFO to create for commands (default: %(default)s)")
    run.add_argument("--capture", default=None,
                     help="sounddevice capture device (default: the snd-aloop capture side)")
    run.add_argument("--hidg", type=Path, default=Path("/dev/hidg0"), help="HID gadget device")
    run.add_argument("--layout", default="us", help="host keyboard layout (default: %(default)s)")
    run.add_argument("--model", default="tiny.en", help="Whisper model (default: %(default)s)")
    run.add_argument("--rate", type=float, default=1000.0,
                     help="reports per second at most (default: %(default)s)")
    run.add_argument("--channels", type=int, default=1,
                     help="capture channels (the player must use the same; default: %(default)s)")
    run.add_argument("--capture-rate", type=int, default=None,
                     help="open the capture at this rate instead of its default (16000: no resampling)")
    run.add_argument("--capture-latency", type=float, default=1.0,
                     help="with --capture-rate: ALSA buffer in seconds (default: %(default)s)")
    run.add_argument("--block-ms", type=int, default=30,
                     help="capture block length in ms (default: %(default)s, as the daemon)")
    run.add_argument("--save-dir", type=Path, default=None,
                     help="write each captured utterance as a WAV file here (diagnosis)")
    run.add_argument("--pairing-hold-s", type=float, default=30.0,
                     help="button hold that starts Bluetooth pairing (default: %(default)s)")
    pl = sub.add_parser("play", help="play a WAV file into the snd-aloop playback side")
    pl.add_argument("wav", type=Path)
    pl.add_argument("--rate", type=int, required=True, help="sample rate of the capture side")
    pl.add_argument("--channels", type=int, required=True, help="channels of the capture side")
    pl.add_argument("--device", default=None, help="sounddevice playback device (default: the loopback's)")
    pl.add_argument("--lead-s", type=float, default=1.0,
                    help="silence before the clip, after PLAYING is printed (default: %(default)s)")
    pl.add_argument("--tail-s", type=float, default=0.3, help="silence after the clip (default: %(default)s)")
    sub.add_parser("device", help="print the loopback's playback and capture device names")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "run":
        return asyncio.run(_run(args))
    if args.cmd == "play":
        return play(args)
    _emit(json.dumps(loopback_devices()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
