"""``voicekey run`` (the daemon, or ``--simulate`` on a dev machine) and ``voicekey demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEMO_SENTENCE = "Hello from VoiceKey. The quick brown fox jumps over the lazy dog."


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the appliance (the systemd service runs this)")
    p.add_argument("--config", type=Path, help="config file on top of the defaults "
                   "(default: /etc/voicekey/config.yaml then /boot/firmware/voicekey.yaml)")
    p.add_argument("--simulate", action="store_true",
                   help="dev machine: Enter on the terminal is the button, a simulated host prints what is typed")
    p.add_argument("--audio", default="mic", metavar="SOURCE",
                   help="with --simulate: 'mic' (default microphone), a WAV/FLAC file, or 'say:TEXT' (Piper TTS)")
    p.set_defaults(func=run)

    d = sub.add_parser("demo", help="unattended demo of the whole pipeline on the bundled tiny.en model")
    d.add_argument("--text", default=DEMO_SENTENCE, help="the sentence Piper speaks")
    d.add_argument("--model", default=None, help="Whisper model (default: the config's, tiny.en)")
    d.add_argument("--layout", default="us", help="host layout for the simulated host")
    d.set_defaults(func=demo)


def _load(path: Path | None):
    from appliance.config import DEFAULT_PATHS, load_config

    loaded = load_config([path] if path else DEFAULT_PATHS)
    for issue in loaded.issues:
        log.error("config: %s", issue)
    return loaded


def _audio_source(spec: str, config):
    from appliance.audio.source import ArraySource, CaptureOptions

    options = CaptureOptions(pre_roll_ms=config.audio.pre_roll_ms, post_roll_ms=config.audio.post_roll_ms,
                             max_utterance_s=config.audio.max_utterance_s)
    if spec == "mic":
        from appliance.audio.capture import SoundDeviceSource

        return SoundDeviceSource(config.audio.device, options)
    if spec.startswith("say:"):
        from appliance.audio.piper_source import synthesize

        clip = synthesize(spec[4:])
        return ArraySource([clip] * 100, options=options)
    from appliance.audio.files import load_audio

    return ArraySource([load_audio(spec)] * 100, options=options)


def run(args: argparse.Namespace) -> int:
    from appliance import service
    from appliance.app import build, build_gate, build_transcriber, watchdog
    from appliance.ui.button import EdgeQueue
    from appliance.ui.led import FakeLed, LedPattern

    loaded = _load(args.config)
    config = loaded.config
    logging.getLogger().setLevel(config.logging.level if not args.simulate else logging.getLogger().level)

    async def main() -> int:
        edges = EdgeQueue()
        if args.simulate:
            from appliance.hid.layouts import load_layout
            from appliance.transport.simulated import SimulatedHost, print_echo

            led = FakeLed()
            device = SimulatedHost(load_layout(config.keyboard.layout), echo=print_echo)
            _terminal_button(edges)
        else:
            from appliance.transport.usb import HidgDevice
            from appliance.gadget.configfs import Gadget
            from appliance.ui.button import GpioButton
            from appliance.ui.led import GpioLed

            led = GpioLed(config.led.pin, config.led.active_high) if config.led.pin is not None else FakeLed()
            gadget = Gadget(config.transport.configfs_root, config.transport.sysfs_root)
            device = HidgDevice(config.transport.device, udc_state_file=gadget.udc_state_file())
            GpioButton(config.button.pin, edges, pull_up=config.button.pull_up, bounce_s=config.button.bounce_s)
        led.show(LedPattern.STARTING)
        gate = build_gate(config)
        transcriber = await asyncio.to_thread(build_transcriber, config, None)
        recorder = _audio_source(args.audio if args.simulate else "mic", config)
        parts = build(config, recorder=recorder, transcriber=transcriber, gate=gate, device=device, led=led)
        report_config_issues(parts.controller, loaded)
        service.notify("READY=1")
        period = service.watchdog_period_s()
        dog = asyncio.create_task(watchdog(service.notify, parts.controller, period)) if period else None
        if args.simulate:
            print("simulate: press Enter to press the button, Enter again to release; Ctrl-D quits.", flush=True)
        try:
            await parts.controller.run(edges.queue)
        finally:
            if dog:
                dog.cancel()
            device.close()
        return 0

    return asyncio.run(main())


def report_config_issues(controller, loaded) -> None:
    """Invalid config keys: the appliance runs on their defaults and blinks the config error code."""
    from appliance.ui.led import LedPattern

    if loaded.issues:
        controller.show_error(LedPattern.ERROR_CONFIG, f"{len(loaded.issues)} config issue(s); "
                              "running on defaults for them (see `voicekey doctor`)")


def _terminal_button(edges) -> None:
    """Enter toggles the button (press, release); end of input stops."""
    def reader() -> None:
        down = False
        for _ in sys.stdin:
            down = not down
            edges.push(down)
        if down:
            edges.push(False)

    threading.Thread(target=reader, name="terminal-button", daemon=True).start()


def demo(args: argparse.Namespace) -> int:
    """Piper speaks a sentence into the appliance; the button is held while it plays; the simulated
    host prints what it received, with the release -> first key latency."""
    import dataclasses

    from appliance.app import build, build_gate, build_transcriber
    from appliance.audio.piper_source import synthesize
    from appliance.audio.source import ArraySource
    from appliance.bench.wer import word_errors
    from appliance.config import Config
    from appliance.hid.layouts import load_layout
    from appliance.transport.simulated import SimulatedHost
    from appliance.ui.button import EdgeQueue, FakeButton
    from appliance.ui.led import FakeLed

    config = Config()
    config = dataclasses.replace(
        config, keyboard=dataclasses.replace(config.keyboard, layout=args.layout),
        # what a user would put in the config's text.replacements for the product's own name
        text=dataclasses.replace(config.text, replacements={"voice key": "VoiceKey"}))
    if args.model:
        config = dataclasses.replace(config, stt=dataclasses.replace(config.stt, model=args.model))
    print(f"voicekey demo: speaking with Piper: {args.text!r}", flush=True)
    clip = synthesize(args.text)
    t0 = time.perf_counter()
    transcriber = build_transcriber(config)
    print(f"model {config.stt.model} ({config.stt.compute_type}) loaded and warmed in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    async def main():
        edges = EdgeQueue()
        host = SimulatedHost(load_layout(config.keyboard.layout))
        parts = build(config, recorder=ArraySource([clip]), transcriber=transcriber, gate=build_gate(config),
                      device=host, led=FakeLed())
        task = asyncio.create_task(parts.controller.run(edges.queue))
        button = FakeButton(edges)
        now = time.monotonic()
        button.press(now)
        button.release(now + len(clip) / 16000)  # held for the length of the sentence
        await asyncio.sleep(0.1)
        await parts.controller.idle()
        parts.controller.stop()
        await task
        return host, parts.controller.records

    host, records = asyncio.run(main())
    rec = records[-1] if records else None
    print(f"host typed: {host.screen!r}")
    if rec and rec.first_key_at is not None:
        print(f"release -> first key: {1000 * (rec.first_key_at - rec.released_at):.0f} ms")
    error = word_errors(args.text, host.screen).wer
    print(f"WER against the spoken sentence: {100 * error:.1f} %")
    return 0 if host.screen and error < 0.3 else 1
