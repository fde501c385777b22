"""WhisperSettings from the config, prompt tokens, the prompt-echo rule and model-error hints."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from appliance.config import COMPUTE_TYPES, SttConfig, TextConfig
from appliance.errors import ConfigError, ModelError
from appliance.stt.guards import could_be_prompt_echo, is_prompt_echo
from appliance.stt.models import ResolvedModel, quantized_copy
from appliance.stt.whisper import WhisperSettings, WindowPolicy, prompt_text, settings_from_config

VOCAB = ("VoiceKey", "Raspberry Pi", "Gutenberg")


def test_settings_from_config_maps_stt_and_vocabulary():
    settings = settings_from_config(
        SttConfig(compute_type="float32", threads=3, short_window=False, language="de"),
        TextConfig(vocabulary=VOCAB))
    assert settings.compute_type == "float32" and settings.threads == 3
    assert settings.window == WindowPolicy(mode="padded")
    assert settings.language == "de"
    assert settings.vocabulary == VOCAB
    defaults = settings_from_config(SttConfig(), TextConfig())
    assert defaults.window.mode == "short" and defaults.vocabulary == () and defaults.language == "en"
    assert defaults.compute_type == "int8"


def test_compute_types_are_the_configs_list():
    for compute_type in COMPUTE_TYPES:
        WhisperSettings(compute_type=compute_type)
    with pytest.raises(ConfigError):
        WhisperSettings(compute_type="bfloat16")  # not offered by the config


def test_language_is_checked():
    WhisperSettings(language="auto")
    WhisperSettings(language="fr")
    with pytest.raises(ConfigError, match="language"):
        WhisperSettings(language="german")


def test_prompt_text_is_the_word_list():
    assert prompt_text(VOCAB) == "VoiceKey, Raspberry Pi, Gutenberg"
    assert prompt_text(()) == ""


def test_prompt_echo_rule():
    assert is_prompt_echo("VoiceKey, Raspberry Pi, Gutenberg.", VOCAB)
    assert is_prompt_echo("Gutenberg, Gut", VOCAB)  # a copy cut short
    assert is_prompt_echo("Raspberry Pi, VoiceKey", VOCAB)
    # a single entry, or speech that uses vocabulary words, stays
    assert not is_prompt_echo("VoiceKey.", VOCAB)
    assert not is_prompt_echo("Raspberry Pi", VOCAB)
    assert not is_prompt_echo("Open VoiceKey on the Raspberry Pi.", VOCAB)
    assert not is_prompt_echo("The Gutenberg Bible.", VOCAB)
    assert not is_prompt_echo("", VOCAB) and not is_prompt_echo("VoiceKey, Gutenberg", ())
    # words are held back while they may still become an echo
    assert could_be_prompt_echo("Raspberry P", VOCAB) and could_be_prompt_echo("Voice", VOCAB)
    assert not could_be_prompt_echo("Open Voice", VOCAB)


def test_unsupported_model_binary_hint_names_real_options(tmp_path: Path):
    model_dir = tmp_path / "old"
    model_dir.mkdir()
    (model_dir / "model.bin").write_bytes(struct.pack("I", 5) + b"\0" * 16)
    (model_dir / "config.json").write_text("{}")
    with pytest.raises(ModelError) as err:
        quantized_copy(ResolvedModel("old", model_dir, "directory", True), tmp_path / "cache")
    assert "--no-prequantize" not in err.value.fix
    assert "stt.compute_type" in err.value.fix and "float32" in err.value.fix
