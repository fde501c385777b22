"""Whisper through CTranslate2: int8, greedy, short encoder window, words handed out while decoding.

Why not ``faster_whisper.WhisperModel.transcribe()``: it pads every clip to 30 s (3000 mel frames),
so the encoder costs the same for a 2 s command as for 30 s of speech, and it returns text only
per segment. Here we call :class:`ctranslate2.models.Whisper` directly:

* **Short window.** The encoder gets the clip's frames plus a margin, with a minimum (see
  :class:`WindowPolicy`; default 1000 frames, clip + 200), the rest filled with the log-mel of
  silence (or, configurable, zeros in the normalised log-mel domain). The encoder then costs about
  a third of the padded pass. Too short a window makes Whisper loop, so a runaway guard (token
  budget, repetition loop, compression ratio, log-prob) re-runs the clip with longer windows
  (1500 frames, then Whisper's 30 s) when the short pass looks wrong; words already handed out are
  kept and the re-run's text continues after them.
* **Words while decoding.** ``Whisper.generate`` (CTranslate2 4.x) has no token callback. It does
  accept a forced prefix (tokens after ``<|notimestamps|>`` in the prompt) and reuses an encoder
  output, so decoding runs in a few calls: the first stops after a handful of tokens, which is
  enough for the first word; later calls continue from the tokens so far. The prefix is re-fed
  step by step, so each extra call costs its prefix again; the default schedule therefore makes one
  early call (first word) and then finishes in one go. Only complete words (followed by a token
  that starts a new word, or the end) are handed out, so nothing typed is ever taken back.
* **Hallucination guard.** No model work for silent clips (RMS) or clips the VAD rejects; Whisper's
  no-speech rule (no-speech probability > 0.6 and log-prob < -1) plus a strict one (no-speech
  probability > 0.8 alone); no text that is only punctuation; loops are capped. Words are held back
  until the end whenever the no-speech probability is above 0.6. A text ending with a second copy
  of its final phrase (3+ words) counts as a runaway (re-run; dropped when there is no longer window).
* **Vocabulary prompt.** ``vocabulary`` goes in as Whisper's previous text (``<|startofprev|>``);
  the no-speech probability is then read from a prompt-free step (the prompt lowers it on noise),
  and text that is only a copy of the vocabulary list is dropped and never typed early.
* **Language.** Multilingual models take a fixed code or ``auto`` (``detect_language`` on the first
  encoder output of each dictation); ``*.en`` models always use English.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from appliance.config import COMPUTE_TYPES
from appliance.errors import ConfigError, ModelError
from appliance.stt.base import SAMPLE_RATE, SpeechGate, Timings, Transcript, WordSink, check_samples
from appliance.stt.guards import (GuardSettings, could_be_prompt_echo, find_loop, is_blank_text, is_no_speech,
                                  is_prompt_echo, rms, runaway_reason, split_words, tail_repeat_cut)
from appliance.stt.languages import LANGUAGES
from appliance.stt.models import ModelStore, ResolvedModel, quantized_copy, resolve_model
from appliance.stt.vocab import Vocabulary

if TYPE_CHECKING:
    from appliance.config import SttConfig, TextConfig

log = logging.getLogger(__name__)

HOP = 160                     #: samples per mel frame (10 ms)
FULL_FRAMES = 3000            #: Whisper's 30 s window
MAX_PROMPT_TOKENS = 223       #: Whisper keeps at most the last 223 previous-text tokens (n_text_ctx // 2 - 1)
MAX_CONTEXT_TOKENS = 48       #: of a dictation's earlier text (live stretches), the last this many go in the prompt


@dataclass(frozen=True)
class WindowPolicy:
    """How many mel frames the encoder sees for a clip."""

    #: "short": clip + margin with a minimum; "padded": always 3000 frames (Whisper's 30 s)
    mode: str = "short"
    #: frames of padding after the clip's own frames
    margin_frames: int = 200
    #: never fewer frames than this (much shorter windows make Whisper loop)
    min_frames: int = 1000
    #: what fills the short window after the clip: "silence" (the log-mel of digital silence, i.e.
    #: what waveform zero-padding gives) or "zeros" (0.0 in the normalised log-mel domain)
    fill: str = "silence"

    # Measured on the 63-clip shared set, tiny.en int8, greedy, runaway guard on (errors / 803 words;
    # float32 with the padded 30 s window: 47):  silence 1000+200: 47, 2 re-runs, mean window 1071
    # frames;  silence 750+200: 47, 6 re-runs;  silence 500+200: 47, 9 re-runs;  zeros 500+200: 50,
    # 3 re-runs, mean 789 frames;  zeros 750+300: 52;  padded int8: 57. Without the guard, short
    # windows loop on short clips (one 1.1 s clip needs >= 1500 frames).

    def __post_init__(self) -> None:
        if self.mode not in ("short", "padded"):
            raise ConfigError(f"stt window mode {self.mode!r} is not valid", fix="use 'short' or 'padded'")
        if self.fill not in ("zeros", "silence"):
            raise ConfigError(f"stt window fill {self.fill!r} is not valid", fix="use 'zeros' or 'silence'")
        if not 0 <= self.min_frames <= FULL_FRAMES or self.margin_frames < 0:
            raise ConfigError(f"stt window min_frames={self.min_frames} margin_frames={self.margin_frames}",
                              fix=f"min_frames in 0..{FULL_FRAMES}, margin_frames >= 0")

    def frames(self, clip_frames: int) -> int:
        """Encoder window (an even number of frames, at most 3000) for a clip of ``clip_frames``."""
        if self.mode == "padded":
            return FULL_FRAMES
        window = min(FULL_FRAMES, max(self.min_frames, clip_frames + self.margin_frames))
        return window + (window % 2)


@dataclass(frozen=True)
class WhisperSettings:
    """How the Whisper transcriber runs."""

    #: CTranslate2 compute type; int8 is fastest on ARM/x86 CPUs
    compute_type: str = "int8"
    #: CPU threads for the model (0: all cores)
    threads: int = 0
    #: spoken language for multilingual models: a Whisper code (en, de, fr, ...) or "auto" (detected
    #: per dictation from the encoder output before decoding); English-only ``*.en`` models ignore it
    language: str = "en"
    #: words and names to prefer: given to Whisper as its initial prompt (previous-text tokens
    #: after ``<|startofprev|>``), the way Whisper's ``initial_prompt`` is. Output that is mostly a
    #: copy of this list is dropped (see :func:`is_prompt_echo`)
    vocabulary: tuple[str, ...] = ()
    window: WindowPolicy = field(default_factory=WindowPolicy)
    #: token counts after which partial results are read (words handed out); () = one call
    stream_chunks: tuple[int, ...] = (4,)
    #: re-run a clip through a longer, waveform-padded window when the short pass looks like a runaway
    fallback: bool = True
    #: windows (frames) of the re-runs, tried in order while the result still looks like a runaway
    #: (3000 is Whisper's own 30 s window; a shorter first try saves time and ~100 MB of memory)
    fallback_frames: tuple[int, ...] = (1500, 3000)
    #: transcribe only what the VAD kept (otherwise the VAD only decides speech / no speech)
    vad_trim: bool = False
    guards: GuardSettings = field(default_factory=GuardSettings)
    #: run one dummy pass at start so the first real clip is not slower
    warm_up: bool = True
    #: for int8 compute types, load a copy of the model saved in int8 (made once in the model
    #: cache): loading float16 weights as int8 briefly holds both (~90 MB more peak RSS for tiny.en)
    prequantize: bool = True
    #: oneDNN (x86 CTranslate2 builds) keeps a compiled primitive, with its buffers, per input shape;
    #: with a window per clip length that cache grew RSS by ~40 MB over 63 clips. Capacity set
    #: through ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` unless already set (None: leave it alone).
    #: Measured cost of 4 vs the default 1024: ~3 % encoder time.
    onednn_cache_capacity: int | None = 4

    def __post_init__(self) -> None:
        if self.compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"stt compute_type {self.compute_type!r} is not valid",
                              fix=f"use one of {', '.join(COMPUTE_TYPES)}")
        if self.language != "auto" and self.language not in LANGUAGES:
            raise ConfigError(f"stt language {self.language!r} is not valid",
                              fix="use a Whisper language code such as en, de, fr, or auto")
        if isinstance(self.vocabulary, str) or not all(isinstance(w, str) for w in self.vocabulary):
            raise ConfigError(f"stt vocabulary {self.vocabulary!r} is not valid", fix="use a list of words")
        if self.threads < 0:
            raise ConfigError(f"stt threads={self.threads} is not valid", fix="use 0 (all cores) or more")
        if any(c < 1 for c in self.stream_chunks) or list(self.stream_chunks) != sorted(self.stream_chunks):
            raise ConfigError(f"stt stream_chunks={self.stream_chunks} is not valid",
                              fix="use increasing positive token counts, e.g. [4] or [4, 16]")


def settings_from_config(stt: SttConfig, text: TextConfig | None = None) -> WhisperSettings:
    """The transcriber settings for ``config.stt`` and ``config.text`` (model choice and model
    directories are :func:`~appliance.stt.models.resolve_model`'s business): compute type, threads,
    ``short_window`` -> window mode "short" / "padded", language, ``text.vocabulary`` -> prompt."""
    return WhisperSettings(compute_type=stt.compute_type, threads=stt.threads, language=stt.language,
                           window=WindowPolicy(mode="short" if stt.short_window else "padded"),
                           vocabulary=tuple(text.vocabulary) if text is not None else ())


def prompt_text(vocabulary: tuple[str, ...]) -> str:
    """The initial-prompt text for a vocabulary ("" for none): the words as a comma-separated list."""
    return ", ".join(w.strip() for w in vocabulary if w.strip())


def build_prompt(vocab: Vocabulary, multilingual: bool, language: str, previous: list[int] | tuple[int, ...] = ()
                 ) -> list[int]:
    """Decoder prompt: ``[<|startofprev|> previous...] <|startoftranscript|> [<|lang|> <|transcribe|>]
    <|notimestamps|>``, as Whisper builds it (previous text capped at its last 223 tokens)."""
    prompt: list[int] = []
    if previous:
        prompt += [vocab.id("<|startofprev|>"), *list(previous)[-MAX_PROMPT_TOKENS:]]
    prompt.append(vocab.id("<|startoftranscript|>"))
    if multilingual:
        prompt += [vocab.id(f"<|{language}|>"), vocab.id("<|transcribe|>")]
    prompt.append(vocab.id("<|notimestamps|>"))
    return prompt


def encode_text(model_dir: Path, text: str) -> list[int]:
    """Token ids of ``text`` (with Whisper's leading space) via the model's ``tokenizer.json``.

    Loads the Hugging Face tokenizer only for this (~20 MB while it lives) and lets it go.
    """
    path = Path(model_dir) / "tokenizer.json"
    try:
        import tokenizers

        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read {path} to encode the vocabulary prompt: {exc}",
                         fix="use a model directory with tokenizer.json, or leave text.vocabulary empty") from exc
    ids = tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids
    del tokenizer
    return list(ids)


def _faster_whisper_module(name: str):  # noqa: ANN202 - a module
    """Load ``faster_whisper.<name>`` without running ``faster_whisper/__init__.py``.

    The package's ``__init__`` imports PyAV, onnxruntime and the whole ``WhisperModel`` stack
    (~23 MB of resident memory on the device) although the feature extractor
    needs only numpy. Falls back to a normal import if the layout changes.
    """
    import importlib
    import importlib.util
    import sys

    key = f"_voicekey_faster_whisper_{name}"
    if key in sys.modules:
        return sys.modules[key]
    if "faster_whisper" in sys.modules:  # already paid for: use the real module
        return importlib.import_module(f"faster_whisper.{name}")
    package = importlib.util.find_spec("faster_whisper")
    if package is None or not package.submodule_search_locations:
        raise ModelError("faster-whisper is not installed", fix="pip install 'faster-whisper>=1.1,<2'")
    path = Path(next(iter(package.submodule_search_locations))) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None or not path.is_file():
        return importlib.import_module(f"faster_whisper.{name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except ImportError:  # the module grew package-relative imports: take the normal route
        del sys.modules[key]
        return importlib.import_module(f"faster_whisper.{name}")
    return module


class _Emitter:
    """Hands out complete words once, in order, and remembers when."""

    def __init__(self, sink: WordSink | None, t0: float) -> None:
        self.sink = sink
        self.t0 = t0
        self.text = ""
        self.first_ms: float | None = None
        self.last_ms: float | None = None

    def offer(self, text: str, final: bool) -> None:
        """``text``: everything decoded so far (leading space stripped). Emit the new complete words."""
        if not text.startswith(self.text):
            # Never happens for a greedy continuation; guard against a tokenizer surprise.
            log.warning("decoded text no longer extends the typed words; holding back")
            return
        if final:
            upto = len(text.rstrip())
        else:
            upto = text.rfind(" ")  # the word before the last space is complete
            if "\ufffd" in text[:max(upto, 0)]:
                return  # a multi-byte character is not finished yet
        if upto <= len(self.text):
            return
        for word in split_words(text[len(self.text):upto]):
            now = (time.perf_counter() - self.t0) * 1000
            if self.first_ms is None:
                self.first_ms = now
            self.last_ms = now
            self.text += word
            if self.sink is not None:
                self.sink(word)


def _join_after(typed: str, better: str) -> str:
    """The text to type after ``typed`` so that the result follows ``better`` as closely as possible.

    Used when the padded pass replaces a short pass of which some words were already typed.
    """
    if better.startswith(typed):
        return better[len(typed):]
    typed_words = [w.strip().lower() for w in split_words(typed)]
    better_split = split_words(better)
    better_words = [w.strip().lower() for w in better_split]
    matcher = difflib.SequenceMatcher(a=typed_words, b=better_words, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks:
        return ""
    last = blocks[-1]
    rest = "".join(better_split[last.b + last.size:])
    return rest if (rest.startswith(" ") or not rest) else " " + rest


class WhisperTranscriber:
    """:class:`~appliance.stt.base.Transcriber` running a CTranslate2 Whisper model on the CPU."""

    def __init__(self, model: ResolvedModel | str | os.PathLike[str] = "tiny.en",
                 settings: WhisperSettings | None = None, gate: SpeechGate | None = None,
                 store: ModelStore | None = None) -> None:
        """Load the model once (and warm it up). ``gate`` is an optional VAD."""
        import ctranslate2

        self.settings = settings or WhisperSettings()
        self.gate = gate

        FeatureExtractor = _faster_whisper_module("feature_extractor").FeatureExtractor  # noqa: N806
        if self.settings.onednn_cache_capacity is not None:
            # read by oneDNN when it first builds a primitive, i.e. at the first encode
            os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(self.settings.onednn_cache_capacity))
        store = store or ModelStore()
        self.model = model if isinstance(model, ResolvedModel) else resolve_model(model, store)
        t0 = time.perf_counter()
        if self.settings.prequantize and self.settings.compute_type.startswith("int8"):
            try:
                self.model = quantized_copy(self.model, store.cache_dir, "int8")
            except (ModelError, OSError, ValueError, KeyError) as exc:
                log.warning("cannot use an int8 copy of %s (%s); converting while loading", self.model.name, exc)
        threads = self.settings.threads or os.cpu_count() or 1
        try:
            self._model = ctranslate2.models.Whisper(
                str(self.model.path), device="cpu", compute_type=self.settings.compute_type,
                intra_threads=threads, inter_threads=1)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"could not load Whisper model {self.model.path}: {exc}",
                             fix="reinstall the model pack, or pick another --model") from exc
        vocab = self._vocab = Vocabulary(Path(self.model.path))
        self._multilingual = bool(self._model.is_multilingual)
        self._language = self.settings.language if self._multilingual else "en"
        if not self._multilingual and self.settings.language != "en":
            log.debug("%s is English-only: stt language %r ignored", self.model.name, self.settings.language)
        text = prompt_text(self.settings.vocabulary)
        self._previous = encode_text(Path(self.model.path), text)[-MAX_PROMPT_TOKENS:] if text else []
        self._prompts: dict[str, list[int]] = {}
        # the prompt of a fixed language, or English's until a clip's language is detected
        self._prompt = self._prompt_for("en" if self._language == "auto" else self._language)
        # Whisper's default suppression: -1 = the model's non-speech symbols (config.json
        # suppress_ids), plus the task and control tokens
        specials = (vocab.optional_id(t) for t in ("<|transcribe|>", "<|translate|>", "<|startoftranscript|>",
                                                   "<|startofprev|>", "<|startoflm|>", "<|nospeech|>",
                                                   "<|nocaptions|>"))
        self._suppress = [-1, *sorted({i for i in specials if i is not None})]
        self._features = FeatureExtractor(feature_size=self._model.n_mels)
        self._storage = ctranslate2.StorageView
        self._known: list[list[int]] = []  # token sequences of recent passes (for text prefixes)
        self.load_ms = (time.perf_counter() - t0) * 1000
        if self.settings.warm_up:
            self._warm_up()
        log.info("loaded %s (%s, %s, %d threads) in %.0f ms", self.model.name, self.model.source,
                 self.settings.compute_type, threads, self.load_ms)

    # -- public -----------------------------------------------------------------------------

    def transcribe(self, samples: np.ndarray, on_words: WordSink | None = None, prefix: str = "",
                   context: Sequence[int] = ()) -> Transcript:
        """Transcribe float32 mono 16 kHz samples; see :class:`~appliance.stt.base.Transcriber`.

        ``prefix``: text already typed for this audio (live dictation). The decode is forced to
        continue it, ``on_words`` gets only the words after it, and the transcript starts with it.
        ``context``: the ``token_ids`` of the transcripts of the audio just before this one (the
        same dictation's earlier stretches), given to Whisper as its previous text, as Whisper's own
        long-form transcription conditions each 30 s window on the text before it."""
        t0 = time.perf_counter()
        samples = check_samples(samples)
        audio_s = len(samples) / SAMPLE_RATE
        guards = self.settings.guards
        if samples.size < HOP * 10 or rms(samples) < guards.min_rms:
            return self._empty(t0, audio_s, "silence")
        if self.gate is not None:
            speech = self.gate.trim(samples)
            if speech is None or len(speech) == 0:
                return self._empty(t0, audio_s, "vad")
            if self.settings.vad_trim:
                samples = np.ascontiguousarray(speech, dtype=np.float32)
        emitter = _Emitter(on_words, t0)
        forced = self._tokens_for(prefix)
        emitter.text = self._vocab.decode(forced).lstrip() if forced else ""
        stats = _Stats(context=_context(context))
        tf = time.perf_counter()
        features = self._features(samples)
        stats.features_ms += (time.perf_counter() - tf) * 1000
        n_frames = features.shape[1]
        text = ""
        for start in range(0, n_frames, FULL_FRAMES):
            segment = features[:, start:start + FULL_FRAMES]
            seg_samples = samples[start * HOP:(start + FULL_FRAMES) * HOP]
            text = self._segment(segment, seg_samples, text, emitter, stats, forced if start == 0 else [])
            stats.context = _context([*stats.context, *stats.segment_tokens])
        text = text.strip()
        dropped = stats.dropped
        if not emitter.text and text and is_blank_text(text):
            text, dropped = "", "no-words"
        if not emitter.text and text and is_prompt_echo(text, self.settings.vocabulary):
            log.info("dropping a copy of the vocabulary prompt")
            text, dropped = "", "prompt-echo"
        if dropped and not emitter.text:
            text = ""
        emitter.offer(text, final=True)
        if emitter.text != text:  # cannot happen unless a word was held back inconsistently
            log.warning("typed text differs from the final text; reporting what was typed")
            text = emitter.text
        total = (time.perf_counter() - t0) * 1000
        log.debug("transcript %r (%.0f ms, window %d)", text, total, stats.window)
        return Transcript(
            text=text,
            timings=Timings(total, stats.features_ms, stats.encoder_ms, stats.decode_ms,
                            emitter.first_ms, emitter.last_ms),
            audio_s=audio_s, window_frames=stats.window, tokens=stats.tokens,
            avg_logprob=stats.avg_logprob, no_speech_prob=stats.no_speech_prob,
            fallback=stats.fallback, dropped=None if text else dropped,
            language=stats.language or self._language,
            token_ids=tuple(stats.all_tokens) if text and stats.consistent and emitter.text == text else ())

    def hypothesis(self, samples: np.ndarray, prefix: str = "", context: Sequence[int] = ()) -> str:
        """One quick greedy pass (short window, no fallback, no words handed out) continuing
        ``prefix``: the current guess for live dictation. "" when it looks like no speech."""
        samples = check_samples(samples)
        if samples.size < HOP * 10:
            return prefix.strip()
        forced = self._tokens_for(prefix)
        stats = _Stats(context=_context(context))
        features = self._features(samples)[:, :FULL_FRAMES]
        encoded = self._encode(self._window(features), stats)
        if self._language == "auto":
            self._detect_language(encoded, stats)
        budget = self.settings.guards.token_budget(min(len(samples), FULL_FRAMES * HOP) / SAMPLE_RATE) + len(forced)
        result = self._generate(encoded, list(forced), budget, not forced, stats)
        tokens = list(result.sequences_ids[0])
        if not forced and self._no_speech_prob(encoded, result, stats) > self.settings.guards.no_speech_threshold:
            return ""
        loop_at = find_loop(tokens, self.settings.guards)
        if loop_at is not None:
            tokens = tokens[:max(loop_at, len(forced))]
        self._remember(tokens)
        return self._vocab.decode(tokens).strip()

    def _remember(self, tokens: list[int]) -> None:
        self._known = [*self._known[-3:], list(tokens)]

    def _tokens_for(self, prefix: str) -> list[int]:
        """Token ids of ``prefix``: a word prefix of a recent pass (no tokenizer needed), else encoded."""
        target = prefix.strip()
        if not target:
            return []
        for tokens in reversed(self._known):
            for k in range(len(tokens), 0, -1):
                text = self._vocab.decode(tokens[:k]).strip()
                if text == target:
                    return tokens[:k]
                if len(text) < len(target):
                    break
        return encode_text(Path(self.model.path), target)

    def prompt_tokens(self, language: str | None = None, context: Sequence[int] = ()) -> list[int]:
        """The decoder prompt (token ids) used for ``language`` (default: the configured one, or
        English's for ``auto`` before a clip's language is known) and a decode's ``context``."""
        if language is None:
            language = "en" if self._language == "auto" else self._language
        return list(self._prompt_for(language if self._multilingual else "en", _context(context)))

    # -- internals --------------------------------------------------------------------------

    def _prompt_for(self, language: str, context: Sequence[int] = ()) -> list[int]:
        if context:  # the vocabulary first, then as much of the context as fits
            previous = [*self._previous[:MAX_PROMPT_TOKENS - len(context)], *context]
            return build_prompt(self._vocab, self._multilingual, language, previous)
        if language not in self._prompts:
            self._prompts[language] = build_prompt(self._vocab, self._multilingual, language, self._previous)
        return self._prompts[language]

    def _detect_language(self, encoded, stats: _Stats) -> None:  # noqa: ANN001 - ctranslate2 StorageView
        """Pick the clip's language from the encoder output (``stt.language: auto``)."""
        td = time.perf_counter()
        token, probability = self._model.detect_language(encoded)[0][0]
        stats.decode_ms += (time.perf_counter() - td) * 1000
        language = token[2:-2]
        if language not in LANGUAGES or self._vocab.optional_id(token) is None:
            log.warning("detected language %r is unknown; using en", token)
            language = "en"
        log.debug("detected language %s (p=%.2f)", language, probability)
        stats.language = language

    def _empty(self, t0: float, audio_s: float, reason: str) -> Transcript:
        total = (time.perf_counter() - t0) * 1000
        return Transcript("", Timings(total, 0.0, 0.0, 0.0, None, None), audio_s, dropped=reason)

    def _warm_up(self) -> None:
        window = self.settings.window.frames(0)
        x = np.zeros((1, self._model.n_mels, window), np.float32)
        encoded = self._model.encode(self._storage.from_array(x))
        self._model.generate(encoded, [self._prompt], beam_size=1, max_length=4)

    def _encode(self, features: np.ndarray, stats: _Stats):  # noqa: ANN202 - ctranslate2 StorageView
        te = time.perf_counter()
        encoded = self._model.encode(self._storage.from_array(np.ascontiguousarray(features[None])))
        stats.encoder_ms += (time.perf_counter() - te) * 1000
        return encoded

    def _generate(self, encoded, tokens: list[int], limit: int, first: bool, stats: _Stats):  # noqa: ANN001,ANN202
        prompt = self._prompt_for(stats.language or self._language, stats.context)
        td = time.perf_counter()
        result = self._model.generate(
            encoded, [prompt + tokens], beam_size=1, max_length=max(2 * limit, limit + len(prompt)),
            # measured: CTranslate2 Whisper returns at most min(max_length // 2, max_length - len(prompt))
            # tokens (forced prefix included), so this caps the output at exactly ``limit``
            return_scores=True, return_no_speech_prob=first, suppress_blank=first,
            suppress_tokens=self._suppress)[0]
        stats.decode_ms += (time.perf_counter() - td) * 1000
        return result

    def _held_back(self, text: str) -> bool:
        """Words not to type before the end: they may still turn out to be an echo of the prompt."""
        return bool(self.settings.vocabulary) and could_be_prompt_echo(text, self.settings.vocabulary)

    def _no_speech_prob(self, encoded, result, stats: _Stats) -> float:  # noqa: ANN001
        """Whisper's no-speech probability for a first pass ``result``.

        With a vocabulary prompt it is read from a one-step pass without the prompt instead: the
        prompt lowers it on noise (measured on tiny.en: clicks 0.88 -> 0.69, breath 0.73 -> 0.46),
        which would let the no-speech rules pass text for clips without speech. (So does the
        context of a live dictation's earlier stretches.)
        """
        if not self._previous and not stats.context:
            return float(result.no_speech_prob)
        plain = build_prompt(self._vocab, self._multilingual, stats.language or self._language)
        td = time.perf_counter()
        bare = self._model.generate(encoded, [plain], beam_size=1, max_length=len(plain) + 1,
                                    return_no_speech_prob=True, suppress_tokens=self._suppress)[0]
        stats.decode_ms += (time.perf_counter() - td) * 1000
        return float(bare.no_speech_prob)

    def _window(self, segment: np.ndarray) -> np.ndarray:
        policy = self.settings.window
        frames = policy.frames(segment.shape[1])
        out = np.zeros((segment.shape[0], frames), np.float32)
        if policy.fill == "silence":
            out[:] = segment.max() - 2.0  # log-mel of digital silence after Whisper's normalisation
        out[:, :min(frames, segment.shape[1])] = segment[:, :frames]
        return out

    def _padded(self, seg_samples: np.ndarray, stats: _Stats, frames: int = FULL_FRAMES) -> np.ndarray:
        """Features of the samples followed by digital silence, ``frames`` long (Whisper's padding)."""
        tf = time.perf_counter()
        padding = max(HOP, frames * HOP - len(seg_samples))
        features = self._features(seg_samples, padding=padding)[:, :frames]
        stats.features_ms += (time.perf_counter() - tf) * 1000
        return np.ascontiguousarray(features, dtype=np.float32)

    def _segment(self, segment: np.ndarray, seg_samples: np.ndarray, before: str,
                 emitter: _Emitter, stats: _Stats, forced: list[int] | None = None) -> str:
        """Decode one (<= 30 s) segment; returns ``before`` + its text. Hands out words on the way.
        ``forced``: tokens the decode must continue (their text is already typed)."""
        guards = self.settings.guards
        forced = list(forced or [])
        stats.segment_tokens = []
        budget = guards.token_budget(len(seg_samples) / SAMPLE_RATE) + len(forced)
        padded_mode = self.settings.window.mode == "padded"
        window = self._padded(seg_samples, stats) if padded_mode else self._window(segment)
        stats.window = max(stats.window, window.shape[1])
        encoded = self._encode(window, stats)
        if self._language == "auto" and stats.language is None:
            self._detect_language(encoded, stats)
        schedule = [len(forced) + c for c in self.settings.stream_chunks if len(forced) + c < budget] + [budget]
        tokens: list[int] = list(forced)
        no_speech = 0.0
        avg_logprob = 0.0
        for index, limit in enumerate(schedule):
            result = self._generate(encoded, tokens, limit, index == 0 and not forced, stats)
            if index == 0 and not forced:
                no_speech = self._no_speech_prob(encoded, result, stats)
            tokens = list(result.sequences_ids[0])
            avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
            if len(tokens) < limit or limit == budget:
                break
            if no_speech <= guards.no_speech_threshold and find_loop(tokens, guards) is None:
                partial = (before + self._vocab.decode(tokens)).lstrip()
                if not self._held_back(partial):
                    emitter.offer(partial, final=False)
        stats.no_speech_prob = max(stats.no_speech_prob, no_speech) if not before else stats.no_speech_prob
        text = self._vocab.decode(tokens)
        typed = emitter.text
        if not typed and (is_no_speech(no_speech, avg_logprob, guards)
                          or no_speech > guards.no_speech_strict):
            stats.dropped = "no-speech"
            return before
        reason = runaway_reason(tokens, text, avg_logprob, budget, guards)
        if reason and not padded_mode and self.settings.fallback:
            stats.fallback = reason
            tried: set[int] = set()
            for wanted in self.settings.fallback_frames:
                frames = min(FULL_FRAMES, max(wanted, segment.shape[1] + self.settings.window.margin_frames))
                frames += frames % 2
                if frames in tried:
                    continue
                tried.add(frames)
                log.info("short window pass rejected (%s); re-running with %d frames", reason, frames)
                del encoded  # free the previous pass's encoder output first
                encoded = self._encode(self._padded(seg_samples, stats, frames), stats)
                stats.window = max(stats.window, frames)
                result = self._generate(encoded, list(forced), budget, not forced, stats)
                tokens = list(result.sequences_ids[0])
                avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
                if not typed and is_no_speech(self._no_speech_prob(encoded, result, stats), avg_logprob, guards):
                    stats.dropped = "no-speech"
                    return before
                reason = runaway_reason(tokens, self._vocab.decode(tokens), avg_logprob, budget, guards)
                if reason is None:
                    break
        loop_at = find_loop(tokens, guards)
        if loop_at is not None:
            log.info("capping a repetition loop at token %d of %d", loop_at, len(tokens))
            tokens = tokens[:max(loop_at, len(forced))]
        text = self._vocab.decode(tokens)
        if padded_mode or not self.settings.fallback:
            # No longer window to ask: drop a trailing repeat of the preceding phrase. After a
            # fallback re-run, a repeat the padded window still reads is kept (it was probably said).
            cut = tail_repeat_cut(text, guards)
            if cut is not None:
                log.info("dropping a trailing repeat (%d of %d characters)", len(text) - cut, len(text))
                text = text[:cut]
        stats.tokens += len(tokens) - len(forced)
        stats.avg_logprob = avg_logprob
        stats.segment_tokens = tokens if self._vocab.decode(tokens) == text else []
        full = (before + text).lstrip()
        if not full.startswith(emitter.text):
            full = emitter.text + _join_after(emitter.text, full)
            stats.segment_tokens = []
        stats.all_tokens += stats.segment_tokens
        stats.consistent = stats.consistent and bool(stats.segment_tokens)
        if len(full) > len(emitter.text) and not self._held_back(full):
            emitter.offer(full, final=False)
        return full


@dataclass
class _Stats:
    features_ms: float = 0.0
    encoder_ms: float = 0.0
    decode_ms: float = 0.0
    window: int = 0
    tokens: int = 0
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    fallback: str | None = None
    dropped: str | None = None
    language: str | None = None  #: detected language (``stt.language: auto``)
    context: list[int] = field(default_factory=list)  #: previous-text tokens for the prompt
    segment_tokens: list[int] = field(default_factory=list)  #: the last segment's tokens (its text exactly)
    all_tokens: list[int] = field(default_factory=list)
    consistent: bool = True  #: ``all_tokens`` decode to the transcript's text


def _context(tokens: Sequence[int]) -> list[int]:
    """The previous-text tokens a decode is conditioned on: the last :data:`MAX_CONTEXT_TOKENS`."""
    return list(tokens)[-MAX_CONTEXT_TOKENS:]

