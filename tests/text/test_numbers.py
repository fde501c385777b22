"""Number spans: which words may become digits, and which trailing words a later word can change."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.text import numbers


@pytest.mark.parametrize("text, spans", [
    ("I have twenty five apples", [(2, 4)]),
    ("one hundred and three", [(0, 4)]),
    ("one hundred and salt", [(0, 2)]),        # a connector at the end is not part of it
    ("a hundred times", []),                   # a bare scale word starts nothing
    ("hundreds of dozens", []),                # words outside the lexicon are never touched
    ("twenty, five", [(0, 1), (1, 2)]),        # punctuation at a word's end ends the span
    ("twenty (five)", [(0, 1), (1, 2)]),       # ...and at a word's start starts a new one
    ("twenty-first of May", [(0, 1)]),
])
def test_spans(text, spans):
    assert numbers.spans(text.split()) == spans


@pytest.mark.parametrize("text, held", [
    ("I have twenty", 1), ("I have twenty five", 2), ("one hundred and", 3), ("three point", 2),
    ("salt and", 0), ("a hundred", 0), ("twenty five.", 0), ("I have", 0), ("", 0),
])
def test_open_span(text, held):
    assert numbers.open_span(text.split()) == held


@pytest.mark.parametrize("text, minimum, digits", [
    ("twenty five", 10, "25"), ("nine", 10, "nine"), ("nine", 0, "9"), ("zero", 0, "0"),
    ("twenty first", 10, "21st"), ("three point five", 10, "3.5"), ("five six seven", 10, "5 6 7"),
    ("twenty five", 100, "twenty five"), ("one hundred", 100, "100"), ("Twenty five.", 10, "25."),
])
def test_to_digits(text, minimum, digits):
    assert numbers.to_digits(text, minimum) == digits


WORDS = st.sampled_from(["twenty", "five", "Five.", "five,", "(five", "hundred", "and", "point", "first",
                         "twenty-one", "apples", "a", "the", "one", "zero", "second"])


@settings(max_examples=int(os.environ.get("VOICEKEY_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(words=st.lists(WORDS, max_size=10))
def test_spans_before_the_open_one_never_change(words):
    """What open_span leaves out of a prefix is settled: later words never change its spans."""
    full = numbers.spans(words)
    for k in range(len(words) + 1):
        stable = k - numbers.open_span(words[:k])
        assert set(numbers.spans(words[:stable])) <= set(full)
