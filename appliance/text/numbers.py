"""Spoken numbers -> digits ("twenty five" -> 25) for :mod:`appliance.text.shaping`. Pure, no I/O.

The arithmetic (cardinals, "and", decimals with "point", ordinals "twenty first" -> 21st, groups
"twelve thirty" -> "12 30") is done by the ``text2num`` library (``alpha2digit``; a small Rust
extension with wheels for aarch64 and armv7l, about 1 MB of memory once imported). This module only
decides *which words* it may see: a **number span** is a run of words from the fixed English
lexicon below, so the shaper knows exactly which words a later word can still change, and can hold
back an unfinished span while streaming (see :func:`open_span`). Words outside the lexicon
("hundreds", "dozen", "half") are never changed.

Span rules (the same forwards in :func:`spans` and backwards in :func:`open_span`):

* a span starts at a *starter*: a cardinal or ordinal word that is not a bare scale word
  ("hundred", "thousand"...), so "a hundred times" stays words;
* it goes on over number words and the connectors "and" / "point" ("one hundred and three",
  "three point five"); connectors at its end are not part of it;
* a word with punctuation at its end ("five.", "twenty,") ends the span after itself, a word with
  punctuation at its start ("(twenty") starts a new one;
* a hyphenated word counts when all its parts are number words ("twenty-five").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
          "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
             "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth "
             "thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth").split()
#: Scale words ("trillion" is left out: text2num does not know it).
SCALES = frozenset("hundred thousand million billion hundredth thousandth millionth billionth".split())
#: Words that may start a number.
STARTERS = frozenset(_UNITS + _TENS + _ORDINALS)
#: Words that may continue a number once started.
CONNECTORS = frozenset(("and", "point"))


def _parts(word: str) -> list[str]:
    core = word.casefold().strip("\"'“”‘’()[]{}«».,;:!?…")
    return core.split("-") if core else []


def _is(word: str, lexicon: frozenset[str]) -> bool:
    parts = _parts(word)
    return bool(parts) and all(p in STARTERS or p in SCALES for p in parts) and parts[0] in lexicon


def is_starter(word: str) -> bool:
    """True for a word that can start a number ("twenty", "Five,", "twenty-first")."""
    return _is(word, STARTERS)


def is_member(word: str) -> bool:
    """True for a word that can be part of a started number (number words and connectors)."""
    parts = _parts(word)
    if len(parts) == 1 and parts[0] in CONNECTORS:
        return True
    return _is(word, STARTERS | SCALES)


def _connector(word: str) -> bool:
    return _parts(word) in (["and"], ["point"])


def _ends_punct(word: str) -> bool:
    return bool(word) and not word[-1].isalnum()


def _starts_punct(word: str) -> bool:
    return bool(word) and not word[0].isalnum()


def span_end(words: Sequence[str], start: int) -> int:
    """End (exclusive) of the number span starting at ``words[start]`` (which must be a starter)."""
    end = j = start
    while j < len(words):
        word = words[j]
        if j > start and (_starts_punct(word) or not is_member(word)):
            break
        j += 1
        if not _connector(word):
            end = j
        if _ends_punct(word):
            break
    return end


def spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """All number spans in ``words``, as (start, end) index pairs."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if is_starter(words[i]):
            end = span_end(words, i)
            found.append((i, end))
            i = end
        else:
            i += 1
    return found


def open_span(words: Sequence[str]) -> int:
    """How many trailing words form a number that the next word could still extend (0 if none)."""
    first: int | None = None
    for k in range(len(words) - 1, -1, -1):
        word = words[k]
        if _ends_punct(word) or not is_member(word):
            break  # a finished span, or no number at all
        if is_starter(word):
            first = k
        if _starts_punct(word):
            break
    return len(words) - first if first is not None else 0


def to_digits(text: str, minimum: int) -> str:
    """One number span as digits, if its value is at least ``minimum`` (or it is part of a group
    of numbers, such as "five six seven", or a decimal); otherwise unchanged. ``minimum`` 0 converts
    everything."""
    from text_to_num import alpha2digit  # imported on first use: nothing to load when numbers are off

    digits = alpha2digit(text, "en", threshold=minimum)
    # text2num applies its threshold to single digits only ("ten" is always 10): apply it above too
    single = _SINGLE.fullmatch(digits)
    if single and float(single.group(1)) < minimum:
        return text
    return digits


_SINGLE = re.compile(r"\W*(\d+)(?:st|nd|rd|th)?\W*")  # one whole number (decimals always convert)
