"""Text -> boot keyboard reports for a given host layout. Pure: no I/O, never raises on any text.

Rules every stroke follows (so any host, including slow ones, sees clean key events):

* a modifier is pressed in its own report before the key (``[Shift]``, ``[Shift+A]``, ``[]``);
* every stroke ends with the all-zero report, so the same key twice always has a release between;
* a dead-key sequence (dead key, release, base key, release) is one stroke;
* control characters and terminal escape sequences (``ESC [ ... final``, ``OSC ... BEL/ST`` and
  friends) are never typed; they are skipped whole and reported in :attr:`EncodeResult.skipped`.

A character the layout cannot type goes through :attr:`EncoderOptions.unmapped`.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from dataclasses import dataclass
from typing import Literal

from anyascii import anyascii

from appliance.config import KeyboardConfig
from appliance.errors import ConfigError
from appliance.hid import keycodes
from appliance.hid.layouts import Layout, Press, load_layout
from appliance.hid.report import MOD_LALT, MOD_LCTRL, MOD_LSHIFT, RELEASE_ALL, keyboard_report
from appliance.hid.stroke import Stroke

log = logging.getLogger(__name__)

UnmappedPolicy = Literal["transliterate", "skip", "unicode"]
HostOS = Literal["linux", "windows", "macos"]

_POLICIES = ("transliterate", "skip", "unicode")
_HOSTS = ("linux", "windows", "macos")


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """How to encode text the layout cannot type directly, and which whitespace to type.

    The fields that are also config settings (``keyboard.unmapped``, ``keyboard.host_os``,
    ``keyboard.allow_newline``, ``keyboard.allow_tab``) take their defaults from the config schema
    (:class:`appliance.config.KeyboardConfig`), where they are defined and checked once.
    """

    unmapped: UnmappedPolicy = KeyboardConfig.unmapped  # type: ignore[assignment]
    """What to do with a character the layout cannot produce (not even with a dead key):
    ``"transliterate"`` types a close equivalent the layout has (NFC composition, NFKC
    compatibility form, the base letter without its accent, then the ``anyascii`` library:
    ’→', “→", —→-, …→..., é→e on ``us``, ß→ss); ``"skip"`` leaves it out; ``"unicode"`` types
    it through the host OS's Unicode input method (see :attr:`host_os`). Whatever cannot be
    typed is reported in :attr:`EncodeResult.skipped`."""

    host_os: HostOS = KeyboardConfig.host_os  # type: ignore[assignment]
    """Host OS for ``unmapped="unicode"``: ``"linux"`` = Ctrl+Shift+U, hex digits, Space (IBus,
    GTK); ``"windows"`` = hold Alt, keypad ``+``, hex digits (needs the registry value
    ``HKCU\\Control Panel\\Input Method\\EnableHexNumpad`` = ``"1"`` and a re-login; Num Lock
    on);
    ``"macos"`` = hold Option, four hex digits, with the "Unicode Hex Input" input source
    selected (characters above U+FFFF as a UTF-16 surrogate pair). Windows gets the full code
    point in hex; many Windows applications only accept up to U+FFFF that way."""

    allow_newline: bool = KeyboardConfig.allow_newline
    """Type ``"\\n"``, ``"\\r\\n"`` and a lone ``"\\r"`` as Enter. Off: they are skipped (Enter
    in a chat box or terminal sends or runs what was typed)."""

    allow_tab: bool = KeyboardConfig.allow_tab
    """Type ``"\\t"`` as Tab. Off: it is skipped (Tab moves focus in most forms)."""

    use_capslock: bool = False
    """Also type the few characters a layout gives only with Caps Lock on (``fr``: Ç) as
    Caps Lock, key, Caps Lock. Off by default: a host that remaps Caps Lock (e.g. to Ctrl) would
    see a shortcut, and the host's Caps Lock LED flickers; off, those characters go through
    :attr:`unmapped` (Ç -> C)."""

    def __post_init__(self) -> None:
        if self.unmapped not in _POLICIES:
            raise ConfigError(f"unknown unmapped-character policy {self.unmapped!r}",
                              fix=f"use one of: {', '.join(_POLICIES)}")
        if self.host_os not in _HOSTS:
            raise ConfigError(f"unknown host_os {self.host_os!r}",
                              fix=f"use one of: {', '.join(_HOSTS)}")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A piece of the input that was not typed."""

    index: int
    """Index of its first character in the input text."""
    char: str
    """The character, or the whole sequence (escape sequence, combining cluster)."""
    reason: str
    """Why it was not typed."""


@dataclass(slots=True)
class EncodeResult:
    """The strokes that type the text, and what was left out."""

    strokes: list[Stroke]
    skipped: list[Skipped]

    @property
    def reports(self) -> list[bytes]:
        """All reports of all strokes, in order."""
        return [r for s in self.strokes for r in s.reports]

    @property
    def text(self) -> str:
        """The text the strokes type (on a host with the same layout)."""
        return "".join(s.text for s in self.strokes)


_DEFAULT_OPTIONS = EncoderOptions()


# --- building strokes -------------------------------------------------------------------------

def _press_reports(press: Press) -> list[bytes]:
    mods, key = press
    if mods:
        return [keyboard_report(mods), keyboard_report(mods, (key,)), RELEASE_ALL]
    return [keyboard_report(0, (key,)), RELEASE_ALL]


def _stroke(text: str, presses: tuple[Press, ...]) -> Stroke:
    reports: list[bytes] = []
    for press in presses:
        reports.extend(_press_reports(press))
    return Stroke(text, tuple(reports))


_ENTER = Stroke("\n", (keyboard_report(0, (keycodes.KEY_ENTER,)), RELEASE_ALL))
_TAB = Stroke("\t", (keyboard_report(0, (keycodes.KEY_TAB,)), RELEASE_ALL))
_BACKSPACE = Stroke("\b", (keyboard_report(0, (keycodes.KEY_BACKSPACE,)), RELEASE_ALL))
_CAPSLOCK = Stroke("", (keyboard_report(0, (keycodes.KEY_CAPSLOCK,)), RELEASE_ALL))


def backspace_strokes(n: int) -> list[Stroke]:
    """``n`` Backspace strokes (press, release each) to delete ``n`` characters on the host.

    Raises ``ValueError`` if ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"cannot press Backspace {n} times; n must be >= 0")
    return [_BACKSPACE] * n


def capslock_stroke() -> Stroke:
    """One Caps Lock press and release (the transport toggles the host's Caps Lock with it)."""
    return _CAPSLOCK


@functools.lru_cache(maxsize=64)
def _strokes_for(layout: Layout, use_capslock: bool) -> dict[str, Stroke]:
    """Precomputed character -> stroke table of a layout (built once per layout and flag)."""
    return {char: _stroke(char, presses) for char, presses in layout.chars.items()
            if use_capslock or all(key != keycodes.KEY_CAPSLOCK for _, key in presses)}


# --- Unicode input methods --------------------------------------------------------------------

# macOS "Unicode Hex Input" is a US-positioned input source: hex digits sit on the US keys.
_US_HEX = {c: keycodes.USAGES[c.upper()] for c in "0123456789abcdef"}
_KEYPAD_DIGIT = {str(d): keycodes.USAGES[f"KP_{d}"] for d in range(10)}


def _unicode_stroke(char: str, layout: Layout, host_os: str) -> Stroke | None:
    code = ord(char)
    if host_os == "linux":
        # IBus/GTK: Ctrl+Shift+U, the hex digits (as the layout types them), Space commits.
        presses: list[Press] = [(MOD_LCTRL | MOD_LSHIFT, keycodes.KEY_U)]
        for digit in f"{code:x}" + " ":
            p = layout.chars.get(digit)
            if p is None or len(p) != 1:
                return None
            presses.append(p[0])
        return _stroke(char, tuple(presses))
    if host_os == "windows":
        # Alt held throughout; keypad "+", then hex digits: 0-9 on the keypad, a-f on the keys
        # that type those letters on the layout. Needs EnableHexNumpad=1 (see EncoderOptions).
        reports = [keyboard_report(MOD_LALT), keyboard_report(MOD_LALT, (keycodes.KEY_KP_PLUS,)),
                   keyboard_report(MOD_LALT)]
        for digit in f"{code:x}":
            if digit in _KEYPAD_DIGIT:
                key = _KEYPAD_DIGIT[digit]
            else:
                p = layout.chars.get(digit)
                if p is None or len(p) != 1 or p[0][0]:
                    return None
                key = p[0][1]
            reports += [keyboard_report(MOD_LALT, (key,)), keyboard_report(MOD_LALT)]
        reports.append(RELEASE_ALL)
        return Stroke(char, tuple(reports))
    # macOS Unicode Hex Input: Option held, exactly four hex digits per UTF-16 code unit.
    units = [code] if code <= 0xFFFF else [0xD800 + ((code - 0x10000) >> 10),
                                           0xDC00 + ((code - 0x10000) & 0x3FF)]
    reports = []
    for unit in units:
        reports.append(keyboard_report(MOD_LALT))
        for digit in f"{unit:04x}":
            reports += [keyboard_report(MOD_LALT, (_US_HEX[digit],)), keyboard_report(MOD_LALT)]
        reports.append(RELEASE_ALL)
    return Stroke(char, tuple(reports))


# --- control characters and escape sequences ------------------------------------------------------

_ESC = "\x1b"
_BEL = "\x07"
_ST_8BIT = "\x9c"
# Introducers of control *strings* (terminated by BEL or ST): OSC, DCS, SOS, PM, APC.
_STRING_INTRODUCERS_7BIT = frozenset("]PX^_")
_STRING_INTRODUCERS_8BIT = frozenset("\x9d\x90\x98\x9e\x9f")
_CSI_8BIT = "\x9b"
# Bidirectional formatting characters: invisible, and they can reorder what a reader sees.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


def _end_of_csi(text: str, i: int) -> int:
    """``i`` is just past ``ESC [`` or CSI: skip parameters/intermediates and the final byte."""
    n = len(text)
    while i < n and "\x20" <= text[i] <= "\x3f":
        i += 1
    if i < n and "\x40" <= text[i] <= "\x7e":
        i += 1
    return i


def _end_of_string(text: str, i: int) -> int:
    """``i`` is just past a string introducer: skip to after BEL or ST (or the end of text)."""
    n = len(text)
    while i < n:
        c = text[i]
        if c in (_BEL, _ST_8BIT):
            return i + 1
        if c == _ESC and i + 1 < n and text[i + 1] == "\\":
            return i + 2
        i += 1
    return n


def _end_of_escape(text: str, i: int) -> int:
    """``text[i]`` is ESC or an 8-bit introducer: return the index just past the sequence."""
    c = text[i]
    n = len(text)
    if c == _CSI_8BIT:
        return _end_of_csi(text, i + 1)
    if c in _STRING_INTRODUCERS_8BIT:
        return _end_of_string(text, i + 1)
    # c == ESC
    if i + 1 >= n:
        return i + 1
    nxt = text[i + 1]
    if nxt == "[":
        return _end_of_csi(text, i + 2)
    if nxt in _STRING_INTRODUCERS_7BIT:
        return _end_of_string(text, i + 2)
    j = i + 1
    while j < n and "\x20" <= text[j] <= "\x2f":  # intermediates (nF escapes like ESC ( B)
        j += 1
    if j < n and "\x30" <= text[j] <= "\x7e":  # final byte (ESC 7, ESC c, ESC ( B ...)
        return j + 1
    return i + 1


# --- the encoder ----------------------------------------------------------------------------

def _is_mark(c: str) -> bool:
    return c >= "\u0300" and unicodedata.category(c)[0] == "M"


def encode(text: str, layout: Layout | str, options: EncoderOptions = _DEFAULT_OPTIONS,
           ) -> EncodeResult:
    """Encode ``text`` into strokes for a host using ``layout`` (a :class:`Layout` or xkb name).

    Never raises for any ``str`` (an unknown layout *name* raises
    :class:`~appliance.errors.LayoutError`). See the module docstring for the rules.
    """
    if isinstance(layout, str):
        layout = load_layout(layout)
    table = _strokes_for(layout, options.use_capslock)
    strokes: list[Stroke] = []
    skipped: list[Skipped] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        stroke = table.get(c)
        if stroke is not None and (i + 1 == n or not _is_mark(text[i + 1])):
            strokes.append(stroke)
            i += 1
            continue
        i = _slow_path(text, i, layout, table, options, strokes, skipped)
    if skipped:
        log.debug("skipped %d piece(s) of text: %s", len(skipped), skipped)
    return EncodeResult(strokes, skipped)


def _slow_path(text: str, i: int, layout: Layout, table: dict[str, Stroke],
               options: EncoderOptions, strokes: list[Stroke], skipped: list[Skipped]) -> int:
    """Handle ``text[i]`` when it is not a plain table hit; return the next index."""
    c = text[i]
    n = len(text)
    # Line ends, tab, escape sequences, other controls.
    if c in "\r\n":
        end = i + 2 if text.startswith("\r\n", i) else i + 1
        if options.allow_newline:
            strokes.append(_ENTER)
        else:
            skipped.append(Skipped(i, text[i:end], "newline (allow_newline is off)"))
        return end
    if c == "\t":
        if options.allow_tab:
            strokes.append(_TAB)
        else:
            skipped.append(Skipped(i, c, "tab (allow_tab is off)"))
        return i + 1
    if c == _ESC or c == _CSI_8BIT or c in _STRING_INTRODUCERS_8BIT:
        end = _end_of_escape(text, i)
        skipped.append(Skipped(i, text[i:end], "terminal escape sequence"))
        return end
    category = unicodedata.category(c)
    if category == "Cc":
        skipped.append(Skipped(i, c, "control character"))
        return i + 1
    if category == "Cs":
        skipped.append(Skipped(i, c, "lone surrogate (not a character)"))
        return i + 1
    if c in _BIDI_CONTROLS:
        skipped.append(Skipped(i, c, "bidirectional control character"))
        return i + 1

    # A character plus the combining marks that follow it.
    end = i + 1
    while end < n and _is_mark(text[end]):
        end += 1
    cluster = text[i:end]
    composed = unicodedata.normalize("NFC", cluster)
    if composed in table:
        strokes.append(table[composed])
        return end

    policy = options.unmapped
    if policy == "skip":
        skipped.append(Skipped(i, cluster, f"not on layout {layout.name}"))
    elif policy == "unicode":
        for ch in composed:
            stroke = table.get(ch) or _unicode_input(ch, layout, options.host_os)
            if stroke is None:
                skipped.append(Skipped(i, ch,
                                       f"cannot type through {options.host_os} Unicode input"))
            else:
                strokes.append(stroke)
    else:
        replacement = _transliterate(composed, layout, options.use_capslock)
        if replacement is None:
            skipped.append(Skipped(i, cluster, f"no transliteration on layout {layout.name}"))
        else:
            strokes.extend(table[ch] for ch in replacement)
    return end


@functools.lru_cache(maxsize=4096)
def _unicode_input(ch: str, layout: Layout, host_os: str) -> Stroke | None:
    if unicodedata.category(ch) in ("Cc", "Cs"):
        return None
    return _unicode_stroke(ch, layout, host_os)


@functools.lru_cache(maxsize=4096)
def _transliterate(cluster: str, layout: Layout, use_capslock: bool) -> str | None:
    """A replacement made only of characters the layout types, or ``None`` (cached)."""
    table = _strokes_for(layout, use_capslock)

    def typeable(s: str) -> bool:
        return bool(s) and all(ch in table for ch in s)

    # Compatibility form (ﬁ -> fi, ² -> 2, no-break space -> space), unless it is a spacing
    # accent, whose compatibility form is space + combining mark (´ -> " \u0301").
    compat = unicodedata.normalize("NFKC", cluster)
    if typeable(compat) and not any(_is_mark(ch) for ch in compat):
        return compat
    # Base letter plus whichever single accent the layout has (ǘ -> ü on de), else the base.
    decomposed = unicodedata.normalize("NFD", cluster)
    base, marks = decomposed[0], decomposed[1:]
    if base in table and base.isalnum() and marks and all(_is_mark(m) for m in marks):
        for mark in marks:
            candidate = unicodedata.normalize("NFC", base + mark)
            if candidate in table:
                return candidate
        return base
    ascii_ = anyascii(cluster)
    if typeable(ascii_):
        return ascii_
    typed = "".join(ch for ch in ascii_ if ch in table)
    return typed or None


__all__ = ["EncoderOptions", "EncodeResult", "Skipped", "encode", "backspace_strokes",
           "capslock_stroke"]
