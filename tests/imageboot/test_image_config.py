"""The SD image booted with a broken ``voicekey.yaml`` on its FAT partition: blink code, defaults, no restart.

A second boot of a copy of the image (see test_image_boot.py for the first). The file is valid YAML
with the emulated board's pins but two bad values: an unknown keyboard layout and a word where a
number belongs. The daemon must come up anyway (READY, no restart), log each bad key with the file
and what was used instead, use the defaults for those keys, and show the config blink code (2 blinks
and a pause) on its LED, which the guest's debugfs shows line by line.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.imageboot.conftest import LED_LINE, Booted, boot_copy, config_yaml

READY_S = 600
FAT_CONFIG = "/boot/firmware/voicekey.yaml"

#: Samples the LED line in debugfs (`out hi`/`out lo`) every 20 ms; one JSON line per change.
SAMPLER = r"""
import json, re, sys, time
line, seconds, out = int(sys.argv[1]), float(sys.argv[2]), open(sys.argv[3], "w", buffering=1)
end, last = time.monotonic() + seconds, None
while time.monotonic() < end:
    text = open("/sys/kernel/debug/gpio").read()
    base = re.search(r"GPIOs (\d+)-\d+, parent: \S+/9030000\.pl061", text)
    value = None
    if base:
        m = re.search(r"^ gpio-%d .*\bout (hi|lo)" % (int(base.group(1)) + line), text, re.M)
        value = m.group(1) if m else None
    if value != last:
        out.write(json.dumps({"t": time.monotonic(), "v": value}) + "\n")
        last = value
    time.sleep(0.02)
"""


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    broken = config_yaml(keyboard={"layout": "klingon"}, audio={"pre_roll_ms": "lots"})
    yield from boot_copy(tmp_path_factory, {"voicekey.yaml": broken}, memory_mb=1024)


def code_runs(changes: list[dict], pause_s: float = 0.9) -> list[int]:
    """Blink-code runs seen on the LED: numbers of code-shaped pulses (on 0.12-0.45 s, apart by less
    than 0.6 s) each followed by a pause of at least ``pause_s``. A code n (``_code(n)``: n x (0.2 s
    on, 0.25 s off), 1.2 s off) gives runs of n; the fast flicker of other states breaks a run."""
    pulses, start = [], None
    for change in changes:
        if change["v"] == "hi" and start is None:
            start = change["t"]
        elif change["v"] != "hi" and start is not None:
            pulses.append((start, change["t"]))
            start = None
    if start is not None:  # on at the end (READY: steady on)
        pulses.append((start, float("inf")))
    runs, run = [], 0
    for (on_at, off_at), following in zip(pulses, pulses[1:]):
        on, off = off_at - on_at, following[0] - off_at
        if not 0.12 <= on <= 0.45:
            run = 0
            continue
        run += 1
        if off >= pause_s:
            runs.append(run)
            run = 0
        elif off > 0.6:
            run = 0
    return runs


def test_code_runs_reads_blink_codes() -> None:
    def wave(steps, t=0.0):
        out = []
        for on, seconds in steps:
            out.append({"t": t, "v": "hi" if on else "lo"})
            t += seconds
        return out, t
    flicker = [(True, 0.05), (False, 0.05)] * 10
    code2 = [(True, 0.2), (False, 0.25), (True, 0.2), (False, 0.25), (False, 1.2)]
    code4 = [(True, 0.2), (False, 0.25)] * 4 + [(False, 1.2)]
    changes, _ = wave(flicker + code2 + code2[:2] + flicker + [(True, 0)])
    assert code_runs(changes) == [2]
    changes, _ = wave(flicker + code4 + code4 + [(True, 0)])
    assert code_runs(changes) == [4, 4]


@pytest.mark.vm
def test_broken_config_gives_blink_code_and_defaults(booted: Booted) -> None:
    sampler = booted.guest.path("sampler.py")
    sampler.write_text(SAMPLER)
    changes_path = booted.guest.path("led.jsonl")
    # sample from well before READY until after it: the code is shown for a few seconds from READY
    job = booted.guest.start(f"exec python3 {sampler} {LED_LINE} {READY_S} {changes_path}")
    t0 = time.monotonic()
    state = booted.wait_active("voicekey", timeout=READY_S)
    log = booted.journal()
    print(f"\nvoicekey.service: {state} ({time.monotonic() - t0 + booted.booted_s:.0f} s after QEMU started)")
    assert state.get("ActiveState") == "active", f"{state}\n{log[-6000:]}"
    assert state.get("NRestarts") == "0", f"{state}\n{log[-6000:]}"
    time.sleep(12)  # let the blink code play (shown for controller.error_show_s = 4 s) and end
    job.kill()
    changes = [json.loads(line) for line in changes_path.read_text().splitlines() if line.strip()]
    # each bad key: logged with the file, the key and the default used instead
    issues = [line for line in log.splitlines() if "config: " + FAT_CONFIG in line]
    print("\n".join(issues))
    # the config loader states the default each bad key runs on
    assert any("keyboard.layout" in line and "klingon" in line and 'using default "us"' in line
               for line in issues), log[-6000:]
    assert any("audio.pre_roll_ms" in line and "using default 300" in line for line in issues), log[-6000:]
    assert re.search(r"config issue\(s\); running on defaults", log), log[-6000:]
    # the good keys of the same file are applied: the LED is on the line the file names
    assert changes and any(c["v"] is not None for c in changes), \
        f"LED line {LED_LINE} never driven (the file's led.pin was not applied): {changes}"
    runs = code_runs(changes)
    durations = [(c["v"], round(n["t"] - c["t"], 2)) for c, n in zip(changes, changes[1:])]
    print(f"LED blink-code runs: {runs}")
    assert 2 in runs, f"no 2-blink config code on the LED: code runs {runs}; (value, seconds): {durations}"
