"""``python -m bench.live``: live dictation against transcribing after the release, in the same run.

Long utterances (15-30 s) are made by joining consecutive clips of the shared speech set with short
silent gaps (0.3-0.6 s, as between sentences). Each utterance goes through both modes on one
tiny.en int8 model with the product's settings (``appliance.compose``: transcriber, VAD, shaper,
``live.*``):

- **batch** (the peer): the release is at the end of the audio; after the post-roll the whole
  recording is gated and decoded, and the words are shaped as they come;
- **live**: the audio is fed to a :class:`~appliance.live.LiveSession` in real time (its snapshot
  grows with the wall clock), so its passes compete for the CPU as on the device; at the release the
  post-roll is recorded, then ``finish()`` decodes the rest.

Both modes measure, from the release: the last key (the last shaper edit that typed something,
``Shaper.finish()`` included) and the last word handed out by the model. Characters retracted are
the backspaces of shaper edits caused by ordinary words (a spoken command that deletes, e.g.
"scratch that", is counted apart). WER is on the typed text, with Whisper's English normaliser.

Modes run interleaved per utterance (the order rotates), so load drift on a shared machine hits them
alike. Extra live rows with other ``live.*`` values: ``--variant pause_ms=300`` (repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.clips import REPO_ROOT, SAMPLE_RATE, Clip

log = logging.getLogger(__name__)

START_MARK = "<!-- live-bench:start -->"
END_MARK = "<!-- live-bench:end -->"

BATCH = "batch (after the release)"
LIVE = "live (defaults)"

#: Goals (see the brief in docs and the section text).
GOAL_RATIO = 1 / 3          #: live release->last key <= 1/3 of batch, for utterances of 15 s and longer
GOAL_WER_PP = 0.5           #: live WER within +0.5 percentage points of batch
GOAL_RETRACTED = 0          #: characters taken back by ordinary words


# ---- utterances -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Utterance:
    """Consecutive clips joined with silent gaps: one long dictation."""

    id: str
    clip_ids: tuple[str, ...]
    reference: str
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def join_clips(clips: Sequence[Clip], min_s: float = 15.0, max_s: float = 30.0,
               gap_s: tuple[float, float] = (0.3, 0.6), seed: int = 1) -> list[Utterance]:
    """Join consecutive ``clips`` into utterances of ``min_s``..``max_s`` seconds.

    Clips are taken in order; a group is closed as soon as it reaches ``min_s``. A clip that would
    push an unfinished group past ``max_s`` starts a new group instead (the unfinished one is
    dropped), as is a leftover shorter than ``min_s`` at the end. Between two clips goes a gap of
    silence drawn (seeded, so every run joins alike) from ``gap_s``. The reference is the clips'
    references joined with spaces."""
    rng = np.random.default_rng(seed)
    out: list[Utterance] = []
    group: list[Clip] = []
    parts: list[np.ndarray] = []
    length = 0

    def close() -> None:
        out.append(Utterance(f"u{len(out) + 1:02d}", tuple(c.id for c in group),
                             " ".join(c.reference.strip() for c in group),
                             np.concatenate(parts).astype(np.float32)))

    for clip in clips:
        samples = np.asarray(clip.samples, dtype=np.float32)
        gap = np.zeros(int(round(rng.uniform(*gap_s) * SAMPLE_RATE)), np.float32) if group else None
        extra = len(samples) + (len(gap) if gap is not None else 0)
        if group and (length + extra) / SAMPLE_RATE > max_s:
            group, parts, length, gap = [], [], 0, None
            extra = len(samples)
        if len(samples) / SAMPLE_RATE > max_s:
            continue  # a single clip longer than an utterance may be
        if gap is not None:
            parts.append(gap)
        group.append(clip)
        parts.append(samples)
        length += extra
        if length / SAMPLE_RATE >= min_s:
            close()
            group, parts, length = [], [], 0
    return out


def spread(items: Sequence, n: int) -> list:
    """``n`` of ``items`` evenly spaced over the list (all of them when there are no more than ``n``),
    so a shorter run still covers every speaker of the set, not just its first one."""
    if n >= len(items):
        return list(items)
    if n <= 1:
        return list(items[:max(0, n)])
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


# ---- keys -------------------------------------------------------------------------------------
def _norm(word: str) -> str:
    return "".join(ch for ch in word.casefold() if ch.isalnum())


class KeyLog:
    """Shapes word fragments as the product does and records what reaches the keyboard, and when.

    ``retracted``: characters deleted by edits of ordinary words (should stay 0: live typing never
    takes a word back); ``retracted_by_commands``: deleted by a spoken command ("scratch that")."""

    def __init__(self, shaper, clock: Callable[[], float] = time.monotonic,  # noqa: ANN001 - Shaper
                 commands: Sequence[tuple[str, ...]] = ()) -> None:
        self.shaper = shaper
        self.clock = clock
        self.commands = {tuple(_norm(w) for w in c) for c in commands}
        self._longest = max((len(c) for c in self.commands), default=0)
        self.raw: list[str] = []
        self.typed = ""
        self.retracted = 0
        self.retracted_by_commands = 0
        self.key_times: list[float] = []      #: when each edit that typed something came
        self.word_times: list[float] = []     #: when each fragment came from the model
        shaper.begin()

    def feed(self, fragment: str) -> None:
        now = self.clock()
        self.word_times.append(now)
        self.raw.append(fragment)
        self._apply(self.shaper.feed(fragment), now, self._ends_with_command())

    def finish(self) -> None:
        self._apply(self.shaper.finish(), self.clock(), False)

    def _ends_with_command(self) -> bool:
        words = [_norm(w) for w in "".join(self.raw).split()][-self._longest:] if self._longest else []
        return any(tuple(words[-len(c):]) == c for c in self.commands if len(c) <= len(words))

    def _apply(self, edit, now: float, command: bool) -> None:  # noqa: ANN001 - appliance Edit
        if edit.delete:
            if command:
                self.retracted_by_commands += edit.delete
            else:
                self.retracted += edit.delete
            self.typed = self.typed[:max(0, len(self.typed) - edit.delete)]
        if edit.insert:
            self.typed += edit.insert
        if edit.delete or edit.insert:
            self.key_times.append(now)


class CallLog:
    """Wraps the transcriber handed to a LiveSession and records each decode: kind, audio seconds,
    start and end (monotonic). Lets the report say where the time after the release goes."""

    def __init__(self, transcriber) -> None:  # noqa: ANN001 - WhisperTranscriber
        self.inner = transcriber
        self.calls: list[tuple[str, float, float, float]] = []

    def _timed(self, kind: str, samples: np.ndarray, fn: Callable[[], object]) -> object:
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            self.calls.append((kind, len(samples) / SAMPLE_RATE, t0, time.monotonic()))

    def hypothesis(self, samples: np.ndarray, prefix: str = "", context: Sequence[int] = ()) -> str:
        return self._timed("pass", samples, lambda: self.inner.hypothesis(samples, prefix=prefix, context=context))

    def transcribe(self, samples: np.ndarray, on_words=None, prefix: str = "",  # noqa: ANN001,ANN201
                   context: Sequence[int] = ()):
        return self._timed("decode", samples,
                           lambda: self.inner.transcribe(samples, on_words, prefix=prefix, context=context))


# ---- one utterance in one mode ----------------------------------------------------------------
@dataclass
class Run:
    """One utterance in one mode."""

    mode: str
    utterance: str
    audio_s: float            #: the utterance (without post-roll)
    speech_s: float           #: what was decoded from: utterance + post-roll
    text: str                 #: typed text
    last_key_ms: float | None     #: release -> last key
    last_word_ms: float | None    #: release -> last word from the model
    first_key_ms: float | None    #: release -> first key (negative: typed before the release)
    retracted: int
    retracted_by_commands: int
    cpu_s: float              #: decode CPU time (live: LiveStats.cpu_s; batch: process time of the decode)
    process_cpu_s: float      #: all process CPU time from the press (live) / release (batch) to the last key
    chars_before_release: int = 0
    passes: int = 0
    skipped: int = 0
    commits_at_pauses: int = 0
    words_live: int = 0
    waited_ms: float | None = None        #: live: end of post-roll -> final decode starts (the pass in flight)
    final_audio_s: float | None = None    #: live: audio the final decode got
    final_decode_ms: float | None = None  #: live: how long the final decode took


@dataclass(frozen=True)
class Mode:
    """A row of the table: batch, or live with some ``live.*`` values."""

    name: str
    live: object | None = None  #: appliance.live.LiveOptions; None: batch


@dataclass
class Product:
    """The product's parts, built once from the default config (see appliance/compose.py)."""

    transcriber: object
    gate: object
    shaping: object
    live: object
    post_roll_s: float
    post_roll_unless_silent_ms: int
    commands: tuple[tuple[str, ...], ...] = field(default=())

    @classmethod
    def build(cls) -> Product:
        from appliance import compose
        from appliance.config import Config
        from appliance.text.shaping import DEFAULT_COMMANDS

        config = Config()
        options = compose.shaping_options(config)
        return cls(compose.build_transcriber(config), compose.build_gate(config), options,
                   compose.live_options(config), config.audio.post_roll_ms / 1000,
                   config.audio.post_roll_unless_silent_ms, tuple(DEFAULT_COMMANDS) if options.commands else ())

    def post_roll_s_at_release(self, recorded: np.ndarray) -> float:
        """The post-roll the product records after a release (none when the speech had ended)."""
        from appliance.dictation import post_roll_needed

        needed = post_roll_needed(recorded, self.gate.trailing_silence_s, self.post_roll_unless_silent_ms)
        return self.post_roll_s if needed else 0.0

    def keylog(self) -> KeyLog:
        from appliance.text.shaping import Shaper

        return KeyLog(Shaper(self.shaping), commands=self.commands)


def _ms(times: Sequence[float], released: float) -> float:
    """Release -> the last of ``times`` (0 when everything came before the release)."""
    return max(0.0, (times[-1] - released) * 1000) if times else 0.0


async def run_batch(product: Product, utt: Utterance) -> Run:
    """Release at the end of the audio; post-roll; gate, decode, shape (as DictationPipeline.dictate)."""
    loop = asyncio.get_running_loop()
    keys = product.keylog()
    released = time.monotonic()
    post_roll_s = product.post_roll_s_at_release(utt.samples)
    samples = np.concatenate([utt.samples, np.zeros(int(post_roll_s * SAMPLE_RATE), np.float32)])
    await asyncio.sleep(post_roll_s)  # the recorder takes the post-roll after the release
    cpu0 = time.process_time()
    speech = product.gate.trim(samples)
    if speech is not None:
        await asyncio.to_thread(product.transcriber.transcribe, speech,
                                lambda fragment: loop.call_soon_threadsafe(keys.feed, fragment))
        await asyncio.sleep(0)
    cpu = time.process_time() - cpu0
    keys.finish()
    return Run(BATCH, utt.id, utt.seconds, len(samples) / SAMPLE_RATE, keys.typed,
               _ms(keys.key_times, released), _ms(keys.word_times, released),
               (keys.key_times[0] - released) * 1000 if keys.key_times else None,
               keys.retracted, keys.retracted_by_commands, cpu, time.process_time() - cpu0)


async def run_live(product: Product, utt: Utterance, options, name: str = LIVE) -> Run:  # noqa: ANN001
    """Feed ``utt`` in real time to a LiveSession (hold-to-talk), release at its end, finish."""
    from appliance.live import LiveSession

    keys = product.keylog()
    post_roll_s = product.post_roll_s_at_release(utt.samples)
    samples = np.concatenate([utt.samples, np.zeros(int(post_roll_s * SAMPLE_RATE), np.float32)])
    pressed = time.monotonic()
    cpu0 = time.process_time()

    def snapshot() -> np.ndarray:  # what the microphone has delivered so far
        return samples[:min(len(samples), int((time.monotonic() - pressed) * SAMPLE_RATE))]

    calls = CallLog(product.transcriber)
    session = LiveSession(calls, snapshot, product.gate.trailing_silence_s, keys.feed,
                          options, hands_free=False)
    session.start()
    await asyncio.sleep(max(0.0, pressed + utt.seconds - time.monotonic()))
    released = time.monotonic()
    before = len(keys.typed)
    await asyncio.sleep(post_roll_s)
    recorded = time.monotonic()
    await session.finish(samples, gate=product.gate.trim)
    await asyncio.sleep(0)  # the final words come through the loop
    keys.finish()
    stats = session.stats
    final = calls.calls[-1] if calls.calls and calls.calls[-1][2] >= recorded else None
    return Run(name, utt.id, utt.seconds, stats.speech_s or len(samples) / SAMPLE_RATE, keys.typed,
               _ms(keys.key_times, released), _ms(keys.word_times, released),
               (keys.key_times[0] - released) * 1000 if keys.key_times else None,
               keys.retracted, keys.retracted_by_commands, stats.cpu_s, time.process_time() - cpu0,
               chars_before_release=before, passes=stats.passes, skipped=stats.skipped,
               commits_at_pauses=stats.commits_at_pauses, words_live=stats.words_live,
               waited_ms=None if final is None else (final[2] - recorded) * 1000,
               final_audio_s=None if final is None else final[1],
               final_decode_ms=None if final is None else (final[3] - final[2]) * 1000)


# ---- summaries --------------------------------------------------------------------------------
def _median(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def _p90(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return float(np.percentile(clean, 90)) if clean else None


@dataclass(frozen=True)
class Summary:
    """One mode over all utterances."""

    mode: str
    utterances: int
    last_key_ms: float | None
    last_key_p90_ms: float | None
    last_word_ms: float | None
    wer: float
    errors: int
    ref_words: int
    retracted: int
    retracted_by_commands: int
    cpu_per_speech_s: float
    process_cpu_per_speech_s: float
    typed_before_release: float | None   #: share of the typed characters on screen at the release
    passes: int
    skipped: int
    commits_at_pauses: int
    waited_ms: float | None = None        #: medians over utterances (live only)
    final_audio_s: float | None = None
    final_decode_ms: float | None = None
    long_finals: int = 0                  #: utterances whose final decode got half of the audio or more


def summarise(mode: str, runs: Sequence[Run], references: dict[str, str]) -> Summary:
    """Aggregate the runs of one mode (corpus WER of the typed text against the references)."""
    from bench.wer import corpus_wer

    errors = corpus_wer([references[r.utterance] for r in runs], [r.text for r in runs])
    speech = sum(r.speech_s for r in runs) or 1.0
    typed = sum(len(r.text) for r in runs)
    live = mode != BATCH
    return Summary(
        mode, len(runs), _median([r.last_key_ms for r in runs]), _p90([r.last_key_ms for r in runs]),
        _median([r.last_word_ms for r in runs]), errors.wer, errors.errors, errors.ref_words,
        sum(r.retracted for r in runs), sum(r.retracted_by_commands for r in runs),
        sum(r.cpu_s for r in runs) / speech, sum(r.process_cpu_s for r in runs) / speech,
        (sum(r.chars_before_release for r in runs) / typed if typed else None) if live else None,
        sum(r.passes for r in runs), sum(r.skipped for r in runs), sum(r.commits_at_pauses for r in runs),
        _median([r.waited_ms for r in runs]), _median([r.final_audio_s for r in runs]),
        _median([r.final_decode_ms for r in runs]),
        sum(1 for r in runs if r.final_audio_s is not None and r.final_audio_s >= r.audio_s / 2))


def per_utterance_ratio(live: Sequence[Run], batch: Sequence[Run]) -> float | None:
    """Median over utterances of live/batch release->last key."""
    peer = {r.utterance: r.last_key_ms for r in batch}
    ratios = [r.last_key_ms / peer[r.utterance] for r in live
              if r.last_key_ms is not None and peer.get(r.utterance)]
    return statistics.median(ratios) if ratios else None


# ---- Markdown ---------------------------------------------------------------------------------
def _f(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def goal_rows(batch: Summary, live: Summary, ratio_per_utt: float | None) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for the live row against the batch peer."""
    rows: list[tuple[str, str, bool]] = []
    if live.last_key_ms is not None and batch.last_key_ms:
        ratio = live.last_key_ms / batch.last_key_ms
        rows.append(("release->last key, live/batch <= 1/3 (utterances of 15 s and longer)",
                     f"median {live.last_key_ms:.0f} ms vs {batch.last_key_ms:.0f} ms: {ratio:.2f}"
                     + (f" (per-utterance median {ratio_per_utt:.2f})" if ratio_per_utt is not None else ""),
                     ratio <= GOAL_RATIO))
    delta = 100 * (live.wer - batch.wer)
    rows.append((f"WER live <= batch + {GOAL_WER_PP} pp",
                 f"{100 * live.wer:.2f} % vs {100 * batch.wer:.2f} % ({delta:+.2f} pp)", delta <= GOAL_WER_PP))
    rows.append(("characters retracted by ordinary words = 0", f"{live.retracted}", live.retracted <= GOAL_RETRACTED))
    return rows


def render_section(summaries: Sequence[Summary], machine: dict[str, str], utterances: Sequence[Utterance],
                   ratios: dict[str, float | None], run_s: float, post_roll_ms: int = 300,
                   notes: Sequence[str] = (), post_roll_note: str = "") -> str:
    """The BENCHMARKS.md live-dictation section (without the markers). ``summaries[0]`` is batch."""
    batch = summaries[0]
    secs = [u.seconds for u in utterances]
    lines = [
        "## Live dictation vs transcribing after the release",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python {machine['python']}, "
        f"CTranslate2 {machine['ctranslate2']}; {machine['date']}; load average (1/5/15 min) at the start "
        f"{machine.get('load_start', '-')}, at the end {machine.get('load', '-')}. The machine is shared and "
        f"noisy: every mode ran in the same run on the same utterances, interleaved utterance by utterance "
        f"(order rotated). Run time {run_s / 60:.1f} min.",
        "",
        f"Utterances: {len(utterances)}, {min(secs):.1f}-{max(secs):.1f} s (median {statistics.median(secs):.1f} s, "
        f"{sum(secs):.0f} s in all), each made of consecutive clips of `../shared/speech` joined with "
        "0.3-0.6 s of silence; the reference is the joined references. One tiny.en int8 transcriber with "
        "the product's settings (`appliance.compose`: stt, VAD gate, shaper, `live.*`), post-roll "
        f"{post_roll_ms} ms{post_roll_note}. **batch**: release at the end of the audio, then the "
        "whole recording is decoded. **live**: the audio is fed to `LiveSession` in real time (hold-to-talk, "
        "passes from 3 s on), release at its end, then `finish()`. Release -> last key: until the last "
        "shaper edit that typed something (median / p90 over utterances); last word: the last word from "
        "the model. WER: Whisper's English normaliser on the typed text, total errors / total reference "
        "words. Retracted: backspaces of edits caused by ordinary words. CPU / s of speech: decode CPU "
        "time (live: `LiveStats.cpu_s`, every pass and the final decode; batch: the decode) per second "
        "of audio; process CPU: all of the process from the press (live) or release (batch) to the last key.",
        "",
        "| mode | release -> last key (median / p90) | vs batch | release -> last word (median) | WER | "
        "retracted chars | typed before release | CPU / s of speech | process CPU / s | passes (skipped) | "
        "commits at pauses |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        vs = "peer" if s is batch else (
            _f(s.last_key_ms / batch.last_key_ms if s.last_key_ms is not None and batch.last_key_ms else None, ".2f")
            + (f" (per utt. {ratios[s.mode]:.2f})" if ratios.get(s.mode) is not None else ""))
        lines.append(
            f"| {s.mode} | {_f(s.last_key_ms, '.0f')} / {_f(s.last_key_p90_ms, '.0f')} ms | {vs} | "
            f"{_f(s.last_word_ms, '.0f', ' ms')} | {100 * s.wer:.2f} % ({s.errors}/{s.ref_words}) | "
            f"{s.retracted}" + (f" (+{s.retracted_by_commands} by commands)" if s.retracted_by_commands else "")
            + f" | {_f(None if s.typed_before_release is None else 100 * s.typed_before_release, '.0f', ' %')} | "
            f"{s.cpu_per_speech_s:.3f} s | {s.process_cpu_per_speech_s:.3f} s | "
            + ("-" if s is batch else f"{s.passes} ({s.skipped})") + " | "
            + ("-" if s is batch else f"{s.commits_at_pauses}") + " |")
    lives = [s for s in summaries if s is not batch and s.final_decode_ms is not None]
    if lives:
        lines += ["", f"Where live's release -> last key goes (medians over utterances): the post-roll "
                  f"({post_roll_ms} ms where recorded, both modes), then waiting for the pass in flight at the release, then the "
                  "final decode of the audio since the last commit.", "",
                  "| mode | waiting for the pass in flight | final decode | audio it decodes | "
                  "final decode got >= half the utterance |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {s.mode} | {_f(s.waited_ms, '.0f', ' ms')} | {_f(s.final_decode_ms, '.0f', ' ms')} | "
                  f"{_f(s.final_audio_s, '.1f', ' s')} | {s.long_finals} of {s.utterances} |" for s in lives]
    live = next((s for s in summaries if s.mode == LIVE), None)
    if live is not None:
        lines += ["", "| goal (live defaults vs batch) | measured | met |", "|---|---|---|"]
        lines += [f"| {g} | {m} | {'yes' if ok else '**no**'} |"
                  for g, m, ok in goal_rows(batch, live, ratios.get(LIVE))]
    if notes:
        lines += ["", *notes]
    lines += ["", "Reproduce: `make bench-live` (or `python -m bench.live`; `--limit 3` for a smoke run, "
              "`--variant pause_ms=300` for an extra live row)."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between this benchmark's markers in ``path`` (appended when they are missing);
    the rest of the file stays as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{START_MARK}\n{section}{END_MARK}"
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start >= 0 and end > start:
        text = text[:start] + block + text[end + len(END_MARK):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


# ---- the run ----------------------------------------------------------------------------------
def parse_variant(spec: str, base):  # noqa: ANN001,ANN201 - LiveOptions in and out
    """``pause_ms=300,pass_s=0.5`` -> ``base`` with those ``live.*`` values."""
    changes: dict[str, object] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ("after_s", "pause_ms", "pass_s"):
            raise ValueError(f"bad variant {spec!r}: use after_s=, pause_ms= or pass_s=, comma-separated")
        changes[key] = int(value) if key == "pause_ms" else float(value)
    return replace(base, **changes)


async def _run_all(product: Product, utterances: Sequence[Utterance], modes: Sequence[Mode],
                   progress: Callable[[str], None], show_text: bool = False) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {m.name: [] for m in modes}
    for i, utt in enumerate(utterances):
        order = [*modes[i % len(modes):], *modes[:i % len(modes)]]
        for mode in order:
            run = (await run_batch(product, utt) if mode.live is None
                   else await run_live(product, utt, mode.live, mode.name))
            runs[mode.name].append(run)
            progress(f"  {utt.id} ({utt.seconds:.1f} s) {mode.name}: last key {_f(run.last_key_ms, '.0f')} ms, "
                     f"last word {_f(run.last_word_ms, '.0f')} ms, retracted {run.retracted}, "
                     f"before release {run.chars_before_release}/{len(run.text)} chars"
                     + (f", passes {run.passes} (skipped {run.skipped}), pauses {run.commits_at_pauses}, "
                        f"waited {_f(run.waited_ms, '.0f')} ms, final decode {_f(run.final_decode_ms, '.0f')} ms "
                        f"of {_f(run.final_audio_s, '.1f')} s"
                        if mode.live is not None else ""))
            if show_text:
                from bench.wer import word_errors

                progress(f"    ({word_errors(utt.reference, run.text).errors} errors) {run.text}")
    return runs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, default=None,
                   help="JSONL manifest of real speech (default: the shared speech set)")
    p.add_argument("--limit", type=int, default=12,
                   help="utterances to run, spread evenly over those the set makes (default 12)")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,...]",
                   help="an extra live row with other live.* values, e.g. pause_ms=300 (repeatable)")
    p.add_argument("--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md",
                   help="Markdown file to update between the live-bench markers")
    p.add_argument("--no-write", action="store_true", help="print results only")
    p.add_argument("--show-text", action="store_true", help="print every run's typed text and its word errors")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level={0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG),
                        format="%(levelname)s %(name)s: %(message)s")
    from bench.clips import load_manifest, speech_dir
    from bench.speech import machine_info

    manifest = args.manifest or speech_dir() / "manifest.jsonl"
    if not manifest.is_file():
        print(f"python -m bench.live: the speech set is missing ({manifest}); nothing to measure. "
              "Set VOICEKEY_SPEECH_DIR or pass --manifest.")
        return 0
    started = time.monotonic()
    utterances = spread(join_clips(load_manifest(manifest)), max(1, args.limit))
    if not utterances:
        print("python -m bench.live: the speech set is too short to make a 15 s utterance; skipped.")
        return 0
    machine = machine_info()
    machine["load_start"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench.live: {len(utterances)} utterances, {sum(u.seconds for u in utterances):.0f} s of audio; "
          f"loading the model ...", flush=True)
    product = Product.build()
    modes = [Mode(BATCH), Mode(LIVE, product.live)]
    try:
        modes += [Mode(f"live, variant {v}", parse_variant(v, product.live)) for v in args.variant]
    except ValueError as exc:
        print(f"python -m bench.live: error: {exc}", file=sys.stderr)
        return 2
    runs = asyncio.run(_run_all(product, utterances, modes, lambda m: print(m, flush=True), args.show_text))
    machine["load"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    references = {u.id: u.reference for u in utterances}
    summaries = [summarise(m.name, runs[m.name], references) for m in modes]
    ratios = {m.name: per_utterance_ratio(runs[m.name], runs[BATCH]) for m in modes if m.live is not None}
    run_s = time.monotonic() - started
    with_post_roll = sum(product.post_roll_s_at_release(u.samples) > 0 for u in utterances)
    note = (f" unless the speech had ended {product.post_roll_unless_silent_ms} ms before the release "
            f"(`audio.post_roll_unless_silent_ms`; recorded after {with_post_roll} of {len(utterances)} utterances)")
    section = render_section(summaries, machine, utterances, ratios, run_s, round(1000 * product.post_roll_s),
                             post_roll_note=note)
    print()
    print(section)
    if not args.no_write:
        write_section(args.output, section)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
