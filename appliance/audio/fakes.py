"""A fake sounddevice for tests and simulations: devices you can plug, unplug and speak into.

``FakeAudioBackend`` implements :class:`appliance.audio.capture.AudioBackend`; the streams it opens
behave like ``sounddevice.InputStream`` (same callback signature, ``finished_callback`` when the
device goes away) but deliver audio only when a test calls :meth:`FakeInputStream.feed`, on the
caller's thread, so tests are deterministic.

    backend = FakeAudioBackend([FakeDevice("USB mic", samplerate=48000, channels=2)])
    source = SoundDeviceSource("USB mic", backend=backend)
    source.open()
    backend.stream.feed(stereo_48k_block)   # the microphone hears this
    backend.unplug("USB mic")               # stream dies, finished_callback runs
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from appliance.audio.capture import AudioCallback, Device, InputDeviceInfo


@dataclass
class FakeDevice:
    """An input device of the fake backend."""

    name: str
    samplerate: float = 48_000
    channels: int = 2
    plugged: bool = True


class FakeCallbackFlags:
    """Stands in for ``sounddevice.CallbackFlags`` (falsy unless an overflow is simulated)."""

    def __init__(self, input_overflow: bool = False) -> None:
        self.input_overflow = input_overflow

    def __bool__(self) -> bool:
        return self.input_overflow

    def __str__(self) -> str:
        return "input overflow" if self.input_overflow else ""


class FakeInputStream:
    """An input stream on a fake device; audio arrives only through :meth:`feed`."""

    def __init__(self, backend: FakeAudioBackend, device: FakeDevice, samplerate: int, channels: int,
                 blocksize: int, callback: AudioCallback, finished_callback: Callable[[], None]) -> None:
        self.backend = backend
        self.device = device
        self.samplerate = samplerate
        self.channels = channels
        self.blocksize = blocksize
        self._callback = callback
        self._finished_callback = finished_callback
        self.active = False
        self.closed = False
        self.blocks_delivered = 0

    def start(self) -> None:
        if self.closed:
            raise OSError("stream is closed")
        if not self.device.plugged:
            raise OSError(f"device {self.device.name!r} is gone")
        self.active = True

    def stop(self) -> None:
        was_active = self.active
        self.active = False
        if was_active:
            self._finished_callback()

    def close(self) -> None:
        self.stop()
        self.closed = True

    def feed(self, samples: np.ndarray, *, overflow: bool = False) -> None:
        """Deliver ``samples`` ((frames, channels), or 1-D copied to every channel) in ``blocksize`` blocks.

        Nothing is delivered while the stream is not active (as with a real stream).
        """
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 1:
            data = np.repeat(data[:, None], self.channels, axis=1)
        if data.shape[1] != self.channels:
            raise ValueError(f"stream has {self.channels} channels, got {data.shape[1]}")
        for start in range(0, len(data), self.blocksize):
            if not self.active:
                return
            block = data[start:start + self.blocksize]
            self._callback(block, len(block), None, FakeCallbackFlags(overflow))
            self.blocks_delivered += 1

    def die(self) -> None:
        """The device vanished under the stream: PortAudio ends it and calls finished_callback."""
        if self.active:
            self.active = False
            self._finished_callback()


class FakeAudioBackend:
    """Fake device list + streams (see the module docstring)."""

    def __init__(self, devices: list[FakeDevice] | None = None, default: int = 0) -> None:
        self.devices = list(devices) if devices is not None else [FakeDevice("Fake USB microphone")]
        self.default = default
        self.streams: list[FakeInputStream] = []
        self.rescans = 0
        self._visible = [d for d in self.devices if d.plugged]

    @property
    def stream(self) -> FakeInputStream:
        """The most recently opened stream."""
        if not self.streams:
            raise LookupError("no stream has been opened")
        return self.streams[-1]

    # like PortAudio, the device list only changes on rescan()
    def rescan(self) -> None:
        self.rescans += 1
        self._visible = [d for d in self.devices if d.plugged]

    def _infos(self) -> list[tuple[InputDeviceInfo, FakeDevice]]:
        return [(InputDeviceInfo(i, d.name, d.samplerate, d.channels), d) for i, d in enumerate(self._visible)]

    def query_input(self, device: Device) -> InputDeviceInfo:
        infos = self._infos()
        if device is None:
            if not infos:
                raise LookupError("no default input device")
            return infos[min(self.default, len(infos) - 1)][0]
        for info, _dev in infos:
            if (isinstance(device, int) and info.index == device) or (
                    isinstance(device, str) and device.lower() in info.name.lower()):
                return info
        raise LookupError(f"No input device matching {device!r}")

    def list_inputs(self) -> list[InputDeviceInfo]:
        return [info for info, _ in self._infos()]

    def open_input(self, *, device: int, samplerate: int, channels: int, blocksize: int,
                   callback: AudioCallback, finished_callback: Callable[[], None]) -> FakeInputStream:
        infos = self._infos()
        if not 0 <= device < len(infos):
            raise OSError(f"Invalid device [PaErrorCode -9996] ({device})")
        dev = infos[device][1]
        if not dev.plugged:
            raise OSError(f"Device unavailable [PaErrorCode -9985] ({dev.name})")
        if channels > dev.channels:
            raise OSError(f"Invalid number of channels [PaErrorCode -9998] ({channels})")
        stream = FakeInputStream(self, dev, samplerate, channels, blocksize, callback, finished_callback)
        self.streams.append(stream)
        return stream

    def unplug(self, name: str) -> None:
        """Pull the device out: its open streams die."""
        for dev in self.devices:
            if name.lower() in dev.name.lower():
                dev.plugged = False
                for stream in self.streams:
                    if stream.device is dev:
                        stream.die()

    def plug(self, name: str) -> None:
        """Plug the device back in (visible after the next rescan, as with PortAudio)."""
        for dev in self.devices:
            if name.lower() in dev.name.lower():
                dev.plugged = True
