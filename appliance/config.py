"""Configuration: layered YAML files -> one frozen :class:`Config`, plus a list of what was wrong.

Layers, later overriding earlier ones key by key:

1. built-in defaults (every field below; they work out of the box),
2. ``/etc/voicekey/config.yaml`` (the image's system config),
3. ``/boot/firmware/voicekey.yaml`` (the SD card's FAT partition, editable from any PC).

Loading never fails. Each problem becomes a :class:`ConfigIssue` naming the file, the key path,
the bad value and what is allowed, and the key keeps the value it had before that file (normally
the built-in default):

- wrong type, out-of-range number, unknown choice, unknown key (with "did you mean ..."): the value
  is ignored;
- a file that is not valid YAML (issue names line and column), not UTF-8, or not a mapping: the whole
  file is ignored, the other layers still apply;
- a missing file is simply not a layer (not an issue).

YAML is parsed with PyYAML's ``safe_load`` semantics (no Python object tags).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

log = logging.getLogger(__name__)

#: Where configuration is read from, in layering order (later wins).
DEFAULT_PATHS: tuple[Path, ...] = (Path("/etc/voicekey/config.yaml"), Path("/boot/firmware/voicekey.yaml"))

#: BCM GPIO numbers on the 40-pin header of every Raspberry Pi since the B+.
GPIO_MIN, GPIO_MAX = 0, 27

#: Layout names used when ``appliance.hid.layouts.available_layouts`` is not importable.
FALLBACK_LAYOUTS: tuple[str, ...] = ("us", "us(intl)", "gb", "de", "fr", "es", "it", "us(dvorak)")
#: Model names used when ``appliance.stt.models`` is not importable.
FALLBACK_MODELS: tuple[str, ...] = ("tiny.en", "base.en", "tiny", "base")

#: CTranslate2 compute types a Whisper model can be loaded with (the one list; appliance.stt uses it).
COMPUTE_TYPES = ("int8", "int8_float32", "float32", "int16", "float16")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Bad(Exception):
    """Raised by a rule: the value is not acceptable; the message says what is allowed."""


#: A rule validates one YAML value and returns the converted value, or raises :class:`_Bad`.
#: ``note(suffix, value, problem)`` records a problem with one item of a list or mapping
#: (that item is dropped, the rest is kept).
Note = Callable[[str, Any, str], None]
Rule = Callable[[Any, Note], Any]


def _setting(default: Any = dataclasses.MISSING, rule: Rule | None = None, *,
             factory: Callable[[], Any] | None = None) -> Any:
    meta = {"rule": rule}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ---- rules -------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_text(value: Any) -> Any:
    """YAML 1.1 reads ``1e3`` or ``09`` as text; accept text that is plainly a number."""
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*", value):
        number = float(value)
        return int(number) if number.is_integer() and re.fullmatch(r"\s*[-+]?\d+\s*", value) else number
    return value


def _fmt_num(x: float) -> str:
    return f"{x:g}"


def _int(lo: int, hi: int, what: str = "a whole number") -> Rule:
    def rule(value: Any, note: Note) -> int:
        value = _numeric_text(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_number(value) or not isinstance(value, int) or not lo <= value <= hi:
            raise _Bad(f"must be {what} {lo}-{hi}")
        return value
    return rule


def _float(lo: float, hi: float, what: str = "a number", unit: str = "") -> Rule:
    unit_text = f" {unit}" if unit else ""

    def rule(value: Any, note: Note) -> float:
        value = _numeric_text(value)
        if not _is_number(value) or not math.isfinite(value) or not lo <= value <= hi:
            raise _Bad(f"must be {what} from {_fmt_num(lo)} to {_fmt_num(hi)}{unit_text}")
        return float(value)
    return rule


def _bool(value: Any, note: Note) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _choice(options: Sequence[str] | Callable[[], Sequence[str]], canonical: Callable[[str], str] = str.lower
            ) -> Rule:
    def rule(value: Any, note: Note) -> str:
        allowed = list(options() if callable(options) else options)
        if isinstance(value, str):
            wanted = value.strip()
            for option in allowed:
                if canonical(option) == canonical(wanted):
                    return option
        raise _Bad(f"must be one of {', '.join(allowed)}{_did_you_mean(value, allowed)}")
    return rule


def _optional(rule: Rule, none_means: str) -> Rule:
    def optional(value: Any, note: Note) -> Any:
        if value is None:
            return None
        try:
            return rule(value, note)
        except _Bad as exc:
            raise _Bad(f"{exc}, or null for {none_means}") from None
    return optional


def _abs_path(value: Any, note: Note) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("must be an absolute path")
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        raise _Bad("must be an absolute path (starting with / or ~)")
    return path


def _text_item(value: Any) -> str | None:
    """A list/mapping entry as text: strings as they are, whole numbers spelled out, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _word_list(value: Any, note: Note) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise _Bad("must be a list of words, one per line starting with '- '")
    if not isinstance(value, list):
        raise _Bad("must be a list of words")
    words: list[str] = []
    for i, item in enumerate(value):
        text = _text_item(item)
        if text is None or not text.strip():
            note(f"[{i}]", item, "must be a non-empty word or phrase (quote it if it looks like a number "
                                 "or true/false)")
            continue
        words.append(text.strip())
    return tuple(dict.fromkeys(words))


def _replacement_table(value: Any, note: Note) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise _Bad('must be a mapping of "heard": "typed" pairs')
    table: dict[str, str] = {}
    for key, item in value.items():
        key_text, item_text = _text_item(key), _text_item(item)
        if key_text is None or not key_text.strip():
            note(f"[{_fmt_value(key)}]", key, "the text to replace must be non-empty text")
        elif item_text is None:
            note(f"[{_fmt_value(key)}]", item, 'the replacement must be text (use "" to delete)')
        else:
            table[key_text.strip()] = item_text
    return MappingProxyType(table)


def _audio_device(value: Any, note: Note) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Bad("must be a device name (or part of one), a device number >= 0, or null for the "
               "system default")


def _layouts() -> list[str]:
    try:
        from appliance.hid.layouts import available_layouts  # type: ignore[attr-defined]
    except ImportError:
        return list(FALLBACK_LAYOUTS)
    try:
        return list(available_layouts())
    except Exception:  # a half-written layout registry must not break config loading
        log.debug("layout registry failed; using the fixed layout list", exc_info=True)
        return list(FALLBACK_LAYOUTS)


def _model_names() -> list[str]:
    try:
        from appliance.stt.models import KNOWN_MODELS
    except ImportError:
        return list(FALLBACK_MODELS)
    return list(KNOWN_MODELS)


def _model(value: Any, note: Note) -> str:
    names = _model_names()
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text in names:
            return text
        if text.startswith(("/", "~")):
            return str(Path(text).expanduser())
    raise _Bad(f"must be one of {', '.join(names)} or the absolute path of a CTranslate2 Whisper "
               f"model directory{_did_you_mean(value, names)}")


def _language(value: Any, note: Note) -> str:
    from appliance.stt.languages import LANGUAGES

    if isinstance(value, str) and (value.strip().lower() == "auto" or value.strip().lower() in LANGUAGES):
        return value.strip().lower()
    names = {name: code for code, name in LANGUAGES.items()}
    if isinstance(value, str) and value.strip().lower() in names:
        raise _Bad(f"must be a Whisper language code such as en, de, fr, or auto "
                   f"(did you mean {names[value.strip().lower()]}?)")
    raise _Bad("must be a Whisper language code such as en, de, fr, es, it, or auto (detect)"
               f"{_did_you_mean(value, list(LANGUAGES))}")


def _key_name(value: Any, note: Note) -> str:
    if isinstance(value, str) and re.fullmatch(r"(KEY|BTN)_[A-Z0-9_]+", value.strip().upper()):
        return value.strip().upper()
    raise _Bad("must be a Linux input key name such as KEY_F13, KEY_PAUSE or BTN_LEFT "
               "(`voicekey doctor` lists the keys an input device has)")


def _serial(value: Any, note: Note) -> str:
    text = _text_item(value)
    if text is None or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text.strip()):
        raise _Bad("must be 1-64 letters, digits, '.', '_' or '-'")
    return text.strip()


def _did_you_mean(value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str):
        return ""
    lowered = {o.lower(): o for o in options}
    close = difflib.get_close_matches(value.strip().lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]}?)" if close else ""


# ---- sections ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ButtonConfig:
    """The push button (between a GPIO pin and ground)."""

    pin: int = _setting(17, _int(GPIO_MIN, GPIO_MAX, "a BCM GPIO number"))
    """BCM GPIO number of the button (not the physical header pin number). 17 = header pin 11."""
    pull_up: bool = _setting(True, _bool)
    """True: the button connects the pin to ground and the internal pull-up is used."""
    bounce_s: float = _setting(0.02, _float(0.0, 0.5, "a time", "s"))
    """Debounce time in seconds; 0 turns debouncing off."""
    hold_s: float = _setting(0.4, _float(0.05, 5.0, "a time", "s"))
    """A press longer than this is push-to-talk (speak while holding); shorter is a tap."""
    double_press_s: float = _setting(0.35, _float(0.0, 2.0, "a time", "s"))
    """Two taps within this many seconds are a double press; 0 turns double presses off."""
    pairing_hold_s: float = _setting(8.0, _float(1.0, 60.0, "a time", "s"))
    """Holding the button this long without speaking enters Bluetooth pairing mode (must be longer
    than hold_s). Holding it while talking is just a long dictation."""


@dataclass(frozen=True)
class LedConfig:
    """The status LED."""

    pin: int | None = _setting(27, _optional(_int(GPIO_MIN, GPIO_MAX, "a BCM GPIO number"), "no LED"))
    """BCM GPIO number of the LED, or None for no LED. 27 = header pin 13."""
    active_high: bool = _setting(True, _bool)
    """True: the LED lights when the pin is high (LED from pin to ground via a resistor)."""


@dataclass(frozen=True)
class AudioConfig:
    """Microphone capture."""

    device: int | str | None = _setting(None, _audio_device)
    """Input device: None for the system default, a number, or (part of) a name as sounddevice lists it."""
    pre_roll_ms: int = _setting(300, _int(0, 2000, "a number of milliseconds"))
    """Audio kept from before the press, so the first syllable is not cut off."""
    post_roll_ms: int = _setting(300, _int(0, 2000, "a number of milliseconds"))
    """Audio still recorded after the release, so the last syllable is not cut off."""
    post_roll_unless_silent_ms: int = _setting(300, _int(0, 5000, "a number of milliseconds"))
    """The post-roll is skipped when the speech had already stopped this long before the release
    (nothing is left to catch, and the text comes that much sooner); 0: always record it."""
    max_utterance_s: float = _setting(60.0, _float(1.0, 600.0, "a time", "s"))
    """Longest single recording; capture stops there even if the button is still held."""
    sample_rate: int | None = _setting(None, _optional(_int(8000, 192000, "a sample rate in Hz"),
                                                       "the device's default rate"))
    """Rate the input is opened at; None for the device's default. 16000 needs no resampling (less
    CPU) on a microphone that supports it."""
    block_ms: int = _setting(30, _int(5, 1000, "a number of milliseconds"))
    """Length of the blocks the audio driver delivers; longer blocks mean a larger driver buffer
    (fewer lost samples on a starved CPU) and later hands-free end-of-speech detection."""
    latency_s: float | None = _setting(None, _optional(_float(0.001, 5.0, "a time", "s"),
                                                        "the driver's default"))
    """Input buffer asked of the audio driver; None for PortAudio's "high" default. A larger one
    loses no audio when the CPU is starved for a while, at the cost of memory and delay."""
    stall_timeout_s: float | None = _setting(2.0, _optional(_float(0.5, 600.0, "a time", "s"), "never"))
    """An open input that delivers no audio for this long is taken as dead and re-opened; None: never."""


@dataclass(frozen=True)
class VadConfig:
    """Voice activity detection (webrtcvad plus checks against noise)."""

    aggressiveness: int = _setting(2, _int(0, 3, "a webrtcvad mode"))
    """webrtcvad mode 0-3: higher rejects more noise (and more quiet speech)."""
    endpoint_silence_ms: int = _setting(800, _int(100, 10000, "a number of milliseconds"))
    """Hands-free mode: this much silence after speech ends the utterance."""
    min_speech_ms: int = _setting(120, _int(0, 5000, "a number of milliseconds"))
    """Recordings with less voiced speech than this are dropped (no text typed)."""


@dataclass(frozen=True)
class SttConfig:
    """Speech to text (Whisper via faster-whisper/CTranslate2)."""

    model: str = _setting("tiny.en", _model)
    """Model name (tiny.en, base.en, tiny, base) or the absolute path of a CTranslate2 model directory."""
    model_dir: Path | None = _setting(None, _optional(_abs_path, "none"))
    """Extra directory searched first for models, holding <name>/model.bin; None for none."""
    cache_dir: Path | None = _setting(None, _optional(_abs_path, "the default ($XDG_CACHE_HOME/voicekey/models)"))
    """Where split model packs are joined; None for $XDG_CACHE_HOME/voicekey/models."""
    compute_type: str = _setting("int8", _choice(COMPUTE_TYPES))
    """CTranslate2 compute type; int8 is fastest on a Pi."""
    threads: int = _setting(0, _int(0, 64, "a thread count"))
    """CPU threads for the model; 0 = one per core."""
    allow_hub_download: bool = _setting(False, _bool)
    """Allow downloading a missing model from the faster-whisper hub (needs internet)."""
    short_window: bool = _setting(True, _bool)
    """Encode only as much audio as was spoken instead of a padded 30 s window (much faster)."""
    language: str = _setting("en", _language)
    """Spoken language for multilingual models (tiny, base): a Whisper code (en, de, fr, ...) or auto
    to detect it per dictation. English-only models (*.en) always use en."""


@dataclass(frozen=True)
class LiveConfig:
    """Live dictation: words typed while you are still speaking, never taken back."""

    enabled: bool = _setting(True, _bool)
    """Type while speaking (hands-free at once, push-to-talk after after_s); false: type after the end."""
    after_s: float = _setting(3.0, _float(0.0, 60.0, "a time", "s"))
    """Push-to-talk: live typing starts once the button has been held this long."""
    pause_ms: int = _setting(500, _int(200, 5000, "a number of milliseconds"))
    """A pause this long commits what was said before it (it is typed)."""
    pass_s: float = _setting(1.0, _float(0.3, 10.0, "a time", "s"))
    """Inside a long stretch without pauses, a new guess at most every this much audio; words two
    guesses agree on are typed."""


@dataclass(frozen=True)
class TextConfig:
    """Text shaping between the transcript and the keyboard."""

    vocabulary: tuple[str, ...] = _setting(rule=_word_list, factory=tuple)
    """Words and names the recogniser should prefer: passed to Whisper as its initial prompt, and
    typed with this spelling."""
    replacements: Mapping[str, str] = _setting(rule=_replacement_table,
                                               factory=lambda: MappingProxyType({}))
    """Heard text -> typed text, applied to whole words, case-insensitively."""
    spoken_commands: bool = _setting(True, _bool)
    """Turn spoken commands ("new line", "comma", "scratch that", ...) into actions."""
    forget_after_s: float = _setting(120.0, _float(0.0, 86400.0, "a time", "s"))
    """After this long without dictating, what was typed before is forgotten: the next dictation
    starts like a new text and a double press no longer deletes the old one. 0 = never forget."""
    numbers_min: int = _setting(10, _int(0, 1_000_000))
    """Spoken numbers of at least this value are typed as digits ("twenty five" -> 25); smaller ones
    stay words ("one of them"). 0 = off. "numeral <number>" always types digits."""
    enter_after: bool = _setting(False, _bool)
    """End each dictation with Enter (a newline; needs keyboard.allow_newline)."""


@dataclass(frozen=True)
class KeyboardConfig:
    """How text becomes keystrokes on the host."""

    layout: str = _setting("us", _choice(_layouts))
    """The host's keyboard layout, by xkb name (us, us(intl), gb, de, fr, es, it, us(dvorak))."""
    unmapped: str = _setting("transliterate", _choice(("transliterate", "skip", "unicode")))
    """Characters the layout cannot type: transliterate (é -> e), skip, or unicode (OS-specific input)."""
    host_os: str = _setting("linux", _choice(("linux", "windows", "macos")))
    """The host's operating system (only used by unmapped: unicode)."""
    allow_newline: bool = _setting(True, _bool)
    """Type newlines as Enter (off: newlines become spaces, so nothing is ever submitted)."""
    allow_tab: bool = _setting(False, _bool)
    """Type tabs as Tab (off: tabs become spaces, so focus never moves)."""


@dataclass(frozen=True)
class TransportConfig:
    """How keystrokes reach the host."""

    kind: str = _setting("usb", _choice(("usb", "bluetooth", "auto")))
    """usb: the Pi is a USB keyboard; bluetooth: a Bluetooth keyboard (pair it with a long hold);
    auto: USB while a USB host is attached, otherwise the bonded Bluetooth host."""
    device: Path = _setting(Path("/dev/hidg0"), _abs_path)
    """The USB HID gadget device."""
    rate: float = _setting(1000.0, _float(0.0, 10000.0, "a rate", "reports per second"))
    """Most keyboard reports per second; 0 = as fast as the host polls."""
    give_up_s: float = _setting(60.0, _float(0.0, 86400.0, "a time", "s"))
    """How long to keep untyped text while the host is away (cable out, asleep) before dropping it."""
    settle_s: float = _setting(1.0, _float(0.0, 30.0, "a time", "s"))
    """Pause after the host (re)connects before typing, so its keyboard driver is ready."""
    configfs_root: Path = _setting(Path("/sys/kernel/config"), _abs_path)
    """configfs mount point."""
    sysfs_root: Path = _setting(Path("/sys"), _abs_path)
    """sysfs mount point."""
    serial: str | None = _setting(None, _optional(_serial, "one derived from the board"))
    """USB serial number the host sees; None: derived from the board's serial (or machine id), so
    each device is told apart."""


def _bt_name(value: Any, note: Note) -> str:
    text = _text_item(value)
    if text is None or not 1 <= len(text.strip()) <= 64 or not text.strip().isprintable():
        raise _Bad("must be a name of 1-64 printable characters")
    return text.strip()


def _hci(value: Any, note: Note) -> str:
    text = _text_item(value)
    if text is None or not re.fullmatch(r"hci\d{1,2}", text.strip()):
        raise _Bad("must be an adapter name like hci0 (see `bluetoothctl list` or `hciconfig`)")
    return text.strip()


@dataclass(frozen=True)
class BluetoothConfig:
    """The Bluetooth keyboard (transport.kind bluetooth or auto)."""

    adapter: str = _setting("hci0", _hci)
    """The Bluetooth adapter."""
    name: str = _setting("VoiceKey", _bt_name)
    """The name computers show when pairing."""
    state_dir: Path = _setting(Path("/var/lib/voicekey"), _abs_path)
    """Where the last connected host is kept (persistent storage; bluetoothd keeps the bonds in
    /var/lib/bluetooth)."""
    reconnect_timeout_s: float = _setting(5.0, _float(1.0, 60.0, "a time", "s"))
    """One attempt to reconnect to the last host gives up after this long."""


@dataclass(frozen=True)
class ControllerConfig:
    """What the button does when."""

    busy_press: str = _setting("cancel", _choice(("cancel", "queue")))
    """A press while transcribing/typing: cancel (stop and discard) or queue (record the next utterance)."""
    pairing_s: float = _setting(180.0, _float(10.0, 3600.0, "a time", "s"))
    """How long the Bluetooth pairing window stays open after a long hold."""
    retry_s: float = _setting(2.0, _float(0.1, 600.0, "a time", "s"))
    """While a part is missing or failed (microphone, model, HID device, button), how often to try
    it again."""


@dataclass(frozen=True)
class TriggerConfig:
    """A second trigger: one key of an input device (foot pedal, presenter remote, keyboard)."""

    device: Path | None = _setting(None, _optional(_abs_path, "no second trigger"))
    """The input device (/dev/input/by-id/... is stable across reboots), or null for none."""
    key: str = _setting("KEY_F13", _key_name)
    """The key that acts as the button, by Linux name (KEY_F13, KEY_PAUSE, BTN_LEFT, ...)."""
    grab: bool = _setting(True, _bool)
    """Take the device exclusively, so its keys do nothing else on the Pi."""


@dataclass(frozen=True)
class LoggingConfig:
    """Logging."""

    level: str = _setting("INFO", _choice(LOG_LEVELS, canonical=str.upper))
    """DEBUG, INFO, WARNING, ERROR or CRITICAL. Transcripts are only logged at DEBUG."""


@dataclass(frozen=True)
class Config:
    """All settings. Every section has working defaults."""

    button: ButtonConfig = field(default_factory=ButtonConfig)
    """The push button."""
    led: LedConfig = field(default_factory=LedConfig)
    """The status LED."""
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    """A second trigger on an input device."""
    audio: AudioConfig = field(default_factory=AudioConfig)
    """Microphone capture."""
    vad: VadConfig = field(default_factory=VadConfig)
    """Voice activity detection."""
    stt: SttConfig = field(default_factory=SttConfig)
    """Speech to text."""
    live: LiveConfig = field(default_factory=LiveConfig)
    """Live dictation."""
    text: TextConfig = field(default_factory=TextConfig)
    """Text shaping."""
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    """Keystroke encoding for the host's layout."""
    transport: TransportConfig = field(default_factory=TransportConfig)
    """USB or Bluetooth delivery."""
    bluetooth: BluetoothConfig = field(default_factory=BluetoothConfig)
    """The Bluetooth keyboard."""
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    """Button behaviour while busy."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Logging."""


#: section name -> section dataclass, in file order.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def section_keys(section: str) -> list[str]:
    """The key names of one section, in declaration order."""
    return [f.name for f in dataclasses.fields(SECTIONS[section])]


def _default(section: str, key: str) -> Any:
    return getattr(SECTIONS[section](), key)


def _rule(section: str, key: str) -> Rule:
    for f in dataclasses.fields(SECTIONS[section]):
        if f.name == key:
            return f.metadata["rule"]
    raise KeyError(f"{section}.{key}")


# ---- issues ------------------------------------------------------------------------------------
_NO_VALUE = object()


def _fmt_value(value: Any) -> str:
    """A value as the user would write it in YAML (short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        value = dict(value)
    if isinstance(value, tuple):
        value = list(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found while loading configuration. ``str()`` gives a one-line explanation."""

    file: str
    """The file the problem is in."""
    key: str
    """Key path such as ``button.pin``; "" for a problem with the whole file."""
    problem: str
    """What is wrong, i.e. what is allowed."""
    outcome: str
    """What was done instead, e.g. "using default 17", "ignored", "file ignored"."""
    value: Any = _NO_VALUE
    """The offending value as read from YAML (absent for whole-file problems)."""
    line: int | None = None
    """1-based line in the file, when known."""
    column: int | None = None
    """1-based column in the file, when known."""

    @property
    def location(self) -> str:
        """``file:line`` (or just the file)."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        if not self.key:
            where = f"line {self.line}, column {self.column}: " if self.line else ""
            return f"{self.file}: {where}{self.problem} ({self.outcome})"
        shown = "" if self.value is _NO_VALUE else f" = {_fmt_value(self.value)}"
        return f"{self.file}: {self.key}{shown}: {self.problem} ({self.outcome})"


@dataclass(frozen=True)
class LoadedConfig:
    """The result of :func:`load_config`."""

    config: Config
    """The effective settings."""
    issues: list[ConfigIssue]
    """Every problem found, in file order."""
    files: list[Path]
    """The files that were read and applied (missing ones are left out)."""
    sources: Mapping[str, str]
    """Key path -> file that set it, for every key not at its default."""

    @property
    def ok(self) -> bool:
        """True when no issues were found."""
        return not self.issues


# ---- reading -----------------------------------------------------------------------------------
_Marks = dict[tuple[str, ...], tuple[int, int]]


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")  # Windows editors sometimes save "Unicode" (UTF-16 with a BOM)
    return raw.decode("utf-8-sig")


def _walk_marks(text: str, file: str, issues: list[ConfigIssue]) -> _Marks:
    """Line/column of each section, key and list item; report keys given twice."""
    marks: _Marks = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = key_node.value
                here = path + (key,)
                if key in seen and len(path) < 2:
                    issues.append(ConfigIssue(file, ".".join(here), "given more than once",
                                              "the last one is used", line=key_node.start_mark.line + 1,
                                              column=key_node.start_mark.column + 1))
                seen.add(key)
                marks[here] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if len(here) < 3:
                    walk(value_node, here)
        elif isinstance(node, yaml.SequenceNode) and len(path) == 2:
            for i, item in enumerate(node.value):
                marks[path + (f"[{i}]",)] = (item.start_mark.line + 1, item.start_mark.column + 1)

    if root is not None:
        walk(root, ())
    return marks


def _read(path: Path, issues: list[ConfigIssue]) -> tuple[Any, _Marks] | None:
    """Parse one file. None if it is missing or unusable (the latter recorded as an issue)."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.debug("config file %s not present", path)
        return None
    except OSError as exc:
        issues.append(ConfigIssue(file, "", f"cannot read: {exc.strerror or exc}", "file ignored"))
        return None
    try:
        text = _decode(raw)
    except UnicodeDecodeError as exc:
        issues.append(ConfigIssue(file, "", f"not UTF-8 text (byte {exc.start}); save it as UTF-8",
                                  "file ignored"))
        return None
    try:
        data = yaml.safe_load(text)
        file_issues: list[ConfigIssue] = []
        marks = _walk_marks(text, file, file_issues)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if "'\\t'" in what:
            what += " (indent with spaces, not tabs)"
        issues.append(ConfigIssue(file, "", f"YAML syntax error: {what}", "file ignored",
                                  line=mark.line + 1 if mark else None,
                                  column=mark.column + 1 if mark else None))
        return None
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(file, "", f"YAML error: {exc}", "file ignored"))
        return None
    issues.extend(file_issues)
    return data, marks


def _unknown_key_hint(section: str | None, key: str) -> str:
    """ "did you mean ..." for a key that does not exist (in ``section``, or at the top level)."""
    key_norm = key.strip().lower().replace("-", "_").replace(" ", "_")
    if section is None:
        if key_norm in SECTIONS:
            return f"did you mean {key_norm}?"
        owners = [f"{s}.{key_norm}" for s in SECTIONS if key_norm in section_keys(s)]
        if owners:
            return f"settings go inside a section: did you mean {' or '.join(owners)}?"
        close = difflib.get_close_matches(key_norm, list(SECTIONS), n=1, cutoff=0.6)
        return f"did you mean {close[0]}?" if close else f"sections are {', '.join(SECTIONS)}"
    keys = section_keys(section)
    if key_norm in keys:
        return f"did you mean {section}.{key_norm}?"
    close = difflib.get_close_matches(key_norm, keys, n=1, cutoff=0.6)
    if close:
        return f"did you mean {section}.{close[0]}?"
    owners = [f"{s}.{key_norm}" for s in SECTIONS if s != section and key_norm in section_keys(s)]
    if owners:
        return f"did you mean {' or '.join(owners)}?"
    return f"{section} has {', '.join(keys)}"


class _Layers:
    """Accumulates validated values, file by file (later files override earlier ones key by key)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        self.sources: dict[str, str] = {}
        self.issues: list[ConfigIssue] = []
        self.files: list[Path] = []

    def add_file(self, path: Path) -> None:
        read = _read(path, self.issues)
        if read is None:
            return
        data, marks = read
        self.files.append(path)
        file = str(path)
        if data is None:
            return
        if not isinstance(data, dict):
            self.issues.append(ConfigIssue(file, "", "must be a mapping of sections (button:, led:, audio:, "
                                           f"...), not {_fmt_value(data)}", "file ignored", line=1, column=1))
            return
        for section, body in data.items():
            self._add_section(file, marks, section, body)

    def _add_section(self, file: str, marks: _Marks, section: Any, body: Any) -> None:
        line, col = marks.get((str(section),), (None, None))
        if section not in SECTIONS:
            self.issues.append(ConfigIssue(file, str(section), "unknown section: " +
                                           _unknown_key_hint(None, str(section)), "ignored",
                                           value=body, line=line, column=col))
            return
        if body is None:
            return
        if not isinstance(body, dict):
            self.issues.append(ConfigIssue(file, section, f"must be a mapping of {section} settings such as "
                                           f"{section_keys(section)[0]}: ...", "ignored", value=body,
                                           line=line, column=col))
            return
        for key, value in body.items():
            self._add_key(file, marks, section, key, value)

    def _add_key(self, file: str, marks: _Marks, section: str, key: Any, value: Any) -> None:
        dotted = f"{section}.{key}"
        line, col = marks.get((section, str(key)), (None, None))
        if key not in section_keys(section):
            self.issues.append(ConfigIssue(file, dotted, "unknown key: " + _unknown_key_hint(section, str(key)),
                                           "ignored", value=value, line=line, column=col))
            return

        def note(suffix: str, item: Any, problem: str) -> None:
            item_line, item_col = marks.get((section, key, suffix), (line, col))
            self.issues.append(ConfigIssue(file, dotted + suffix, problem, "ignored", value=item,
                                           line=item_line, column=item_col))

        try:
            converted = _rule(section, key)(value, note)
        except _Bad as exc:
            if key in self.values[section]:
                kept = f"using {_fmt_value(self.values[section][key])} from {self.sources[dotted]}"
            else:
                kept = f"using default {_fmt_value(_default(section, key))}"
            self.issues.append(ConfigIssue(file, dotted, str(exc), kept, value=value, line=line, column=col))
            return
        self.values[section][key] = converted
        self.sources[dotted] = file


def load_config(paths: Sequence[Path | str] = DEFAULT_PATHS) -> LoadedConfig:
    """Read the layered configuration. Never raises for bad content: see :class:`ConfigIssue`.

    ``paths`` are applied in order on top of the built-in defaults; missing files are skipped.
    For ``voicekey --config PATH`` pass ``[PATH]``. Issues are returned, not logged above DEBUG:
    the caller decides how to show them (``voicekey run`` logs them, ``voicekey doctor`` lists them).
    """
    layers = _Layers()
    for path in paths:
        layers.add_file(Path(path))
    config = _cross_check(_build(layers.values), layers.sources, layers.issues)
    for issue in layers.issues:
        log.debug("config issue: %s", issue)
    return LoadedConfig(config=config, issues=layers.issues, files=layers.files,
                        sources=MappingProxyType(layers.sources))


def _build(values: Mapping[str, Mapping[str, Any]]) -> Config:
    return Config(**{s: SECTIONS[s](**values.get(s, {})) for s in SECTIONS})


def _cross_check(config: Config, sources: dict[str, str], issues: list[ConfigIssue]) -> Config:
    """Checks that involve two keys. The key set later (or by the user) is the one reset."""
    button, led = config.button, config.led
    if led.pin is not None and led.pin == button.pin:
        issues.append(ConfigIssue(sources.get("led.pin") or sources.get("button.pin") or "<defaults>",
                                  "led.pin", "is the same GPIO as button.pin", "LED disabled",
                                  value=led.pin))
        config = dataclasses.replace(config, led=dataclasses.replace(led, pin=None))
    if button.pairing_hold_s <= button.hold_s:
        default = _default("button", "pairing_hold_s")
        fixed = default if default > button.hold_s else button.hold_s * 2
        issues.append(ConfigIssue(sources.get("button.pairing_hold_s") or sources.get("button.hold_s")
                                  or "<defaults>", "button.pairing_hold_s",
                                  f"must be longer than button.hold_s ({button.hold_s:g} s)",
                                  f"using {fixed:g}", value=button.pairing_hold_s))
        config = dataclasses.replace(config, button=dataclasses.replace(button, pairing_hold_s=fixed))
    return config


def as_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Plain, YAML/JSON-friendly form of ``config`` (paths as text, tuples as lists)."""
    out: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        body = getattr(config, section)
        out[section] = {}
        for key in section_keys(section):
            value = getattr(body, key)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[section][key] = value
    return out
