"""Fixtures for the speech-to-text tests: the shared speech set and one loaded tiny.en model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.clips import speech_dir


@pytest.fixture(scope="session")
def speech_items() -> list[dict]:
    """Manifest entries of the shared real-speech set (skips when it is not there)."""
    manifest = speech_dir() / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"speech set not found at {manifest} (set VOICEKEY_SPEECH_DIR)")
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for item in items:
        item["path"] = manifest.parent / item["audio"]
    return items


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private model cache (joined packs, int8 copies) for this test session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def transcriber(model_cache: Path):
    """tiny.en from its PyPI pack, int8, with the project's VAD as the speech gate."""
    from appliance.commands.transcribe_cmd import default_gate
    from appliance.stt.models import ModelStore
    from appliance.stt.whisper import WhisperTranscriber

    return WhisperTranscriber("tiny.en", gate=default_gate(), store=ModelStore(cache_dir=model_cache))
