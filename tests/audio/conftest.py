from __future__ import annotations

import numpy as np
import pytest

from tests.audio.signals import speech_files


@pytest.fixture(scope="session")
def real_speech() -> list[tuple[str, np.ndarray]]:
    """(name, samples) for every WAV of the shared real-speech set (skips when it is absent)."""
    from appliance.audio.files import load_audio

    files = speech_files()
    if not files:
        pytest.skip("shared speech set not found (set VOICEKEY_SPEECH_DIR)")
    return [(p.name, load_audio(p)) for p in files]


@pytest.fixture(scope="session")
def piper_speech() -> np.ndarray:
    """A sentence spoken by the bundled Piper voice (16 kHz float32)."""
    pytest.importorskip("piper")
    from appliance.audio.piper_source import synthesize

    return synthesize("Please type this sentence into the document.", deterministic=True)
