"""Audio: capture sources (microphone, file, fake), resampling, VAD and endpointing, Piper speech.

Everything here delivers float32 mono samples at 16 kHz (:data:`SAMPLE_RATE`), in 30 ms frames.
Heavy or optional libraries (sounddevice, webrtcvad, piper, PyAV) are imported only when used.

* :mod:`appliance.audio.format`: ``SAMPLE_RATE``, ``FRAME_MS``, ``FRAME_SAMPLES`` (defined only there)
* :mod:`appliance.audio.source`: ``AudioSource`` protocol, ``CaptureOptions``, ``ArraySource`` fake
* :mod:`appliance.audio.capture`: ``SoundDeviceSource`` (microphone through sounddevice)
* :mod:`appliance.audio.files`: ``FileSource``, ``load_audio``
* :mod:`appliance.audio.vad`: ``VoiceActivityDetector`` (``trim``/``has_speech``), ``Endpointer``
* :mod:`appliance.audio.piper_source`: ``synthesize(text)``
* :mod:`appliance.audio.fakes`: ``FakeAudioBackend`` (a fake sounddevice)
"""

from appliance.audio.capture import SoundDeviceSource
from appliance.audio.files import FileSource, load_audio
from appliance.audio.format import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from appliance.audio.source import (
    ArraySource,
    AudioSource,
    CaptureOptions,
    FrameSubscription,
)
from appliance.audio.vad import (
    Endpointer,
    EndpointEvent,
    EndpointKind,
    VadOptions,
    VoiceActivityDetector,
)

__all__ = [
    "FRAME_MS", "FRAME_SAMPLES", "SAMPLE_RATE", "ArraySource", "AudioSource", "CaptureOptions",
    "EndpointEvent", "EndpointKind", "Endpointer", "FileSource", "FrameSubscription", "SoundDeviceSource",
    "VadOptions", "VoiceActivityDetector", "load_audio",
]
