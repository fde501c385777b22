"""Each setting is defined once, in ``appliance.config``: stage options that mirror a config key
must have the same default (they take it from the config schema rather than repeating it)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from appliance.audio.source import CaptureOptions
from appliance.audio.vad import Endpointer, VadOptions
from appliance.config import Config, section_keys
from appliance.dictation import PipelineOptions
from appliance.hid.encoder import EncoderOptions
from appliance.transport.typist import TypingOptions

#: options class -> the config section it mirrors.
SECTION_OF = {
    CaptureOptions: "audio",
    VadOptions: "vad",
    EncoderOptions: "keyboard",
    TypingOptions: "transport",
}

#: (options class, field) <-> (config section, key).
PAIRS = [
    (CaptureOptions, "pre_roll_ms", "audio", "pre_roll_ms"),
    (CaptureOptions, "post_roll_ms", "audio", "post_roll_ms"),
    (CaptureOptions, "max_utterance_s", "audio", "max_utterance_s"),
    (VadOptions, "aggressiveness", "vad", "aggressiveness"),
    (VadOptions, "min_speech_ms", "vad", "min_speech_ms"),
    (EncoderOptions, "unmapped", "keyboard", "unmapped"),
    (EncoderOptions, "host_os", "keyboard", "host_os"),
    (EncoderOptions, "allow_newline", "keyboard", "allow_newline"),
    (EncoderOptions, "allow_tab", "keyboard", "allow_tab"),
    (TypingOptions, "rate", "transport", "rate"),
    (TypingOptions, "give_up_s", "transport", "give_up_s"),
    (TypingOptions, "settle_s", "transport", "settle_s"),
    (PipelineOptions, "forget_after_s", "text", "forget_after_s"),
    (PipelineOptions, "post_roll_unless_silent_ms", "audio", "post_roll_unless_silent_ms"),
]


def config_default(section: str, key: str) -> object:
    assert key in section_keys(section), f"{section}.{key} is not a config key"
    return getattr(getattr(Config(), section), key)


def option_default(cls: type, name: str) -> object:
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    assert f.default is not dataclasses.MISSING, f"{cls.__name__}.{name} has no plain default"
    return f.default


@pytest.mark.parametrize(("cls", "name", "section", "key"), PAIRS,
                         ids=[f"{c.__name__}.{n}={s}.{k}" for c, n, s, k in PAIRS])
def test_option_default_is_the_config_default(cls, name, section, key):
    assert option_default(cls, name) == config_default(section, key)
    assert getattr(cls(), name) == getattr(getattr(Config(), section), key)


@pytest.mark.parametrize("cls", list(SECTION_OF), ids=lambda c: c.__name__)
def test_every_field_named_like_a_config_key_is_paired(cls):
    """A new option that shares a name with a key of its section must be listed in PAIRS."""
    paired = {name for c, name, _, _ in PAIRS if c is cls}
    same_name = {f.name for f in dataclasses.fields(cls)} & set(section_keys(SECTION_OF[cls]))
    assert same_name <= paired


def test_endpointer_defaults_are_the_config_defaults():
    params = inspect.signature(Endpointer).parameters
    assert params["end_silence_ms"].default == config_default("vad", "endpoint_silence_ms")
    assert params["max_utterance_ms"].default == round(config_default("audio", "max_utterance_s") * 1000)
