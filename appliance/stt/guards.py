"""Pure checks that keep Whisper from typing what nobody said.

Whisper hallucinates in two ways that matter for a keyboard: text for clips without speech, and
runaway repetition (a loop that repeats a phrase until the length limit). These functions judge a
decoded token sequence; the transcriber decides what to do about it.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Hashable, Sequence
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
    #: a trailing repeat: the text ends with an immediate second copy of its preceding phrase of at
    #: least this many words ("not only by Schofer. Not only by Schofer."); shorter repeats ("very
    #: very", "no, no") are speech. 0 turns the check off.
    tail_repeat_min_words: int = 3
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


def find_tail_repeat(units: Sequence[Hashable], min_length: int) -> int | None:
    """Index where an immediate repeat of the preceding phrase at the end starts, or None.

    ``units`` are tokens or normalised words. The sequence ends with a repeat when its last ``p``
    units equal the ``p`` units before them for some ``p >= min_length``; the shortest such ``p``
    wins, and ``units[:index]`` keeps the first copy. Unlike :func:`find_loop` one repeat is
    enough, which is why ``min_length`` must be long enough for genuine repeats to stay.
    """
    n = len(units)
    if min_length < 1:
        return None
    for period in range(min_length, n // 2 + 1):
        if list(units[n - period:]) == list(units[n - 2 * period:n - period]):
            return n - period
    return None


def _word_key(word: str) -> str:
    return "".join(ch for ch in word.casefold() if ch.isalnum())


def tail_repeat_cut(text: str, settings: GuardSettings) -> int | None:
    """Character index in ``text`` where a trailing repeat of the preceding phrase starts, or None.

    Words are compared without case and punctuation ("by Schofer. Not only by Schofer." repeats
    "not only by schofer"); ``text[:index]`` ends with the first copy (and its punctuation).
    A phrase shorter than ``tail_repeat_min_words`` words, or one whose words are all blank,
    does not count.
    """
    words = split_words(text)
    keys = [_word_key(w) for w in words]
    at = find_tail_repeat(keys, settings.tail_repeat_min_words)
    if at is None or not any(keys[at:]):
        return None
    return len("".join(words[:at]))


def _keys(text: str) -> list[str]:
    return [k for k in map(_word_key, split_words(text)) if k]


def _vocabulary_keys(vocabulary: Sequence[str]) -> list[list[str]]:
    return [k for k in map(_keys, vocabulary) if k]


def could_be_prompt_echo(text: str, vocabulary: Sequence[str]) -> bool:
    """True while every word of ``text`` is a vocabulary word or the start of one (so the text may
    still become an echo of the prompt): the transcriber holds such words back instead of typing
    them early."""
    words = {w for entry in _vocabulary_keys(vocabulary) for w in entry}
    return bool(words) and all(any(v.startswith(k) for v in words) for k in _keys(text))


def is_prompt_echo(text: str, vocabulary: Sequence[str]) -> bool:
    """True if ``text`` is a copy of the vocabulary prompt rather than speech.

    Whisper given a list of words as its initial prompt sometimes reads (part of) the list back for
    audio without speech ("Schoeffer, Sch" for a breath). An echo here: every word is a vocabulary
    word or the start of one (a copy cut short), and there are at least two such pieces. So a
    single entry ("VoiceKey" said on its own) or a sentence that merely uses vocabulary words is
    never an echo; a dictation of nothing but two or more vocabulary entries is the accepted cost.
    """
    entries = _vocabulary_keys(vocabulary)
    words = _keys(text)
    if not entries or not words:
        return False
    vocab_words = {w for entry in entries for w in entry}
    pieces = 0
    for word in words:
        if word in vocab_words:
            pieces += 1
        elif len(word) >= 2 and any(v.startswith(word) for v in vocab_words):
            pieces += 1  # a copy cut short by the token budget
        else:
            return False
    # multi-word entries count once ("Raspberry Pi, VoiceKey" is two pieces, not three)
    multi = sum(len(e) - 1 for e in entries if len(e) > 1 and _contains(words, e))
    return pieces - multi >= 2


def _contains(words: list[str], entry: list[str]) -> bool:
    n = len(entry)
    return any(words[i:i + n] == entry for i in range(len(words) - n + 1))


#: :func:`runaway_reason` for a text that ends with a repeat of its preceding phrase
TRAILING_REPEAT = "trailing repeat"

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
    if tail_repeat_cut(text, settings) is not None:
        return TRAILING_REPEAT
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
