"""Layout data and loader: registry, errors, hand-checked entries, internal consistency."""

from __future__ import annotations

import json
import string
from importlib import resources

import pytest

from appliance.errors import LayoutError, VoiceKeyError
from appliance.hid import keycodes
from appliance.hid.layouts import available_layouts, load_layout, parse_press
from appliance.hid.report import MOD_LSHIFT, MOD_RALT

REQUIRED = ["us", "us(intl)", "gb", "de", "fr", "es", "it", "us(dvorak)"]

U = keycodes.USAGES


def test_required_layouts_are_available():
    assert set(REQUIRED) <= set(available_layouts())


def test_unknown_layout_names_the_layout_and_lists_the_available_ones():
    with pytest.raises(LayoutError) as info:
        load_layout("klingon")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, VoiceKeyError)
    text = str(err)
    assert "'klingon'" in text
    for name in REQUIRED:
        assert name in text
    assert err.fix


@pytest.mark.parametrize("bad", ["", "US", "us(", "us()", "de(nodeadkeys)", "../us", "us.intl"])
def test_malformed_or_unshipped_names_are_layout_errors(bad):
    with pytest.raises(LayoutError):
        load_layout(bad)


def test_loading_is_cached():
    assert load_layout("de") is load_layout("de")


def test_parse_press():
    assert parse_press("A") == (0, U["A"])
    assert parse_press("Shift+1") == (MOD_LSHIFT, U["1"])
    assert parse_press("AltGr+Q") == (MOD_RALT, U["Q"])
    assert parse_press("Shift+AltGr+NonUS_Backslash") == (MOD_LSHIFT | MOD_RALT, U["NonUS_Backslash"])
    with pytest.raises(ValueError, match="Ctrl"):
        parse_press("Ctrl+A")
    with pytest.raises(ValueError, match="Nope"):
        parse_press("Shift+Nope")


# Hand-checked against /usr/share/X11/xkb/symbols/<layout> (xkb-data 2.35.1). Two presses = dead key
# then base key (the Compose line <dead_x> <y> in /usr/share/X11/locale/en_US.UTF-8/Compose).
HAND_CHECKED = [
    ("us", "a", "A"), ("us", "A", "Shift+A"), ("us", "@", "Shift+2"), ("us", "~", "Shift+Grave"),
    ("us", "<", "Shift+Comma"), ("us", " ", "Space"),
    # de: QWERTZ (AD06 z, AB01 y), AE11 ssharp, AC11 adiaeresis, TLDE dead_circumflex/degree,
    # AE12 dead_acute/dead_grave, BKSL numbersign/apostrophe, LSGT less/greater/bar, AD01 @ (AltGr).
    ("de", "z", "Y"), ("de", "y", "Z"), ("de", "ß", "Minus"), ("de", "ä", "Apostrophe"),
    ("de", "Ü", "Shift+LeftBracket"), ("de", "°", "Shift+Grave"), ("de", "#", "Backslash"),
    ("de", "'", "Shift+Backslash"), ("de", "<", "NonUS_Backslash"), ("de", ">", "Shift+NonUS_Backslash"),
    ("de", "|", "AltGr+NonUS_Backslash"), ("de", "@", "AltGr+Q"), ("de", "€", "AltGr+E"),
    ("de", "§", "Shift+3"), ("de", "ê", "Grave E"), ("de", "Ê", "Grave Shift+E"),
    ("de", "^", "Grave Space"), ("de", "é", "Equal E"), ("de", "è", "Shift+Equal E"),
    ("de", "`", "Shift+Equal Space"),
    # fr: AZERTY, digits on Shift, AE02 eacute, AE09 ccedilla/9/asciicircum, AE10 agrave/0/at,
    # AD11 dead_circumflex/dead_diaeresis, AC11 ugrave/percent.
    ("fr", "a", "Q"), ("fr", "q", "A"), ("fr", "z", "W"), ("fr", "w", "Z"), ("fr", "m", "Semicolon"),
    ("fr", "1", "Shift+1"), ("fr", "é", "2"), ("fr", "ç", "9"), ("fr", "à", "0"),
    ("fr", "@", "AltGr+0"), ("fr", "^", "AltGr+9"), ("fr", "ù", "Apostrophe"),
    ("fr", "%", "Shift+Apostrophe"), ("fr", "ê", "LeftBracket E"), ("fr", "ë", "Shift+LeftBracket E"),
    ("fr", "Ê", "LeftBracket Shift+E"), ("fr", "²", "Grave"),
    ("fr", "Ç", "CapsLock 9 CapsLock"),  # Caps Lock capitalises ccedilla
    # es: AC10 ntilde, AE12 exclamdown/questiondown, AC11 dead_acute/dead_diaeresis, BKSL ccedilla.
    ("es", "ñ", "Semicolon"), ("es", "Ñ", "Shift+Semicolon"), ("es", "¡", "Equal"),
    ("es", "¿", "Shift+Equal"), ("es", "ç", "Backslash"), ("es", "á", "Apostrophe A"),
    ("es", "ü", "Shift+Apostrophe U"), ("es", "º", "Grave"), ("es", "@", "AltGr+2"),
    ("es", "'", "Minus"),
    # it: AD11 egrave/eacute, AC10 ograve/ccedilla, AC11 agrave/degree, AE12 igrave/asciicircum.
    ("it", "è", "LeftBracket"), ("it", "é", "Shift+LeftBracket"), ("it", "ò", "Semicolon"),
    ("it", "ç", "Shift+Semicolon"), ("it", "à", "Apostrophe"), ("it", "ì", "Equal"),
    ("it", "^", "Shift+Equal"), ("it", "ù", "Backslash"), ("it", "£", "Shift+3"),
    # gb: AE03 3/sterling, AC11 apostrophe/at, BKSL numbersign/asciitilde, LSGT backslash/bar.
    ("gb", "£", "Shift+3"), ("gb", "\"", "Shift+2"), ("gb", "@", "Shift+Apostrophe"),
    ("gb", "'", "Apostrophe"), ("gb", "#", "Backslash"), ("gb", "~", "Shift+Backslash"),
    ("gb", "\\", "NonUS_Backslash"), ("gb", "|", "Shift+NonUS_Backslash"), ("gb", "€", "AltGr+4"),
    # us(intl): AC11 dead_acute/dead_diaeresis/apostrophe/quotedbl, AE06 6/dead_circumflex,
    # TLDE dead_grave/dead_tilde, AD03 e/E/eacute, AD06 y/Y/udiaeresis, AD09 oacute, AD10 odiaeresis.
    ("us(intl)", "'", "AltGr+Apostrophe"), ("us(intl)", "\"", "Shift+AltGr+Apostrophe"),
    ("us(intl)", "é", "AltGr+E"), ("us(intl)", "ü", "AltGr+Y"), ("us(intl)", "ê", "Shift+6 E"),
    ("us(intl)", "ë", "Shift+Apostrophe E"), ("us(intl)", "è", "Grave E"),
    ("us(intl)", "ã", "Shift+Grave A"), ("us(intl)", "ó", "AltGr+O"), ("us(intl)", "ö", "AltGr+P"),
    # us(dvorak): AD01 apostrophe, AD02 comma, AD03 period, AC02 o, AC03 e, AB10 z, AE11 [ {.
    ("us(dvorak)", "'", "Q"), ("us(dvorak)", ",", "W"), ("us(dvorak)", ".", "E"),
    ("us(dvorak)", "o", "S"), ("us(dvorak)", "e", "D"), ("us(dvorak)", "z", "Slash"),
    ("us(dvorak)", "[", "Minus"), ("us(dvorak)", "{", "Shift+Minus"), ("us(dvorak)", "<", "Shift+W"),
]


@pytest.mark.parametrize(("layout", "char", "spec"), HAND_CHECKED)
def test_hand_checked_entries(layout, char, spec):
    expected = tuple(parse_press(p) for p in spec.split())
    assert load_layout(layout).presses(char) == expected


@pytest.mark.parametrize("name", REQUIRED)
def test_every_printable_ascii_character_is_typeable(name):
    layout = load_layout(name)
    missing = [c for c in string.ascii_letters + string.digits + string.punctuation + " "
               if layout.presses(c) is None]
    assert missing == []


@pytest.mark.parametrize("name", REQUIRED)
def test_layout_data_is_consistent(name):
    layout = load_layout(name)
    assert layout.name == name
    dead_presses = set(layout.dead_keys.values())
    caps = (0, U["CapsLock"])
    for char, presses in layout.chars.items():
        assert len(char) == 1
        assert 1 <= len(presses) <= 3, char
        for mods, key in presses:
            assert mods & ~(MOD_LSHIFT | MOD_RALT) == 0
            assert 0x04 <= key <= keycodes.BOOT_MAX_USAGE, (char, key)
            assert key not in (U["Enter"], U["Escape"], U["Backspace"], U["Tab"]), char
        if len(presses) == 2:
            assert presses[0] in dead_presses, f"{char!r}: first press is not a dead key"
        if len(presses) == 3:  # Caps Lock on, key, Caps Lock off
            assert presses[0] == presses[2] == caps and presses[1] != caps, char
        else:
            assert caps not in presses, char
    # no dead key is also listed as typing a character by itself
    single = {p[0] for p in layout.chars.values() if len(p) == 1}
    assert not single & dead_presses


def test_us_has_no_altgr_and_no_dead_keys():
    layout = load_layout("us")
    assert not layout.dead_keys
    assert all(mods & MOD_RALT == 0 for presses in layout.chars.values() for mods, _ in presses)
    assert len(layout.chars) == 95  # printable ASCII and space


def test_files_are_named_after_the_xkb_name():
    folder = resources.files("appliance.hid.layouts")
    for name in available_layouts():
        base, _, variant = name.rstrip(")").partition("(")
        file_name = f"{base}.{variant}.json" if variant else f"{base}.json"
        doc = json.loads(folder.joinpath(file_name).read_text(encoding="utf-8"))
        assert doc["name"] == name
