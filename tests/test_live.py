"""Live dictation (appliance/live.py): LocalAgreement-2, commits at pauses, the forced-prefix finish.

The scripted model here *hears* its audio: each word is a stretch of samples holding the word's
number, silence is zeros. So a decode of the wrong stretch, or with the wrong prefix, shows up as
lost or doubled words. Its quick passes mishear the last word they hear (as Whisper does with a
half-spoken word), differently every time; its careful final decode hears every word right.
"""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.audio.format import SAMPLE_RATE
from appliance.live import Agreement, LiveOptions, LiveSession
from appliance.stt.base import Timings, Transcript

WORD_S = 0.3
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def test_agreement_commits_what_two_passes_agree_on_minus_the_last_word():
    a = Agreement()
    assert a.offer("the quick") == []  # nothing to agree with yet
    assert a.offer("the quick brown") == ["the", "quick"]  # "brown" is only in the newest pass
    assert a.offer("the quick brown fox") == ["brown"]  # "fox" is the newest pass's last word
    assert a.offer("the quick brown fax jumps") == []  # "fox" vs "fax": no agreement
    assert a.offer("the quick brown fax jumps over") == ["fax", "jumps"]
    assert a.text == "the quick brown fax jumps"


def test_agreement_ignores_a_pass_that_does_not_continue_the_committed_words():
    a = Agreement()
    a.offer("one two three")
    a.offer("one two three four")
    assert a.committed == ["one", "two", "three"]
    assert a.offer("one too three four five") == []
    assert a.committed == ["one", "two", "three"]


class HearingModel:
    """A model that hears word numbers in the audio (see the module docstring)."""

    def __init__(self) -> None:
        self.mishear = itertools.count()
        self.calls: list[tuple[str, int, str]] = []
        self.contexts: list[tuple[str, tuple[int, ...]]] = []

    @staticmethod
    def heard(samples: np.ndarray) -> list[str]:
        words, last = [], 0.0
        per_word = int(WORD_S * SAMPLE_RATE)
        values = np.asarray(samples)
        # a word counts once its whole length is in the audio; a cut one is "half-heard"
        for start in range(0, len(values), per_word // 3):
            v = float(values[start])
            if v != last and v > 0:
                whole = start + per_word <= len(values) and float(values[start + per_word - 1]) == v
                words.append(WORDS[int(v) - 1] + ("" if whole else "~"))  # int(): drop the 0.25
            last = v
        return words

    def _continue(self, samples: np.ndarray, prefix: str) -> list[str]:
        done = prefix.split()
        heard = [w.rstrip("~") for w in self.heard(samples)]
        assert heard[:len(done)] == [w.rstrip("~") for w in done] or any("#" in w for w in done), (
            f"prefix {done} is not what this audio starts with: {heard}")
        return done + heard[len(done):]

    def hypothesis(self, samples: np.ndarray, prefix: str = "", context: tuple[int, ...] = ()) -> str:
        self.contexts.append(("pass", tuple(context)))
        words = self._continue(samples, prefix)
        if len(words) > len(prefix.split()):
            words[-1] = f"{words[-1]}#{next(self.mishear)}"  # the newest word, misheard
        self.calls.append(("pass", len(samples), prefix))
        return " ".join(words)

    def transcribe(self, samples: np.ndarray, on_words=None, prefix: str = "",  # noqa: ANN001
                   context: tuple[int, ...] = ()):
        self.contexts.append(("final", tuple(context)))
        words = self._continue(samples, prefix)
        for i, w in enumerate(words[len(prefix.split()):]):
            if on_words:  # like Whisper's: the first word of a decode comes without its space
                on_words(w if i == 0 and not prefix else " " + w)
        self.calls.append(("final", len(samples), prefix))
        # "tokens": a word's number, as Whisper's token ids of the text
        return Transcript(" ".join(words), Timings(0, 0, 0, 0, None, None), len(samples) / SAMPLE_RATE,
                          token_ids=tuple(WORDS.index(w.rstrip("~")) for w in words))


def speech(script: list[int | None]) -> np.ndarray:
    """Audio for a script of word numbers (1-based) and pauses (None = 0.6 s of silence)."""
    parts = []
    for position, item in enumerate(script):
        if item is None:
            parts.append(np.zeros(int(0.6 * SAMPLE_RATE), np.float32))
        else:  # neighbours differ even for the same word, so "echo echo" is heard twice
            parts.append(np.full(int(WORD_S * SAMPLE_RATE), item + 0.25 * (position % 2), np.float32))
    parts.append(np.zeros(int(0.3 * SAMPLE_RATE), np.float32))  # the post-roll
    return np.concatenate(parts)


def trailing_silence(samples: np.ndarray) -> float | None:
    nonzero = np.flatnonzero(samples)
    if nonzero.size == 0:
        return None
    return (len(samples) - 1 - int(nonzero[-1])) / SAMPLE_RATE


def run_live(script: list[int | None], step_s: float, hands_free: bool = True, model: HearingModel | None = None
             ) -> tuple[list[str], str, int]:
    """Feed the script's audio in ``step_s`` chunks through a LiveSession; return what it emitted at
    each moment (cumulative), the final text, and how many words were typed before the end."""
    audio = speech(script)
    model = model or HearingModel()
    emitted: list[str] = []
    typed: list[str] = []
    before_end: list[int] = []
    now = [0.0]

    async def go() -> None:
        grown = [0]
        session = LiveSession(model, snapshot=lambda: audio[:grown[0]], trailing_silence=trailing_silence,
                              emit=lambda w: (emitted.append(w), typed.append("".join(emitted))),
                              options=LiveOptions(after_s=0.0, pause_ms=500, pass_s=0.5),
                              clock=lambda: now[0], hands_free=hands_free)
        step = int(step_s * SAMPLE_RATE)
        while grown[0] < len(audio) - int(0.3 * SAMPLE_RATE):
            grown[0] = min(len(audio), grown[0] + step)
            now[0] += step_s
            await session.step()
        before_end.append(len(emitted))
        await session.finish(audio, gate=lambda s: s if np.any(s) else None)
        await asyncio.sleep(0)  # the final words are handed over through the loop

    asyncio.run(go())
    return typed, "".join(emitted).strip(), before_end[0]


def test_a_long_dictation_is_typed_live_and_completely():
    script = [1, 2, 3, 4, 5, 6, None, 7, 8, 9, 10, 1, 2, 3, None, 4, 5]
    typed, final, before_end = run_live(script, step_s=0.25)
    truth = " ".join(WORDS[i - 1] for i in script if i is not None)
    assert final == truth
    # most of it was on the screen before the end: all but the last couple of words
    assert before_end >= len(truth.split()) - 3, (before_end, typed)


@settings(max_examples=60, deadline=None)
@given(script=st.lists(st.one_of(st.integers(1, len(WORDS)), st.none()), min_size=1, max_size=30),
       step_s=st.sampled_from([0.1, 0.25, 0.4, 0.9, 1.7]))
def test_typed_text_is_always_a_prefix_of_the_final_text_and_nothing_is_lost_or_doubled(script, step_s):
    typed, final, _ = run_live(script, step_s)
    truth = " ".join(WORDS[i - 1] for i in script if i is not None)
    for moment in typed:
        assert final.startswith(moment.strip()), (moment, final)
    assert "#" not in final  # a misheard word never survives: two passes never agree on one
    assert final == truth


def test_each_stretch_is_decoded_with_the_text_of_the_stretches_before_it_as_context():
    """Whisper conditions a window on the text before it; a stretch cut at a pause must get what was
    typed before it (as the model's tokens), or it is decoded cold and short stretches go wrong."""
    model = HearingModel()
    _, final, _ = run_live([1, 2, 3, None, 4, 5, None, 6, 7, 8], step_s=0.1, model=model)
    assert final == "alpha bravo charlie delta echo foxtrot golf hotel"
    contexts = [context for kind, context in model.contexts if kind == "final"]
    assert contexts == [(), (0, 1, 2), (0, 1, 2, 3, 4)], model.contexts
    # the quick passes inside a stretch get the same context as its decode
    assert {context for kind, context in model.contexts if kind == "pass"} <= set(contexts)
