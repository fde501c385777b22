"""The live-dictation benchmark's pure parts: joining clips, counting retractions, the section."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.text.shaping import DEFAULT_COMMANDS, Shaper, ShapingOptions
from bench.clips import SAMPLE_RATE, Clip
from bench.live import (BATCH, END_MARK, LIVE, START_MARK, KeyLog, Run, Summary, Utterance, goal_rows,
                        join_clips, parse_variant, per_utterance_ratio, render_section, spread, summarise,
                        write_section)


def clip(name: str, seconds: float, text: str | None = None, value: float = 0.1) -> Clip:
    return Clip(name, "real", text or name, np.full(int(seconds * SAMPLE_RATE), value, np.float32))


# ---- joining ----------------------------------------------------------------------------------
def test_consecutive_clips_are_joined_into_utterances_of_at_least_min_s_with_silent_gaps():
    clips = [clip(f"c{i}", 6.0, value=0.1 * (i + 1)) for i in range(7)]
    utts = join_clips(clips, min_s=15, max_s=30, gap_s=(0.3, 0.6), seed=3)
    assert [u.clip_ids for u in utts] == [("c0", "c1", "c2"), ("c3", "c4", "c5")]  # c6 alone: too short
    for u in utts:
        assert 15 <= u.seconds <= 30 and u.samples.dtype == np.float32
        # the clips in order, separated by silences of 0.3-0.6 s
        runs = np.split(u.samples, np.flatnonzero(np.diff(u.samples != 0)) + 1)
        gaps = [len(r) / SAMPLE_RATE for r in runs if not r.any()]
        assert len(gaps) == 2 and all(0.3 <= g <= 0.6 for g in gaps)
        assert [float(r[0]) for r in runs if r.any()] == pytest.approx(
            [0.1 * (int(c[1:]) + 1) for c in u.clip_ids])
    assert utts[0].reference == "c0 c1 c2"


def test_joining_is_reproducible_and_respects_max_s():
    clips = [clip("a", 10), clip("b", 4), clip("huge", 40), clip("c", 12), clip("d", 12), clip("e", 9)]
    one = join_clips(clips, min_s=15, max_s=30, seed=1)
    two = join_clips(clips, min_s=15, max_s=30, seed=1)
    assert [u.clip_ids for u in one] == [("c", "d")]  # "a b" is cut off by the 40 s clip, which is skipped
    assert all(np.array_equal(x.samples, y.samples) for x, y in zip(one, two, strict=True))
    # a clip that would pass max_s starts a new group instead
    assert [u.clip_ids for u in join_clips([clip("a", 14), clip("b", 17), clip("c", 5)], 15, 30)] == [("b",)]


def test_references_are_joined_with_single_spaces():
    utts = join_clips([clip("a", 8, " First sentence. "), clip("b", 8, "Second one.")], 15, 30)
    assert utts[0].reference == "First sentence. Second one."


def test_spread_picks_evenly_and_keeps_the_ends():
    assert spread(list(range(18)), 4) == [0, 6, 11, 17]
    assert spread([1, 2], 5) == [1, 2]


def test_variants_parse_into_live_options():
    from appliance.live import LiveOptions

    base = LiveOptions()
    assert parse_variant("pause_ms=300", base) == LiveOptions(pause_ms=300)
    assert parse_variant("pause_ms=300, pass_s=0.5", base) == LiveOptions(pause_ms=300, pass_s=0.5)
    with pytest.raises(ValueError, match="pause_ms"):
        parse_variant("speed=2", base)


# ---- retractions ------------------------------------------------------------------------------
def keylog() -> KeyLog:
    ticks = iter(range(1000))
    return KeyLog(Shaper(ShapingOptions()), clock=lambda: float(next(ticks)), commands=tuple(DEFAULT_COMMANDS))


def test_ordinary_words_retract_nothing_and_the_typed_text_is_what_the_shaper_typed():
    keys = keylog()
    for word in " Hello world. This is twenty five dogs.".split(" ")[1:]:
        keys.feed(" " + word)
    keys.finish()
    assert keys.retracted == 0 and keys.retracted_by_commands == 0
    assert keys.typed == "Hello world. This is 25 dogs."
    assert len(keys.word_times) == 7
    assert keys.key_times[-1] == 7.0  # the held-back final period is typed by finish()


def test_a_spoken_command_that_deletes_is_counted_apart_from_retractions():
    keys = keylog()
    for word in (" Send", " it", " now.", " scratch", " that", " Later."):
        keys.feed(word)
    keys.finish()
    assert keys.retracted == 0
    assert keys.retracted_by_commands == len("Send it now")
    assert keys.typed == "Later."


class Retracting:
    """A stand-in shaper that takes back two characters on the second word."""

    def __init__(self) -> None:
        self.n = 0

    def begin(self) -> None: ...

    def feed(self, fragment: str):  # noqa: ANN201
        from appliance.text.shaping import Edit

        self.n += 1
        return Edit(2, fragment) if self.n == 2 else Edit(0, fragment)

    def finish(self):  # noqa: ANN201
        from appliance.text.shaping import Edit

        return Edit()


def test_a_deletion_caused_by_an_ordinary_word_is_a_retraction():
    keys = KeyLog(Retracting(), clock=lambda: 0.0, commands=tuple(DEFAULT_COMMANDS))
    keys.feed(" one")
    keys.feed(" two")
    assert keys.retracted == 2 and keys.retracted_by_commands == 0
    assert keys.typed == " o two"


# ---- summaries and the section ----------------------------------------------------------------
def run(mode: str, utt: str, last_key_ms: float, text: str, **kw) -> Run:
    base = dict(audio_s=20.0, speech_s=20.3, last_word_ms=last_key_ms, first_key_ms=0.0, retracted=0,
                retracted_by_commands=0, cpu_s=1.0, process_cpu_s=1.2)
    base.update(kw)
    return Run(mode, utt, text=text, last_key_ms=last_key_ms, **base)


def test_summaries_ratios_and_goals():
    refs = {"u1": "the cat sat on the mat", "u2": "a b c d"}
    batch = [run(BATCH, "u1", 1000, "the cat sat on the mat"), run(BATCH, "u2", 2000, "a b c d")]
    live = [run(LIVE, "u1", 300, "the cat sat on a mat", chars_before_release=15, final_audio_s=2.0),
            run(LIVE, "u2", 600, "a b c d", chars_before_release=7, final_audio_s=15.0, retracted=3)]
    b, lv = summarise(BATCH, batch, refs), summarise(LIVE, live, refs)
    assert b.last_key_ms == 1500 and lv.last_key_ms == 450
    assert b.wer == 0 and lv.errors == 1 and lv.ref_words == 10
    assert lv.retracted == 3 and lv.long_finals == 1
    assert lv.cpu_per_speech_s == pytest.approx(2 / 40.6)
    assert b.typed_before_release is None and lv.typed_before_release == pytest.approx(22 / 27)
    assert per_utterance_ratio(live, batch) == pytest.approx(0.3)
    goals = goal_rows(b, lv, 0.3)
    assert [ok for _, _, ok in goals] == [True, False, False]  # 0.30 <= 1/3; +10 pp; 3 retracted


def summary(mode: str, last_key: float, wer: float, **kw) -> Summary:
    base = dict(utterances=2, last_key_p90_ms=last_key * 1.2, last_word_ms=last_key, errors=int(wer * 100),
                ref_words=100, retracted=0, retracted_by_commands=0, cpu_per_speech_s=0.05,
                process_cpu_per_speech_s=0.06, typed_before_release=None, passes=0, skipped=0,
                commits_at_pauses=0)
    base.update(kw)
    return Summary(mode, last_key_ms=last_key, wer=wer, **base)


def test_the_section_names_machine_ratio_goals_and_how_to_reproduce():
    utts = [Utterance("u1", ("a", "b"), "x", np.zeros(16 * SAMPLE_RATE, np.float32)),
            Utterance("u2", ("c",), "y", np.zeros(20 * SAMPLE_RATE, np.float32))]
    machine = {"cpu": "Test CPU", "cores": "2", "os": "Linux", "python": "3.11", "ctranslate2": "4",
               "date": "2026-01-01 00:00 UTC", "load_start": "1.0 / 1.0 / 1.0", "load": "2.0 / 1.5 / 1.0"}
    sums = [summary(BATCH, 1500, 0.05),
            summary(LIVE, 450, 0.052, typed_before_release=0.9, passes=30, waited_ms=100.0,
                    final_decode_ms=200.0, final_audio_s=3.0)]
    text = render_section(sums, machine, utts, {LIVE: 0.31}, run_s=300)
    assert "Test CPU, 2 cores" in text and "2.0 / 1.5 / 1.0" in text and "2026-01-01" in text
    assert "| live (defaults) | 450 / 540 ms | 0.30 (per utt. 0.31) |" in text
    assert "| batch (after the release) | 1500 / 1800 ms | peer |" in text
    assert "16.0-20.0 s" in text and "make bench-live" in text
    assert "| 90 % |" in text
    goals = [line for line in text.splitlines() if line.startswith("| ") and line.rstrip().endswith(("yes |", "no** |"))]
    assert len(goals) == 3 and all(line.endswith("yes |") for line in goals)  # +0.2 pp, 0.30, 0 chars


def test_write_section_only_touches_its_own_markers(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n<!-- speech-bench:start -->\nspeech\n<!-- speech-bench:end -->\n")
    write_section(path, "first\n")
    write_section(path, "second\n")
    text = path.read_text()
    assert text.count(START_MARK) == 1 and text.count(END_MARK) == 1
    assert "second" in text and "first" not in text
    assert text.index("speech\n") < text.index(START_MARK)
