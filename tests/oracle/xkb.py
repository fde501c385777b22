"""An xkbcommon-based oracle: what text a Linux desktop would see from our key events.

It models the host side of the cable, independently of VoiceKey's layout tables:

* USB boot keyboard reports -> Linux input events, the way ``hid-input`` does it
  (:func:`hid_usage_to_evdev`, :func:`report_events`);
* evdev key events -> keysyms and text with libxkbcommon (PyPI ``xkbcommon``) compiled from the
  xkb-data rules, exactly like a Wayland compositor or X server with that layout;
* dead keys -> composed characters through libxkbcommon's Compose support with the system Compose
  table (``/usr/share/X11/locale/en_US.UTF-8/Compose``; never ``~/.XCompose``).

Used by the unit tests and by the QEMU guest tests; keep the public API stable.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Iterable

from xkbcommon import xkb

#: The system Compose table (Debian ``libx11-data``); loaded from this file so that a user's
#: ``~/.XCompose`` or ``$XCOMPOSEFILE`` cannot change the oracle's answers.
COMPOSE_FILE = "/usr/share/X11/locale/en_US.UTF-8/Compose"
COMPOSE_LOCALE = "en_US.UTF-8"

# xkb keycodes are evdev codes + 8 (the X11 convention xkb-data's "evdev" keycodes follow).
_EVDEV_OFFSET = 8

# Linux input-event-codes.h numbers, by KEY_* name (only the ones the hid-input table below uses).
_KEY = {
    "ESC": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11,
    "MINUS": 12, "EQUAL": 13, "BACKSPACE": 14, "TAB": 15,
    "Q": 16, "W": 17, "E": 18, "R": 19, "T": 20, "Y": 21, "U": 22, "I": 23, "O": 24, "P": 25,
    "LEFTBRACE": 26, "RIGHTBRACE": 27, "ENTER": 28, "LEFTCTRL": 29,
    "A": 30, "S": 31, "D": 32, "F": 33, "G": 34, "H": 35, "J": 36, "K": 37, "L": 38,
    "SEMICOLON": 39, "APOSTROPHE": 40, "GRAVE": 41, "LEFTSHIFT": 42, "BACKSLASH": 43,
    "Z": 44, "X": 45, "C": 46, "V": 47, "B": 48, "N": 49, "M": 50,
    "COMMA": 51, "DOT": 52, "SLASH": 53, "RIGHTSHIFT": 54, "KPASTERISK": 55, "LEFTALT": 56,
    "SPACE": 57, "CAPSLOCK": 58,
    "F1": 59, "F2": 60, "F3": 61, "F4": 62, "F5": 63, "F6": 64, "F7": 65, "F8": 66, "F9": 67,
    "F10": 68, "NUMLOCK": 69, "SCROLLLOCK": 70,
    "KP7": 71, "KP8": 72, "KP9": 73, "KPMINUS": 74, "KP4": 75, "KP5": 76, "KP6": 77,
    "KPPLUS": 78, "KP1": 79, "KP2": 80, "KP3": 81, "KP0": 82, "KPDOT": 83,
    "102ND": 86, "F11": 87, "F12": 88, "KPENTER": 96, "RIGHTCTRL": 97, "KPSLASH": 98,
    "SYSRQ": 99, "RIGHTALT": 100, "HOME": 102, "UP": 103, "PAGEUP": 104, "LEFT": 105,
    "RIGHT": 106, "END": 107, "DOWN": 108, "PAGEDOWN": 109, "INSERT": 110, "DELETE": 111,
    "POWER": 116, "KPEQUAL": 117, "PAUSE": 119, "LEFTMETA": 125, "RIGHTMETA": 126,
    "COMPOSE": 127,
    **{f"F{n}": 183 + n - 13 for n in range(13, 25)},
}

# The Linux hid-input keyboard table (drivers/hid/hid-input.c, ``hid_keyboard[]``), written out
# from the HID usage names: usage id -> KEY_* name. Note 0x31 (Backslash) and 0x32 (Non-US #)
# both become KEY_BACKSLASH: on ISO keyboards xkb calls that key <AC12>/<BKSL>.
_USAGE_TO_KEYNAME: dict[int, str] = {
    **{0x04 + i: c for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")},
    **{0x1E + i: c for i, c in enumerate("1234567890")},
    0x28: "ENTER", 0x29: "ESC", 0x2A: "BACKSPACE", 0x2B: "TAB", 0x2C: "SPACE",
    0x2D: "MINUS", 0x2E: "EQUAL", 0x2F: "LEFTBRACE", 0x30: "RIGHTBRACE",
    0x31: "BACKSLASH", 0x32: "BACKSLASH", 0x33: "SEMICOLON", 0x34: "APOSTROPHE", 0x35: "GRAVE",
    0x36: "COMMA", 0x37: "DOT", 0x38: "SLASH", 0x39: "CAPSLOCK",
    **{0x3A + i: f"F{i + 1}" for i in range(12)},
    0x46: "SYSRQ", 0x47: "SCROLLLOCK", 0x48: "PAUSE", 0x49: "INSERT", 0x4A: "HOME",
    0x4B: "PAGEUP", 0x4C: "DELETE", 0x4D: "END", 0x4E: "PAGEDOWN", 0x4F: "RIGHT", 0x50: "LEFT",
    0x51: "DOWN", 0x52: "UP", 0x53: "NUMLOCK", 0x54: "KPSLASH", 0x55: "KPASTERISK",
    0x56: "KPMINUS", 0x57: "KPPLUS", 0x58: "KPENTER",
    0x59: "KP1", 0x5A: "KP2", 0x5B: "KP3", 0x5C: "KP4", 0x5D: "KP5", 0x5E: "KP6",
    0x5F: "KP7", 0x60: "KP8", 0x61: "KP9", 0x62: "KP0", 0x63: "KPDOT",
    0x64: "102ND", 0x65: "COMPOSE", 0x66: "POWER", 0x67: "KPEQUAL",
    **{0x68 + i: f"F{13 + i}" for i in range(12)},
    0xE0: "LEFTCTRL", 0xE1: "LEFTSHIFT", 0xE2: "LEFTALT", 0xE3: "LEFTMETA",
    0xE4: "RIGHTCTRL", 0xE5: "RIGHTSHIFT", 0xE6: "RIGHTALT", 0xE7: "RIGHTMETA",
}

#: Largest key usage our boot report descriptor declares (Logical Maximum 101): the kernel drops
#: array values outside the logical range, so the oracle does too.
BOOT_LOGICAL_MAX = 0x65
_ERROR_ROLL_OVER = 0x01


def hid_usage_to_evdev(usage: int) -> int:
    """Map a HID Keyboard page usage to the Linux ``KEY_*`` code, like ``hid-input`` does.

    Returns 0 (``KEY_RESERVED``) for usages the kernel does not map.
    """
    name = _USAGE_TO_KEYNAME.get(usage)
    return _KEY[name] if name else 0


def report_events(previous: bytes, report: bytes) -> list[tuple[int, bool]]:
    """The Linux key events (evdev code, pressed) a host emits going from ``previous`` to ``report``.

    Follows ``hid-input``'s order: the modifier bitmap (a variable field, usages 0xE0..0xE7 in
    order) first, then the key array: releases of keys that left it, then presses of new keys.
    Array values outside 1..Logical Maximum are ignored; an ErrorRollOver report keeps the old keys.
    """
    if len(report) != 8 or len(previous) != 8:
        raise ValueError("boot keyboard reports are 8 bytes")
    events: list[tuple[int, bool]] = []
    for bit in range(8):
        was, now = previous[0] >> bit & 1, report[0] >> bit & 1
        if was != now:
            events.append((hid_usage_to_evdev(0xE0 + bit), bool(now)))
    old = _array_keys(previous)
    new = _array_keys(report)
    if _ERROR_ROLL_OVER in report[2:]:
        return events
    for usage in old:
        if usage not in new:
            events.append((hid_usage_to_evdev(usage), False))
    for usage in new:
        if usage not in old:
            events.append((hid_usage_to_evdev(usage), True))
    return [(code, pressed) for code, pressed in events if code]


def _array_keys(report: bytes) -> list[int]:
    keys: list[int] = []
    for usage in report[2:]:
        if 0x04 <= usage <= BOOT_LOGICAL_MAX and usage not in keys:
            keys.append(usage)
    return keys


def _split_layout(layout: str) -> tuple[str, str | None]:
    layout = layout.strip()
    if layout.endswith(")") and "(" in layout:
        base, variant = layout[:-1].split("(", 1)
        return base, variant
    return layout, None


@functools.lru_cache(maxsize=None)
def _compile(layout: str) -> tuple[xkb.Keymap, xkb.ComposeTable]:
    """Compile (once per layout) the keymap and the Compose table; both are immutable."""
    base, variant = _split_layout(layout)
    context = xkb.Context(no_environment_names=True)
    try:
        keymap = context.keymap_new_from_names(
            rules="evdev", model="pc105", layout=base, variant=variant or "", options="")
    except xkb.XKBKeymapCreationFailure as exc:
        raise ValueError(f"xkb cannot compile layout {layout!r}: {exc}") from exc
    with open(COMPOSE_FILE, "rb") as fh:
        table = context.compose_table_new_from_buffer(fh.read(), COMPOSE_LOCALE)
    return keymap, table


class XkbDecoder:
    """Turns Linux key events into the text a desktop with xkb layout ``layout`` would show.

    ``layout`` is an xkb name like ``"us"``, ``"de"`` or ``"us(intl)"`` (layout ``x`` variant ``y``).
    Enter gives ``"\\n"``, Tab ``"\\t"``, BackSpace deletes the last character; keys pressed while
    Ctrl, Alt or Super is active are shortcuts and type nothing; dead keys compose through the
    system Compose table.
    """

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self._keymap, table = _compile(layout)
        self._state = self._keymap.state_new()
        self._compose = table.compose_state_new()
        self._held: set[int] = set()
        self._chars: list[str] = []
        self._shortcut_mods = [
            idx for idx in (self._keymap.mod_get_index(n) for n in ("Control", "Mod1", "Mod4"))
            if idx is not None]
        self.keysyms: list[str] = []  # names of the keysyms pressed so far (for failure messages)

    def key(self, evdev_code: int, pressed: bool) -> None:
        """Feed one Linux EV_KEY event (value 1 = press, 0 = release; 2 = autorepeat is ignored)."""
        if not isinstance(pressed, bool) and pressed == 2:
            return
        keycode = evdev_code + _EVDEV_OFFSET
        if pressed:
            if evdev_code in self._held:
                return  # a second press without release: the kernel would not emit it
            self._held.add(evdev_code)
            self._on_press(keycode)
            self._state.update_key(keycode, xkb.KeyDirection.XKB_KEY_DOWN)
        else:
            if evdev_code not in self._held:
                return
            self._held.discard(evdev_code)
            self._state.update_key(keycode, xkb.KeyDirection.XKB_KEY_UP)

    def _on_press(self, keycode: int) -> None:
        sym = self._state.key_get_one_sym(keycode)
        self.keysyms.append(xkb.keysym_get_name(sym) if sym else "NoSymbol")
        if sym == 0:
            return
        name = xkb.keysym_get_name(sym)
        if self._is_shortcut(keycode):
            if name not in _MODIFIER_SYMS:
                self._compose.reset()
            return
        self._compose.feed(sym)
        status = self._compose.get_status()
        if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSING:
            return
        if status == xkb.ComposeStatus.XKB_COMPOSE_COMPOSED:
            self._chars.append(self._compose.get_utf8())
            self._compose.reset()
            return
        if status == xkb.ComposeStatus.XKB_COMPOSE_CANCELLED:
            self._compose.reset()  # xkbcommon-based clients drop a cancelled sequence
            return
        if name in ("Return", "KP_Enter"):
            self._chars.append("\n")
        elif name in ("Tab", "ISO_Left_Tab", "KP_Tab"):
            self._chars.append("\t")
        elif name == "BackSpace":
            if self._chars:
                self._chars.pop()
        else:
            text = self._state.key_get_string(keycode)
            if text and not any(unicodedata.category(c) == "Cc" for c in text):
                self._chars.append(text)

    def _is_shortcut(self, keycode: int) -> bool:
        for idx in self._shortcut_mods:
            if self._state.mod_index_is_active(idx, xkb.StateComponent.XKB_STATE_MODS_EFFECTIVE) \
                    and not self._state.mod_index_is_consumed(keycode, idx):
                return True
        return False

    @property
    def text(self) -> str:
        """The text decoded so far."""
        return "".join(self._chars)

    @property
    def held(self) -> frozenset[int]:
        """The evdev codes pressed now."""
        return frozenset(self._held)


_MODIFIER_SYMS = frozenset({
    "Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R", "Meta_L", "Meta_R",
    "Super_L", "Super_R", "ISO_Level3_Shift", "ISO_Level5_Shift", "Mode_switch", "Caps_Lock",
    "Num_Lock", "Hyper_L", "Hyper_R", "ISO_Group_Shift", "ISO_Next_Group",
})


def decode_reports(reports: Iterable[bytes], layout: str) -> str:
    """Decode a sequence of 8-byte boot reports (starting from all keys up) into text.

    Each report is diffed against the previous one into Linux key events
    (:func:`report_events`), which an :class:`XkbDecoder` for ``layout`` turns into text.
    """
    decoder = XkbDecoder(layout)
    previous = bytes(8)
    for report in reports:
        report = bytes(report)
        for code, pressed in report_events(previous, report):
            decoder.key(code, pressed)
        previous = report
    return decoder.text


if not os.path.exists(COMPOSE_FILE):  # pragma: no cover - a broken test machine
    raise ImportError(f"{COMPOSE_FILE} is missing; install Debian libx11-data")
