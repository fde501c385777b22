"""The speech benchmark: every variant on the same clips, each in its own process.

Reports per variant: WER (Whisper English normaliser, errors / reference words) on real and on
Piper speech, release->first word and release->last word latency (the release is simulated at the
clip end: the clock starts when the whole clip is handed over), real-time factor, peak RSS, cold
start, and characters "heard" in clips without speech. Writes a Markdown section and a PNG plot.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.clips import REPO_ROOT, Clip, load_manifest, nonspeech_clips, piper_clips, speech_dir
from bench.wer import corpus_wer
from bench.worker import Variant
from appliance.errors import VoiceKeyError

log = logging.getLogger(__name__)

START_MARK = "<!-- speech-bench:start -->"
END_MARK = "<!-- speech-bench:end -->"

STOCK = "stock faster-whisper transcribe()"

#: The full comparison. The first is the peer every other variant is compared with.
FULL_VARIANTS: tuple[Variant, ...] = (
    Variant(f"{STOCK}, tiny.en int8", engine="stock"),
    Variant("padded greedy, tiny.en float32", window="padded", compute_type="float32", stream_chunks=()),
    Variant("padded greedy, tiny.en int8", window="padded", stream_chunks=()),
    Variant("short window, tiny.en float32", compute_type="float32"),
    Variant("short window, tiny.en int8, one decoder call", stream_chunks=()),
    Variant("short window, tiny.en int8, zeros fill 500+200", min_frames=500, margin_frames=200, fill="zeros"),
    Variant("short window, tiny.en int8, silence fill 750+200", min_frames=750, margin_frames=200),
    Variant("short window, tiny.en int8 (VoiceKey default)"),
    Variant(f"{STOCK}, base int8", engine="stock", model="base"),
    Variant("padded greedy, base int8", model="base", window="padded", stream_chunks=()),
    Variant("short window, base int8", model="base"),
)
QUICK_VARIANTS: tuple[Variant, ...] = (FULL_VARIANTS[0], FULL_VARIANTS[2], FULL_VARIANTS[7])


@dataclass(frozen=True)
class VariantSummary:
    """Aggregates of one variant."""

    name: str
    model: str
    wer_real: float | None
    errors_real: int
    words_real: int
    wer_piper: float | None
    first_word_ms: float | None      #: median over speech clips
    first_word_p90_ms: float | None
    last_word_ms: float | None       #: median over speech clips
    rtf: float | None                #: total processing time / audio time (speech clips)
    peak_rss_mb: float
    cold_start_ms: float
    nonspeech_chars: int
    nonspeech_clips: int
    fallbacks: int
    words_match: bool                #: word fragments concatenated == final text on every clip
    per_clip: list[dict]


def _median(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def _p90(values: Sequence[float | None]) -> float | None:
    clean = sorted(v for v in values if v is not None)
    return float(np.percentile(clean, 90)) if clean else None


def summarise(data: dict, clips: Sequence[Clip]) -> VariantSummary:
    """Aggregate one worker's output against the clips' references."""
    refs = {c.id: c for c in clips}
    rows = data["clips"]
    real = [r for r in rows if r["kind"] == "real"]
    piper = [r for r in rows if r["kind"] == "piper"]
    speech = real + piper
    silent = [r for r in rows if r["kind"] == "nonspeech"]
    wer_real = corpus_wer([refs[r["id"]].reference for r in real], [r["text"] for r in real])
    wer_piper = corpus_wer([refs[r["id"]].reference for r in piper], [r["text"] for r in piper])
    audio = sum(r["audio_s"] for r in speech)
    return VariantSummary(
        name=data["variant"]["name"], model=data["variant"]["model"],
        wer_real=wer_real.wer if real else None, errors_real=wer_real.errors, words_real=wer_real.ref_words,
        wer_piper=wer_piper.wer if piper else None,
        first_word_ms=_median([r["first_ms"] for r in speech]),
        first_word_p90_ms=_p90([r["first_ms"] for r in speech]),
        last_word_ms=_median([r["last_ms"] for r in speech]),
        rtf=(sum(r["total_ms"] for r in speech) / 1000 / audio) if audio else None,
        peak_rss_mb=data["peak_rss_mb"], cold_start_ms=data["cold_start_ms"],
        nonspeech_chars=sum(len(r["text"]) for r in silent), nonspeech_clips=len(silent),
        fallbacks=sum(1 for r in rows if r.get("fallback")),
        words_match=all(r.get("words_match", True) for r in rows), per_clip=rows)


def prepare_clips(manifest: Path, quick: bool, piper: bool = True) -> list[Clip]:
    """Real clips (a few with ``quick``), Piper speech and the non-speech clips."""
    clips = load_manifest(manifest, limit=6 if quick else None)
    if piper:
        try:
            from bench.clips import PIPER_SENTENCES

            clips += piper_clips(PIPER_SENTENCES[:2] if quick else PIPER_SENTENCES)
        except ImportError as exc:
            log.warning("Piper is not installed (%s); skipping generated speech", exc)
    return clips + nonspeech_clips()


def run_variant(variant: Variant, clips_index: Path, workdir: Path, timeout_s: float) -> dict:
    """Run one variant in a fresh Python process and return its raw results."""
    spec = workdir / f"variant-{abs(hash(variant.name))}.json"
    out = workdir / f"result-{abs(hash(variant.name))}.json"
    spec.write_text(variant.to_json())
    spawned = time.time()
    proc = subprocess.run([sys.executable, "-m", "bench.worker", str(spec), str(clips_index),
                           str(out), repr(spawned)], capture_output=True, text=True, timeout=timeout_s,
                          cwd=REPO_ROOT)  # bench/ is importable from the checkout
    if proc.returncode != 0:
        raise VoiceKeyError(f"benchmark variant {variant.name!r} failed:\n{proc.stderr[-2000:]}",
                            fix="run `voicekey transcribe` with the same model to see the error")
    return json.loads(out.read_text())


def machine_info() -> dict[str, str]:
    """CPU model, cores, OS, library versions, date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
        # x86: "model name"; Raspberry Pi: "Model" (board) and "Hardware"
        cpu = fields.get("model name") or fields.get("hardware") or cpu
        if fields.get("model") and not fields["model"].isdigit():
            cpu = f"{fields['model']} ({cpu})"
    except OSError:
        pass
    versions = {}
    for package in ("ctranslate2", "faster_whisper"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = "missing"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "ctranslate2": versions["ctranslate2"],
            "faster_whisper": versions["faster_whisper"],
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def render_markdown(summaries: Sequence[VariantSummary], machine: dict[str, str], clips: Sequence[Clip],
                    plot_rel: str | None, quick: bool, rounds: int = 1) -> str:
    """The BENCHMARKS.md speech section (without the markers)."""
    kinds = {k: sum(1 for c in clips if c.kind == k) for k in ("real", "piper", "nonspeech")}
    real_s = sum(len(c.samples) for c in clips if c.kind == "real") / 16_000
    lines = [
        "## Speech to text" + (" (quick run)" if quick else ""),
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python {machine['python']}, "
        f"CTranslate2 {machine['ctranslate2']}, faster-whisper {machine['faster_whisper']}; {machine['date']}"
        + (f"; load average (1/5/15 min) at the end {machine['load']}" if machine.get("load") else "") + ". "
        f"The machine is shared, so absolute times are noisy; all variants ran in the same run, each "
        f"in its own processes, interleaved in {rounds} round(s) (each round: every variant on a share "
        "of the clips), so load changes hit all variants alike.",
        "",
        f"Clips: {kinds['real']} real recordings ({real_s:.0f} s, `../shared/speech`), {kinds['piper']} "
        f"Piper (joe, en_US) sentences, {kinds['nonspeech']} clips without speech (silence, room/white/"
        "pink noise, mains hum, clicks, breaths, a 0.2 s tap). Release is simulated at the clip end: "
        "latency is measured from handing over the whole clip. WER: Whisper's English normaliser, "
        "total errors / total reference words. First/last word: median over all speech clips. "
        "RTF: processing time / audio time. Peak RSS: the variant's own process. Cold start: process "
        "start to model loaded and warmed (median over the rounds). Non-speech: characters produced on the non-speech clips.",
        "",
        "| variant | WER real | WER Piper | first word (median / p90) | last word (median) | RTF | "
        "peak RSS | cold start | non-speech chars | padded fallbacks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.name} | {_fmt(s.wer_real and 100 * s.wer_real, '.2f', ' %') if s.wer_real is not None else '-'} "
            f"({s.errors_real}/{s.words_real}) | {_fmt(None if s.wer_piper is None else 100 * s.wer_piper, '.2f', ' %')} | "
            f"{_fmt(s.first_word_ms, '.0f')} / {_fmt(s.first_word_p90_ms, '.0f')} ms | "
            f"{_fmt(s.last_word_ms, '.0f', ' ms')} | {_fmt(s.rtf, '.3f')} | {s.peak_rss_mb:.0f} MB | "
            f"{s.cold_start_ms / 1000:.1f} s | {s.nonspeech_chars} | {s.fallbacks} |")
    lines += ["", *render_goals(summaries)]
    if plot_rel:
        lines += ["", f"![latency vs WER]({plot_rel})"]
    lines += ["", "Reproduce: `make bench` (or `python -m bench`; `python -m bench --quick` for a smoke run)."]
    return "\n".join(lines) + "\n"


def _find(summaries: Sequence[VariantSummary], name: str) -> VariantSummary | None:
    return next((s for s in summaries if s.name == name), None)


def render_goals(summaries: Sequence[VariantSummary]) -> list[str]:
    """The goals table (only rows whose variants ran)."""
    default = _find(summaries, "short window, tiny.en int8 (VoiceKey default)")
    stock = _find(summaries, f"{STOCK}, tiny.en int8")
    f32 = _find(summaries, "padded greedy, tiny.en float32")
    base = _find(summaries, "short window, base int8")
    rows = ["| goal | measured | met |", "|---|---|---|"]
    if default and f32 and default.wer_real is not None and f32.wer_real is not None:
        delta = 100 * (default.wer_real - f32.wer_real)
        rows.append(f"| tiny.en int8 WER <= float32 padded + 0.3 pp | {100 * default.wer_real:.2f} % vs "
                    f"{100 * f32.wer_real:.2f} % ({delta:+.2f} pp) | {'yes' if delta <= 0.3 else 'no'} |")
    if default and stock and default.first_word_ms and stock.first_word_ms:
        ratio = stock.first_word_ms / default.first_word_ms
        per_clip = _per_clip_speedup(stock, default)
        rows.append(f"| release->first word >= 5x faster than stock transcribe() | median {default.first_word_ms:.0f} ms "
                    f"vs {stock.first_word_ms:.0f} ms: {ratio:.1f}x (per-clip median {per_clip:.1f}x) | "
                    f"{'yes' if ratio >= 5 else 'no'} |")
    if default:
        rows.append(f"| peak RSS <= 200 MB (tiny.en) | {default.peak_rss_mb:.0f} MB | "
                    f"{'yes' if default.peak_rss_mb <= 200 else 'no'} |")
        rows.append(f"| hallucinated characters on non-speech = 0 | {default.nonspeech_chars} chars on "
                    f"{default.nonspeech_clips} clips | {'yes' if default.nonspeech_chars == 0 else 'no'} |")
    if base:
        rows.append(f"| peak RSS <= 300 MB (base) | {base.peak_rss_mb:.0f} MB | "
                    f"{'yes' if base.peak_rss_mb <= 300 else 'no'} |")
    return rows if len(rows) > 2 else []


def _per_clip_speedup(stock: VariantSummary, ours: VariantSummary) -> float:
    theirs = {r["id"]: r["first_ms"] for r in stock.per_clip if r["kind"] != "nonspeech"}
    ratios = [theirs[r["id"]] / r["first_ms"] for r in ours.per_clip
              if r["kind"] != "nonspeech" and r["first_ms"] and theirs.get(r["id"])]
    return statistics.median(ratios) if ratios else float("nan")


def plot(summaries: Sequence[VariantSummary], path: Path, machine: dict[str, str]) -> None:
    """Latency (first and last word) against WER, one point pair per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    markers = "os^vD<>Pp*h"
    for i, s in enumerate(summaries):
        if s.wer_real is None or s.first_word_ms is None:
            continue
        colour = f"C{i % 10}"
        y = 100 * s.wer_real
        ax.scatter([s.first_word_ms], [y], color=colour, marker=markers[i % len(markers)], s=70,
                   label=s.name, zorder=3)
        if s.last_word_ms and s.last_word_ms != s.first_word_ms:
            ax.scatter([s.last_word_ms], [y], facecolors="none", edgecolors=colour,
                       marker=markers[i % len(markers)], s=70, zorder=3)
            ax.plot([s.first_word_ms, s.last_word_ms], [y, y], color=colour, lw=1, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("release -> first word (filled) / last word (hollow), median ms (log scale)")
    ax.set_ylabel("WER on real speech, %")
    ax.set_title(f"Speech to text: latency vs WER ({machine['cpu']}, {machine['cores']} cores)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_section(benchmarks: Path, section: str) -> None:
    """Replace the text between the speech markers in BENCHMARKS.md (append them if missing)."""
    text = benchmarks.read_text() if benchmarks.exists() else "# Benchmarks\n"
    block = f"{START_MARK}\n{section}{END_MARK}"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    benchmarks.write_text(text)


def prepare_models(variants: Sequence[Variant], progress=print) -> None:  # noqa: ANN001
    """Join split packs and make int8 copies now, so no variant's RSS or cold start includes that
    one-time work (on a device it happens once, at install or first start)."""
    from appliance.stt.models import ModelStore, default_cache_dir, quantized_copy, resolve_model

    done: set[tuple[str, bool]] = set()
    for v in variants:
        int8 = v.engine == "voicekey" and v.compute_type.startswith("int8")
        if (v.model, int8) in done:
            continue
        done.add((v.model, int8))
        store = ModelStore(model_dirs=tuple(Path(d) for d in v.model_dirs),
                           cache_dir=Path(v.cache_dir) if v.cache_dir else default_cache_dir())
        model = resolve_model(v.model, store)
        if int8:
            progress(f"bench: int8 copy of {v.model} ...")
            quantized_copy(model, store.cache_dir, "int8")


def run_bench(manifest: Path, variants: Sequence[Variant], quick: bool, benchmarks: Path | None,
              plot_path: Path | None, json_out: Path | None = None, timeout_s: float = 3600,
              piper: bool = True, progress=print, rounds: int = 3) -> list[VariantSummary]:  # noqa: ANN001
    """Run every variant on the same clips; write BENCHMARKS.md / plot / raw JSON if asked."""
    prepare_models(variants, progress)
    clips = prepare_clips(manifest, quick, piper)
    machine = machine_info()
    summaries: list[VariantSummary] = []
    raw: list[dict] = []
    rounds = max(1, min(rounds, len(clips)))
    merged: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="voicekey-bench-") as tmp:
        workdir = Path(tmp)
        blocks: list[dict] = [{"clips": []} for _ in range(rounds)]
        for i, clip in enumerate(clips):
            file = workdir / f"clip{i:03d}.npy"
            np.save(file, clip.samples)
            blocks[i % rounds]["clips"].append({"id": clip.id, "kind": clip.kind, "file": str(file)})
        # The machine is shared and its load drifts over minutes. Each round runs every variant on
        # one slice of the clips (variant order rotated per round), so a slow spell hits all
        # variants alike instead of whichever happened to run then.
        for r, block in enumerate(blocks):
            index_path = workdir / f"clips-{r}.json"
            index_path.write_text(json.dumps(block))
            shift = r % len(variants)
            for variant in [*variants[shift:], *variants[:shift]]:
                progress(f"bench: round {r + 1}/{rounds}: {variant.name} ...")
                data = run_variant(variant, index_path, workdir, timeout_s)
                into = merged.setdefault(variant.name, {"variant": data["variant"], "clips": [],
                                                        "peak_rss_mb": 0.0, "cold_starts_ms": []})
                into["clips"] += data["clips"]
                into["peak_rss_mb"] = max(into["peak_rss_mb"], data["peak_rss_mb"])
                into["cold_starts_ms"].append(data["cold_start_ms"])
    machine["load"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    for variant in variants:
        data = merged[variant.name]
        data["cold_start_ms"] = statistics.median(data["cold_starts_ms"])
        raw.append(data)
        summary = summarise(data, clips)
        summaries.append(summary)
        progress(f"  {variant.name}: WER {_fmt(None if summary.wer_real is None else 100 * summary.wer_real, '.2f')} %, "
                 f"first word {_fmt(summary.first_word_ms, '.0f')} ms, last word {_fmt(summary.last_word_ms, '.0f')} ms, "
                 f"RSS {summary.peak_rss_mb:.0f} MB, non-speech chars {summary.nonspeech_chars}")
    if json_out:
        json_out.write_text(json.dumps({"machine": machine, "variants": raw}, indent=1))
    plot_rel = None
    if plot_path:
        plot(summaries, plot_path, machine)
        if benchmarks:
            plot_rel = os.path.relpath(plot_path, benchmarks.parent)
    if benchmarks:
        write_section(benchmarks, render_markdown(summaries, machine, clips, plot_rel, quick, rounds))
    return summaries


def default_manifest() -> Path:
    """``<speech dir>/manifest.jsonl`` (see :func:`bench.clips.speech_dir`)."""
    return speech_dir() / "manifest.jsonl"
