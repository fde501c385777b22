"""Voice activity detection: trim silence around an utterance, reject non-speech, endpoint hands-free.

The frame classifier is WebRTC's VAD (PyPI ``webrtcvad-wheels``). On its own it calls breathing,
clicks and other broadband bursts "speech" (measured: 60-75 % of the frames of band-passed breath-like
noise, ~50 % of a click train), which would make Whisper hallucinate text from a button press. So a
frame only counts as *voiced* when three things agree:

1. webrtcvad says speech;
2. the frame is loud enough (``min_level_dbfs``);
3. the frame is periodic: the normalised autocorrelation has a peak above ``min_periodicity`` in
   the pitch range 80-500 Hz. Vowels are periodic; noise, breath and clicks are not (on the shared
   speech set 50-80 % of frames pass at 0.6; of pink/white noise, breath and clicks 0-1 %);
4. at least ``min_band_ratio`` of the frame's energy is in 300-4000 Hz, where vowel formants are;
   low rumble (fans, traffic) can look periodic but has nothing there.

An utterance is kept when it has at least ``min_speech_ms`` of voiced frames that come in runs of
two or more (vowels last 60 ms and longer; a noise frame that passes all checks is usually alone).
The kept span runs from the first to the last webrtcvad-speech frame of the regions that contain
voiced frames (so unvoiced consonants at the edges such as "s" or "f" are not cut), plus
``padding_ms`` either side.

All functions take float32 mono samples at 16 kHz in [-1, 1].
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.audio.format import SAMPLE_RATE
from appliance.config import AudioConfig, VadConfig
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

_VALID_FRAME_MS = (10, 20, 30)
# Pitch search range for the periodicity test (lags in samples at 16 kHz): 500 Hz .. 80 Hz.
_MIN_LAG = SAMPLE_RATE // 500
_MAX_LAG = SAMPLE_RATE // 80


@dataclass(frozen=True, slots=True)
class VadOptions:
    """Settings of :class:`VoiceActivityDetector` and :class:`Endpointer`."""

    aggressiveness: int = VadConfig.aggressiveness
    """``vad.aggressiveness``: webrtcvad mode 0-3; higher rejects more non-speech (and more quiet speech)."""

    frame_ms: int = 30
    """Analysis frame length; webrtcvad accepts 10, 20 or 30 ms."""

    padding_ms: int = 200
    """Audio kept before the first and after the last speech frame by :meth:`VoiceActivityDetector.trim`."""

    min_speech_ms: int = VadConfig.min_speech_ms
    """``vad.min_speech_ms``: minimum total voiced (periodic, loud enough, webrtcvad-positive) audio for an utterance to count."""

    merge_gap_ms: int = 400
    """Speech regions closer than this are one region (pauses between words)."""

    min_level_dbfs: float = -50.0
    """Frames quieter than this RMS level (dB relative to full scale) are never voiced."""

    min_periodicity: float = 0.6
    """Normalised autocorrelation peak (0-1) in the 80-500 Hz pitch range a voiced frame must reach."""

    min_band_ratio: float = 0.1
    """Share of a voiced frame's energy that must lie in 300-4000 Hz (vowel formants); rejects rumble."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the bad field when a value is out of range."""
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(f"vad aggressiveness {self.aggressiveness!r} is invalid",
                              fix="use 0, 1, 2 or 3 (3 rejects the most noise)")
        if self.frame_ms not in _VALID_FRAME_MS:
            raise ConfigError(f"vad frame_ms {self.frame_ms!r} is invalid", fix="use 10, 20 or 30")
        for name in ("padding_ms", "min_speech_ms", "merge_gap_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"vad {name} {getattr(self, name)!r} is negative", fix="use 0 or more")
        if not 0.0 <= self.min_band_ratio <= 1.0:
            raise ConfigError(f"vad min_band_ratio {self.min_band_ratio!r} is invalid",
                              fix="use a value between 0 and 1")
        if not 0.0 <= self.min_periodicity <= 1.0:
            raise ConfigError(f"vad min_periodicity {self.min_periodicity!r} is invalid",
                              fix="use a value between 0 and 1 (0.6 is the tested default)")

    @property
    def frame_samples(self) -> int:
        """Samples per analysis frame at 16 kHz."""
        return SAMPLE_RATE * self.frame_ms // 1000


@dataclass(frozen=True, slots=True)
class FrameFlags:
    """Per-frame classification of a buffer (one entry per whole frame)."""

    speech: np.ndarray
    """bool: webrtcvad says speech."""

    voiced: np.ndarray
    """bool: speech and loud enough and periodic."""


def _to_pcm16(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {x.shape}")
    if x.dtype == np.int16:
        return x
    return (np.clip(x.astype(np.float32, copy=False), -1.0, 1.0) * 32767.0).astype(np.int16)


def periodicity(frames: np.ndarray) -> np.ndarray:
    """Peak normalised autocorrelation of each row of ``frames`` at a pitch of 80-500 Hz (0..1).

    Only true peaks count (a lag whose correlation is at least that of both neighbours, strictly
    inside the range): a low hum or rumble correlates highly at the shortest lags simply because it
    changes slowly, which is not a pitch.
    """
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0:
        return np.zeros(f.shape[0] if f.ndim == 2 else 0)
    n = f.shape[1]
    hi = min(_MAX_LAG, n // 2)
    if hi <= _MIN_LAG:
        return np.zeros(f.shape[0])
    f = f - f.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(f, n=nfft, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), n=nfft, axis=1)[:, :n]
    csum = np.cumsum(f * f, axis=1)
    total = csum[:, -1:]
    lags = np.arange(_MIN_LAG - 1, hi + 2)  # one extra lag each side to judge the peaks
    head = csum[:, n - 1 - lags]  # energy of x[0 : n-lag]
    tail = total - csum[:, lags - 1]  # energy of x[lag : n]
    r = ac[:, lags] / np.sqrt(head * tail + 1e-20)
    inner = r[:, 1:-1]
    peaks = (inner >= r[:, :-2]) & (inner >= r[:, 2:])
    best = np.where(peaks, inner, 0.0).max(axis=1)
    return np.clip(best, 0.0, 1.0)


def _in_runs(voiced: np.ndarray) -> np.ndarray:
    """Voiced frames that have a voiced neighbour."""
    out = np.zeros_like(voiced)
    if len(voiced) > 1:
        pair = voiced[1:] & voiced[:-1]
        out[1:] |= pair
        out[:-1] |= pair
    return out


def band_ratio(frames: np.ndarray, lo: float = 300.0, hi: float = 4000.0) -> np.ndarray:
    """Share of each row's (Hann-windowed) energy between ``lo`` and ``hi`` Hz."""
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0:
        return np.zeros(f.shape[0] if f.ndim == 2 else 0)
    power = np.abs(np.fft.rfft(f * np.hanning(f.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(f.shape[1], 1 / SAMPLE_RATE)
    band = power[:, (freqs >= lo) & (freqs <= hi)].sum(axis=1)
    return band / (power.sum(axis=1) + 1e-20)


class VoiceActivityDetector:
    """Finds speech in 16 kHz mono audio; see the module docstring for the method.

    ``options`` may be given whole, or individual fields as keyword arguments, e.g.
    ``VoiceActivityDetector(aggressiveness=3, padding_ms=150)``.
    """

    def __init__(self, options: VadOptions | None = None, **overrides: Any) -> None:
        opts = options or VadOptions()
        if overrides:
            opts = VadOptions(**{**{f: getattr(opts, f) for f in VadOptions.__dataclass_fields__},
                                 **overrides})
        opts.validate()
        self.options = opts
        self._min_level = 32767.0 * 10.0 ** (opts.min_level_dbfs / 20.0)

    # -- per-frame ------------------------------------------------------------------------------
    def new_webrtc_vad(self) -> Any:
        """A fresh webrtcvad instance with our aggressiveness.

        webrtcvad adapts its noise estimate as it runs, so results depend on what it heard before:
        whole buffers each get a fresh one (same input, same answer); a live stream keeps one.
        """
        import webrtcvad

        return webrtcvad.Vad(self.options.aggressiveness)

    def classify(self, samples: np.ndarray, webrtc_vad: Any = None) -> FrameFlags:
        """Classify every whole frame of ``samples`` (a trailing partial frame is ignored).

        ``webrtc_vad``: a stateful instance to continue with (live streams); default: a fresh one.
        """
        vad = webrtc_vad if webrtc_vad is not None else self.new_webrtc_vad()
        pcm = _to_pcm16(samples)
        size = self.options.frame_samples
        count = len(pcm) // size
        frames = pcm[: count * size].reshape(count, size)
        speech = np.fromiter((vad.is_speech(fr.tobytes(), SAMPLE_RATE) for fr in frames),
                             dtype=bool, count=count)
        if count == 0:
            return FrameFlags(speech, speech.copy())
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        loud = rms >= self._min_level
        candidates = speech & loud
        voiced = np.zeros(count, dtype=bool)
        if candidates.any():
            chosen = frames[candidates]
            voiced[candidates] = ((periodicity(chosen) >= self.options.min_periodicity)
                                  & (band_ratio(chosen) >= self.options.min_band_ratio))
        return FrameFlags(speech, voiced)

    def is_voiced_frame(self, frame: np.ndarray) -> bool:
        """True when one frame of exactly ``frame_ms`` is voiced speech."""
        flags = self.classify(frame)
        if len(flags.voiced) != 1 or len(frame) != self.options.frame_samples:
            raise ValueError(f"expected one frame of {self.options.frame_samples} samples, got {len(frame)}")
        return bool(flags.voiced[0])

    # -- whole buffers --------------------------------------------------------------------------
    def speech_span(self, samples: np.ndarray) -> tuple[int, int] | None:
        """(start, end) sample indices of the speech including padding, or None when there is none."""
        opts = self.options
        flags = self.classify(samples)
        min_voiced = max(1, -(-opts.min_speech_ms // opts.frame_ms))
        voiced = _in_runs(flags.voiced)
        if int(voiced.sum()) < min_voiced:
            return None
        regions = self._regions(flags.speech)
        kept = [(a, b) for a, b in regions if voiced[a:b].any()]
        total_voiced = sum(int(voiced[a:b].sum()) for a, b in kept)
        if not kept or total_voiced < min_voiced:
            return None
        size = opts.frame_samples
        pad = SAMPLE_RATE * opts.padding_ms // 1000
        start = max(0, kept[0][0] * size - pad)
        end = min(len(samples), kept[-1][1] * size + pad)
        return start, end

    def trailing_silence_s(self, samples: np.ndarray) -> float | None:
        """Seconds since the last voiced frame of ``samples`` (live dictation's pause detector), or
        None when they hold no speech (less voiced speech than ``min_speech_ms``)."""
        opts = self.options
        voiced = _in_runs(self.classify(samples).voiced)
        if int(voiced.sum()) < max(1, -(-opts.min_speech_ms // opts.frame_ms)):
            return None
        last = int(np.flatnonzero(voiced)[-1])
        return (len(voiced) - 1 - last) * opts.frame_ms / 1000

    def trim(self, samples: np.ndarray) -> np.ndarray | None:
        """Return ``samples`` without leading/trailing silence (keeping ``padding_ms``), or None.

        None means there is no speech: silence, room noise, breathing, clicks, or a voiced blip shorter
        than ``min_speech_ms``.
        """
        span = self.speech_span(samples)
        if span is None:
            log.debug("vad: no speech in %.2f s", len(samples) / SAMPLE_RATE)
            return None
        start, end = span
        log.debug("vad: speech %.2f-%.2f s of %.2f s", start / SAMPLE_RATE, end / SAMPLE_RATE,
                  len(samples) / SAMPLE_RATE)
        return np.asarray(samples)[start:end]

    def has_speech(self, samples: np.ndarray) -> bool:
        """True when ``samples`` contain at least ``min_speech_ms`` of voiced speech."""
        return self.speech_span(samples) is not None

    def _regions(self, speech: np.ndarray) -> list[tuple[int, int]]:
        """Runs of speech frames [a, b), merged across gaps shorter than ``merge_gap_ms``."""
        gap = self.options.merge_gap_ms // self.options.frame_ms
        regions: list[tuple[int, int]] = []
        idx = np.flatnonzero(speech)
        if len(idx) == 0:
            return regions
        start = prev = int(idx[0])
        for i in idx[1:]:
            i = int(i)
            if i - prev - 1 > gap:
                regions.append((start, prev + 1))
                start = i
            prev = i
        regions.append((start, prev + 1))
        return regions


class EndpointKind(enum.Enum):
    """What :class:`Endpointer` noticed."""

    SPEECH_STARTED = "speech_started"
    UTTERANCE_ENDED = "utterance_ended"


@dataclass(frozen=True, slots=True)
class EndpointEvent:
    """An endpointing decision, at frame number ``frame_index`` (counted from the first frame fed)."""

    kind: EndpointKind
    frame_index: int
    reason: str = ""
    """For UTTERANCE_ENDED: "silence" (trailing silence reached) or "max_length"."""


class Endpointer:
    """Hands-free endpointing over a live stream of fixed-size frames.

    Feed every frame (``frame_ms`` of 16 kHz mono) with :meth:`feed`. It returns
    ``SPEECH_STARTED`` once ``start_ms`` of voiced frames fall within the last ``start_window_ms``,
    and ``UTTERANCE_ENDED`` after ``end_silence_ms`` without a voiced frame, or when the utterance
    reaches ``max_utterance_ms``. Then it waits for the next speech.

    The caller should start recording with pre-roll at SPEECH_STARTED (the speech began up to
    ``start_window_ms`` earlier) and stop at UTTERANCE_ENDED.

    ``end_silence_ms`` and ``max_utterance_ms`` default to the config settings
    ``vad.endpoint_silence_ms`` and ``audio.max_utterance_s``.
    """

    def __init__(self, detector: VoiceActivityDetector | None = None, *, start_ms: int = 90,
                 start_window_ms: int = 300, end_silence_ms: int = VadConfig.endpoint_silence_ms,
                 max_utterance_ms: int = round(AudioConfig.max_utterance_s * 1000)) -> None:
        self.detector = detector or VoiceActivityDetector()
        fm = self.detector.options.frame_ms
        for name, value in (("start_ms", start_ms), ("start_window_ms", start_window_ms),
                            ("end_silence_ms", end_silence_ms), ("max_utterance_ms", max_utterance_ms)):
            if value <= 0:
                raise ConfigError(f"endpointer {name} {value!r} must be positive", fix="use a positive number of ms")
        if start_ms > start_window_ms:
            raise ConfigError(f"endpointer start_ms {start_ms} exceeds start_window_ms {start_window_ms}",
                              fix="make start_window_ms at least start_ms")
        self.frame_samples = self.detector.options.frame_samples
        self._start_frames = -(-start_ms // fm)
        self._window: deque[bool] = deque(maxlen=max(1, start_window_ms // fm))
        self._end_frames = -(-end_silence_ms // fm)
        self._max_frames = max(1, max_utterance_ms // fm)
        self.reset()

    def reset(self) -> None:
        """Forget everything; wait for speech again."""
        self._webrtc = self.detector.new_webrtc_vad()
        self._prev_voiced = False
        self._window.clear()
        self._in_speech = False
        self._silence = 0
        self._length = 0
        self._index = -1

    @property
    def in_speech(self) -> bool:
        """True between SPEECH_STARTED and UTTERANCE_ENDED."""
        return self._in_speech

    def feed(self, frame: np.ndarray) -> EndpointEvent | None:
        """Process one frame; return an event when the state changes."""
        if len(frame) != self.frame_samples:
            raise ValueError(f"endpointer frames must be {self.frame_samples} samples, got {len(frame)}")
        self._index += 1
        flags = self.detector.classify(frame, self._webrtc)
        voiced = bool(flags.voiced[0])
        in_run = voiced and self._prev_voiced  # see _in_runs: lone voiced frames are usually noise
        self._prev_voiced = voiced
        if not self._in_speech:
            self._window.append(in_run)
            if sum(self._window) >= self._start_frames:
                self._in_speech = True
                self._silence = 0
                self._length = len(self._window)
                self._window.clear()
                return EndpointEvent(EndpointKind.SPEECH_STARTED, self._index)
            return None
        self._length += 1
        # Count silence by *voiced* frames: webrtcvad alone stays "speech" in fan or breath noise.
        self._silence = 0 if voiced else self._silence + 1
        if self._silence >= self._end_frames:
            return self._end("silence")
        if self._length >= self._max_frames:
            return self._end("max_length")
        return None

    def _end(self, reason: str) -> EndpointEvent:
        self._in_speech = False
        self._silence = 0
        self._length = 0
        return EndpointEvent(EndpointKind.UTTERANCE_ENDED, self._index, reason)
