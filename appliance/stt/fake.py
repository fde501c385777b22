"""A scripted :class:`~appliance.stt.base.Transcriber` for tests of the stages around speech."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from appliance.stt.base import SAMPLE_RATE, Timings, Transcript, WordSink, check_samples
from appliance.stt.guards import split_words


class FakeTranscriber:
    """Returns scripted texts in order (then ""), handing out words like the real one.

    ``calls`` records the length in samples of every clip it was given.
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.texts: deque[str] = deque(texts)
        self.calls: list[int] = []

    def say(self, text: str) -> None:
        """Queue the text the next call returns."""
        self.texts.append(text)

    def transcribe(self, samples: np.ndarray, on_words: WordSink | None = None) -> Transcript:
        """Return the next scripted text; words go to ``on_words`` one by one."""
        samples = check_samples(samples)
        self.calls.append(len(samples))
        text = self.texts.popleft().strip() if self.texts else ""
        words = split_words(text)
        for word in words:
            if on_words is not None:
                on_words(word)
        done = 0.0 if words else None
        return Transcript(text, Timings(0.0, 0.0, 0.0, 0.0, done, done), len(samples) / SAMPLE_RATE,
                          dropped=None if text else "no-speech")
