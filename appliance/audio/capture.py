"""Microphone capture through sounddevice (PortAudio), behind a small backend interface.

:class:`SoundDeviceSource` opens an input stream at the device's *native* rate (USB microphones are
usually 44.1 or 48 kHz and many refuse 16 kHz), averages the channels to mono and resamples to 16 kHz
with a streaming soxr resampler, then hands the audio to the shared pre-roll/post-roll recorder
(:mod:`appliance.audio.source`).

Unplug and recovery: when the stream dies (PortAudio ends it and calls ``finished_callback``) or
stops delivering audio for ``stall_timeout_s``, the source marks itself failed. The next ``start()``
(or an explicit :meth:`SoundDeviceSource.recover`) closes the dead stream, re-scans the devices and
opens it again; if the device is still missing that raises :class:`AudioError` naming the device and
the fix, and the controller may simply try again later.

PortAudio only enumerates devices at initialisation, so a re-plugged USB microphone is only seen
after ``Pa_Terminate()`` + ``Pa_Initialize()``; sounddevice exposes these as ``sd._terminate()`` /
``sd._initialize()``, which its maintainer recommends for exactly this
(https://github.com/spatialaudio/python-sounddevice/issues/125). It must only be done with no
stream open, which :meth:`SoundDeviceBackend.rescan` is only called with.

``sounddevice`` is imported lazily: it needs the libportaudio2 shared library, and this module must
import (and the fakes work) without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from appliance.audio.format import SAMPLE_RATE
from appliance.audio.source import BufferedSource, CaptureOptions, to_mono
from appliance.errors import AudioError, ConfigError

log = logging.getLogger(__name__)

Device = int | str | None
"""A device index, a (sub)string of its name, or None for the system default input."""

AudioCallback = Callable[[np.ndarray, int, Any, Any], None]


@dataclass(frozen=True, slots=True)
class InputDeviceInfo:
    """What the source needs to know about an input device."""

    index: int
    name: str
    default_samplerate: float
    max_input_channels: int


class InputStream(Protocol):
    """The part of ``sounddevice.InputStream`` the source uses."""

    @property
    def active(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class AudioBackend(Protocol):
    """Device access; :class:`SoundDeviceBackend` for real, ``fakes.FakeAudioBackend`` in tests."""

    def query_input(self, device: Device) -> InputDeviceInfo:
        """Info about an input device; raises LookupError when there is no such input."""

    def list_inputs(self) -> list[InputDeviceInfo]:
        """All input devices currently known."""

    def open_input(self, *, device: int, samplerate: int, channels: int, blocksize: int,
                   callback: AudioCallback, finished_callback: Callable[[], None]) -> InputStream:
        """Open (not start) a float32 input stream; raises OSError when the device cannot be opened.

        ``callback(indata, frames, time, status)`` gets (frames, channels) float32 blocks.
        """

    def rescan(self) -> None:
        """Re-enumerate devices (only called with no stream open)."""


class SoundDeviceBackend:
    """:class:`AudioBackend` on the real ``sounddevice`` module (imported on first use).

    ``latency``: the input buffer in seconds asked of PortAudio (None: its "high" default)."""

    def __init__(self, latency: float | None = None) -> None:
        self._sd: Any = None
        self.latency = latency

    @property
    def sd(self) -> Any:
        if self._sd is None:
            try:
                import sounddevice
            except OSError as exc:  # the PortAudio library is missing
                raise AudioError(f"cannot load PortAudio for audio capture: {exc}",
                                 fix="install it: apt-get install libportaudio2") from exc
            except ImportError as exc:
                raise AudioError("the sounddevice package is not installed",
                                 fix="pip install 'voicekey[speech]' (or pip install sounddevice)") from exc
            self._sd = sounddevice
        return self._sd

    def query_input(self, device: Device) -> InputDeviceInfo:
        sd = self.sd
        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            raise LookupError(str(exc)) from exc
        if int(info.get("max_input_channels", 0)) < 1:
            raise LookupError(f"device {info.get('name')!r} has no input channels")
        return InputDeviceInfo(int(info["index"]), str(info["name"]), float(info["default_samplerate"]),
                               int(info["max_input_channels"]))

    def list_inputs(self) -> list[InputDeviceInfo]:
        sd = self.sd
        found = []
        for info in sd.query_devices():
            if int(info.get("max_input_channels", 0)) > 0:
                found.append(InputDeviceInfo(int(info["index"]), str(info["name"]),
                                             float(info["default_samplerate"]), int(info["max_input_channels"])))
        return found

    def open_input(self, *, device: int, samplerate: int, channels: int, blocksize: int,
                   callback: AudioCallback, finished_callback: Callable[[], None]) -> InputStream:
        sd = self.sd
        try:
            return sd.InputStream(device=device, samplerate=samplerate, channels=channels, dtype="float32",
                                  blocksize=blocksize, callback=callback, finished_callback=finished_callback,
                                  latency=self.latency if self.latency is not None else "high")
        except sd.PortAudioError as exc:
            raise OSError(str(exc)) from exc

    def rescan(self) -> None:
        sd = self.sd
        # See the module docstring: the only way to see hot-plugged devices with PortAudio v19.
        sd._terminate()
        sd._initialize()


class SoundDeviceSource(BufferedSource):
    """Microphone source: sounddevice input at the native rate -> mono -> soxr -> 16 kHz frames.

    :param device: index, name (substring) or None for the default input.
    :param options: pre/post-roll and limits.
    :param backend: device access (default: the real sounddevice).
    :param channels: channels to open (default: up to 2 of what the device has); they are averaged.
    :param rate: sample rate to open the device at (default: the device's default rate).
    :param block_ms: length of the blocks the driver delivers (PortAudio sizes its buffer from it).
    :param stall_timeout_s: no audio for this long while open counts as a dead device (None: never).
    :param clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, device: Device = None, options: CaptureOptions | None = None, *,
                 backend: AudioBackend | None = None, channels: int | None = None,
                 rate: int | None = None, block_ms: int = 30, stall_timeout_s: float | None = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options)
        if channels is not None and channels < 1:
            raise ConfigError(f"audio channels {channels!r} is invalid", fix="use 1 or more, or leave it unset")
        if block_ms <= 0:
            raise ConfigError(f"audio block_ms {block_ms!r} is invalid", fix="use a positive number of ms")
        self.device = device
        self.backend: AudioBackend = backend if backend is not None else SoundDeviceBackend()
        self._channels_wanted = channels
        self._rate_wanted = rate
        self._block_ms = block_ms
        self._stall_timeout = stall_timeout_s
        self._clock = clock
        self._stream: InputStream | None = None
        self._resampler: Any = None
        self._failed = threading.Event()
        self._closing = False
        self._needs_rescan = False
        self._last_audio = 0.0
        self.info: InputDeviceInfo | None = None
        """The device in use (after open)."""
        self.native_rate = 0
        self.channels = 0
        self.reopened = 0
        """How many times the stream was re-opened after a failure."""

    # -- BufferedSource hooks -----------------------------------------------------------------------
    def _open_stream(self) -> None:
        if self._needs_rescan:
            self.backend.rescan()
        try:
            info = self.backend.query_input(self.device)
        except LookupError as exc:
            self._needs_rescan = True
            raise self._missing_error(str(exc)) from exc
        rate = self._rate_wanted or int(round(info.default_samplerate))
        channels = min(info.max_input_channels, self._channels_wanted or 2)
        if rate <= 0:
            raise AudioError(f"audio input {info.name!r} reports no usable sample rate ({info.default_samplerate})",
                             fix="pick another device with audio.device")
        self._resampler = self._make_resampler(rate)
        self._failed.clear()
        self._closing = False
        blocksize = max(1, rate * self._block_ms // 1000)
        try:
            stream = self.backend.open_input(device=info.index, samplerate=rate, channels=channels,
                                             blocksize=blocksize, callback=self._callback,
                                             finished_callback=self._finished)
            stream.start()
        except Exception as exc:  # OSError, or sounddevice.PortAudioError (not an OSError) from start()
            self._needs_rescan = True
            raise AudioError(f"cannot open audio input {info.name!r} at {rate} Hz: {exc}",
                             fix="check the microphone is plugged in and not used by another program "
                                 "(arecord -l lists capture devices)") from exc
        self._stream = stream
        self.info, self.native_rate, self.channels = info, rate, channels
        self._last_audio = self._clock()
        self._needs_rescan = False
        log.info("audio input %r opened: %d Hz, %d channel(s) -> 16 kHz mono", info.name, rate, channels)

    def _close_stream(self) -> None:
        self._closing = True
        stream, self._stream = self._stream, None
        if stream is None:
            return
        for step in (stream.stop, stream.close):
            try:
                step()
            except Exception as exc:  # a dead device may fail to stop; we are discarding it anyway
                log.debug("closing the audio stream: %s", exc)

    def _make_resampler(self, rate: int) -> Any:
        if rate == SAMPLE_RATE:
            return None
        import soxr

        return soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    # -- audio thread -----------------------------------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status:
            log.debug("audio status: %s", status)
        try:
            mono = to_mono(indata)
            if self._resampler is not None:
                mono = self._resampler.resample_chunk(mono)
            self._last_audio = self._clock()
            self._push(mono)
        except Exception:  # never let an exception kill the PortAudio thread silently
            log.exception("audio callback failed")

    def _finished(self) -> None:
        # Called by PortAudio when the stream ends: on our close, or when the device went away.
        if not self._closing:
            log.warning("audio input %r stopped delivering audio (unplugged?)",
                        self.info.name if self.info else self.device)
            self._failed.set()
            self._recorder.stream_ended()

    # -- health / recovery ------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        """True when the stream died or stalled; :meth:`recover` or the next start() re-opens it."""
        if self._failed.is_set():
            return True
        stream = self._stream
        if self._is_open and stream is not None and not stream.active:
            return True
        if (self._is_open and self._stall_timeout is not None
                and self._clock() - self._last_audio > self._stall_timeout):
            return True
        return False

    def recover(self) -> None:
        """Close a dead stream, re-scan devices and open again; AudioError while it is still missing."""
        with self._lock:
            if self._is_open:
                self.close_stream_only()
            self._needs_rescan = True
            self.open()
            self.reopened += 1
            log.info("audio input recovered")

    def check(self) -> None:
        """Open the device, or re-open it after it died/stalled; AudioError while it is missing.

        Meant to be called periodically while idle (each failed try re-scans the devices).
        """
        with self._lock:
            if not self._is_open:
                self.open()  # after a failed open, _needs_rescan makes this re-scan first
            elif self.failed:
                self.recover()

    def close_stream_only(self) -> None:
        """Close the device but keep frame subscribers (used by :meth:`recover`)."""
        with self._lock:
            if self._is_open:
                self._is_open = False
                self._close_stream()
            self._recorder.stream_ended()

    def start(self) -> None:
        """Begin an utterance; re-opens a dead/unplugged device first (AudioError if still missing)."""
        with self._lock:
            if self._is_open and self.failed:
                log.warning("audio input is not delivering audio; re-opening it")
                self.recover()
            super().start()

    def _missing_error(self, detail: str) -> AudioError:
        want = "the default input" if self.device is None else f"audio input {self.device!r}"
        try:
            names = [f"{d.index}: {d.name}" for d in self.backend.list_inputs()]
        except Exception:  # listing is only a hint
            names = []
        available = "; ".join(names) if names else "none found"
        return AudioError(f"{want} is not available ({detail})",
                          fix=f"plug in the USB microphone, or set audio.device to one of: {available}")
