"""The input-device trigger against the fake backend (a real pipe fd, so add_reader really runs)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from appliance.errors import ButtonError, VoiceKeyError
from appliance.ui.button import Edge, EdgeQueue
from appliance.ui.input_key import (FakeInputBackend, FakeInputDevice, InputKeyButton, KeyEvent,
                                    probe)

PEDAL = Path("/dev/input/by-id/usb-PCsensor_FootSwitch-event-kbd")


def pedal(**kw) -> tuple[FakeInputDevice, FakeInputBackend]:
    dev = FakeInputDevice(kw.pop("keys", ("KEY_F13", "KEY_A", "KEY_B")), "PCsensor FootSwitch", **kw)
    return dev, FakeInputBackend({PEDAL: dev})


async def drain(edges: EdgeQueue, settle: float = 0.05) -> list[Edge]:
    """Let the loop run the reader, then take every edge pushed so far."""
    await asyncio.sleep(settle)
    got = []
    while not edges.queue.empty():
        got.append(edges.queue.get_nowait())
    return got


def run(scenario):
    return asyncio.run(scenario())


def test_press_release_become_edges_in_order():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        button = InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend)
        t0 = time.monotonic()
        dev.press("KEY_F13", t=t0)
        dev.release("KEY_F13", t=t0 + 0.4)
        dev.press("KEY_F13")
        first = await drain(edges)
        dev.release("KEY_F13")
        second = await drain(edges)
        button.close()
        return t0, first, second

    t0, first, second = run(scenario)
    assert [e.pressed for e in first] == [True, False, True]
    assert [e.t for e in first[:2]] == [t0, t0 + 0.4]  # the event's own time, not when it was read
    assert [e.pressed for e in second] == [False]


def test_other_keys_and_autorepeat_are_ignored():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        with InputKeyButton(PEDAL, "key_f13", edges, backend=backend):
            dev.press("KEY_A")
            dev.press("KEY_F13")
            dev.repeat("KEY_F13", n=5)
            dev.release("KEY_A")
            dev.repeat("KEY_F13")
            dev.release("KEY_F13")
            return await drain(edges)

    assert [e.pressed for e in run(scenario)] == [True, False]


def test_timestamps_on_another_clock_fall_back_to_now():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        with InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend):
            before = time.monotonic()
            dev.press(t=time.time())  # wall clock: decades away from the monotonic clock
            got = await drain(edges)
            return before, got

    before, got = run(scenario)
    assert len(got) == 1 and before <= got[0].t <= time.monotonic()


def test_unknown_key_name_suggests_close_names():
    _, backend = pedal()

    async def scenario():
        InputKeyButton(PEDAL, "KEY_F31", EdgeQueue(), backend=backend)

    with pytest.raises(ButtonError) as err:
        run(scenario)
    assert "KEY_F31 is not a Linux key name" in err.value.message
    assert "did you mean" in err.value.fix and "KEY_F13" in err.value.fix and "evtest" in err.value.fix
    assert isinstance(err.value, VoiceKeyError) and isinstance(err.value, OSError)


def test_key_not_on_the_device_lists_its_keys():
    dev, backend = pedal(keys=("KEY_A", "KEY_B", "KEY_C"))

    async def scenario():
        InputKeyButton(PEDAL, "KEY_F13", EdgeQueue(), backend=backend)

    with pytest.raises(ButtonError) as err:
        run(scenario)
    msg = err.value.message
    assert "has no key KEY_F13" in msg and "PCsensor FootSwitch" in msg
    assert "KEY_A, KEY_C, KEY_B" in msg  # in code order: 30, 46, 48
    assert "trigger.key" in err.value.fix
    assert dev.closed and not dev.grabbed


def test_many_keys_are_listed_briefly_with_preferred_names():
    dev = FakeInputDevice(["KEY_ESC", "KEY_1", "KEY_2", "KEY_3", "KEY_A", "KEY_B", "KEY_C", "KEY_SPACE",
                           "KEY_F1", "KEY_F5", "KEY_F12", "KEY_PAGEUP", "KEY_PAGEDOWN", "KEY_MUTE",
                           "BTN_LEFT"])
    with pytest.raises(ButtonError) as err:
        probe(PEDAL, "KEY_F13", FakeInputBackend({PEDAL: dev}))
    assert "and 3 more" in err.value.message
    assert "KEY_MIN_INTERESTING" not in err.value.message


def test_missing_device():
    async def scenario():
        InputKeyButton(Path("/dev/input/by-id/gone-event-kbd"), "KEY_F13", EdgeQueue(),
                       backend=FakeInputBackend())

    with pytest.raises(ButtonError) as err:
        run(scenario)
    assert "does not exist" in err.value.message and "/dev/input/by-id" in err.value.fix


def test_permission_denied_names_the_service_settings():
    dev, _ = pedal()
    backend = FakeInputBackend({PEDAL: dev}, denied=[PEDAL])
    with pytest.raises(ButtonError) as err:
        probe(PEDAL, "KEY_F13", backend)
    assert "permission denied" in err.value.message
    assert "DeviceAllow=char-input" in err.value.fix and "input" in err.value.fix


def test_not_an_input_device():
    with pytest.raises(ButtonError) as err:
        probe(Path("/tmp/x"), "KEY_F13", FakeInputBackend(not_input=["/tmp/x"]))
    assert "not an input event device" in err.value.message


def test_grabbed_by_another_program():
    dev, backend = pedal(grabbed_elsewhere=True)

    async def scenario():
        InputKeyButton(PEDAL, "KEY_F13", EdgeQueue(), backend=backend)

    with pytest.raises(ButtonError) as err:
        run(scenario)
    assert "grabbed by another program" in err.value.message and "trigger.grab: false" in err.value.fix
    assert dev.closed


def test_grab_false_does_not_grab():
    dev, backend = pedal()

    async def scenario():
        with InputKeyButton(PEDAL, "KEY_F13", EdgeQueue(), grab=False, backend=backend):
            return dev.grabbed

    assert run(scenario) is False and dev.grab_count == 0 and dev.ungrab_count == 0


def test_unplug_while_held_releases_and_sets_failed():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        button = InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend)
        dev.press()
        pressed = await drain(edges)
        assert button.failed is None
        dev.unplug()
        after = await drain(edges)
        button.close()  # still fine afterwards
        return button, pressed, after

    button, pressed, after = run(scenario)
    assert [e.pressed for e in pressed] == [True]
    assert [e.pressed for e in after] == [False]
    assert isinstance(button.failed, ButtonError) and "unplugged" in button.failed.message
    assert dev.closed and not button.pressed


def test_unplug_while_up_pushes_nothing():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        button = InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend)
        dev.unplug()
        return button, await drain(edges)

    button, got = run(scenario)
    assert got == [] and button.failed is not None


def test_recreated_after_replug():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend)
        dev.unplug()
        await drain(edges)
        with pytest.raises(ButtonError):  # still away
            InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend)
        dev.unplugged = False  # plugged back in
        with InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend):
            dev.press()
            return await drain(edges)

    assert [e.pressed for e in run(scenario)] == [True]


def test_close_ungrabs_closes_and_releases_a_held_key():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        button = InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend)
        grabbed = dev.grabbed
        dev.press()
        await drain(edges)
        button.close()
        button.close()  # idempotent
        dev.release()  # nobody reads any more
        return grabbed, await drain(edges)

    grabbed, after_close = run(scenario)
    assert grabbed and not dev.grabbed and dev.ungrab_count == 1 and dev.closed
    assert [e.pressed for e in after_close] == [False]  # the release close() pushed, nothing else


def test_overflow_resyncs_the_key_state():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        with InputKeyButton(PEDAL, "KEY_F13", edges, backend=backend):
            dev.press()
            first = await drain(edges)
            dev.overflow(held=[])  # the release was lost in the overflow
            second = await drain(edges)
            dev.overflow(held=[])  # nothing changed: no edge
            return first, second, await drain(edges)

    first, second, third = run(scenario)
    assert [e.pressed for e in first] == [True] and [e.pressed for e in second] == [False] and third == []


def test_construct_from_another_thread_reads_in_the_loop():
    dev, backend = pedal()

    async def scenario():
        edges = EdgeQueue()
        button = await asyncio.to_thread(InputKeyButton, PEDAL, "KEY_F13", edges, backend=backend)
        await asyncio.sleep(0.02)
        dev.press()
        got = await drain(edges)
        await asyncio.to_thread(button.close)
        await asyncio.sleep(0.02)
        return got

    assert [e.pressed for e in run(scenario)] == [True]
    assert dev.closed


def test_probe_reports_name_and_keys():
    dev, backend = pedal()
    found = probe(PEDAL, "KEY_F13", backend)
    assert found.name == "PCsensor FootSwitch" and found.code == 183
    assert found.keys == ("KEY_A", "KEY_B", "KEY_F13") and dev.closed and dev.grab_count == 0


def test_key_event_is_a_plain_value():
    assert KeyEvent(183, 1, 2.0) == KeyEvent(183, 1, 2.0)


def test_only_this_module_imports_evdev():
    root = Path(__file__).resolve().parents[2] / "appliance"
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if "import evdev" in p.read_text() or "from evdev" in p.read_text())
    assert importers == ["ui/input_key.py"]
