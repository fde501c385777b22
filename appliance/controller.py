"""The appliance's brain: one asyncio loop, one explicit :class:`State`, gestures -> actions.

Only this module knows the order of the stages:

    button edges -> gestures -> recorder -> VAD -> transcriber (thread) -> shaper -> encoder -> typist

Everything it drives comes in through small interfaces (see ``Stages``), so tests and
``voicekey run --simulate`` plug in fakes, and the composition root (``appliance/app.py``) plugs in
the real adapters. Blocking work (the model, the end of a recording) runs in worker threads; the
loop never blocks. Words are typed while the model is still decoding.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from appliance.errors import AudioError, VoiceKeyError
from appliance.hid.stroke import Stroke
from appliance.stt.base import Transcriber, Transcript
from appliance.text.shaping import Edit, Shaper
from appliance.transport.typist import Typist
from appliance.ui.button import Edge
from appliance.ui.gestures import Gesture, GestureClassifier, GestureTiming
from appliance.ui.led import Led, LedPattern

log = logging.getLogger(__name__)


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    LISTENING = "listening"
    TRANSCRIBING = "transcribing"
    TYPING = "typing"
    PAIRING = "pairing"
    ERROR = "error"


class Mode(enum.Enum):
    PENDING = "pending"        # pressed; hold or tap not yet known
    HANDS_FREE = "hands_free"  # tapped: ends on VAD silence or the next tap


class Recorder(Protocol):
    """What the controller needs from audio capture (see appliance/audio)."""

    def start(self) -> None:
        """Begin an utterance (including the pre-roll already buffered)."""

    def stop(self) -> np.ndarray:
        """End it after the post-roll; float32 mono 16 kHz. Blocking: called in a worker thread."""

    def cancel(self) -> None:
        """Drop the current utterance."""

    # Optional: ``check()`` raises AudioError while the device is missing and (re)opens it when it
    # is back; the controller calls it while idle (see ControllerOptions.audio_retry_s).


class Gate(Protocol):
    def trim(self, samples: np.ndarray) -> np.ndarray | None: ...


class Encoder(Protocol):
    def text(self, text: str) -> list[Stroke]: ...

    def backspaces(self, n: int) -> list[Stroke]: ...


@dataclass
class Stages:
    """The controller's collaborators."""

    recorder: Recorder
    gate: Gate
    transcriber: Transcriber
    shaper: Shaper
    encoder: Encoder
    typist: Typist
    led: Led
    endpointer_factory: Callable[[], object] | None = None
    """For hands-free mode: a fresh ``appliance.audio.vad.Endpointer`` (None: hands-free ends on a tap)."""
    live_frames: Callable[[Callable[[np.ndarray], None] | None], None] | None = None
    """Registers (or with None removes) a sink for live 30 ms frames while recording."""


@dataclass
class ControllerOptions:
    timing: GestureTiming = field(default_factory=GestureTiming)
    busy_press: str = "cancel"
    """A press during transcription/typing: "cancel" it (keys released) or "queue" a new dictation."""
    error_show_s: float = 4.0
    """How long an error blink code stays before going back to ready."""
    pairing_s: float = 120.0
    audio_retry_s: float = 2.0
    """While the microphone is missing, how often to look for it again."""


@dataclass
class DictationRecord:
    """What one dictation did; kept for tests, the demo's latency print, and undo."""

    released_at: float
    transcript: Transcript | None = None
    first_key_at: float | None = None
    typed: str = ""
    deleted: int = 0
    cancelled: bool = False
    pending: list[Stroke] = field(default_factory=list)


class Controller:
    """Runs the appliance. ``await run(edges)`` until ``stop()``."""

    def __init__(self, stages: Stages, options: ControllerOptions = ControllerOptions(),
                 clock: Callable[[], float] = time.monotonic,
                 on_pairing: Callable[[], None] | None = None) -> None:
        self.s = stages
        self.options = options
        self.clock = clock
        self.on_pairing = on_pairing
        self.gestures = GestureClassifier(options.timing)
        self.state = State.STARTING
        self.mode = Mode.PENDING
        self.records: list[DictationRecord] = []
        self.backlog: list[Stroke] = []
        self.state_changes: asyncio.Queue[State] = asyncio.Queue()
        self._listening_since = 0.0
        self._work: asyncio.Task | None = None
        self._work_queue: list[asyncio.Task] = []
        self._endpointer = None
        self._stopping = asyncio.Event()
        self._error_until = 0.0
        self._error_pattern: LedPattern | None = None
        self._type_lock = asyncio.Lock()
        self._host_present = True

    # ---- state + LED ------------------------------------------------------------------------
    def _set(self, state: State) -> None:
        if state is not self.state:
            log.info("state %s -> %s", self.state.value, state.value)
            self.state = state
            self.state_changes.put_nowait(state)
        self._show()

    def _show(self) -> None:
        led = self.s.led
        if self.state is State.LISTENING:
            led.show(LedPattern.LISTENING)
        elif self.state is State.TRANSCRIBING:
            led.show(LedPattern.TRANSCRIBING)
        elif self.state is State.TYPING:
            led.show(LedPattern.TYPING if self._host_present else LedPattern.HOST_NOT_CONNECTED)
        elif self.state is State.PAIRING:
            led.show(LedPattern.PAIRING)
        elif self.state is State.STARTING:
            led.show(LedPattern.STARTING)
        elif self._error_pattern is not None and self.clock() < self._error_until:
            led.show(self._error_pattern)
        elif not self.s.typist.device.host_connected():
            led.show(LedPattern.HOST_NOT_CONNECTED)
        else:
            led.show(LedPattern.READY)

    def show_error(self, pattern: LedPattern, exc: BaseException | str, sticky: bool = False) -> None:
        """Log an error and show its blink code (for ``error_show_s``, or until cleared if sticky)."""
        log.error("%s", exc)
        sticky = sticky or (self._error_pattern is pattern and self._error_until == float("inf"))
        self._error_pattern = pattern
        self._error_until = float("inf") if sticky else self.clock() + self.options.error_show_s
        if self.state in (State.READY, State.ERROR, State.STARTING):
            self.state = State.ERROR if sticky else State.READY
        self._show()

    def clear_error(self, pattern: LedPattern) -> None:
        if self._error_pattern is pattern:
            self._error_pattern = None
            if self.state is State.ERROR:
                self.state = State.READY
            self._show()

    def _on_host_change(self, present: bool) -> None:
        self._host_present = present
        self._show()

    # ---- main loop --------------------------------------------------------------------------
    async def run(self, edges: asyncio.Queue[Edge]) -> None:
        """Consume button edges until :meth:`stop` is called."""
        self.s.typist.on_host_change = self._on_host_change
        if self.state is State.STARTING:
            self._set(State.READY)
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        audio_watch = asyncio.ensure_future(self._watch_audio())
        try:
            while not self._stopping.is_set():
                deadline = self.gestures.deadline()
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                # Refresh the LED now and then (error codes expire, the host comes and goes).
                timeout = 0.5 if timeout is None else min(timeout, 0.5)
                get = asyncio.ensure_future(edges.get())
                done, _ = await asyncio.wait({get, stop_wait}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    edge = get.result()
                    gestures = (self.gestures.pressed(edge.t) if edge.pressed
                                else self.gestures.released(edge.t))
                else:
                    get.cancel()
                    gestures = self.gestures.tick(self.clock())
                for g in gestures:
                    await self._handle(g)
                if self.state in (State.READY, State.ERROR):
                    self._show()
                    if self.backlog and self.s.typist.device.host_connected():
                        self._start_work(self._type_backlog())
        finally:
            stop_wait.cancel()
            audio_watch.cancel()
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def _watch_audio(self) -> None:
        """Open the microphone; while it is missing show the error code and retry; recover when back."""
        check = getattr(self.s.recorder, "check", None)
        if check is None:
            return
        while True:
            if self.state in (State.READY, State.ERROR):
                try:
                    await asyncio.to_thread(check)
                except AudioError as exc:
                    if self._error_pattern is not LedPattern.ERROR_MICROPHONE or self.state is not State.ERROR:
                        self.show_error(LedPattern.ERROR_MICROPHONE, exc, sticky=True)
                else:
                    if self._error_pattern is LedPattern.ERROR_MICROPHONE:
                        log.info("microphone is back")
                    self.clear_error(LedPattern.ERROR_MICROPHONE)
            await asyncio.sleep(self.options.audio_retry_s)

    async def _shutdown(self) -> None:
        if self.state is State.LISTENING:
            self.s.recorder.cancel()
        for task in [self._work, *self._work_queue]:
            if task is not None and not task.done():
                task.cancel()
        for task in [self._work, *self._work_queue]:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self.s.led.show(LedPattern.OFF)

    async def idle(self) -> None:
        """Wait until all dictations are typed (for tests and the demo)."""
        while True:
            tasks = [t for t in [self._work, *self._work_queue] if t is not None and not t.done()]
            if not tasks and self.state in (State.READY, State.ERROR):
                return
            if tasks:
                await asyncio.wait(tasks)
            else:
                await asyncio.sleep(0.01)

    # ---- gestures ---------------------------------------------------------------------------
    async def _handle(self, g: Gesture) -> None:
        log.debug("gesture %s in %s", g.value, self.state.value)
        st = self.state
        if g is Gesture.PRESS:
            if st is State.LISTENING:
                return  # hands-free: the tap that this press becomes ends it
            if st in (State.TRANSCRIBING, State.TYPING):
                if self.options.busy_press == "cancel":
                    await self._cancel_work()
            if st is State.PAIRING:
                self._set(State.READY)
                return
            self._start_listening()
        elif g is Gesture.HOLD_END:
            if st is State.LISTENING:
                await self._finish_listening()
        elif g is Gesture.TAP:
            if st is State.LISTENING and self.mode is Mode.PENDING:
                self._go_hands_free()
            elif st is State.LISTENING:
                await self._finish_listening()
        elif g is Gesture.DOUBLE:
            if st is State.LISTENING:
                started_by_first_press = self.clock() - self._listening_since < \
                    self.options.timing.double_press_s + self.options.timing.hold_s
                self._cancel_listening()
                if started_by_first_press and self.mode is Mode.PENDING:
                    self._start_work(self._undo_last())
        elif g is Gesture.LONG_HOLD:
            if st is State.LISTENING:
                self._cancel_listening()
            self._set(State.PAIRING)
            if self.on_pairing:
                self.on_pairing()

    def _start_listening(self) -> None:
        try:
            self.s.recorder.start()
        except AudioError as exc:
            self.show_error(LedPattern.ERROR_MICROPHONE, exc)
            return
        self.mode = Mode.PENDING
        self._listening_since = self.clock()
        self._set(State.LISTENING)

    def _go_hands_free(self) -> None:
        self.mode = Mode.HANDS_FREE
        if self.s.endpointer_factory is None or self.s.live_frames is None:
            return
        endpointer = self.s.endpointer_factory()
        loop = asyncio.get_running_loop()

        def sink(frame: np.ndarray) -> None:  # audio thread
            event = endpointer.feed(frame)
            if event is not None and getattr(event.kind, "value", "") == "utterance_ended":
                loop.call_soon_threadsafe(self._endpoint_reached)

        self.s.live_frames(sink)

    def _endpoint_reached(self) -> None:
        if self.state is State.LISTENING and self.mode is Mode.HANDS_FREE:
            log.info("hands-free: end of speech")
            asyncio.get_running_loop().create_task(self._finish_listening())

    def _cancel_listening(self) -> None:
        if self.s.live_frames:
            self.s.live_frames(None)
        self.s.recorder.cancel()
        self._set(State.READY)

    async def _finish_listening(self) -> None:
        if self.state is not State.LISTENING:
            return
        if self.s.live_frames:
            self.s.live_frames(None)
        record = DictationRecord(released_at=self.clock())
        self.records.append(record)
        self._set(State.TRANSCRIBING)
        self._start_work(self._dictation(record))

    def _start_work(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        if self._work is None or self._work.done():
            self._work = task
        else:
            self._work_queue.append(task)
        task.add_done_callback(self._work_done)

    def _work_done(self, task: asyncio.Task) -> None:
        if task is self._work:
            self._work = self._work_queue.pop(0) if self._work_queue else None
        elif task in self._work_queue:
            self._work_queue.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dictation failed: %s", task.exception())
        if self._work is None and self.state in (State.TRANSCRIBING, State.TYPING):
            self._set(State.READY)

    async def _cancel_work(self) -> None:
        tasks = [t for t in [self._work, *self._work_queue] if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        for r in self.records:
            if r.transcript is None or r.first_key_at is None:
                r.cancelled = r.cancelled or not r.typed
        self._set(State.READY)

    # ---- the pipeline -----------------------------------------------------------------------
    async def _dictation(self, record: DictationRecord) -> None:
        samples = await asyncio.to_thread(self.s.recorder.stop)
        speech = self.s.gate.trim(samples)
        if speech is None:
            log.info("no speech in %.1f s of audio", len(samples) / 16000)
            self._set(State.READY)
            return
        loop = asyncio.get_running_loop()
        words: asyncio.Queue[str | None] = asyncio.Queue()

        def on_words(fragment: str) -> None:  # model thread
            loop.call_soon_threadsafe(words.put_nowait, fragment)

        async def transcribe() -> Transcript:
            try:
                return await asyncio.to_thread(self.s.transcriber.transcribe, speech, on_words)
            finally:
                loop.call_soon_threadsafe(words.put_nowait, None)

        job = loop.create_task(transcribe())
        async with self._type_lock:  # queued dictations type in order
            self.s.shaper.begin()
            try:
                while (fragment := await words.get()) is not None:
                    await self._type_edit(self.s.shaper.feed(fragment), record)
                await self._type_edit(self.s.shaper.finish(), record)
            except asyncio.CancelledError:
                self.s.shaper.finish()
                raise
            finally:
                if not job.done():
                    job.cancel()  # the thread finishes on its own; its words are dropped
        try:
            record.transcript = job.result()
        except VoiceKeyError as exc:
            self.show_error(LedPattern.ERROR_MODEL, exc)
            return
        log.info("dictation: %d words, first key %.0f ms after release",
                 len(record.typed.split()),
                 1000 * (record.first_key_at - record.released_at) if record.first_key_at else -1)
        log.debug("typed %r", record.typed)

    async def _type_edit(self, edit: Edit, record: DictationRecord) -> None:
        if not edit.delete and not edit.insert:
            return
        strokes = self.s.encoder.backspaces(edit.delete) + self.s.encoder.text(edit.insert)
        if not strokes:
            return
        if self.state is not State.LISTENING:
            self._set(State.TYPING)
        if self.backlog:  # the host was away: keep order
            strokes = self.backlog + strokes
            self.backlog = []
        if record.first_key_at is None:
            record.first_key_at = self.clock()
        result = await self.s.typist.type(strokes)
        record.typed += edit.insert
        record.deleted += edit.delete
        if result.pending:
            log.warning("host away: %d strokes kept until it is back", len(result.pending))
            self.backlog = list(result.pending)
            record.pending = list(result.pending)

    async def _type_backlog(self) -> None:
        strokes, self.backlog = self.backlog, []
        async with self._type_lock:
            self._set(State.TYPING)
            result = await self.s.typist.type(strokes)
            self.backlog = list(result.pending) + self.backlog
        self._set(State.READY)

    async def _undo_last(self) -> None:
        """Double press when idle: delete the previous dictation ("scratch that")."""
        async with self._type_lock:
            edit = self.s.shaper.shape("scratch that")
            if edit.delete or edit.insert:
                record = DictationRecord(released_at=self.clock())
                self.records.append(record)
                await self._type_edit(edit, record)
        self._set(State.READY)

