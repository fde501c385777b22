"""The benchmark's pure parts: WER, clips, Markdown section handling, summaries."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from appliance.errors import AudioError
from bench.clips import SAMPLE_RATE, Clip, _local_origin, load_manifest, nonspeech_clips
from bench.speech import START_MARK, render_markdown, summarise, write_section
from bench.wer import WordErrors, corpus_wer, normalise, word_errors
from bench.worker import Variant


def test_wer_uses_whisper_normalisation():
    assert word_errors("Hello, World!", "hello world").errors == 0
    assert word_errors("It costs ten dollars", "it costs $10").errors == 0
    assert normalise("Mr. Smith's colour") == normalise("mister smith's color")


def test_wer_counts_and_aggregates_over_reference_words():
    one = word_errors("the cat sat", "the dog sat down")  # 1 substitution + 1 insertion
    assert one == WordErrors(2, 3)
    total = corpus_wer(["the cat sat", "a b c d e"], ["the dog sat down", "a b c d e"])
    assert total == WordErrors(2, 8) and total.wer == pytest.approx(0.25)
    assert word_errors("some words here", "").errors == 3


def test_nonspeech_clips_are_16k_float_and_reproducible():
    a, b = nonspeech_clips(), nonspeech_clips()
    assert {c.id for c in a} >= {"silence", "white_noise", "pink_noise", "clicks", "breath"}
    for x, y in zip(a, b, strict=True):
        assert x.samples.dtype == np.float32 and x.samples.ndim == 1 and x.reference == ""
        assert np.array_equal(x.samples, y.samples)
        assert np.abs(x.samples).max() <= 1.0


def test_manifest_errors_are_clear(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_manifest(tmp_path / "none.jsonl")
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"audio": "x.wav"}\n')
    with pytest.raises(AudioError, match="m.jsonl:1"):
        load_manifest(bad)


def test_write_section_only_touches_its_markers(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n<!-- typing:start -->\ntyping table\n<!-- typing:end -->\n")
    write_section(path, "first\n")
    write_section(path, "second\n")
    text = path.read_text()
    assert text.count(START_MARK) == 1 and "second" in text and "first" not in text
    assert "typing table" in text and text.index("typing table") < text.index(START_MARK)


def _raw(name, texts_ms):
    return {"variant": {"name": name, "model": "tiny.en"}, "cold_start_ms": 900.0, "peak_rss_mb": 150.0,
            "clips": [{"id": cid, "kind": kind, "text": text, "first_ms": ms, "last_ms": ms, "total_ms": ms,
                       "audio_s": 2.0, "fallback": None, "words_match": True}
                      for cid, kind, text, ms in texts_ms]}


def test_summary_and_markdown():
    silence = np.zeros(SAMPLE_RATE, np.float32)
    clips = [Clip("a", "real", "hello there", silence), Clip("b", "real", "good morning", silence),
             Clip("n", "nonspeech", "", silence)]
    stock = summarise(_raw("stock faster-whisper transcribe(), tiny.en int8",
                           [("a", "real", "hello there", 1000.0), ("b", "real", "good morning", 1000.0),
                            ("n", "nonspeech", "you", 900.0)]), clips)
    ours = summarise(_raw("short window, tiny.en int8 (VoiceKey default)",
                          [("a", "real", "hello there", 100.0), ("b", "real", "good mourning", 200.0),
                           ("n", "nonspeech", "", None)]), clips)
    assert stock.wer_real == 0 and ours.errors_real == 1 and ours.words_real == 4
    assert stock.nonspeech_chars == 3 and ours.nonspeech_chars == 0
    assert ours.first_word_ms == 150.0 and ours.rtf == pytest.approx(0.3 / 4.0)
    md = render_markdown([stock, ours], {"cpu": "Test CPU", "cores": "2", "os": "Linux", "python": "3.11",
                                         "ctranslate2": "4", "faster_whisper": "1", "date": "today"},
                         clips, "docs/x.png", quick=True)
    assert "Test CPU, 2 cores" in md and "| short window, tiny.en int8 (VoiceKey default) |" in md
    assert "6.7x" in md or "6.7" in md  # 1000 ms vs 150 ms median first word
    assert "![latency vs WER](docs/x.png)" in md


def test_variant_round_trips_through_json():
    v = Variant("x", stream_chunks=(4, 16), model_dirs=("/a",))
    assert Variant.from_json(v.to_json()) == v
    assert json.loads(v.to_json())["stream_chunks"] == [4, 16]


def test_a_clone_finds_the_checkout_it_was_cloned_from(tmp_path):
    # CI clones the repository anywhere (e.g. /tmp/fresh); the speech set sits beside the source.
    src = tmp_path / "work" / "main"
    src.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(src)], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run(["git", "clone", "-q", f"{src}/.", str(tmp_path / "fresh")], check=True)
    assert _local_origin(tmp_path / "fresh") == src.resolve()
    subprocess.run(["git", "-C", str(tmp_path / "fresh"), "remote", "set-url", "origin",
                    "https://example.com/voicekey.git"], check=True)
    assert _local_origin(tmp_path / "fresh") is None
    assert _local_origin(tmp_path / "not-a-repo") is None


def test_bench_command_rejects_unknown_variant(capsys):
    from bench.__main__ import main

    assert main(["--variant", "no-such-variant", "--no-write"]) == 2
    err = capsys.readouterr().err
    assert "no benchmark variant" in err and "fix: choose from:" in err


def test_bench_defaults_point_into_the_checkout():
    from bench.__main__ import build_parser
    from bench.clips import REPO_ROOT

    args = build_parser().parse_args([])
    assert (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "bench").is_dir()
    assert args.output == REPO_ROOT / "BENCHMARKS.md"
    assert args.plot == REPO_ROOT / "docs" / "speech-bench.png"
