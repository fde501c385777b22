"""The appliance's brain: one asyncio loop, one explicit :class:`State`, gestures -> actions.

    button edges -> gestures -> recorder -> dictation pipeline (appliance/dictation.py)

The controller decides *when*: it owns the state, the gestures, the recorder and the LED. *What*
reaches the host is the dictation pipeline's business. Everything comes in through small interfaces
(see :class:`Stages`), built by the composition root (``appliance/compose.py``) from the config and a
hardware factory: the real Pi, the simulator, or the tests' fakes. Blocking work (the model, the end
of a recording) runs in worker threads; the loop never blocks.

Failing hardware never ends the loop: the composition root's supervisor reports *faults* (a missing
microphone, model, HID device, button) which the controller shows as the ERROR state with the
fault's blink code until the part is back.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from appliance.dictation import DictationPipeline, DictationRecord
from appliance.errors import AudioError, ButtonError, ModelError, TransportError, VoiceKeyError
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

    def stop(self, post_roll: bool = True) -> np.ndarray:
        """End it after the post-roll (none with ``post_roll=False``); float32 mono 16 kHz.
        Blocking: called in a worker thread."""

    def cancel(self) -> None:
        """Drop the current utterance."""


@dataclass(frozen=True)
class Fault:
    """A part that is missing or failed, as the supervisor reports it."""

    part: str
    pattern: LedPattern
    message: str
    blocks_dictation: bool = True
    """True: pressing the button cannot start a dictation while this fault lasts."""


@dataclass
class Stages:
    """The controller's collaborators."""

    recorder: Recorder
    pipeline: DictationPipeline
    typist: Typist
    led: Led
    endpointer_factory: Callable[[], object] | None = None
    """For hands-free mode: a fresh ``appliance.audio.vad.Endpointer`` (None: hands-free ends on a tap)."""
    live_frames: Callable[[Callable[[np.ndarray], None] | None], None] | None = None
    """Registers (or with None removes) a sink for live 30 ms frames while recording."""
    faults: Callable[[], list[Fault]] = list
    """The parts failing now (from the composition root's supervisor)."""
    pairing: Callable[[bool], None] | None = None
    """Opens (True) or closes (False) the transport's pairing window; None: the transport has none."""
    forget_all: Callable[[], None] | None = None
    """Forgets every bonded host (a long hold started inside the pairing window); None: nothing to forget."""


@dataclass
class ControllerOptions:
    timing: GestureTiming = field(default_factory=GestureTiming)
    busy_press: str = "cancel"
    """A press during transcription/typing: "cancel" it (keys released) or "queue" a new dictation.
    While the host is away, a press always queues: the kept text is not thrown away."""
    error_show_s: float = 4.0
    """How long a passing error's blink code is shown before going back to ready."""
    forgotten_show_s: float = 3.0
    """How long the LED shows that every paired host was forgotten before the pairing blink."""
    pairing_s: float = 180.0
    """How long the pairing window stays open."""


def _pattern_for(exc: BaseException) -> LedPattern:
    """The blink code of the part an error came from."""
    if isinstance(exc, AudioError):
        return LedPattern.ERROR_MICROPHONE
    if isinstance(exc, TransportError):
        return LedPattern.ERROR_HID
    if isinstance(exc, ButtonError):
        return LedPattern.ERROR_BUTTON
    if isinstance(exc, ModelError):
        return LedPattern.ERROR_MODEL
    return LedPattern.ERROR_MODEL if isinstance(exc, VoiceKeyError) else LedPattern.ERROR_HID


class Controller:
    """Runs the appliance. ``await run(edges)`` until ``stop()``."""

    def __init__(self, stages: Stages, options: ControllerOptions = ControllerOptions(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.s = stages
        self.options = options
        self.clock = clock
        self.gestures = GestureClassifier(options.timing)
        self.state = State.STARTING
        self.mode = Mode.PENDING
        self.records: collections.deque[DictationRecord] = collections.deque(maxlen=100)
        """The latest dictations (bounded: they hold what was said)."""
        self.state_changes: asyncio.Queue[State] = asyncio.Queue()
        self.last_tick = clock()
        """When the loop last turned (the watchdog is fed only while it keeps turning)."""
        self._listening_since = 0.0
        self._pairing_until = 0.0
        self._press_closed_pairing = False
        self._work: asyncio.Task | None = None
        self._work_queue: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self._flash_until = 0.0
        self._flash: LedPattern | None = None
        self._host_present = True
        self._host_was_connected: bool | None = None
        self._fault: Fault | None = None
        self._heard_speech = False
        self._record = DictationRecord(released_at=self.clock())
        self._live = None

    # ---- state + LED ------------------------------------------------------------------------
    def _set(self, state: State) -> None:
        if state in (State.READY, State.ERROR):
            fault = self._current_fault()
            if fault != self._fault and fault is None and self._fault is not None:
                log.info("%s is back", self._fault.part)
            self._fault = fault
            state = State.ERROR if fault is not None else State.READY
        if state is not self.state:
            log.info("state %s -> %s", self.state.value, state.value)
            self.state = state
            self.state_changes.put_nowait(state)
        self._show()

    def _current_fault(self) -> Fault | None:
        faults = self.s.faults()
        return faults[0] if faults else None

    def _show(self) -> None:
        led = self.s.led
        st = self.state
        if st is State.LISTENING:
            led.show(LedPattern.LISTENING)
        elif st is State.TRANSCRIBING:
            led.show(LedPattern.TRANSCRIBING)
        elif st is State.TYPING:
            led.show(LedPattern.TYPING if self._host_present else LedPattern.HOST_NOT_CONNECTED)
        elif st is State.PAIRING:
            forgotten = self._flash is LedPattern.HOSTS_FORGOTTEN and self.clock() < self._flash_until
            led.show(LedPattern.HOSTS_FORGOTTEN if forgotten else LedPattern.PAIRING)
        elif st is State.STARTING:
            led.show(LedPattern.STARTING)
        elif self._flash is not None and self.clock() < self._flash_until:
            led.show(self._flash)
        elif self._fault is not None:
            led.show(self._fault.pattern)
        elif not self.s.typist.device.host_connected():
            led.show(LedPattern.HOST_NOT_CONNECTED)
        else:
            led.show(LedPattern.READY)

    def show_error(self, pattern: LedPattern, exc: BaseException | str) -> None:
        """Log a passing error and show its blink code for ``error_show_s``."""
        log.error("%s", exc)
        self._flash = pattern
        self._flash_until = self.clock() + self.options.error_show_s
        self._show()

    def _refresh_faults(self) -> None:
        """Follow the supervisor: ERROR while a part fails, READY when all are back."""
        if self.state in (State.READY, State.ERROR):
            self._set(self.state)

    def _on_host_change(self, present: bool) -> None:
        self._host_present = present
        self._show()

    def _watch_host(self) -> None:
        connected = self.s.typist.device.host_connected()
        if connected and self._host_was_connected is False:
            self.s.pipeline.host_returned()
        self._host_was_connected = connected
        if connected != self._host_present:  # e.g. back after the typist gave up waiting
            self._on_host_change(connected)

    # ---- main loop --------------------------------------------------------------------------
    async def run(self, edges: asyncio.Queue[Edge]) -> None:
        """Consume button edges until :meth:`stop` is called."""
        self.s.typist.on_host_change = self._on_host_change
        self.s.pipeline.on_typing = self._typing
        if self.state is State.STARTING:
            self._set(State.READY)
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                self.last_tick = self.clock()
                deadline = self.gestures.deadline()
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                # Refresh now and then: faults come and go, passing codes expire, the host too.
                timeout = 0.25 if timeout is None else min(timeout, 0.25)
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
                    try:
                        await self._handle(g)
                    except Exception as exc:  # noqa: BLE001 - a failing part must never end the loop
                        log.exception("%s failed", g.value)
                        self.show_error(_pattern_for(exc), exc)
                        if self.state is State.LISTENING:
                            self._cancel_listening()
                if self.state is State.PAIRING and self.clock() >= self._pairing_until:
                    log.info("pairing window closed (%.0f s)", self.options.pairing_s)
                    self._end_pairing()
                elif self.state is State.PAIRING:
                    self._show()  # the forgotten-hosts flash ends
                if self.state in (State.READY, State.ERROR):
                    self._refresh_faults()
                    self._watch_host()
        finally:
            stop_wait.cancel()
            await self._shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def _shutdown(self) -> None:
        if self.state is State.LISTENING:
            live, self._live = self._live, None
            self._cancel_listening()
            if live is not None:
                await self.s.pipeline.cancel_live(live)
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
            if not tasks and self.state in (State.READY, State.ERROR, State.PAIRING):
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
            self._press_closed_pairing = False
            if st is State.LISTENING:
                return  # hands-free: the tap that this press becomes ends it
            if st is State.PAIRING:
                self._end_pairing()
                self._press_closed_pairing = True  # held on for pairing_hold_s: forget all hosts
                return
            if st in (State.TRANSCRIBING, State.TYPING):
                if self.options.busy_press == "cancel" and self._host_present:
                    await self._cancel_work()
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
                self._cancel_listening(undo_typed=True)
                if started_by_first_press and self.mode is Mode.PENDING:
                    record = DictationRecord(released_at=self.clock())
                    self.records.append(record)
                    self._start_work(self.s.pipeline.undo(record))
        elif g is Gesture.LONG_HOLD:
            if self._press_closed_pairing and self.s.forget_all is not None:
                self._press_closed_pairing = False
                log.warning("long hold inside the pairing window: forgetting every paired host")
                self.s.forget_all()
                self._flash = LedPattern.HOSTS_FORGOTTEN
                self._flash_until = self.clock() + self.options.forgotten_show_s
                self._start_pairing()  # and pair anew
                return
            if st is State.LISTENING and self._heard_speech:
                log.debug("long hold while talking: a long dictation, not pairing")
                return
            if st is State.LISTENING:
                self._cancel_listening()
            self._start_pairing()

    def _start_pairing(self) -> None:
        self._pairing_until = self.clock() + self.options.pairing_s
        self._set(State.PAIRING)
        if self.s.pairing is None:
            log.warning("pairing mode: this transport has nothing to pair (Bluetooth is not in use)")
        else:
            self.s.pairing(True)

    def pairing_closed(self) -> None:
        """The transport closed the pairing window itself (a host paired and connected)."""
        if self.state is State.PAIRING:
            log.info("pairing window closed: a host connected")
            self._set(State.READY)

    def _end_pairing(self) -> None:
        if self.s.pairing is not None:
            self.s.pairing(False)
        self._set(State.READY)

    def _start_listening(self) -> None:
        fault = self._current_fault()
        if fault is not None and fault.blocks_dictation:
            log.warning("cannot listen: %s", fault.message)
            self._refresh_faults()
            return
        try:
            self.s.recorder.start()
        except AudioError as exc:
            self.show_error(LedPattern.ERROR_MICROPHONE, exc)
            return
        self.mode = Mode.PENDING
        self._listening_since = self.clock()
        self._set(State.LISTENING)
        self._listen_for_speech()
        self._record = DictationRecord(released_at=self.clock())
        self._live = None
        snapshot = getattr(self.s.recorder, "snapshot", None)
        if snapshot is not None:
            try:
                self._live = self.s.pipeline.start_live(self._record, snapshot)
            except VoiceKeyError as exc:  # e.g. the model went away: the release transcribes as usual
                log.warning("live dictation not started: %s", exc)

    def _go_hands_free(self) -> None:
        self.mode = Mode.HANDS_FREE
        if self._live is not None:
            self._live.session.go_hands_free()

    def _listen_for_speech(self) -> None:
        """Follow the live audio while listening: whether speech was heard (a long hold while
        talking is a long dictation, not a request to pair) and, hands-free, where it ends."""
        self._heard_speech = False
        if self.s.endpointer_factory is None or self.s.live_frames is None:
            return
        endpointer = self.s.endpointer_factory()
        loop = asyncio.get_running_loop()

        def sink(frame: np.ndarray) -> None:  # audio thread
            event = endpointer.feed(frame)  # type: ignore[attr-defined]
            kind = getattr(getattr(event, "kind", None), "value", "")
            if kind == "speech_started":
                loop.call_soon_threadsafe(self._speech_started)
            elif kind == "utterance_ended":
                loop.call_soon_threadsafe(self._endpoint_reached)

        self.s.live_frames(sink)

    def _speech_started(self) -> None:
        if self.state is State.LISTENING:
            self._heard_speech = True

    def _endpoint_reached(self) -> None:
        if self.state is State.LISTENING and self.mode is Mode.HANDS_FREE:
            log.info("hands-free: end of speech")
            asyncio.get_running_loop().create_task(self._finish_listening())

    def _cancel_listening(self, undo_typed: bool = False) -> None:
        """Drop the recording. A live dictation stops; with ``undo_typed`` what it already typed is
        deleted too (a double press cancels the whole dictation)."""
        if self.s.live_frames:
            self.s.live_frames(None)
        self.s.recorder.cancel()
        live, self._live = self._live, None
        if live is not None:
            self._start_work(self._abandon_live(live, self._record, undo_typed))
        self._set(State.READY)

    async def _abandon_live(self, live, record: DictationRecord, undo_typed: bool) -> None:  # noqa: ANN001
        await self.s.pipeline.cancel_live(live)
        if undo_typed and record.typed:
            undo = DictationRecord(released_at=self.clock())
            self.records.append(undo)
            await self.s.pipeline.undo(undo)

    async def _finish_listening(self) -> None:
        if self.state is not State.LISTENING:
            return
        if self.s.live_frames:
            self.s.live_frames(None)
        record, live, self._live = self._record, self._live, None
        record.released_at = self.clock()
        self.records.append(record)
        self._set(State.TRANSCRIBING)
        self._start_work(self._dictation(record, live))

    async def _dictation(self, record: DictationRecord, live=None) -> None:  # noqa: ANN001
        snapshot = getattr(self.s.recorder, "snapshot", None)

        def stop() -> np.ndarray:  # worker thread: the VAD look at the end, then the post-roll (or not)
            post_roll = self.s.pipeline.post_roll_needed(snapshot()) if snapshot is not None else True
            return self.s.recorder.stop(post_roll)

        try:
            samples = await asyncio.to_thread(stop)
        except BaseException:
            if live is not None:  # cancelled (or failed) before the live dictation could finish
                await self.s.pipeline.cancel_live(live)
            raise
        try:
            if live is not None:
                await self.s.pipeline.finish_live(live, samples, record)
            else:
                await self.s.pipeline.dictate(samples, record)
        except VoiceKeyError as exc:
            self.show_error(_pattern_for(exc), exc)

    def _typing(self) -> None:
        if self.state is not State.LISTENING:
            self._set(State.TYPING)

    def _start_work(self, coro) -> None:  # noqa: ANN001 - a coroutine
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
        self._set(State.READY)
