import asyncio

from appliance.hid.report import LED_CAPS_LOCK, MOD_LSHIFT, RELEASE_ALL, keyboard_report
from appliance.hid.stroke import Stroke
from appliance.transport.fake import FakeHidDevice
from appliance.transport.typist import Typist, TypingOptions

FAST = TypingOptions(rate=0, host_poll_s=0, settle_s=0, give_up_s=5)
CAPS = Stroke("", (keyboard_report(0, [0x39]), RELEASE_ALL))


def letter(ch: str) -> Stroke:
    usage = 0x04 + ord(ch.lower()) - ord("a")
    if ch.isupper():
        return Stroke(ch, (keyboard_report(MOD_LSHIFT), keyboard_report(MOD_LSHIFT, [usage]), RELEASE_ALL))
    return Stroke(ch, (keyboard_report(0, [usage]), RELEASE_ALL))


def strokes(text: str) -> list[Stroke]:
    return [letter(c) for c in text]


def host_text(reports: list[bytes]) -> str:
    """Decode key-down edges of a letters-only report stream (what a host would type)."""
    out, prev = [], set()
    for r in reports:
        mods, keys = r[0], {k for k in r[2:] if k}
        for k in keys - prev:
            if 0x04 <= k <= 0x1D:
                c = chr(ord("a") + k - 0x04)
                out.append(c.upper() if mods & MOD_LSHIFT else c)
        prev = keys
    return "".join(out)


def run(coro):
    return asyncio.run(coro)


def test_types_everything_with_release_first_and_last():
    dev = FakeHidDevice()
    res = run(Typist(dev, FAST).type(strokes("Hello")))
    assert res.complete and res.typed == "Hello"
    assert dev.reports[0] == RELEASE_ALL and dev.reports[-1] == RELEASE_ALL
    assert host_text(dev.reports) == "Hello"


def test_resumes_after_unplug_without_loss_or_double():
    for n in range(1, 12):  # 12 reports: release, 5 strokes, release
        for delivered in (False, True):
            dev = FakeHidDevice()
            dev.unplug_after = n
            dev.delivered_on_unplug = delivered
            dev.replug_after_polls = 3
            res = run(Typist(dev, FAST).type(strokes("aaBcD")))
            assert res.complete, (n, delivered)
            assert res.reconnects == 1
            assert host_text(dev.reports) == "aaBcD", (n, delivered, dev.reports)
            assert dev.reports[-1] == RELEASE_ALL


def test_resume_presses_modifier_in_its_own_report_first():
    dev = FakeHidDevice()
    dev.unplug_after = 3  # release-all, Shift, Shift+A -> the key report is lost
    dev.replug_after_polls = 1
    run(Typist(dev, FAST).type(strokes("A")))
    shift_a = keyboard_report(MOD_LSHIFT, [0x04])
    i = dev.reports.index(shift_a)
    assert dev.reports[i - 1] == keyboard_report(MOD_LSHIFT)


def test_gives_up_and_keeps_pending_text():
    dev = FakeHidDevice()
    dev.unplug_after = 4
    opts = TypingOptions(rate=0, host_poll_s=0.01, settle_s=0, give_up_s=0.05)
    res = run(Typist(dev, opts).type(strokes("abcdef")))
    assert not res.complete
    assert res.typed + "".join(s.text for s in res.pending) == "abcdef"
    assert host_text(dev.reports) == res.typed


def test_caps_lock_on_is_toggled_off_and_restored():
    dev = FakeHidDevice(leds=LED_CAPS_LOCK)
    res = run(Typist(dev, FAST, capslock=CAPS).type(strokes("aB")))
    assert res.complete
    caps_presses = [i for i, r in enumerate(dev.reports) if r == CAPS.reports[0]]
    assert len(caps_presses) == 2
    assert caps_presses[0] < dev.reports.index(keyboard_report(0, [0x04])) < caps_presses[1]
    assert dev.leds & LED_CAPS_LOCK  # the user's Caps Lock is back on


def test_caps_lock_off_is_left_alone():
    dev = FakeHidDevice()
    run(Typist(dev, FAST, capslock=CAPS).type(strokes("ab")))
    assert CAPS.reports[0] not in dev.reports


def test_cancel_releases_all_keys():
    dev = FakeHidDevice()

    async def scenario():
        task = asyncio.create_task(Typist(dev, TypingOptions(rate=200)).type(strokes("abcdefghij" * 5)))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    run(scenario())
    assert dev.reports[-1] == RELEASE_ALL
    assert len(host_text(dev.reports)) < 50


def test_pacing_schedules_one_report_per_interval():
    dev = FakeHidDevice()
    frozen = [100.0]
    typist = Typist(dev, TypingOptions(rate=1000), clock=lambda: frozen[0])
    run(typist.type(strokes("ab")))
    # release, a, release, b, release, release: six writes, each booked 1 ms after the previous
    assert len(dev.reports) == 6
    assert abs(typist._next_write - (100.0 + 0.006)) < 1e-9
