"""Pure checks: loop detection, budgets, compression ratio, word splitting, no-speech rule."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.stt.guards import (TRAILING_REPEAT, GuardSettings, compression_ratio, find_loop, find_tail_repeat,
                                  is_blank_text, is_no_speech, rms, runaway_reason, split_words, tail_repeat_cut)

G = GuardSettings()


def test_loop_keeps_first_copy_even_when_last_copy_is_cut_short():
    pattern = [11, 12, 13, 14, 15]
    tokens = [1, 2] + pattern * 3 + pattern[:2]
    assert find_loop(tokens, G) == 2 + len(pattern)


def test_single_token_runaway_is_a_loop():
    assert find_loop([7, 8] + [9] * 20, G) == 3


def test_normal_sentence_and_short_repeats_are_not_loops():
    assert find_loop(list(range(40)), G) is None
    # "no, no, no" is speech, not a runaway: too short to count
    assert find_loop([5, 6, 5, 6, 5, 6], G) is None
    assert find_loop([], G) is None


def test_token_budget_grows_with_duration_and_is_capped():
    assert G.token_budget(1.0) < G.token_budget(5.0) < G.token_budget(10.0)
    assert G.token_budget(1000.0) == 224


def test_compression_ratio_flags_repetitive_text():
    assert compression_ratio("") == 0.0
    assert compression_ratio("the cat sat on the mat") < G.compression_ratio_threshold
    assert compression_ratio("I don't know. " * 20) > G.compression_ratio_threshold


def test_runaway_reasons():
    assert runaway_reason(list(range(10)), "fine text", -0.2, 50, G) is None
    assert "length" in runaway_reason(list(range(50)), "x", -0.2, 50, G)
    assert "repetition" in runaway_reason([1, 2, 3] * 6, "a b c " * 6, -0.2, 50, G)
    assert "log-prob" in runaway_reason([1, 2, 3], "what", -2.0, 50, G)


def test_no_speech_rule_needs_both_signals():
    assert is_no_speech(0.9, -1.5, G)
    assert not is_no_speech(0.9, -0.3, G)
    assert not is_no_speech(0.2, -1.5, G)


@pytest.mark.parametrize("text", ["Hello, world.", " leading space kept", "a  double", "one"])
def test_split_words_round_trips(text):
    words = split_words(text)
    assert "".join(words) == text.rstrip()
    assert all(w.strip() and not w.strip().count(" ") for w in words)


def test_blank_text_and_rms():
    assert is_blank_text(" ... -") and not is_blank_text(" ok")
    assert rms(np.zeros(10, np.float32)) == 0.0
    assert rms(np.full(10, 0.5, np.float32)) == pytest.approx(0.5)


def test_tail_repeat_on_token_sequences():
    phrase = [40, 41, 42, 43]
    # one immediate repeat of the final phrase is enough; the first copy is kept
    assert find_tail_repeat([1, 2, 3] + phrase + phrase, 3) == 3 + len(phrase)
    # the shortest repeating phrase wins (only its last copy goes)
    assert find_tail_repeat([1] + [9] * 8, 3) == 6
    assert find_tail_repeat([1] + phrase * 4, 3) == 1 + 3 * len(phrase)
    # short repeats ("very very", "no, no") stay
    assert find_tail_repeat([1, 2, 3, 7, 7], 3) is None
    assert find_tail_repeat([1, 2, 3, 7, 8, 7, 8], 3) is None
    # a repeat not at the end, or a near miss, is not a trailing repeat
    assert find_tail_repeat(phrase + phrase + [5], 3) is None
    assert find_tail_repeat([1] + phrase + [40, 41, 42, 44], 3) is None
    assert find_tail_repeat([], 3) is None
    assert find_tail_repeat(phrase + phrase, 0) is None  # 0 turns it off


def test_tail_repeat_on_text_ignores_case_and_punctuation():
    text = " during the next 15 or 20 years, not only by Schofer. Not only by Schofer."
    cut = tail_repeat_cut(text, G)
    assert text[:cut] == " during the next 15 or 20 years, not only by Schofer."
    assert tail_repeat_cut(" It was very, very good.", G) is None
    assert tail_repeat_cut(" No, no.", G) is None
    assert tail_repeat_cut(" I said thank you, thank you.", G) is None  # two words: speech
    assert tail_repeat_cut(" Ready. Set. Go.", G) is None
    assert tail_repeat_cut(" - - - - - -", G) is None  # no words at all: not this guard's business
    assert tail_repeat_cut(text, GuardSettings(tail_repeat_min_words=0)) is None


def test_trailing_repeat_is_a_runaway_reason():
    text = " Meet me at the station. Meet me at the station."
    assert runaway_reason(list(range(12)), text, -0.2, 50, G) == TRAILING_REPEAT
