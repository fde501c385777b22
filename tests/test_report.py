import pytest

from appliance.hid.report import (BOOT_KEYBOARD_DESCRIPTOR, MOD_LSHIFT, MOD_RALT, RELEASE_ALL,
                                  bluetooth_report, keyboard_report, parse_report)


def test_exact_bytes():
    assert keyboard_report() == bytes(8) == RELEASE_ALL
    assert keyboard_report(MOD_LSHIFT) == bytes([0x02, 0, 0, 0, 0, 0, 0, 0])
    assert keyboard_report(MOD_LSHIFT, [0x04]) == bytes([0x02, 0, 0x04, 0, 0, 0, 0, 0])
    assert keyboard_report(MOD_RALT, [0x14]) == bytes([0x40, 0, 0x14, 0, 0, 0, 0, 0])
    assert keyboard_report(0, [4, 5, 6, 7, 8, 9]) == bytes([0, 0, 4, 5, 6, 7, 8, 9])


def test_bluetooth_wraps_same_bytes():
    r = keyboard_report(MOD_LSHIFT, [0x04])
    assert bluetooth_report(r) == bytes([0xA1, 0x01]) + r


@pytest.mark.parametrize("mods,keys", [(256, []), (-1, []), (0, [1, 2, 3, 4, 5, 6, 7]), (0, [0]), (0, [256])])
def test_rejects_invalid(mods, keys):
    with pytest.raises(ValueError):
        keyboard_report(mods, keys)


def test_parse_roundtrip():
    assert parse_report(keyboard_report(MOD_LSHIFT, [0x04, 0x05])) == (MOD_LSHIFT, (0x04, 0x05))
    with pytest.raises(ValueError):
        parse_report(b"\0" * 7)


def test_descriptor_is_boot_keyboard():
    d = BOOT_KEYBOARD_DESCRIPTOR
    assert d[:6] == bytes([0x05, 0x01, 0x09, 0x06, 0xA1, 0x01])  # Generic Desktop / Keyboard / Application
    assert d[-1] == 0xC0 and len(d) == 63
    assert bytes([0x91, 0x02]) in d  # LED output report present
