"""HID Keyboard/Keypad page (0x07) usage ids, by name.

Source of the numbers: USB HID Usage Tables 1.5, section 10 "Keyboard/Keypad Page (0x07)".
The names are the ones our layout data files use (``"Shift+A"``, ``"AltGr+Q"``); a usage names a
key *position* (the key that says "A" on a US keyboard), not a character: what it types depends on
the host's layout.

Only usages 0x04..0x65 fit the boot keyboard report descriptor we present (Logical Maximum 101);
higher ones are listed for completeness but a host ignores them in a boot report.
"""

from __future__ import annotations

from types import MappingProxyType

_LETTERS = {chr(ord("A") + i): 0x04 + i for i in range(26)}  # A=0x04 .. Z=0x1D
_DIGITS = {str((i + 1) % 10): 0x1E + i for i in range(10)}  # 1=0x1E .. 9=0x26, 0=0x27

_OTHERS = {
    "Enter": 0x28,
    "Escape": 0x29,
    "Backspace": 0x2A,
    "Tab": 0x2B,
    "Space": 0x2C,
    "Minus": 0x2D,
    "Equal": 0x2E,
    "LeftBracket": 0x2F,
    "RightBracket": 0x30,
    "Backslash": 0x31,
    "NonUS_Hash": 0x32,  # ISO key left of Enter; Linux maps it to the same KEY_BACKSLASH as 0x31
    "Semicolon": 0x33,
    "Apostrophe": 0x34,
    "Grave": 0x35,
    "Comma": 0x36,
    "Period": 0x37,
    "Slash": 0x38,
    "CapsLock": 0x39,
    **{f"F{n}": 0x3A + n - 1 for n in range(1, 13)},  # F1=0x3A .. F12=0x45
    "PrintScreen": 0x46,
    "ScrollLock": 0x47,
    "Pause": 0x48,
    "Insert": 0x49,
    "Home": 0x4A,
    "PageUp": 0x4B,
    "Delete": 0x4C,
    "End": 0x4D,
    "PageDown": 0x4E,
    "Right": 0x4F,
    "Left": 0x50,
    "Down": 0x51,
    "Up": 0x52,
    "NumLock": 0x53,
    "KP_Divide": 0x54,
    "KP_Multiply": 0x55,
    "KP_Minus": 0x56,
    "KP_Plus": 0x57,
    "KP_Enter": 0x58,
    "KP_1": 0x59,
    "KP_2": 0x5A,
    "KP_3": 0x5B,
    "KP_4": 0x5C,
    "KP_5": 0x5D,
    "KP_6": 0x5E,
    "KP_7": 0x5F,
    "KP_8": 0x60,
    "KP_9": 0x61,
    "KP_0": 0x62,
    "KP_Decimal": 0x63,
    "NonUS_Backslash": 0x64,  # ISO key right of left Shift (< > on de, \ | on gb)
    "Application": 0x65,  # the "Menu" / Compose key
    "Power": 0x66,
    "KP_Equal": 0x67,
    **{f"F{n}": 0x68 + n - 13 for n in range(13, 25)},  # F13=0x68 .. F24=0x73
    "LeftCtrl": 0xE0,
    "LeftShift": 0xE1,
    "LeftAlt": 0xE2,
    "LeftGUI": 0xE3,
    "RightCtrl": 0xE4,
    "RightShift": 0xE5,
    "RightAlt": 0xE6,
    "RightGUI": 0xE7,
}

#: Usage id by name (read-only).
USAGES: MappingProxyType[str, int] = MappingProxyType({**_LETTERS, **_DIGITS, **_OTHERS})

#: Name by usage id (the first name wins where two names share an id; none do today).
NAMES: MappingProxyType[int, str] = MappingProxyType({v: k for k, v in reversed(USAGES.items())})

#: Largest usage the boot keyboard descriptor accepts (HID 1.11 appendix B.1: Logical Maximum 101).
BOOT_MAX_USAGE = 0x65

# A few constants the encoder and tests use directly.
KEY_ENTER = USAGES["Enter"]
KEY_ESCAPE = USAGES["Escape"]
KEY_BACKSPACE = USAGES["Backspace"]
KEY_TAB = USAGES["Tab"]
KEY_SPACE = USAGES["Space"]
KEY_CAPSLOCK = USAGES["CapsLock"]
KEY_KP_PLUS = USAGES["KP_Plus"]
KEY_U = USAGES["U"]


def usage(name: str) -> int:
    """Return the usage id for a key name such as ``"A"``, ``"1"``, ``"Grave"``, ``"KP_0"``.

    Raises ``KeyError`` naming the unknown key.
    """
    try:
        return USAGES[name]
    except KeyError:
        raise KeyError(f"unknown HID key name {name!r}; known names: {', '.join(USAGES)}") from None


def name_of(usage_id: int) -> str:
    """Return the key name for a usage id, or ``"0xNN"`` when it has no name here."""
    return NAMES.get(usage_id, f"0x{usage_id:02X}")
