"""Pure HID boot-keyboard report building, shared by the USB and Bluetooth transports.

A boot keyboard input report is 8 bytes: modifier bitmap, reserved, then up to six key usages
(USB HID 1.11, appendix B.1). Bluetooth HID sends the same bytes behind a ``0xA1`` (DATA|Input)
header and a report id.
"""

from __future__ import annotations

from collections.abc import Iterable

# Modifier bits of byte 0 (HID Usage Tables, Keyboard page 0xE0..0xE7).
MOD_LCTRL = 0x01
MOD_LSHIFT = 0x02
MOD_LALT = 0x04
MOD_LGUI = 0x08
MOD_RCTRL = 0x10
MOD_RSHIFT = 0x20
MOD_RALT = 0x40  # AltGr on ISO layouts
MOD_RGUI = 0x80

# Host -> device LED output report bits (HID 1.11 appendix B.1).
LED_NUM_LOCK = 0x01
LED_CAPS_LOCK = 0x02
LED_SCROLL_LOCK = 0x04
LED_COMPOSE = 0x08
LED_KANA = 0x10

REPORT_LENGTH = 8
RELEASE_ALL = bytes(REPORT_LENGTH)

#: The standard boot keyboard report descriptor (HID 1.11, appendix B.1 / E.6): 8 modifier bits,
#: a reserved byte, 5 LED output bits + 3 padding, six 8-bit key usages.
BOOT_KEYBOARD_DESCRIPTOR = bytes([
    0x05, 0x01,  # Usage Page (Generic Desktop)
    0x09, 0x06,  # Usage (Keyboard)
    0xA1, 0x01,  # Collection (Application)
    0x05, 0x07,  #   Usage Page (Keyboard/Keypad)
    0x19, 0xE0,  #   Usage Minimum (Left Control)
    0x29, 0xE7,  #   Usage Maximum (Right GUI)
    0x15, 0x00,  #   Logical Minimum (0)
    0x25, 0x01,  #   Logical Maximum (1)
    0x75, 0x01,  #   Report Size (1)
    0x95, 0x08,  #   Report Count (8)
    0x81, 0x02,  #   Input (Data, Variable, Absolute)   ; modifier byte
    0x95, 0x01,  #   Report Count (1)
    0x75, 0x08,  #   Report Size (8)
    0x81, 0x03,  #   Input (Constant)                   ; reserved byte
    0x95, 0x05,  #   Report Count (5)
    0x75, 0x01,  #   Report Size (1)
    0x05, 0x08,  #   Usage Page (LEDs)
    0x19, 0x01,  #   Usage Minimum (Num Lock)
    0x29, 0x05,  #   Usage Maximum (Kana)
    0x91, 0x02,  #   Output (Data, Variable, Absolute)  ; LED report
    0x95, 0x01,  #   Report Count (1)
    0x75, 0x03,  #   Report Size (3)
    0x91, 0x03,  #   Output (Constant)                  ; LED padding
    0x95, 0x06,  #   Report Count (6)
    0x75, 0x08,  #   Report Size (8)
    0x15, 0x00,  #   Logical Minimum (0)
    0x25, 0x65,  #   Logical Maximum (101)
    0x05, 0x07,  #   Usage Page (Keyboard/Keypad)
    0x19, 0x00,  #   Usage Minimum (0)
    0x29, 0x65,  #   Usage Maximum (101)
    0x81, 0x00,  #   Input (Data, Array)                ; key array
    0xC0,        # End Collection
])


#: The same keyboard for Bluetooth HID (sent in the SDP record): the boot descriptor with Report ID 1
#: (``85 01``) right after the collection opens, so a report-mode host reads the very bytes that
#: boot mode carries: ``A1 01`` + the 8-byte boot report (see :func:`bluetooth_report`). Without the
#: id, a report-mode host would take the id byte for the modifiers.
BLUETOOTH_REPORT_ID = 0x01
BLUETOOTH_KEYBOARD_DESCRIPTOR = BOOT_KEYBOARD_DESCRIPTOR[:6] + bytes([0x85, BLUETOOTH_REPORT_ID]) \
    + BOOT_KEYBOARD_DESCRIPTOR[6:]


def keyboard_report(modifiers: int = 0, keys: Iterable[int] = ()) -> bytes:
    """Build one 8-byte boot keyboard input report.

    ``modifiers`` is the bitmap of ``MOD_*`` bits; ``keys`` are up to six HID usage ids from the
    Keyboard/Keypad page (0x04..0x65 for the boot protocol).
    """
    keys = tuple(keys)
    if not 0 <= modifiers <= 0xFF:
        raise ValueError(f"modifier bitmap {modifiers!r} is not a byte")
    if len(keys) > 6:
        raise ValueError(f"a boot report carries at most 6 keys, got {len(keys)}")
    for key in keys:
        if not 0 < key <= 0xFF:
            raise ValueError(f"key usage {key!r} is not in 1..255")
    return bytes([modifiers, 0, *keys, *([0] * (6 - len(keys)))])


def parse_report(report: bytes) -> tuple[int, tuple[int, ...]]:
    """Inverse of :func:`keyboard_report`: ``(modifiers, pressed usages)``."""
    if len(report) != REPORT_LENGTH:
        raise ValueError(f"a boot keyboard report is {REPORT_LENGTH} bytes, got {len(report)}")
    return report[0], tuple(k for k in report[2:] if k)


def bluetooth_report(report: bytes, report_id: int = BLUETOOTH_REPORT_ID) -> bytes:
    """Wrap a boot report for Bluetooth HID interrupt channel: 0xA1 (DATA|Input), report id, data."""
    if len(report) != REPORT_LENGTH:
        raise ValueError(f"a boot keyboard report is {REPORT_LENGTH} bytes, got {len(report)}")
    return bytes([0xA1, report_id]) + report
