"""Encoder: exact bytes, round trips through the xkbcommon oracle, policies, controls, escapes."""

from __future__ import annotations

import pytest

from appliance.errors import ConfigError, LayoutError
from appliance.hid import keycodes
from appliance.hid.encoder import (EncoderOptions, Skipped, backspace_strokes, capslock_stroke,
                                   encode)
from appliance.hid.layouts import available_layouts, load_layout
from appliance.hid.report import RELEASE_ALL, keyboard_report, parse_report
from tests.oracle.xkb import XkbDecoder, decode_reports, report_events

LAYOUTS = ["us", "us(intl)", "gb", "de", "fr", "es", "it", "us(dvorak)"]
U = keycodes.USAGES
Z = RELEASE_ALL


def R(*data: int) -> bytes:
    return bytes(data) + bytes(8 - len(data))


# --- exact bytes ------------------------------------------------------------------------------

def test_capital_a_on_us_is_shift_then_shift_a_then_release():
    result = encode("A", "us")
    assert [s.reports for s in result.strokes] == [(R(0x02), R(0x02, 0, 0x04), Z)]
    assert result.strokes[0].text == "A"
    assert result.skipped == []


def test_repeated_letter_has_a_release_between():
    assert encode("aa", "us").reports == [R(0, 0, 0x04), Z, R(0, 0, 0x04), Z]


EXACT = [
    ("us", "a", [R(0, 0, 0x04), Z]),
    ("us", "1", [R(0, 0, 0x1E), Z]),
    ("us", "!", [R(0x02), R(0x02, 0, 0x1E), Z]),
    ("us", " ", [R(0, 0, 0x2C), Z]),
    ("de", "z", [R(0, 0, 0x1C), Z]),  # QWERTZ: z is on the Y key
    ("de", "@", [R(0x40), R(0x40, 0, 0x14), Z]),  # AltGr = Right Alt
    ("de", "£", [R(0x42), R(0x42, 0, 0x20), Z]),  # Shift+AltGr+3
    ("de", "ê", [R(0, 0, 0x35), Z, R(0, 0, 0x08), Z]),  # dead ^, then e
    ("de", "Ê", [R(0, 0, 0x35), Z, R(0x02), R(0x02, 0, 0x08), Z]),
    ("de", "^", [R(0, 0, 0x35), Z, R(0, 0, 0x2C), Z]),  # dead ^ + space
    ("fr", "a", [R(0, 0, 0x14), Z]),  # AZERTY: a is on the Q key
    ("fr", "1", [R(0x02), R(0x02, 0, 0x1E), Z]),
    ("fr", "ë", [R(0x02), R(0x02, 0, 0x2F), Z, R(0, 0, 0x08), Z]),  # dead ¨ (Shift), e
    ("es", "á", [R(0, 0, 0x34), Z, R(0, 0, 0x04), Z]),  # dead ´, a
    ("us(intl)", "ü", [R(0x40), R(0x40, 0, 0x1C), Z]),  # AltGr+y
    ("us(intl)", "ë", [R(0x02), R(0x02, 0, 0x34), Z, R(0, 0, 0x08), Z]),  # dead ", e
    ("us(dvorak)", "e", [R(0, 0, 0x07), Z]),  # the D key
    ("gb", "\\", [R(0, 0, 0x64), Z]),  # the ISO key
]


@pytest.mark.parametrize(("layout", "char", "reports"), EXACT)
def test_exact_bytes(layout, char, reports):
    result = encode(char, layout)
    assert len(result.strokes) == 1
    assert list(result.strokes[0].reports) == reports
    assert decode_reports(reports, layout) == char


def test_layout_object_and_name_give_the_same_result():
    assert encode("Grüße", load_layout("de")).reports == encode("Grüße", "de").reports


def test_unknown_layout_name_raises_layout_error():
    with pytest.raises(LayoutError, match="xx"):
        encode("a", "xx")


# --- the oracle on its own (so a wrong oracle cannot hide a wrong encoder) --------------------

def test_oracle_decodes_hand_built_reports():
    de_z = [R(0, 0, 0x1C), Z]
    assert decode_reports(de_z, "de") == "z"
    assert decode_reports(de_z, "us") == "y"
    assert decode_reports([R(0x02), R(0x02, 0, 0x04), Z], "fr") == "Q"
    assert decode_reports([R(0, 0, 0x2F), Z, R(0, 0, 0x08), Z], "fr") == "ê"
    assert decode_reports([R(0, 0, 0x04), Z, R(0, 0, 0x2A), Z], "us") == ""
    assert decode_reports([R(0, 0, 0x28), Z, R(0, 0, 0x2B), Z], "us") == "\n\t"
    assert decode_reports([R(0x01), R(0x01, 0, 0x04), Z], "us") == ""  # Ctrl+A is a shortcut


def test_oracle_follows_hid_input_event_order():
    assert report_events(Z, R(0x02, 0, 0x04)) == [(42, True), (30, True)]
    assert report_events(R(0x02, 0, 0x04), Z) == [(42, False), (30, False)]
    assert report_events(R(0, 0, 0x04), R(0, 0, 0x05)) == [(30, False), (48, True)]
    assert report_events(Z, R(0, 0, 0x68)) == []  # F13 is beyond the descriptor's Logical Max


def test_oracle_usage_table_matches_linux_headers():
    import re
    from pathlib import Path

    from tests.oracle.xkb import hid_usage_to_evdev

    header = Path("/usr/include/linux/input-event-codes.h")
    if not header.exists():
        pytest.skip("linux-libc-dev headers not installed")
    codes = dict(re.findall(r"#define (KEY_\w+)\s+(\d+)", header.read_text()))
    expect = {"A": "KEY_A", "Z": "KEY_Z", "1": "KEY_1", "0": "KEY_0", "Enter": "KEY_ENTER",
              "NonUS_Hash": "KEY_BACKSLASH", "Backslash": "KEY_BACKSLASH",
              "NonUS_Backslash": "KEY_102ND", "Grave": "KEY_GRAVE", "Period": "KEY_DOT",
              "KP_Plus": "KEY_KPPLUS", "KP_0": "KEY_KP0", "KP_9": "KEY_KP9", "F12": "KEY_F12",
              "CapsLock": "KEY_CAPSLOCK", "RightAlt": "KEY_RIGHTALT", "LeftShift": "KEY_LEFTSHIFT",
              "Application": "KEY_COMPOSE", "Up": "KEY_UP", "F24": "KEY_F24"}
    for name, key in expect.items():
        assert hid_usage_to_evdev(U[name]) == int(codes[key]), name


# --- round trips through the oracle -----------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_character_of_the_layout_round_trips(layout):
    table = load_layout(layout)
    wrong = {}
    options = EncoderOptions(use_capslock=True, unmapped="skip")
    for char in table.chars:
        got = decode_reports(encode(char, layout, options).reports, layout)
        if got != char:
            wrong[char] = got
    assert wrong == {}


CORPUS = [
    "Hello, World!",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX; 0123456789",
    "Mississippi aa bb ll oo ss tt zz 11 00 ..",
    "mIxEd CaSe sTrInG",
    "punctuation: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "e-mail: someone@example.com, path C:\\Users\\x, url https://x.org/?a=1&b=2#frag",
    "price: $5.99 (50% off) - 3 * 4 = 12",
    "^^ `` ~~ '' \"\" ^a `e ~n 'o \"u",
]
SPECIALS = {
    "us(intl)": ["naïve café, señor, Ångström, über, ça va? ¿Qué? ¡Sí!", "éé üü"],
    "gb": ["£100, that's €5 too", "\\|¬"],
    "de": ["Grüße aus Köln: Straße, Übermaß, Ärger, €5, 50°, §3, µ", "êê ^^ éé"],
    "fr": ["ça a été très déçu : « où » ? 1² ; l'été, Noël, naïve, €", "ù ê î ô û ë ï ü ÿ"],
    "es": ["¿Qué tal? ¡Mañana! Pingüino, acción, ñandú, º ª", "áéíóú ÁÉÍÓÚ"],
    "it": ["Perché è così? Più città, però: àèéìòù, £ €, °", "ç §"],
    "us(dvorak)": ["Dvorak: aoeui dhtns ;qjkx pyfgc rl',.", "{}[]/=\\-"],
    "us": ["plain ASCII only"],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_corpus_round_trips(layout):
    for text in CORPUS + SPECIALS[layout]:
        result = encode(text, layout)
        assert result.skipped == []
        assert result.text == text
        assert decode_reports(result.reports, layout) == text


# --- unmapped characters ----------------------------------------------------------------------

def test_transliterate_is_the_default_and_types_close_ascii_on_us():
    result = encode("naïve café — “quoted” ‘x’ … Straße ﬁ ½ ²", "us")
    expected = "naive cafe - \"quoted\" 'x' ... Strasse fi 1/2 2"
    assert result.text == expected
    assert decode_reports(result.reports, "us") == expected
    assert result.skipped == []


def test_transliterate_keeps_what_the_layout_has():
    assert encode("café 中 Grüße", "de").text == "café Zhong Grüße"
    # ṻ (u + macron + diaeresis): de has no macron dead key but has ü
    assert encode("ṻ", "de").text == "ü"
    assert encode("ṻ", "us").text == "u"


def test_capslock_characters_only_when_asked():
    assert encode("Ça", "fr").text == "Ca"
    result = encode("Ça", "fr", EncoderOptions(use_capslock=True))
    assert result.text == "Ça"
    caps = R(0, 0, U["CapsLock"])
    assert list(result.strokes[0].reports) == [caps, Z, R(0, 0, U["9"]), Z, caps, Z]
    assert decode_reports(result.reports, "fr") == "Ça"


def test_decomposed_input_is_composed_first():
    result = encode("cafe\u0301", "de")
    assert result.text == "café"
    assert decode_reports(result.reports, "de") == "café"
    assert encode("cafe\u0301", "us").text == "cafe"


def test_spacing_accent_transliterates_to_a_quote_not_a_space():
    assert encode("´", "us").text == "'"


def test_untransliterable_character_is_skipped_and_reported():
    result = encode("a\ue000b", "us")  # private use: no transliteration exists
    assert result.text == "ab"
    assert [(s.index, s.char) for s in result.skipped] == [(1, "\ue000")]


def test_skip_policy():
    result = encode("a→b é", "us", EncoderOptions(unmapped="skip"))
    assert result.text == "ab "
    assert [(s.index, s.char) for s in result.skipped] == [(1, "→"), (4, "é")]
    assert all("us" in s.reason for s in result.skipped)
    # but a character the layout has is typed, not skipped
    assert encode("é", "de", EncoderOptions(unmapped="skip")).text == "é"


def test_unicode_policy_linux_ctrl_shift_u():
    for layout in ("us", "fr", "de"):
        result = encode("x☃", layout, EncoderOptions(unmapped="unicode", host_os="linux"))
        assert [s.text for s in result.strokes] == ["x", "☃"]
        reports = result.strokes[1].reports
        assert reports[:3] == (R(0x03), R(0x03, 0, U["U"]), Z)
        # the rest types the hex digits and Space as the layout does (IBus reads keysyms)
        assert decode_reports(reports[3:], layout) == "2603 "
        # Ctrl+Shift+U itself types nothing on a plain desktop
        assert decode_reports(reports, layout) == "2603 "


def test_unicode_policy_windows_alt_numpad_plus():
    result = encode("é", "us", EncoderOptions(unmapped="unicode", host_os="windows"))
    (stroke,) = result.strokes
    alt = 0x04
    assert list(stroke.reports) == [
        R(alt), R(alt, 0, U["KP_Plus"]), R(alt),
        R(alt, 0, U["E"]), R(alt),
        R(alt, 0, U["KP_9"]), R(alt),
        Z]


def test_unicode_policy_windows_uses_the_layouts_letter_keys():
    (stroke,) = encode("\u00ea", "us", EncoderOptions(unmapped="unicode", host_os="windows")).strokes
    keys = [parse_report(r)[1] for r in stroke.reports]
    assert (U["E"],) in keys and (U["A"],) in keys
    # on AZERTY the letter a is on the Q key
    (stroke,) = encode("\u4e2a", "fr", EncoderOptions(unmapped="unicode", host_os="windows")).strokes
    assert (U["Q"],) in [parse_report(r)[1] for r in stroke.reports]


def test_unicode_policy_macos_option_hex_with_surrogates():
    (stroke,) = encode("😀", "de", EncoderOptions(unmapped="unicode", host_os="macos")).strokes
    keys = [parse_report(r)[1][0] for r in stroke.reports if parse_report(r)[1]]
    hexkeys = {U[c.upper()]: c for c in "0123456789abcdef"}
    assert "".join(hexkeys[k] for k in keys) == "d83dde00"  # U+1F600 as UTF-16
    assert all(parse_report(r)[0] == 0x04 for r in stroke.reports if parse_report(r)[1])
    assert stroke.reports[-1] == Z
    (stroke,) = encode("→", "us", EncoderOptions(unmapped="unicode", host_os="macos")).strokes
    keys = [parse_report(r)[1][0] for r in stroke.reports if parse_report(r)[1]]
    assert "".join(hexkeys[k] for k in keys) == "2192"


def test_unicode_policy_prefers_the_layout():
    result = encode("é", "de", EncoderOptions(unmapped="unicode"))
    assert decode_reports(result.reports, "de") == "é"


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="sometimes"):
        EncoderOptions(unmapped="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="beos"):
        EncoderOptions(host_os="beos")  # type: ignore[arg-type]


# --- whitespace, controls and escape sequences ------------------------------------------------

def test_newlines_and_tabs_are_skipped_when_not_allowed():
    result = encode("a\nb\r\nc\td\re", "us", EncoderOptions(allow_newline=False, allow_tab=False))
    assert result.text == "abcde"
    assert decode_reports(result.reports, "us") == "abcde"
    assert [(s.index, s.char) for s in result.skipped] == [(1, "\n"), (3, "\r\n"), (6, "\t"), (8, "\r")]


def test_newlines_and_tabs_when_allowed():
    options = EncoderOptions(allow_newline=True, allow_tab=True)
    result = encode("a\nb\r\nc\td", "us", options)
    assert decode_reports(result.reports, "us") == "a\nb\nc\td"
    assert result.skipped == []
    enter = [s for s in result.strokes if s.text == "\n"]
    assert len(enter) == 2 and enter[0].reports == (R(0, 0, U["Enter"]), Z)


ESCAPES = [
    "\x1b[31m", "\x1b[0m", "\x1b[?25l", "\x1b[2J", "\x1b[1;31;42m", "\x1b]0;title\x07",
    "\x1b]8;;https://evil.example/\x1b\\", "\x1bP1$r\x1b\\", "\x1b_apc\x1b\\", "\x1b(B", "\x1b7",
    "\x1bc", "\x1bY", "\x9b31m", "\x9d0;t\x9c",
]


@pytest.mark.parametrize("seq", ESCAPES)
def test_escape_sequences_are_skipped_whole(seq):
    result = encode(f"X{seq}Y", "us")
    assert result.text == "XY"
    assert decode_reports(result.reports, "us") == "XY"
    assert result.skipped == [Skipped(1, seq, "terminal escape sequence")]


def test_lone_escape_is_skipped():
    for text, typed in (("X\x1b", "X"), ("X\x1b\x1b[0mY", "XY"), ("X\x1b\u00e9Y", "XeY")):
        result = encode(text, "us")
        assert result.text == typed
        assert result.skipped[0] == Skipped(1, "\x1b", "terminal escape sequence")


def test_unterminated_osc_swallows_the_rest():
    result = encode("ok\x1b]0;rm -rf /", "us")
    assert result.text == "ok"
    assert result.skipped[0].char == "\x1b]0;rm -rf /"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x7f", "\x85", "\x9c",
                                  "\u202e", "\u2066", "\ud800", "\udfff"])
def test_control_characters_are_never_typed(char):
    for policy in ("transliterate", "skip", "unicode"):
        result = encode(f"a{char}b", "us", EncoderOptions(unmapped=policy))
        assert result.text == "ab", policy
        assert [s.index for s in result.skipped] == [1]


def test_no_control_key_appears_in_text_strokes():
    result = encode("ab\x1b[Ac\x08d\x7f", "us")
    used = {k for r in result.reports for k in parse_report(r)[1]}
    assert not used & {U["Escape"], U["Backspace"], U["Delete"], U["Enter"], U["Tab"], U["Up"]}


# --- helpers for the shaper and the transport -------------------------------------------------

def test_backspace_strokes():
    strokes = backspace_strokes(3)
    assert len(strokes) == 3
    assert all(s.reports == (R(0, 0, U["Backspace"]), Z) for s in strokes)
    typed = encode("hello", "us").reports
    assert decode_reports(typed + [r for s in strokes for r in s.reports], "us") == "he"
    assert backspace_strokes(0) == []
    with pytest.raises(ValueError):
        backspace_strokes(-1)


def test_capslock_stroke():
    assert capslock_stroke().reports == (R(0, 0, U["CapsLock"]), Z)


def test_decoder_never_leaves_keys_held_after_each_stroke():
    for layout in available_layouts():
        decoder = XkbDecoder(layout)
        previous = Z
        for stroke in encode("Grüße, Ça ¿Qué? ^é → 😀", layout,
                             EncoderOptions(unmapped="unicode")).strokes:
            for report in stroke.reports:
                for code, pressed in report_events(previous, report):
                    decoder.key(code, pressed)
                previous = report
            assert decoder.held == frozenset(), (layout, stroke)


def test_encoding_is_cached_per_layout_and_shares_strokes():
    a1 = encode("a", "de").strokes[0]
    a2 = encode("a", "de").strokes[0]
    assert a1 is a2
    assert keyboard_report(0, (U["A"],)) in a1.reports
