"""``voicekey transcribe FILE...``: offline speech to text for audio files, with timings."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from appliance.commands.models_cmd import add_model_args, store_from_args
from appliance.errors import AudioError
from appliance.stt.base import SAMPLE_RATE, SpeechGate

log = logging.getLogger(__name__)


def default_gate() -> SpeechGate | None:
    """The project's VAD (``appliance.audio.vad``) as a speech gate, or None if it is unavailable."""
    try:
        from appliance.audio.vad import VoiceActivityDetector
    except ImportError as exc:
        log.warning("no VAD available (%s); relying on Whisper's own no-speech checks", exc)
        return None
    return VoiceActivityDetector()


def load_audio(path: Path) -> np.ndarray:
    """Decode an audio file (WAV, FLAC, ...) to float32 mono 16 kHz."""
    if not path.is_file():
        raise AudioError(f"audio file {path} does not exist", fix="check the path")
    try:
        from appliance.audio.files import load_audio as read_audio  # the audio stage's decoder
    except ImportError:
        read_audio = None
    try:
        if read_audio is not None:
            return np.asarray(read_audio(path), dtype=np.float32)
        from faster_whisper.audio import decode_audio

        return decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except AudioError:
        raise
    except Exception as exc:  # decoders raise many types for unreadable files
        raise AudioError(f"cannot decode {path}: {exc}",
                         fix="give a WAV or FLAC file (any rate/channels; it is converted)") from exc


def add_transcriber_args(p: argparse.ArgumentParser) -> None:
    """Options that tune the Whisper transcriber."""
    p.add_argument("--compute-type", default="int8",
                   help="CTranslate2 compute type: int8 (default), float32, int8_float32, int16 ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--language", default="en", help="language of multilingual models (default: en)")
    p.add_argument("--window", choices=("short", "padded"), default="short",
                   help="encoder window: clip + margin (short, default) or Whisper's 30 s (padded)")
    p.add_argument("--min-frames", type=int, default=None, help="short window minimum in 10 ms frames")
    p.add_argument("--margin-frames", type=int, default=None, help="short window margin in 10 ms frames")
    p.add_argument("--fill", choices=("silence", "zeros"), default=None,
                   help="what fills the short window after the clip (default: silence)")
    p.add_argument("--no-vad", action="store_true", help="do not gate clips with the VAD")


def build_transcriber(args: argparse.Namespace):  # noqa: ANN201 - WhisperTranscriber, imported lazily
    """Load the Whisper transcriber the options describe (model loaded and warmed)."""
    from appliance.stt.whisper import WhisperSettings, WhisperTranscriber, WindowPolicy

    defaults = WindowPolicy()
    window = WindowPolicy(
        mode=args.window,
        min_frames=defaults.min_frames if args.min_frames is None else args.min_frames,
        margin_frames=defaults.margin_frames if args.margin_frames is None else args.margin_frames,
        fill=args.fill or defaults.fill)
    settings = WhisperSettings(compute_type=args.compute_type, threads=args.threads,
                               language=args.language, window=window)
    gate = None if args.no_vad else default_gate()
    return WhisperTranscriber(args.model, settings, gate=gate, store=store_from_args(args))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``voicekey transcribe``."""
    p = sub.add_parser("transcribe", help="transcribe audio files offline and show timings",
                       description="Transcribe WAV/FLAC files with the offline Whisper model, the "
                                   "same way the device does after the button is released.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    add_model_args(p)
    add_transcriber_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Transcribe each file; exit 1 if a file could not be read."""
    transcriber = build_transcriber(args)
    status = 0
    for path in args.files:
        try:
            samples = load_audio(path)
        except AudioError as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        result = transcriber.transcribe(samples)
        t = result.timings
        if args.json:
            print(json.dumps({
                "file": str(path), "text": result.text, "audio_s": round(result.audio_s, 3),
                "first_word_ms": _r(t.first_word_ms), "last_word_ms": _r(t.last_word_ms),
                "total_ms": _r(t.total_ms), "features_ms": _r(t.features_ms),
                "encoder_ms": _r(t.encoder_ms), "decode_ms": _r(t.decode_ms),
                "window_frames": result.window_frames, "tokens": result.tokens,
                "no_speech_prob": round(result.no_speech_prob, 4),
                "avg_logprob": round(result.avg_logprob, 4),
                "fallback": result.fallback, "dropped": result.dropped,
                "model": transcriber.model.name, "compute_type": transcriber.settings.compute_type,
            }), flush=True)
        else:
            first = f"{t.first_word_ms:.0f}" if t.first_word_ms is not None else "-"
            last = f"{t.last_word_ms:.0f}" if t.last_word_ms is not None else "-"
            note = f" (no text: {result.dropped})" if result.dropped else ""
            print(f"{path}: {result.text}{note}")
            print(f"  {result.audio_s:.2f} s audio; first word {first} ms, last word {last} ms, "
                  f"total {t.total_ms:.0f} ms (encoder {t.encoder_ms:.0f}, decoder {t.decode_ms:.0f}, "
                  f"window {result.window_frames} frames{', fallback: ' + result.fallback if result.fallback else ''})",
                  flush=True)
    return status


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
