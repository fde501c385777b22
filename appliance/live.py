"""Live dictation: words typed while the user is still speaking, never taken back.

A keyboard cannot safely rewrite (the host field may autocorrect, auto-close brackets, run an input
method, or have been edited), so a word is typed only once it is certain not to change:

- **commit at pauses**: when the VAD sees a pause (``live.pause_ms``) after speech, the stretch of
  speech up to it is transcribed (continuing what was already typed of it) and typed whole; the next
  stretch starts there;
- **inside a long stretch without pauses**, a quick pass runs every ``live.pass_s`` of new audio and
  only words that two consecutive passes agree on are typed (LocalAgreement-2, as in
  whisper_streaming), holding back the last word of the newest pass; the shaper further holds back
  any prefix of a spoken command;
- **at the end** (release, or end of speech hands-free) the rest is decoded *forced to continue* what
  was typed, so the final text always starts with the typed text.

Budget: at most one decode at a time (each pass waits for the previous one); while a pass runs the
audio goes on, and the next pass takes all of it (passes are skipped, not queued). Every pass uses the
short encoder window. The CPU time spent is counted per second of speech (:class:`LiveStats`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from appliance.audio.format import SAMPLE_RATE

log = logging.getLogger(__name__)

#: tokens of earlier stretches kept as context (the transcriber takes the newest of them it can use)
CONTEXT_TOKENS = 224


class LiveTranscriber(Protocol):
    """What live dictation needs from the transcriber (``appliance.stt.whisper.WhisperTranscriber``)."""

    def hypothesis(self, samples: np.ndarray, prefix: str = "", context: Sequence[int] = ()) -> str:
        """A quick guess of the whole text of ``samples``, continuing ``prefix``."""

    def transcribe(self, samples: np.ndarray, on_words=None, prefix: str = "",  # noqa: ANN001,ANN201
                   context: Sequence[int] = ()):
        """The careful decode, continuing ``prefix``; ``on_words`` gets the words after it. Returns a
        ``Transcript`` whose ``token_ids`` are the ``context`` of the next stretch's decodes."""


class Agreement:
    """LocalAgreement-2 over successive hypotheses of one stretch of audio.

    Every hypothesis continues the words committed so far (the decode is forced to); of the words
    after them, those on which this hypothesis and the previous one agree are committed — except the
    newest hypothesis's last word, which may still be half-heard.
    """

    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    def offer(self, hypothesis: str) -> list[str]:
        """Take a new hypothesis; return the words newly committed (in order)."""
        words = hypothesis.split()
        n = len(self.committed)
        if words[:n] != self.committed:
            log.debug("live: a hypothesis did not continue the committed words; ignored")
            return []
        previous = self._previous[n:] if self._previous[:n] == self.committed else []
        self._previous = words
        agreed: list[str] = []
        for new, old in zip(words[n:], previous):
            if new != old:
                break
            agreed.append(new)
        agreed = agreed[:max(0, len(words) - n - 1)]
        self.committed += agreed
        return agreed

    @property
    def text(self) -> str:
        return " ".join(self.committed)


@dataclass(frozen=True)
class LiveOptions:
    """``live.*`` in the config."""

    enabled: bool = True
    after_s: float = 3.0
    """Push-to-talk: typing starts live once the button has been held this long (hands-free: at once)."""
    pause_ms: int = 500
    """A pause this long after speech commits what was said before it."""
    pass_s: float = 1.0
    """A quick pass at most every this much new audio, inside a stretch without pauses."""


@dataclass
class LiveStats:
    passes: int = 0
    skipped: int = 0
    """Pass slots that went by while a pass was still running."""
    commits_at_pauses: int = 0
    cpu_s: float = 0.0
    """CPU time of the decodes (thread time of the model calls, all of them)."""
    speech_s: float = 0.0
    words_live: int = 0
    """Words typed before the end."""

    @property
    def cpu_per_speech_s(self) -> float:
        return self.cpu_s / self.speech_s if self.speech_s else 0.0


def _timed(fn: Callable[[], object], stats: LiveStats) -> Callable[[], object]:
    """Run ``fn`` and add its CPU time (the model's threads included: process time) to ``stats``."""
    def call() -> object:
        t0 = time.process_time()
        try:
            return fn()
        finally:
            stats.cpu_s += time.process_time() - t0
    return call


@dataclass
class LiveSession:
    """One live dictation: started with the recording, ended by :meth:`finish` or :meth:`cancel`.

    ``snapshot()`` returns everything recorded so far (the same samples ``stop()`` will return, minus
    the post-roll); ``trailing_silence(samples)`` the seconds of silence at the end of ``samples`` after
    speech (None: no speech in them); ``emit(fragment)`` hands a word (with its leading space) to the
    pipeline, which shapes and types it."""

    transcriber: LiveTranscriber
    snapshot: Callable[[], np.ndarray]
    trailing_silence: Callable[[np.ndarray], float | None]
    emit: Callable[[str], None]
    options: LiveOptions = field(default_factory=LiveOptions)
    clock: Callable[[], float] = time.monotonic
    hands_free: bool = False

    def __post_init__(self) -> None:
        self.stats = LiveStats()
        self._started_at = self.clock()
        self._stretch_start = 0
        # The model's tokens of the stretches typed before this one: Whisper's previous text for
        # this stretch's decodes (as Whisper conditions each 30 s window on the text before it).
        # Previous text is read in one decoder step; a forced prefix costs a step per token
        # (CTranslate2), which is why earlier stretches are context and not a prefix to continue.
        self._context: tuple[int, ...] = ()
        self._agreement = Agreement()
        self._last_pass_len = 0
        self._heard_speech = False
        self._task: asyncio.Task | None = None
        self._pass: asyncio.Future | None = None
        self._stopping = False

    # ---- control ----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-dictation")

    def go_hands_free(self) -> None:
        self.hands_free = True

    async def finish(self, samples: np.ndarray, gate: Callable[[np.ndarray], np.ndarray | None]) -> None:
        """The recording ended (``samples`` = all of it): stop the passes and type the rest, decoded
        forced to continue what was typed."""
        await self._stop_passes()
        self.stats.speech_s = len(samples) / SAMPLE_RATE
        stretch = samples[self._stretch_start:]
        if gate(stretch) is not None or self._agreement.committed:  # else: all was committed at pauses
            prefix, context = self._agreement.text, self._context
            emit = self._emit_threadsafe()
            self.transcript = await asyncio.to_thread(_timed(
                lambda: self.transcriber.transcribe(stretch, emit, prefix=prefix, context=context), self.stats))
        log.info("live: %d passes (%d skipped), %d commits at pauses, %d words typed before the end, "
                 "CPU %.2f s per second of speech", self.stats.passes, self.stats.skipped,
                 self.stats.commits_at_pauses, self.stats.words_live, self.stats.cpu_per_speech_s)

    async def cancel(self) -> None:
        await self._stop_passes()

    async def _stop_passes(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - a failed pass: the final decode does it all again
                log.exception("live: a pass failed; finishing with the final decode")
        if self._pass is not None:  # one decode at a time: let the running pass end
            try:
                await asyncio.shield(self._pass)
            except Exception:  # noqa: BLE001 - its result is not needed any more
                pass

    def _emit_threadsafe(self) -> Callable[[str], None]:
        loop = asyncio.get_running_loop()
        return lambda fragment: loop.call_soon_threadsafe(self.emit, _spaced(fragment))

    # ---- passes -----------------------------------------------------------------------------
    async def _run(self) -> None:
        tick = min(0.1, self.options.pass_s / 4)
        while not self._stopping:
            await asyncio.sleep(tick)
            await self.step()

    async def step(self) -> None:
        """Look at the audio so far: commit at a pause, or run a pass if one is due (the loop calls
        this every tick; the pause check is a VAD over the last second or so, cheap)."""
        if not self.hands_free and self.clock() - self._started_at < self.options.after_s:
            return
        audio = self.snapshot()
        stretch = audio[self._stretch_start:]
        tail_len = int((self.options.pause_ms / 1000 + 1.0) * SAMPLE_RATE)
        tail = stretch[-tail_len:]
        silence = self.trailing_silence(tail)
        if silence is not None:
            self._heard_speech = True
        elif self._heard_speech and len(tail) == tail_len:
            silence = len(tail) / SAMPLE_RATE  # speech earlier in the stretch, none lately
        if silence is not None and silence * 1000 >= self.options.pause_ms:
            # cut inside the pause: what follows it (maybe the start of the next word, not yet
            # voiced enough for the VAD) belongs to the next stretch, heard once, whole
            cut = len(audio) - int(silence * SAMPLE_RATE) + int(min(0.25, silence / 2) * SAMPLE_RATE)
            await self._commit_stretch(cut, audio[self._stretch_start:cut])
            return
        new_s = (len(audio) - self._last_pass_len) / SAMPLE_RATE
        if new_s < self.options.pass_s or not self._heard_speech:
            return
        if self._last_pass_len:
            self.stats.skipped += max(0, int(new_s / self.options.pass_s) - 1)
        self._last_pass_len = len(audio)
        await self._agree(stretch)

    async def _decode(self, fn: Callable[[], object]) -> object:
        self.stats.passes += 1
        self._pass = asyncio.ensure_future(asyncio.to_thread(_timed(fn, self.stats)))
        try:
            return await asyncio.shield(self._pass)
        finally:
            if self._pass.done():
                self._pass = None

    async def _agree(self, stretch: np.ndarray) -> None:
        prefix, context = self._agreement.text, self._context
        hypothesis = await self._decode(
            lambda: self.transcriber.hypothesis(stretch, prefix=prefix, context=context))
        if self._stopping:
            return
        for word in self._agreement.offer(str(hypothesis)):
            self.stats.words_live += 1
            self.emit(" " + word)

    async def _commit_stretch(self, cut: int, stretch: np.ndarray) -> None:
        prefix, context = self._agreement.text, self._context
        words: list[str] = []
        transcript = await self._decode(
            lambda: self.transcriber.transcribe(stretch, words.append, prefix=prefix, context=context))
        if self._stopping:
            return  # finish() decodes this stretch again, continuing what was typed
        self.stats.commits_at_pauses += 1
        for word in words:
            self.stats.words_live += 1
            self.emit(_spaced(word))
        # the next stretch is the audio after the cut: no overlap, so no word is heard twice; this
        # one's tokens join the context (unknown tokens: the context starts afresh)
        tokens = tuple(getattr(transcript, "token_ids", ()) or ())
        self._context = (*self._context, *tokens)[-CONTEXT_TOKENS:] if tokens else ()
        self._stretch_start = cut
        self._agreement = Agreement()
        self._heard_speech = False
        self._last_pass_len = cut


def _spaced(word: str) -> str:
    """A word as the shaper takes it mid-dictation: with its leading space. (The first word of a
    decode comes without one; unspaced, the shaper would join it to the word typed before.)"""
    return word if word[:1].isspace() else " " + word
