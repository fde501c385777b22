"""Pure checks that keep Whisper from typing what nobody said.

Whisper hallucinates in two ways that matter for a keyboard: text for clips without speech, and
runaway repetition (a loop that repeats a phrase until the length limit). These functions judge a
decoded token sequence; the transcriber decides what to do about it.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GuardSettings:
    """Thresholds for the hallucination and runaway guards."""

    #: clips quieter than this RMS (full scale 1.0) are silence: no model work, no text
    min_rms: float = 1e-4
    #: Whisper's rule: no speech if no_speech_prob > this AND avg log-prob < ``logprob_threshold``
    no_speech_threshold: float = 0.6
    #: no speech whatever the log-prob when no_speech_prob exceeds this (measured: real speech
    #: <= 0.51, noise/hum/clicks/breath >= 0.84 with tiny.en)
    no_speech_strict: float = 0.8
    #: mean token log-probability below which a pass is judged unreliable
    logprob_threshold: float = -1.0
    #: gzip compression ratio above which text is judged repetitive (Whisper uses 2.4)
    compression_ratio_threshold: float = 2.4
    #: a loop: a tail pattern repeated at least this many times ...
    loop_min_repeats: int = 3
    #: ... covering at least this many tokens
    loop_min_tokens: int = 12
    #: longest pattern (tokens) looked for
    loop_max_period: int = 24
    #: token budget: ``base_tokens + tokens_per_second * clip seconds`` (speech is ~3-5 tokens/s)
    base_tokens: int = 16
    tokens_per_second: float = 7.0

    def token_budget(self, audio_s: float) -> int:
        """Most text tokens a clip of ``audio_s`` seconds can plausibly need (max 224)."""
        return int(min(224, self.base_tokens + math.ceil(self.tokens_per_second * audio_s)))


def rms(samples: np.ndarray) -> float:
    """Root-mean-square level of a clip (0.0 for an empty clip)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def compression_ratio(text: str) -> float:
    """gzip ratio of the UTF-8 text; repetitive text compresses well (high ratio)."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def find_loop(tokens: Sequence[int], settings: GuardSettings) -> int | None:
    """Index where a repeating tail starts, or None.

    A loop is a tail that is periodic with a period of ``p`` tokens (``p <= loop_max_period``),
    ``tokens[i] == tokens[i + p]`` for every ``i`` in it, spanning at least ``loop_min_repeats``
    periods and ``loop_min_tokens`` tokens. The last copy may be cut short (a runaway stopped by the
    token budget usually is). The returned index keeps the first copy of the pattern
    (``tokens[:index]`` ends with one copy), so capping there removes only the repeats.
    """
    n = len(tokens)
    best: int | None = None
    for period in range(1, min(settings.loop_max_period, n // 2) + 1):
        start = n - period  # tokens[start:] is periodic with this period
        while start > 0 and tokens[start - 1] == tokens[start - 1 + period]:
            start -= 1
        span = n - start
        if span >= settings.loop_min_repeats * period and span >= settings.loop_min_tokens:
            keep = start + period
            if best is None or keep < best:
                best = keep
    return best


def is_no_speech(no_speech_prob: float, avg_logprob: float, settings: GuardSettings) -> bool:
    """Whisper's silence rule: high no-speech probability and low confidence in the text."""
    return no_speech_prob > settings.no_speech_threshold and avg_logprob < settings.logprob_threshold


def runaway_reason(tokens: Sequence[int], text: str, avg_logprob: float, budget: int,
                   settings: GuardSettings) -> str | None:
    """Why a decoded pass looks like a runaway/unreliable pass, or None if it looks fine."""
    if len(tokens) >= budget:
        return f"length ({len(tokens)} tokens >= budget {budget})"
    if find_loop(tokens, settings) is not None:
        return "repetition loop"
    ratio = compression_ratio(text)
    if ratio > settings.compression_ratio_threshold:
        return f"compression ratio {ratio:.2f}"
    if avg_logprob < settings.logprob_threshold:
        return f"avg log-prob {avg_logprob:.2f}"
    return None


_WORD = re.compile(r"\s*\S+")


def split_words(text: str) -> list[str]:
    """Split text into words, each keeping its leading whitespace; joined they equal ``text``
    minus any trailing whitespace."""
    return _WORD.findall(text)


def is_blank_text(text: str) -> bool:
    """True if the text has no letters or digits (e.g. "...", "-", "♪")."""
    return not any(ch.isalnum() for ch in text)
