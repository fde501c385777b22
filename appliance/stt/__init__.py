"""Speech to text: offline model packs, the Transcriber interface and its Whisper implementation.

``appliance.stt.whisper`` imports CTranslate2/faster-whisper lazily (inside the class), so importing
this package is cheap.
"""

from appliance.stt.base import SAMPLE_RATE, SpeechGate, Timings, Transcriber, Transcript, WordSink
from appliance.stt.fake import FakeTranscriber
from appliance.stt.models import DEFAULT_MODEL, ModelStore, ResolvedModel, list_models, resolve_model

__all__ = [
    "DEFAULT_MODEL", "SAMPLE_RATE", "FakeTranscriber", "ModelStore", "ResolvedModel", "SpeechGate",
    "Timings", "Transcriber", "Transcript", "WordSink", "list_models", "resolve_model",
]
