"""``voicekey run`` (the daemon systemd starts, or ``--simulate`` on a dev machine) and ``voicekey demo``.

Both hand over to the composition root (:mod:`appliance.compose`) with a hardware factory: the real
Pi's for the daemon, the simulated one for ``--simulate`` and the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def load(path: Path | None):  # noqa: ANN201 - appliance.config.LoadedConfig
    """The layered config (``--config PATH`` alone, else the default files); issues are logged."""
    from appliance.config import DEFAULT_PATHS, load_config

    loaded = load_config([path] if path else DEFAULT_PATHS)
    for issue in loaded.issues:
        log.error("config: %s", issue)
    return loaded


def run(args: argparse.Namespace, hardware: Any = None,
        on_started: Callable[[Any], None] | None = None) -> int:
    """The daemon. ``hardware`` defaults to the real Pi's (:class:`appliance.compose.PiHardware`), or
    the simulator's with ``--simulate``; tests pass the Pi's with gpiozero's MockFactory and fakes,
    and ``on_started`` (called in the loop with the running :class:`~appliance.compose.Appliance`)
    to stop it when done. Returns 0 after SIGTERM/SIGINT: a failing part never ends it."""
    from appliance import service
    from appliance.compose import Appliance, PiHardware, SimulatedHardware

    loaded = load(args.config)
    config = loaded.config
    if not args.simulate:
        logging.getLogger().setLevel(config.logging.level)
    if hardware is None:
        if args.simulate:
            from appliance.transport.simulated import print_echo

            hardware = SimulatedHardware(args.audio, echo=print_echo)
        else:
            hardware = PiHardware()

    async def main() -> int:
        appliance = Appliance(config, hardware, config_issues=loaded.issues,
                              watchdog_s=service.watchdog_period_s())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, appliance.stop)
            except (ValueError, RuntimeError):  # not the main thread (tests run it in a thread)
                pass
        if args.simulate and isinstance(hardware, SimulatedHardware):
            hardware.on_end_of_input = lambda: loop.call_soon_threadsafe(
                lambda: loop.create_task(appliance.stop_when_idle()))
            print("simulate: press Enter to press the button, Enter again to release; Ctrl-D quits.",
                  flush=True)
        running = loop.create_task(appliance.run())
        if on_started is not None:
            on_started(appliance)
        await running
        return 0

    return asyncio.run(main())


def demo(args: argparse.Namespace) -> int:
    """Piper speaks a sentence into the appliance; the button is held while it plays; the simulated
    host prints what it received, with the release -> first key latency."""
    import dataclasses

    import jiwer

    from appliance.audio.format import SAMPLE_RATE
    from appliance.audio.piper_source import synthesize
    from appliance.compose import Appliance, SimulatedHardware
    from appliance.config import Config
    from appliance.controller import State

    config = Config()
    config = dataclasses.replace(
        config, keyboard=dataclasses.replace(config.keyboard, layout=args.layout),
        # what a user would put in the config's text.replacements for the product's own name
        text=dataclasses.replace(config.text, replacements={"voice key": "VoiceKey"}))
    if args.model:
        config = dataclasses.replace(config, stt=dataclasses.replace(config.stt, model=args.model))
    print(f"voicekey demo: speaking with Piper: {args.text!r}", flush=True)
    clip = synthesize(args.text)
    hardware = SimulatedHardware(clip, button="none")

    async def main():  # noqa: ANN202
        appliance = Appliance(config, hardware, notify=lambda message: None)
        t0 = time.perf_counter()
        task = asyncio.create_task(appliance.run())
        while appliance.controller.state is State.STARTING:
            await asyncio.sleep(0.05)
        model = appliance.parts["speech model"]
        if not model.ok:
            appliance.stop()
            await task
            raise SystemExit(f"voicekey demo: {model.error}")
        print(f"model {config.stt.model} ({config.stt.compute_type}) loaded and warmed in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        now = time.monotonic()
        appliance.edges.push(True, now)
        appliance.edges.push(False, now + len(clip) / SAMPLE_RATE)  # held for the length of the sentence
        while not appliance.controller.records:
            await asyncio.sleep(0.02)
        await appliance.controller.idle()
        appliance.stop()
        await task
        return appliance.controller.records

    records = asyncio.run(main())
    screen = hardware.host.screen
    rec = records[-1] if records else None
    print(f"host typed: {screen!r}")
    if rec and rec.first_key_at is not None:
        print(f"release -> first key: {1000 * (rec.first_key_at - rec.released_at):.0f} ms")
    error = jiwer.wer(_words(args.text), _words(screen)) if screen.strip() else 1.0
    print(f"WER against the spoken sentence: {100 * error:.1f} %")
    return 0 if screen and error < 0.3 else 1


def _words(text: str) -> str:
    """Lower-case words without punctuation, for a fair word error rate."""
    return " ".join("".join(c for c in w if c.isalnum() or c == "'") for w in text.lower().split())
