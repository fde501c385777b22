"""`voicekey type` through the real gadget, decoded on the host side by the xkbcommon oracle."""

from __future__ import annotations

import time

import pytest

from tests.vm.guest import Guest
from tests.vm.keyboard import (CAPSLOCK_CODE, CAPSLOCK_USAGE, EVENTS, LAYOUTS, NATIVE, Recorder,
                               corpus_for, decode, describe_mismatch, leds, type_command, typeable)

LED_CAPSL = 1


def _type_and_decode(guest: Guest, layout: str, text: str, extra: str = ""):  # type: ignore[no-untyped-def]
    with Recorder(guest) as recorder:
        result = guest.run(type_command(layout, extra=extra), input=text, timeout=300)
        events = recorder.finish()
    assert result.rc == 0, f"voicekey type failed: {result.stderr}"
    return decode(events, layout), events, result


@pytest.mark.parametrize("layout", LAYOUTS)
def test_native_characters_are_typeable(layout: str) -> None:
    """Host-only guard for the corpus filter: the encoder must type each layout's own characters."""
    _, missing = typeable(NATIVE[layout], layout)
    assert missing == "", f"the encoder cannot type {missing!r} on {layout}"


@pytest.mark.vm
@pytest.mark.parametrize("layout", LAYOUTS)
def test_type_corpus(keyboard: Guest, layout: str) -> None:
    text = corpus_for(layout)
    decoded, events, result = _type_and_decode(keyboard, layout, text)
    assert "not typed" not in result.stderr, result.stderr
    assert decoded.text == text, describe_mismatch(text, decoded)
    assert decoded.held == frozenset()
    assert events, "no key events reached the host"


@pytest.mark.vm
def test_newline_and_tab_when_allowed(keyboard: Guest) -> None:
    text = "first line\nsecond\tcolumn\n\nend"
    decoded, _, _ = _type_and_decode(keyboard, "us", text, extra="--allow-newline --allow-tab")
    assert decoded.text == text, describe_mismatch(text, decoded)


def _caps_lock_led(guest: Guest, on: bool, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (LED_CAPSL in leds(guest)) == on:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.vm
@pytest.mark.parametrize("layout", ["us", "de"])
def test_type_with_host_caps_lock_on(keyboard: Guest, layout: str) -> None:
    text = "Hello World, MiXeD cAsE 123 ABC def!"
    with Recorder(keyboard) as recorder:
        try:
            # Press Caps Lock on the keyboard: the host's console keyboard handler locks caps and
            # sends the LED output report back to the gadget, as a desktop would.
            keyboard.run(f"python {EVENTS} tap {CAPSLOCK_USAGE:#x}").check()
            assert _caps_lock_led(keyboard, on=True), "the host did not light Caps Lock"
            result = keyboard.run(type_command(layout), input=text, timeout=300)
            assert result.rc == 0, result.stderr
            # Our transport must leave the host's Caps Lock as it found it.
            assert _caps_lock_led(keyboard, on=True), "Caps Lock was left off"
            events = recorder.finish()
        finally:
            if LED_CAPSL in leds(keyboard):
                keyboard.run(f"python {EVENTS} tap {CAPSLOCK_USAGE:#x}").check()
            assert _caps_lock_led(keyboard, on=False)
    assert events[0].code == CAPSLOCK_CODE and events[0].value == 1
    decoded = decode(events, layout)
    assert decoded.text == text, describe_mismatch(text, decoded)
