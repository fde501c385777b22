"""The speech-to-text interface: what every transcriber takes and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from appliance.audio.format import SAMPLE_RATE  # noqa: F401 - re-exported: what every clip is sampled at
#: Receives complete words (each with its leading space) in order; joined they equal the final text.
WordSink = Callable[[str], None]


@dataclass(frozen=True)
class Timings:
    """Where the time went in one ``transcribe()`` call, in milliseconds from the call."""

    total_ms: float           #: whole call
    features_ms: float        #: log-mel features
    encoder_ms: float         #: encoder passes (short window and, if used, the padded fallback)
    decode_ms: float          #: decoder passes
    first_word_ms: float | None  #: when the first word was handed out (None: no words)
    last_word_ms: float | None   #: when the last word was handed out (None: no words)


@dataclass(frozen=True)
class Transcript:
    """The result of one ``transcribe()`` call."""

    text: str                 #: the words, no leading/trailing space; "" for no speech
    timings: Timings
    audio_s: float            #: clip length in seconds
    window_frames: int = 0    #: encoder window actually used (mel frames; 3000 = padded 30 s)
    tokens: int = 0           #: text tokens decoded
    avg_logprob: float = 0.0  #: mean token log-probability of the final pass
    no_speech_prob: float = 0.0  #: Whisper's no-speech probability of the first pass
    fallback: str | None = None  #: why the padded pass was run (None if it was not)
    dropped: str | None = None   #: why the text was suppressed ("silence", "vad", "no-speech", ...)
    language: str | None = None  #: language the model was told or detected (None: not transcribed)
    token_ids: tuple[int, ...] = ()  #: the model's tokens of ``text`` (() when unknown): a later decode's context


@runtime_checkable
class Transcriber(Protocol):
    """Turns a clip of speech into text."""

    def transcribe(self, samples: np.ndarray, on_words: WordSink | None = None) -> Transcript:
        """Transcribe float32 mono 16 kHz samples.

        ``on_words`` is called with complete words (with leading spaces) as soon as they are
        known; the concatenation of all calls equals ``Transcript.text``.
        """
        ...


@runtime_checkable
class SpeechGate(Protocol):
    """Voice-activity check used before any model work (e.g. ``appliance.audio.vad``)."""

    def trim(self, samples: np.ndarray) -> np.ndarray | None:
        """Return the speech part of ``samples``, or None if there is no speech."""
        ...


def check_samples(samples: np.ndarray) -> np.ndarray:
    """Validate a clip: 1-D float32 at 16 kHz, finite. Returns it as contiguous float32.

    Raises :class:`~appliance.errors.AudioError` with a fix for anything else.
    """
    from appliance.errors import AudioError

    array = np.asarray(samples)
    if array.ndim != 1:
        raise AudioError(f"audio must be mono (1-D), got shape {array.shape}",
                         fix="mix down to mono before transcribing (e.g. samples.mean(axis=1))")
    if not np.issubdtype(array.dtype, np.floating):
        raise AudioError(f"audio must be float samples in [-1, 1], got {array.dtype}",
                         fix="convert int16 PCM with samples.astype(np.float32) / 32768")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise AudioError("audio contains NaN or infinite samples", fix="check the capture/decoder")
    return array
