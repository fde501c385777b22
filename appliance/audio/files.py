"""Audio files as sources: decode WAV/FLAC/… to 16 kHz mono and "play" them like a microphone.

Decoding: plain PCM WAV is read with the stdlib ``wave`` module; everything else (FLAC, Ogg, MP3,
float or WAVE_FORMAT_EXTENSIBLE WAV, which Python 3.11's ``wave`` rejects) with PyAV, which is
already installed as a dependency of faster-whisper. Resampling uses soxr.
"""

from __future__ import annotations

import logging
import threading
import time
import wave
from pathlib import Path

import numpy as np

from appliance.audio.format import FRAME_SAMPLES, SAMPLE_RATE
from appliance.audio.source import BufferedSource, CaptureOptions, resample, to_mono
from appliance.errors import AudioError

log = logging.getLogger(__name__)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to float32 mono at ``sample_rate`` (AudioError when unreadable)."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file {str(p)!r} not found", fix="check the path (WAV or FLAC files work)")
    try:
        samples, rate = _read_wav(p)
    except (wave.Error, EOFError, ValueError):
        samples, rate = _read_with_av(p)
    return resample(samples, rate, sample_rate)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        data = ints.astype(np.float32) / 8388608.0
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise ValueError(f"unsupported sample width {width}")
    return to_mono(data.reshape(-1, channels)), rate


def _read_with_av(path: Path) -> tuple[np.ndarray, int]:
    try:
        import av
    except ImportError as exc:
        raise AudioError(f"cannot decode {str(path)!r}: only PCM WAV works without PyAV",
                         fix="pip install av (it comes with faster-whisper), "
                             "or convert the file to 16-bit WAV") from exc
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{str(path)!r} has no audio stream", fix="use a WAV or FLAC recording")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises its own error classes for broken/unknown files
        raise AudioError(f"cannot decode audio file {str(path)!r}: {exc}",
                         fix="use a WAV or FLAC recording "
                             "(e.g. convert with: sox in.xxx -r 16000 -c 1 out.wav)") from exc
    data = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    return data, SAMPLE_RATE


class FileSource(BufferedSource):
    """An :class:`~appliance.audio.source.AudioSource` that plays a file instead of a microphone.

    Each ``start()`` plays the file from the beginning: with ``realtime=False`` all of it at once
    (``stop()`` then returns the whole file, capped at ``max_utterance_s``), with ``realtime=True`` in
    30 ms frames at the speed of a microphone from a background thread (``stop()`` returns what was
    "heard" until then plus the post-roll, taken from the file while it lasts).
    :meth:`wait_finished` waits for the end of the file. For hands-free use, call :meth:`play` after
    ``open()`` and read :meth:`frames`.
    """

    def __init__(self, path: str | Path, *, realtime: bool = False, options: CaptureOptions | None = None) -> None:
        super().__init__(options)
        self.path = Path(path)
        self.realtime = realtime
        self._samples: np.ndarray | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._finished = threading.Event()

    @property
    def samples(self) -> np.ndarray:
        """The decoded file (16 kHz mono float32)."""
        if self._samples is None:
            self._samples = load_audio(self.path)
            if self._samples.size == 0:
                raise AudioError(f"audio file {str(self.path)!r} contains no audio", fix="record it again")
        return self._samples

    def _open_stream(self) -> None:
        _ = self.samples  # decode now so errors show at open()

    def _close_stream(self) -> None:
        self._stop_playing()

    def _before_start(self) -> None:
        # A file has no "room" before it: the pre-roll must not hold the end of the previous play.
        self._stop_playing()
        self._recorder.clear_pre_roll()

    def _on_start(self) -> None:
        self.play()

    def play(self) -> None:
        """Play the file from the beginning (instantly, or in real time on a thread)."""
        self.open()
        self._stop_playing()
        self._finished.clear()
        if not self.realtime:
            self._push(self.samples)
            self._end_of_file()
            return
        self._cancel.clear()
        self._thread = threading.Thread(target=self._play_realtime, name="voicekey-file-source", daemon=True)
        self._thread.start()

    def _play_realtime(self) -> None:
        data = self.samples
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        deadline = time.monotonic()
        for start in range(0, len(data), FRAME_SAMPLES):
            if self._cancel.is_set():
                return
            self._push(data[start:start + FRAME_SAMPLES])
            deadline += frame_s
            delay = deadline - time.monotonic()
            if delay > 0 and self._cancel.wait(delay):
                return
        self._end_of_file()

    def _end_of_file(self) -> None:
        self._recorder.exhausted()
        self._finished.set()

    def _stop_playing(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._cancel.set()
            thread.join()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until the file has played to the end; False on timeout."""
        return self._finished.wait(timeout)
