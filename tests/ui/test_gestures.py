import asyncio

from gpiozero.pins.mock import MockFactory

from appliance.ui.button import EdgeQueue, GpioButton
from appliance.ui.gestures import Gesture as G
from appliance.ui.gestures import GestureClassifier, GestureTiming
from appliance.ui.led import GpioLed, LedPattern

T = GestureTiming(hold_s=0.4, double_press_s=0.35, pairing_hold_s=8.0)


def feed(events):
    c = GestureClassifier(T)
    out = []
    for kind, t in events:
        out += getattr(c, kind)(t)
    return out


def test_hold_is_push_to_talk():
    assert feed([("pressed", 0), ("tick", 0.3), ("released", 1.5), ("tick", 3)]) == [G.PRESS, G.HOLD_END]


def test_tap_only_after_double_window():
    c = GestureClassifier(T)
    assert c.pressed(0) == [G.PRESS]
    assert c.released(0.1) == []
    assert c.tick(0.3) == []
    assert abs(c.deadline() - 0.451) < 1e-9
    assert c.tick(0.5) == [G.TAP]
    assert c.tick(0.6) == []


def test_double_press():
    assert feed([("pressed", 0), ("released", 0.1), ("pressed", 0.3), ("released", 0.4), ("tick", 2)]) \
        == [G.PRESS, G.DOUBLE]


def test_slow_second_press_is_two_taps():
    assert feed([("pressed", 0), ("released", 0.1), ("tick", 0.5), ("pressed", 1.0), ("released", 1.1),
                 ("tick", 2)]) == [G.PRESS, G.TAP, G.PRESS, G.TAP]


def test_second_press_before_tick_still_emits_pending_tap():
    assert feed([("pressed", 0), ("released", 0.1), ("pressed", 0.5)]) == [G.PRESS, G.TAP, G.PRESS]


def test_very_long_hold_is_pairing_then_its_release_ends_the_hold():
    """The controller decides: pairing when nothing was said, else a long dictation that the
    release ends."""
    assert feed([("pressed", 0), ("tick", 5), ("tick", 8.1), ("released", 9), ("tick", 10)]) \
        == [G.PRESS, G.LONG_HOLD, G.HOLD_END]


def test_bounce_edges_ignored():
    assert feed([("pressed", 0), ("pressed", 0.001), ("released", 1), ("released", 1.001)]) \
        == [G.PRESS, G.HOLD_END]


def test_gpiozero_button_edges_with_mock_pins():
    factory = MockFactory()

    async def scenario():
        edges = EdgeQueue()
        button = GpioButton(17, edges, pull_up=True, bounce_s=0, pin_factory=factory)
        pin = factory.pin(17)
        pin.drive_low()   # pressed: pulled-up pin shorted to ground
        pin.drive_high()  # released
        got = [await asyncio.wait_for(edges.queue.get(), 2) for _ in range(2)]
        button.close()
        return got

    got = asyncio.run(scenario())
    assert [e.pressed for e in got] == [True, False]
    assert got[0].t <= got[1].t


def test_gpiozero_led_plays_patterns_with_mock_pins():
    factory = MockFactory()

    async def scenario():
        led = GpioLed(27, pin_factory=factory)
        pin = factory.pin(27)
        led.show(LedPattern.READY)
        steady = pin.state
        led.show(LedPattern.TRANSCRIBING)
        seen = set()
        for _ in range(30):
            await asyncio.sleep(0.02)
            seen.add(pin.state)
        led.show(LedPattern.OFF)
        off = pin.state
        led.close()
        return steady, seen, off

    steady, seen, off = asyncio.run(scenario())
    assert steady == 1 and seen == {0, 1} and off == 0


def test_error_codes_are_distinct():
    codes = [p for p in LedPattern if p.name.startswith("ERROR_")]
    blinks = [sum(1 for on, _ in p.steps if on) for p in codes]
    assert len(set(blinks)) == len(codes)
