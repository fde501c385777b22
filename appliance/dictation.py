"""The dictation pipeline: one recorded utterance -> the keystrokes the host receives.

    samples -> VAD gate -> transcriber (worker thread, words while decoding) -> shaper -> encoder
            -> typist -> host

A stage of its own: the controller decides *when* (gestures, state), this module decides *what*
reaches the host. Its one rule: **what the shaper and the undo know is what the host got.**

- :class:`HostText` is built only from strokes the typist confirms delivered, dictation by dictation,
  so undo deletes exactly what the host received, also after a cancel or a dropped text;
- whenever what the host shows may differ from what the shaper believes (a cancelled or dropped
  dictation, a host that went away and came back, a long pause in which the cursor may have moved)
  the context is forgotten at the next dictation boundary: the next dictation starts like a new
  text, and undo has nothing older to delete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from appliance.audio.source import SAMPLE_RATE
from appliance.config import AudioConfig, TextConfig
from appliance.hid.stroke import Stroke
from appliance.live import LiveOptions, LiveSession, LiveStats
from appliance.stt.base import SpeechGate, Transcriber, Transcript
from appliance.text.shaping import Edit, Shaper
from appliance.transport.typist import Typist, TypingResult

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """Text -> strokes for the host's layout (see :class:`appliance.compose.LayoutEncoder`)."""

    def text(self, text: str) -> list[Stroke]: ...

    def backspaces(self, n: int) -> list[Stroke]: ...


@dataclass
class DictationRecord:
    """What one dictation did (tests, the demo's latency print, logs)."""

    released_at: float
    transcript: Transcript | None = None
    first_key_at: float | None = None
    typed: str = ""
    """Text of the strokes the host took (a backspace is ``\\b``)."""
    cancelled: bool = False
    dropped: int = 0
    """Strokes dropped because the host stayed away longer than ``give_up_s``."""
    kind: str = "dictation"
    """``dictation`` or ``undo``."""
    live: LiveStats | None = None
    """Live dictation's passes and CPU time (None: transcribed after the release only)."""


class HostText:
    """What the dictations left on the host, built from delivered strokes only."""

    def __init__(self) -> None:
        self.dictations: list[str] = []

    def begin(self) -> None:
        self.dictations.append("")

    def delivered(self, text: str) -> None:
        """Apply the text of delivered strokes (``\\b`` deletes one character, across dictations)."""
        if not self.dictations:
            self.dictations.append("")
        for ch in text:
            if ch == "\b":
                while self.dictations and not self.dictations[-1] and len(self.dictations) > 1:
                    self.dictations.pop()
                self.dictations[-1] = self.dictations[-1][:-1]
            else:
                self.dictations[-1] += ch

    def last(self) -> str:
        """The newest dictation still (partly) on the host."""
        while self.dictations and not self.dictations[-1]:
            self.dictations.pop()
        return self.dictations[-1] if self.dictations else ""

    def clear(self) -> None:
        self.dictations = []


@dataclass
class LiveRun:
    """A live dictation in progress: its session, the words it hands over, the typing task."""

    session: LiveSession
    fragments: asyncio.Queue
    typing: asyncio.Task


def post_roll_needed(recorded: np.ndarray, trailing_silence: Callable[[np.ndarray], float | None],
                     unless_silent_ms: int) -> bool:
    """Whether a recording ended by a release still needs its post-roll (see
    :meth:`DictationPipeline.post_roll_needed`)."""
    if not unless_silent_ms:
        return True
    silence = trailing_silence(recorded[-int((unless_silent_ms / 1000 + 3.0) * SAMPLE_RATE):])
    needed = silence is None or silence * 1000 < unless_silent_ms
    if not needed:
        log.debug("speech ended %.2f s before the release: no post-roll", silence)
    return needed


@dataclass(frozen=True)
class PipelineOptions:
    forget_after_s: float = TextConfig.forget_after_s
    """Idle time after which the context is forgotten (0: never); ``text.forget_after_s``."""
    post_roll_unless_silent_ms: int = AudioConfig.post_roll_unless_silent_ms
    """``audio.post_roll_unless_silent_ms``: no post-roll when the speech stopped this long before
    the release (0: always the post-roll)."""


@dataclass
class DictationPipeline:
    """Turns utterances into typing. One dictation (or undo) types at a time, in order."""

    gate: SpeechGate
    transcriber: Callable[[], Transcriber]
    """Returns the loaded transcriber (the model may be loaded, or re-loaded, after start-up)."""
    shaper: Shaper
    encoder: Encoder
    typist: Typist
    options: PipelineOptions = field(default_factory=PipelineOptions)
    clock: Callable[[], float] = time.monotonic
    on_typing: Callable[[], None] = lambda: None
    """Called when keys start going out (the controller shows its TYPING state)."""
    live: LiveOptions = field(default_factory=LiveOptions)
    trailing_silence: Callable[[np.ndarray], float | None] | None = None
    """Live dictation's pause detector (seconds of silence after speech; None: no speech)."""

    def __post_init__(self) -> None:
        self.host = HostText()
        self._lock = asyncio.Lock()
        self._last_activity: float | None = None
        self._forget_reason: str | None = None
        self._dropping = False
        self._reset_shaper = False

    # ---- context ----------------------------------------------------------------------------
    def post_roll_needed(self, recorded: np.ndarray) -> bool:
        """At the release: does the recording still need its post-roll? Not when the VAD saw the
        speech stop ``post_roll_unless_silent_ms`` or longer before (nothing is left to catch, and
        the text comes that much sooner). When in doubt (no speech seen lately, or no VAD), yes."""
        if self.trailing_silence is None:
            return True
        return post_roll_needed(recorded, self.trailing_silence, self.options.post_roll_unless_silent_ms)

    def forget(self, reason: str) -> None:
        """Forget what was typed before, at the next dictation boundary (now if none is running)."""
        self._forget_reason = reason
        if not self._lock.locked():
            self._apply_forget()

    def _apply_forget(self) -> None:
        if self._forget_reason is not None:
            log.info("context forgotten: %s", self._forget_reason)
            self.shaper.reset()
            self.host.clear()
            self._forget_reason = None

    def _begin(self) -> None:
        now = self.clock()
        idle = self.options.forget_after_s
        if idle > 0 and self._last_activity is not None and now - self._last_activity > idle:
            self._forget_reason = self._forget_reason or f"idle for more than {idle:g} s"
        self._apply_forget()
        self._dropping = False

    def host_returned(self) -> None:
        """The host (re)connected: its cursor and text may be anywhere now."""
        self.forget("the host reconnected")

    # ---- dictation --------------------------------------------------------------------------
    async def dictate(self, samples: np.ndarray, record: DictationRecord) -> None:
        """Transcribe one utterance and type it. Cancellable at any await: what the host got so far
        stays recorded, and the context is forgotten."""
        speech = self.gate.trim(samples)
        if speech is None:
            log.info("no speech in %.1f s of audio", len(samples) / SAMPLE_RATE)
            return
        loop = asyncio.get_running_loop()
        fragments: asyncio.Queue[str | None] = asyncio.Queue()
        transcriber = self.transcriber()

        def on_words(fragment: str) -> None:  # model thread
            loop.call_soon_threadsafe(fragments.put_nowait, fragment)

        async def transcribe() -> Transcript:
            try:
                return await asyncio.to_thread(transcriber.transcribe, speech, on_words)
            finally:
                loop.call_soon_threadsafe(fragments.put_nowait, None)

        job = loop.create_task(transcribe())
        try:
            await self._type_fragments(fragments, record)
        finally:
            if not job.done():
                job.cancel()  # the thread finishes on its own; its words are dropped
        record.transcript = job.result()  # a model failure raises here (VoiceKeyError)
        self._log_done(record)

    # ---- live dictation ---------------------------------------------------------------------
    def start_live(self, record: DictationRecord, snapshot: Callable[[], np.ndarray],
                   hands_free: bool = False) -> LiveRun | None:
        """Begin typing while the user speaks (see appliance/live.py); None when live mode is off."""
        if not self.live.enabled or self.trailing_silence is None:
            return None
        fragments: asyncio.Queue[str | None] = asyncio.Queue()
        session = LiveSession(self.transcriber(), snapshot, self.trailing_silence, fragments.put_nowait,
                              self.live, self.clock, hands_free)
        session.start()
        typing = asyncio.get_running_loop().create_task(self._type_fragments(fragments, record))
        return LiveRun(session, fragments, typing)

    async def finish_live(self, run: LiveRun, samples: np.ndarray, record: DictationRecord) -> None:
        """The recording ended: the rest is decoded continuing what was typed, and typed."""
        try:
            await run.session.finish(samples, self.gate.trim)
        except BaseException:
            run.typing.cancel()
            raise
        finally:
            run.fragments.put_nowait(None)
        await run.typing
        record.transcript = getattr(run.session, "transcript", None)
        record.live = run.session.stats
        self._log_done(record)

    async def cancel_live(self, run: LiveRun) -> None:
        """Stop a live dictation (what it typed stays on the host and in :attr:`host`)."""
        run.typing.cancel()
        await run.session.cancel()
        try:
            await run.typing
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass

    async def _type_fragments(self, fragments: asyncio.Queue[str | None], record: DictationRecord) -> None:
        async with self._lock:  # dictations type in order
            self._begin()
            self.shaper.begin()
            self.host.begin()
            fed = False
            try:
                while (fragment := await fragments.get()) is not None:
                    fed = True
                    await self._type_edit(self.shaper.feed(fragment), record)
                await self._type_edit(self.shaper.finish(), record)
            except BaseException:
                # What the host got of it stays in self.host (a double press deletes exactly
                # that); the shaper's idea of the text is no longer what the host shows.
                record.cancelled = True
                if fed:
                    self._reset_shaper = True
                else:  # nothing of it was shaped (a live dictation cancelled at once)
                    self.shaper.finish()
                    self.host.last()
                raise
            finally:
                self._end()

    def _log_done(self, record: DictationRecord) -> None:
        log.info("dictation: %d words, first key %.0f ms after release", len(record.typed.split()),
                 1000 * (record.first_key_at - record.released_at) if record.first_key_at else -1)
        log.debug("typed %r", record.typed)

    async def undo(self, record: DictationRecord) -> None:
        """Delete the last dictation from the host (the double press when idle)."""
        record.kind = "undo"
        async with self._lock:
            self._begin()
            last = self.host.last()
            if not last:
                log.info("undo: nothing typed to delete")
                return
            shaped = self.shaper.undo_last()
            if shaped != last:  # the shaper's idea differs from the host's: do not build on it
                self._forget_reason = "undo of a dictation the shaper did not fully type"
            try:  # each delivered Backspace takes one character of that dictation off self.host
                await self._type(self.encoder.backspaces(len(last)), record)
            finally:
                self.host.last()  # drops it once it is empty
                self._end()

    def _end(self) -> None:
        self._last_activity = self.clock()
        if self._reset_shaper:
            log.info("text context forgotten: the dictation was cancelled")
            self.shaper.reset()
            self._reset_shaper = False
        if self._forget_reason is not None:
            self._apply_forget()

    async def _type_edit(self, edit: Edit, record: DictationRecord) -> None:
        if not edit.delete and not edit.insert:
            return
        await self._type(self.encoder.backspaces(edit.delete) + self.encoder.text(edit.insert), record)

    async def _type(self, strokes: Sequence[Stroke], record: DictationRecord) -> None:
        if not strokes:
            return
        if self._dropping:  # the host stayed away past give_up_s: the rest of this dictation too
            record.dropped += len(strokes)
            return
        self.on_typing()
        if record.first_key_at is None:
            record.first_key_at = self.clock()
        result: TypingResult | None = None
        try:
            result = await self.typist.type(strokes)
        finally:
            done = result or self.typist.current
            if done is not None:
                self.host.delivered(done.typed)
                record.typed += done.typed
        if result.pending:
            self._dropping = True
            record.dropped += len(result.pending)
            self._forget_reason = "text was dropped while the host was away"
            log.warning("host away for more than %g s: %d keystrokes dropped (transport.give_up_s)",
                        self.typist.options.give_up_s, len(result.pending))
