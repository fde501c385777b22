"""One benchmark variant in its own process (so peak RSS and cold start are per variant).

Run as ``python -m bench.worker VARIANT.json CLIPS.json OUT.json [SPAWN_TIME]``; the parent
(:mod:`bench.speech`) writes the inputs and reads the output.
"""

from __future__ import annotations

import time

_T_IMPORT = time.time()  # before any heavy import: cold start is measured from process start

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RunFn = Callable[[np.ndarray], dict]


@dataclass(frozen=True)
class Variant:
    """A transcriber configuration to benchmark."""

    name: str
    engine: str = "voicekey"          #: "voicekey" (this project) or "stock" (WhisperModel.transcribe)
    model: str = "tiny.en"
    compute_type: str = "int8"
    window: str = "short"             #: voicekey: "short" or "padded"
    min_frames: int | None = None     #: voicekey: short window minimum (None: default)
    margin_frames: int | None = None  #: voicekey: short window margin (None: default)
    fill: str | None = None           #: voicekey: short window fill (None: default)
    stream_chunks: tuple[int, ...] | None = None  #: voicekey: None = default schedule, () = one call
    fallback: bool = True
    vad: bool = True                  #: voicekey: gate clips with appliance.audio.vad
    threads: int = 0
    model_dirs: tuple[str, ...] = field(default_factory=tuple)
    cache_dir: str | None = None

    def to_json(self) -> str:
        """Serialise for the worker process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Variant:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        for key in ("stream_chunks", "model_dirs"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def _store(variant: Variant):  # noqa: ANN202
    from appliance.stt.models import ModelStore, default_cache_dir

    return ModelStore(model_dirs=tuple(Path(d) for d in variant.model_dirs),
                      cache_dir=Path(variant.cache_dir) if variant.cache_dir else default_cache_dir())


def build_voicekey(variant: Variant) -> RunFn:
    """This project's transcriber, loaded and warmed."""
    from appliance.commands.transcribe_cmd import default_gate
    from appliance.stt.whisper import WhisperSettings, WhisperTranscriber, WindowPolicy

    d = WindowPolicy()
    window = WindowPolicy(mode=variant.window,
                          min_frames=d.min_frames if variant.min_frames is None else variant.min_frames,
                          margin_frames=d.margin_frames if variant.margin_frames is None else variant.margin_frames,
                          fill=variant.fill or d.fill)
    kwargs = {} if variant.stream_chunks is None else {"stream_chunks": variant.stream_chunks}
    settings = WhisperSettings(compute_type=variant.compute_type, threads=variant.threads,
                               window=window, fallback=variant.fallback, **kwargs)
    transcriber = WhisperTranscriber(variant.model, settings, gate=default_gate() if variant.vad else None,
                                     store=_store(variant))

    def run(samples: np.ndarray) -> dict:
        words: list[str] = []
        result = transcriber.transcribe(samples, on_words=words.append)
        t = result.timings
        return {"text": result.text, "first_ms": t.first_word_ms, "last_ms": t.last_word_ms,
                "total_ms": t.total_ms, "encoder_ms": t.encoder_ms, "decode_ms": t.decode_ms,
                "window": result.window_frames, "fallback": result.fallback, "dropped": result.dropped,
                "words_match": "".join(words) == result.text}

    return run


def build_stock(variant: Variant) -> RunFn:
    """faster-whisper's ``WhisperModel.transcribe()`` with its defaults (beam 5, 30 s window, ...)."""
    import os

    from faster_whisper import WhisperModel

    from appliance.stt.models import resolve_model

    path = resolve_model(variant.model, _store(variant)).path
    model = WhisperModel(str(path), device="cpu", compute_type=variant.compute_type,
                         cpu_threads=variant.threads or os.cpu_count() or 1)

    def run(samples: np.ndarray) -> dict:
        t0 = time.perf_counter()
        segments, _info = model.transcribe(samples)
        first = None
        texts: list[str] = []
        for segment in segments:  # lazy generator: the work happens here
            if segment.text.strip() and first is None:
                first = (time.perf_counter() - t0) * 1000
            texts.append(segment.text)
        total = (time.perf_counter() - t0) * 1000
        text = "".join(texts).strip()
        return {"text": text, "first_ms": first, "last_ms": total if text else None, "total_ms": total,
                "encoder_ms": None, "decode_ms": None, "window": 3000, "fallback": None,
                "dropped": None, "words_match": True}

    run(np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.01)  # warm up
    return run


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` from /proc belongs to the process's own address space. ``getrusage().ru_maxrss``
    does not do here: Linux carries the high-water mark over ``execve`` from the parent's address
    space when the child was started with vfork (as ``subprocess`` does), so it would report the
    benchmark runner's peak (Piper voice, all clips) instead of the variant's.
    """
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    """Load the variant, transcribe every clip, write timings, texts, cold start and peak RSS."""
    variant = Variant.from_json(Path(argv[0]).read_text())
    clips = json.loads(Path(argv[1]).read_text())
    run = build_stock(variant) if variant.engine == "stock" else build_voicekey(variant)
    ready = time.time()
    started = float(argv[3]) if len(argv) > 3 else _T_IMPORT  # parent passes its spawn time
    results = []
    for clip in clips["clips"]:
        samples = np.load(clip["file"])
        out = run(samples)
        out.update(id=clip["id"], kind=clip["kind"], audio_s=len(samples) / 16_000)
        results.append(out)
    peak_kb = peak_rss_kb()
    Path(argv[2]).write_text(json.dumps({
        "variant": json.loads(variant.to_json()), "cold_start_ms": (ready - started) * 1000,
        "peak_rss_mb": peak_kb / 1024, "clips": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
