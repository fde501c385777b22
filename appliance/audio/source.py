"""Push-to-talk audio sources: the interface, the shared pre-roll/post-roll recorder, and live frames.

Every source delivers float32 mono audio at 16 kHz, cut into 30 ms frames. While it is open it keeps
the last ``pre_roll_ms`` in a ring buffer, so that :meth:`AudioSource.start` (button pressed) can
include audio from just before the press and the first word is not clipped. :meth:`AudioSource.stop`
(button released) keeps recording for ``post_roll_ms`` and then returns the utterance. An utterance
longer than ``max_utterance_s`` is cut there: recording stops, what was said is kept, and
:attr:`AudioSource.max_length_reached` becomes true.

Live frames for hands-free endpointing come from :meth:`AudioSource.frames`, a subscription that can
be read blocking (``get``), iterated, or iterated with ``async for`` inside an asyncio loop, or from
a callback registered with :meth:`AudioSource.set_frame_sink`. Frames are delivered whenever the
source is open, recording or not.

Concrete sources: :class:`appliance.audio.capture.SoundDeviceSource` (microphone),
:class:`appliance.audio.files.FileSource` (WAV/FLAC file) and :class:`ArraySource` (a fake for tests).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from appliance.audio.format import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from appliance.config import AudioConfig
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "FRAME_MS", "FRAME_SAMPLES", "SAMPLE_RATE", "ArraySource", "AudioSource", "BufferedSource",
    "CaptureOptions", "FrameSubscription", "resample", "to_mono",
]


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    """Settings shared by all audio sources.

    The fields that are also config settings take their defaults from the ``audio:`` section's
    schema (:class:`appliance.config.AudioConfig`), where they are documented and checked; the
    other fields are tuning knobs with no config key.
    """

    pre_roll_ms: int = AudioConfig.pre_roll_ms
    """``audio.pre_roll_ms``: audio from before ``start()`` included in the utterance."""

    post_roll_ms: int = AudioConfig.post_roll_ms
    """``audio.post_roll_ms``: audio recorded after ``stop()``."""

    max_utterance_s: float = AudioConfig.max_utterance_s
    """``audio.max_utterance_s``: longest utterance (pre-roll included); recording stops there and
    keeps what was said."""

    stop_timeout_s: float = 1.0
    """How much longer than ``post_roll_ms`` ``stop()`` waits for audio before returning what it has."""

    frame_queue_frames: int = 2000
    """Frames a :class:`FrameSubscription` buffers for a slow reader before dropping the oldest."""

    def __post_init__(self) -> None:
        for name in ("pre_roll_ms", "post_roll_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"audio {name} {value!r} is invalid", fix="use a whole number of ms, 0 or more")
        if not self.max_utterance_s > 0:
            raise ConfigError(f"audio max_utterance_s {self.max_utterance_s!r} is invalid",
                              fix="use a positive number of seconds")
        if self.stop_timeout_s < 0:
            raise ConfigError(f"audio stop_timeout_s {self.stop_timeout_s!r} is negative", fix="use 0 or more")
        if self.frame_queue_frames < 1:
            raise ConfigError(f"audio frame_queue_frames {self.frame_queue_frames!r} is invalid", fix="use 1 or more")

    @property
    def pre_roll_frames(self) -> int:
        """Pre-roll in whole 30 ms frames (rounded up)."""
        return -(-self.pre_roll_ms // FRAME_MS)

    @property
    def post_roll_frames(self) -> int:
        """Post-roll in whole 30 ms frames (rounded up)."""
        return -(-self.post_roll_ms // FRAME_MS)

    @property
    def max_frames(self) -> int:
        """Maximum utterance length in frames."""
        return max(1, int(self.max_utterance_s * 1000) // FRAME_MS)


class FrameSubscription:
    """A reader's queue of live 30 ms frames (float32, 480 samples) from one source.

    ``get(timeout)`` blocks; plain iteration ends when the source closes; ``async for`` works inside a
    running asyncio loop (frames are handed over with ``call_soon_threadsafe``). Close it when done.
    """

    _END = object()

    def __init__(self, owner: _Recorder, maxsize: int) -> None:
        self._owner = owner
        self._maxsize = maxsize
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aqueue: asyncio.Queue[object] | None = None
        self._closed = False
        self.dropped = 0
        """Frames dropped because the reader fell more than ``frame_queue_frames`` behind."""

    # producer side (audio thread)
    def _put(self, item: object) -> None:
        with self._cond:
            if self._closed:
                return
            if self._loop is not None and self._aqueue is not None:
                loop, aq = self._loop, self._aqueue
            else:
                if len(self._queue) >= self._maxsize:
                    self._queue.popleft()
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 100 == 0:
                        log.warning("frame reader is behind: %d frames dropped", self.dropped)
                self._queue.append(item)
                self._cond.notify_all()
                return
        try:
            loop.call_soon_threadsafe(aq.put_nowait, item)
        except RuntimeError:  # loop closed
            pass

    # consumer side
    def get(self, timeout: float | None = None) -> np.ndarray | None:
        """Next frame, waiting up to ``timeout`` seconds; None on timeout or when the source closed."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout)
            if not self._queue:
                return None
            item = self._queue.popleft()
            if item is self._END:
                self._queue.appendleft(item)
                return None
            return item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._queue.popleft()
            if item is self._END:
                return
            yield item  # type: ignore[misc]

    def __aiter__(self) -> AsyncIterator[np.ndarray]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._aqueue is None:
                self._aqueue = asyncio.Queue()
                for item in self._queue:
                    self._aqueue.put_nowait(item)
                self._queue.clear()
                self._loop = loop
            elif self._loop is not loop:
                raise RuntimeError("a frame subscription can only be used from one event loop")
            aq = self._aqueue
        while True:
            item = await aq.get()
            if item is self._END:
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop receiving frames (iteration ends)."""
        self._owner.unsubscribe(self)
        self._finish()

    def _finish(self) -> None:
        self._put(self._END)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> FrameSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _State(enum.Enum):
    IDLE = "idle"
    RECORDING = "recording"
    POST_ROLL = "post_roll"
    DONE = "done"


class _Recorder:
    """Frames in, utterances out. Thread-safe: ``push`` runs on the audio thread."""

    def __init__(self, options: CaptureOptions) -> None:
        self.options = options
        self._cond = threading.Condition()
        self._partial = np.zeros(0, dtype=np.float32)
        self._ring: deque[np.ndarray] = deque(maxlen=max(1, options.pre_roll_frames))
        self._frames: list[np.ndarray] = []
        self._state = _State.IDLE
        self._post_left = 0
        self._exhausted = False
        self._stream_ended = False
        self._subs: list[FrameSubscription] = []
        self._sink: Callable[[np.ndarray], None] | None = None
        self.max_length_reached = False

    # audio thread ------------------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> None:
        data = np.asarray(samples, dtype=np.float32).reshape(-1)
        if data.size == 0:
            return
        with self._cond:
            if self._partial.size:
                data = np.concatenate((self._partial, data))
            whole = data.size // FRAME_SAMPLES
            self._partial = data[whole * FRAME_SAMPLES:].copy()
            frames = [data[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES].copy() for i in range(whole)]
            for frame in frames:
                self._add_frame(frame)
            subs = list(self._subs)
            sink = self._sink
        for sub in subs:
            for frame in frames:
                sub._put(frame)
        if sink is not None:
            for frame in frames:
                try:
                    sink(frame)
                except Exception:  # a broken reader must not stop the audio thread
                    log.exception("frame sink failed")

    def _add_frame(self, frame: np.ndarray) -> None:
        if self.options.pre_roll_frames:
            self._ring.append(frame)
        if self._state in (_State.RECORDING, _State.POST_ROLL):
            self._frames.append(frame)
            if len(self._frames) >= self.options.max_frames:
                if self._state is _State.RECORDING:
                    self.max_length_reached = True
                    log.info("utterance reached the %.1f s limit; recording stopped",
                             self.options.max_utterance_s)
                self._done()
            elif self._state is _State.POST_ROLL:
                self._post_left -= 1
                if self._post_left <= 0:
                    self._done()

    def _done(self) -> None:
        self._state = _State.DONE
        self._cond.notify_all()

    def exhausted(self) -> None:
        """No more audio will come for the current utterance (a file ended).

        A trailing partial frame is added to the recording as it is (frame readers never see it).
        """
        with self._cond:
            self._exhausted = True
            if self._partial.size and self._state in (_State.RECORDING, _State.POST_ROLL):
                if len(self._frames) < self.options.max_frames:
                    self._frames.append(self._partial)
            self._partial = np.zeros(0, dtype=np.float32)
            if self._state is _State.POST_ROLL:
                self._done()

    def stream_ended(self) -> None:
        """The stream stopped (closed, unplugged): wake anyone waiting in collect()."""
        with self._cond:
            self._stream_ended = True
            self._partial = np.zeros(0, dtype=np.float32)
            if self._state is _State.POST_ROLL:
                self._done()
            self._cond.notify_all()

    def clear_pre_roll(self) -> None:
        with self._cond:
            self._ring.clear()
            self._partial = np.zeros(0, dtype=np.float32)

    def stream_started(self) -> None:
        with self._cond:
            self._stream_ended = False
            self._partial = np.zeros(0, dtype=np.float32)
            self._ring.clear()

    # control thread ----------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        with self._cond:
            return self._state in (_State.RECORDING, _State.POST_ROLL)

    def start(self) -> None:
        with self._cond:
            if self._state is not _State.IDLE:
                log.debug("start() while an utterance is open: discarding it")
            pre = list(self._ring)[-self.options.pre_roll_frames:] if self.options.pre_roll_frames else []
            self._frames = pre[: self.options.max_frames]
            self._state = _State.RECORDING
            self._exhausted = False
            self.max_length_reached = False
            if len(self._frames) >= self.options.max_frames:
                self._done()

    def cancel(self) -> None:
        with self._cond:
            self._frames = []
            self._state = _State.IDLE
            self._cond.notify_all()

    def set_sink(self, sink: Callable[[np.ndarray], None] | None) -> None:
        with self._cond:
            self._sink = sink

    def request_stop(self, post_roll: bool = True) -> None:
        with self._cond:
            if self._state is _State.RECORDING:
                self._request_stop_locked(post_roll)

    def _request_stop_locked(self, post_roll: bool = True) -> None:
        if not post_roll or self.options.post_roll_frames == 0 or self._exhausted or self._stream_ended:
            self._done()
        else:
            self._state = _State.POST_ROLL
            self._post_left = self.options.post_roll_frames

    def collect(self, timeout: float | None) -> np.ndarray:
        with self._cond:
            if self._state is _State.IDLE:
                return np.zeros(0, dtype=np.float32)
            if self._state is _State.RECORDING:
                self._request_stop_locked()  # collect() without request_stop(): like stop()
            if self._state is not _State.DONE:
                self._cond.wait_for(lambda: self._state is _State.DONE or self._stream_ended, timeout)
            if self._state is not _State.DONE:
                log.warning("audio stopped arriving during the post-roll; using what was recorded")
            frames, self._frames = self._frames, []
            self._state = _State.IDLE
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(frames)

    def snapshot(self) -> np.ndarray:
        """Everything the current utterance holds so far (pre-roll included), as one array: the same
        samples ``collect()`` will return, minus what is still to come."""
        with self._cond:
            frames = list(self._frames) if self._state in (_State.RECORDING, _State.POST_ROLL) else []
        return np.concatenate(frames) if frames else np.zeros(0, dtype=np.float32)

    def subscribe(self) -> FrameSubscription:
        sub = FrameSubscription(self, self.options.frame_queue_frames)
        with self._cond:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: FrameSubscription) -> None:
        with self._cond:
            if sub in self._subs:
                self._subs.remove(sub)

    def close_subscriptions(self) -> None:
        with self._cond:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub._finish()


@runtime_checkable
class AudioSource(Protocol):
    """A push-to-talk recorder the controller drives (float32 mono 16 kHz)."""

    sample_rate: int

    def open(self) -> None:
        """Start listening (fills the pre-roll buffer and feeds frame subscribers). Idempotent."""

    def start(self) -> None:
        """Begin an utterance; it includes the pre-roll. Opens the source first if needed."""

    def stop(self, post_roll: bool = True) -> np.ndarray:
        """End the utterance: record the post-roll (unless ``post_roll`` is False: the speech is
        known to be over), then return its samples (may be empty)."""

    def cancel(self) -> None:
        """Drop the current utterance without waiting for the post-roll."""

    def check(self) -> None:
        """Open the source, or re-open it after a failure; AudioError while the device is missing."""

    def close(self) -> None:
        """Stop listening and release the device. Frame subscriptions end."""

    def frames(self) -> FrameSubscription:
        """Subscribe to live 30 ms frames (for hands-free endpointing)."""

    def snapshot(self) -> np.ndarray:
        """The current utterance so far (for live dictation)."""

    def set_frame_sink(self, sink: Callable[[np.ndarray], None] | None) -> None:
        """Call ``sink(frame)`` on the audio thread for every live 30 ms frame; None removes it."""

    @property
    def recording(self) -> bool:
        """True between start() and the end of stop()."""

    @property
    def max_length_reached(self) -> bool:
        """True when the current/last utterance was cut at ``max_utterance_s``."""


class BufferedSource:
    """Base for sources: implements :class:`AudioSource` on top of the shared recorder.

    Subclasses implement ``_open_stream`` / ``_close_stream`` and push audio with ``_push``; they may
    override ``_on_start`` and ``_on_stop_requested`` to produce audio on demand.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, options: CaptureOptions | None = None) -> None:
        self.options = options or CaptureOptions()
        self._recorder = _Recorder(self.options)
        self._is_open = False
        self._lock = threading.RLock()

    # subclass hooks -----------------------------------------------------------------------------
    def _open_stream(self) -> None:
        """Acquire the device/file and begin delivering audio through ``_push``."""

    def _close_stream(self) -> None:
        """Stop delivering audio and release the device/file."""

    def _before_start(self) -> None:
        """Called before an utterance starts (before the pre-roll is taken)."""

    def _on_start(self) -> None:
        """Called after an utterance started (the pre-roll is already in it)."""

    def _on_stop_requested(self) -> None:
        """Called after stop was requested, before waiting for the post-roll."""

    def _push(self, samples: np.ndarray) -> None:
        self._recorder.push(samples)

    # public API ---------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """True while the source is listening."""
        return self._is_open

    def open(self) -> None:
        """Start listening (idempotent)."""
        with self._lock:
            if self._is_open:
                return
            self._recorder.stream_started()
            self._open_stream()
            self._is_open = True

    def start(self) -> None:
        """Begin an utterance including the pre-roll (opens the source first if needed)."""
        with self._lock:
            self.open()
            self._before_start()
            self._recorder.start()
            self._on_start()

    def request_stop(self, post_roll: bool = True) -> None:
        """Begin the post-roll without waiting (or end at once without it); collect the audio later
        with :meth:`collect`."""
        with self._lock:
            self._recorder.request_stop(post_roll)
            self._on_stop_requested()

    def collect(self, timeout: float | None = None) -> np.ndarray:
        """Wait for the post-roll (at most ``timeout`` s, default post-roll + ``stop_timeout_s``)."""
        if timeout is None:
            timeout = self.options.post_roll_ms / 1000 + self.options.stop_timeout_s
        audio = self._recorder.collect(timeout)
        log.debug("utterance: %.2f s", audio.size / SAMPLE_RATE)
        return audio

    def stop(self, post_roll: bool = True) -> np.ndarray:
        """End the utterance: record the post-roll (unless ``post_roll`` is False), return float32
        mono 16 kHz samples."""
        self.request_stop(post_roll)
        return self.collect()

    def cancel(self) -> None:
        """Drop the current utterance without waiting for the post-roll."""
        self._recorder.cancel()

    def check(self) -> None:
        """Make sure the source is open (sources that can fail override this to re-open)."""
        self.open()

    def set_frame_sink(self, sink: Callable[[np.ndarray], None] | None) -> None:
        """Call ``sink(frame)`` on the audio thread for each live 30 ms frame (None removes it).

        The sink must be quick (it runs in the audio callback); exceptions are logged and ignored.
        For a queue-based reader use :meth:`frames` instead.
        """
        self._recorder.set_sink(sink)

    def live_frames(self, sink: Callable[[np.ndarray], None] | None) -> None:
        """Same as :meth:`set_frame_sink` (the name ``controller.Stages.live_frames`` uses)."""
        self.set_frame_sink(sink)

    def close(self) -> None:
        """Stop listening; subscriptions end. The source can be opened again."""
        with self._lock:
            if self._is_open:
                self._is_open = False
                self._close_stream()
            self._recorder.stream_ended()
            self._recorder.close_subscriptions()

    def frames(self) -> FrameSubscription:
        """Subscribe to live frames (see :class:`FrameSubscription`)."""
        return self._recorder.subscribe()

    def snapshot(self) -> np.ndarray:
        """The current utterance so far, pre-roll included (live dictation decodes it as it grows)."""
        return self._recorder.snapshot()

    @property
    def recording(self) -> bool:
        """True between start() and the end of stop()."""
        return self._recorder.recording

    @property
    def max_length_reached(self) -> bool:
        """True when the current/last utterance was cut at ``max_utterance_s``."""
        return self._recorder.max_length_reached

    def __enter__(self) -> BufferedSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_mono(block: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) block into float32 mono."""
    data = np.asarray(block)
    if data.ndim == 1:
        return data.astype(np.float32, copy=False)
    if data.shape[1] == 1:
        return data[:, 0].astype(np.float32, copy=False)
    return data.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample float32 mono audio from ``rate`` to ``target`` Hz with soxr (one shot)."""
    x = np.asarray(samples, dtype=np.float32)
    if rate == target or x.size == 0:
        return x
    import soxr

    return soxr.resample(x, rate, target, quality="HQ").astype(np.float32, copy=False)


class ArraySource(BufferedSource):
    """Fake microphone for tests: plays given arrays; no device, no threads, deterministic.

    * ``ArraySource([utt1, utt2])``: each ``start()`` plays the next queued utterance into the
      recording at once (then the "room" is silent), so ``stop()`` returns pre-roll + utterance +
      post-roll of silence (zeros).
    * :meth:`feed` makes the microphone "hear" samples now, at any time while open: before
      ``start()`` they fill the pre-roll, during recording they are recorded, and a feed after
      :meth:`request_stop` supplies the post-roll.
    * ``silence_post_roll=False`` makes ``stop()`` wait for fed post-roll audio instead of zeros.

    Arrays at another ``sample_rate`` are resampled to 16 kHz; 2-D arrays are (frames, channels).
    """

    def __init__(self, utterances: np.ndarray | list[np.ndarray] | None = None, *, sample_rate: int = SAMPLE_RATE,
                 options: CaptureOptions | None = None, silence_post_roll: bool = True) -> None:
        super().__init__(options)
        self.input_rate = sample_rate
        if utterances is None:
            queued: list[np.ndarray] = []
        elif isinstance(utterances, np.ndarray):
            queued = [utterances]
        else:
            queued = list(utterances)
        self._queued: deque[np.ndarray] = deque(self._convert(u) for u in queued)
        self.silence_post_roll = silence_post_roll
        self.opened = 0
        """How many times the source was opened (for tests)."""

    def _convert(self, samples: np.ndarray) -> np.ndarray:
        return resample(to_mono(samples), self.input_rate)

    def queue(self, samples: np.ndarray) -> None:
        """Queue an utterance that the next ``start()`` plays."""
        self._queued.append(self._convert(samples))

    def feed(self, samples: np.ndarray) -> None:
        """The microphone hears ``samples`` now (opens the source if needed)."""
        self.open()
        self._push(self._convert(samples))

    def _open_stream(self) -> None:
        self.opened += 1

    def _on_start(self) -> None:
        if self._queued:
            self._push(self._queued.popleft())

    def _on_stop_requested(self) -> None:
        if self.silence_post_roll and self.recording:
            self._push(np.zeros(self.options.post_roll_frames * FRAME_SAMPLES, dtype=np.float32))
