"""Property tests: any text, any layout, any options -> well-formed strokes the host decodes."""

from __future__ import annotations

import string
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.hid.encoder import EncoderOptions, encode
from appliance.hid.layouts import available_layouts
from appliance.hid.report import RELEASE_ALL, parse_report
from tests.oracle.xkb import XkbDecoder, report_events

layouts = st.sampled_from(available_layouts())
options = st.builds(
    EncoderOptions,
    unmapped=st.sampled_from(["transliterate", "skip", "unicode"]),
    host_os=st.sampled_from(["linux", "windows", "macos"]),
    allow_newline=st.booleans(),
    allow_tab=st.booleans(),
    use_capslock=st.booleans(),
)
# Plain st.text() plus text rich in the characters that matter here.
tricky = st.text(alphabet=st.sampled_from(
    list(string.printable) + list("\x1b[]\x07\x9b\x9c\x9d\r\n\t\x00\x7féèêëÉçÇĐñßüÜ’“”—…€£¿¡«»²°§"
                                  "\u0301\u0308\u0327\u200b\u202e\ud800😀中ǘﬁ½")), max_size=60)
texts = st.one_of(st.text(), tricky)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _check_strokes(result) -> None:
    for stroke in result.strokes:
        assert stroke.reports, stroke
        assert stroke.reports[-1] == RELEASE_ALL
        previous = RELEASE_ALL
        for report in stroke.reports:
            assert len(report) == 8 and report[1] == 0
            mods, keys = parse_report(report)
            assert len(keys) == len(set(keys)), f"a key twice in one report: {report.hex()}"
            assert len(keys) <= 1
            if keys:
                prev_mods, prev_keys = parse_report(previous)
                # the same key is never pressed twice without a release in between
                assert not set(keys) & set(prev_keys)
                if mods:
                    # the modifiers were pressed on their own, in the report just before
                    assert prev_mods == mods and prev_keys == ()
            previous = report


@SETTINGS
@given(text=texts, layout=layouts, opts=options)
def test_any_text_gives_well_formed_strokes(text, layout, opts):
    result = encode(text, layout, opts)
    _check_strokes(result)
    for skipped in result.skipped:
        assert text[skipped.index:].startswith(skipped.char[:1])


@SETTINGS
@given(text=texts, layout=layouts, opts=options)
def test_host_never_has_a_key_held_after_a_stroke(text, layout, opts):
    result = encode(text, layout, opts)
    decoder = XkbDecoder(layout)
    previous = RELEASE_ALL
    for stroke in result.strokes:
        for report in stroke.reports:
            for code, pressed in report_events(previous, report):
                decoder.key(code, pressed)
            previous = report
        assert decoder.held == frozenset()


@SETTINGS
@given(text=texts, layout=layouts,
       unmapped=st.sampled_from(["transliterate", "skip"]),
       allow_newline=st.booleans(), allow_tab=st.booleans(), use_capslock=st.booleans())
def test_host_sees_exactly_the_text_the_encoder_claims(text, layout, unmapped, allow_newline,
                                                       allow_tab, use_capslock):
    opts = EncoderOptions(unmapped=unmapped, allow_newline=allow_newline, allow_tab=allow_tab,
                          use_capslock=use_capslock)
    result = encode(text, layout, opts)
    decoder = XkbDecoder(layout)
    previous = RELEASE_ALL
    for report in result.reports:
        for code, pressed in report_events(previous, report):
            decoder.key(code, pressed)
        previous = report
    assert decoder.text == result.text
    allowed = ("\n" if allow_newline else "") + ("\t" if allow_tab else "")
    assert not [c for c in decoder.text
                if unicodedata.category(c) in ("Cc", "Cs") and c not in allowed]


@SETTINGS
@given(text=st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " "),
       layout=layouts)
def test_printable_ascii_round_trips_on_every_layout(text, layout):
    result = encode(text, layout)
    assert result.skipped == []
    decoder = XkbDecoder(layout)
    previous = RELEASE_ALL
    for report in result.reports:
        for code, pressed in report_events(previous, report):
            decoder.key(code, pressed)
        previous = report
    assert decoder.text == text
