"""Audio helpers for the whole-device guest test (tests/vm/test_appliance_vm.py). Runs IN the guest.

The appliance itself is the real ``voicekey run`` daemon, built by the composition root
(:mod:`appliance.compose`); this module only plays the "speech" into the snd-aloop loopback it
captures from. Sub-commands (``python tests/vm/appliance_driver.py --help``):

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
import json
import re
import sys
import time
from pathlib import Path


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
    sub = parser.add_subparsers(dest="cmd", required=True)
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
    if args.cmd == "play":
        return play(args)
    _emit(json.dumps(loopback_devices()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
