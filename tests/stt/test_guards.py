"""Pure checks: loop detection, budgets, compression ratio, word splitting, no-speech rule."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.stt.guards import (GuardSettings, compression_ratio, find_loop, is_blank_text, is_no_speech,
                                  rms, runaway_reason, split_words)

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
