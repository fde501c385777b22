"""The SD image booted in QEMU (aarch64, TCG, 512 MB like a Zero 2 W): the whole product, as shipped.

One boot of a copy of ``build/voicekey-VERSION-arm64.img`` with a ``voicekey.yaml`` on its FAT
partition (keyboard layout ``de``, the button on the pl061 line QEMU pulses), checked in this order:

1. the gadget unit is active and the guest's own host side (dummy_hcd) enumerates the keyboard;
2. ``voicekey.service`` is active (Type=notify: READY=1 was sent) and was never restarted;
3. the root is mounted read-only, the writable places are tmpfs, nothing listens on the network;
4. the whole product: the button tapped from outside the VM (QEMU monitor ``system_powerdown``,
   a real GPIO edge on pl061 line 3), a Piper sentence played into snd-aloop, and what the gadget
   typed decoded on the host side by xkbcommon with the ``de`` layout, within a WER bound (``de``
   swaps y and z: text typed with the default ``us`` layout would not decode to the sentence);
5. after the dictation in 512 MB: no OOM kill, no restart; the memory still available is printed;
6. Bluetooth: bluetoothd runs with VoiceKey's drop-ins (no input plugin, bonds on the data partition);
7. a broken ``voicekey.yaml`` written to the FAT partition (the user edits it) and the daemon
   started again, as at the next boot: it comes up anyway, logs each bad key with the default used
   instead, and shows the config blink code (2 blinks + pause) on its LED line;
8. after an orderly power-off the root partition's bytes are unchanged.

Timings are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import time

import pytest

from bench.wer import word_errors
from tests.imageboot.conftest import LED_LINE, PLAYBACK, Booted, boot_copy, config_yaml
from tests.vm.fixtures_speech import piper
from tests.vm.keyboard import EVENTS, UDC, Recorder, decode

pytestmark = pytest.mark.vm

LAYOUT = "de"
MAX_WER = 0.35
MEMORY_MB = 512
READY_S = 600
DICTATION_S = 900
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


STATE = re.compile(r"^INFO appliance\.controller: state (\w+) -> (\w+)$", re.MULTILINE)
DICTATED = re.compile(r"^(INFO appliance\.dictation: (dictation: .*|no speech in .*)"
                      r"|ERROR appliance\.controller: dictation failed: .*)$", re.MULTILINE)
TYPED = re.compile(r"^DEBUG appliance\.dictation: typed (.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    yield from boot_copy(tmp_path_factory, {"voicekey.yaml": config_yaml(keyboard={"layout": LAYOUT})},
                         memory_mb=MEMORY_MB)


def test_gadget_unit_active_and_keyboard_enumerated(booted: Booted) -> None:
    print(f"\nimage booted to the test agent in {booted.booted_s:.0f} s (kernel {booted.guest.release})")
    state = booted.wait_active("voicekey-gadget", timeout=300)
    assert state.get("ActiveState") == "active", f"voicekey-gadget.service: {state}\n{booted.journal('voicekey-gadget')}"
    device = booted.guest.run(f"python3 {EVENTS} --wait 120 find", timeout=180).check().stdout.strip()
    udc = booted.guest.run("cat /sys/kernel/config/usb_gadget/voicekey/UDC").check().stdout.strip()
    name = booted.guest.run(f"cat /sys/class/input/{device.rsplit('/', 1)[-1]}/device/name").check().stdout.strip()
    print(f"host side: {device} ({name!r}) on {udc}")
    assert udc == UDC
    assert "VoiceKey" in name


def test_daemon_ready_without_restarts(booted: Booted) -> None:
    t0 = time.monotonic()
    state = booted.wait_active("voicekey", timeout=READY_S)
    booted.ready_s = booted.booted_s + time.monotonic() - t0
    log = booted.journal()
    print(f"\nvoicekey.service: {state} (active {booted.ready_s:.0f} s after QEMU started)")
    assert state.get("Type") == "notify"
    assert state.get("ActiveState") == "active", f"voicekey.service did not become active: {state}\n{log[-6000:]}"
    assert state.get("NRestarts") == "0", f"voicekey.service restarted: {state}\n{log[-6000:]}"
    assert "config:" not in log, f"the test's voicekey.yaml was not accepted:\n{log[-4000:]}"
    # the model is the int8 copy made at build time, unchanged (hashes recorded by the build):
    # nothing converted or re-saved at start
    check = booted.guest.run("cd \"$(cat /usr/share/voicekey/model-int8.path)\" && "
                             "sha256sum --strict -c /usr/share/voicekey/model-int8.sha256", timeout=300)
    assert check.rc == 0 and check.stdout.count(": OK") >= 4, check.stdout + check.stderr
    assert "cannot use an int8 copy" not in log and "saved an int8 copy" not in log, log[-4000:]


def test_root_read_only_and_nothing_listening(booted: Booted) -> None:
    run = booted.guest.run
    root = run("findmnt -no FSTYPE,OPTIONS /").check().stdout.split()
    assert root[0] == "ext4" and "ro" in root[1].split(","), root
    for path in ("/tmp", "/var/log", "/var/lib/systemd", "/var/tmp"):
        fstype = run(f"findmnt -no FSTYPE {path}").check().stdout.strip()
        assert fstype == "tmpfs", f"{path} is {fstype!r}, not tmpfs"
    data = run("findmnt -no SOURCE,FSTYPE,OPTIONS /var/lib/voicekey").check().stdout.split()
    assert data[1] == "ext4" and "rw" in data[2].split(","), data
    # the journal is volatile (in /run), the FAT settings partition is mounted
    assert run("test -d /run/log/journal && test ! -e /var/log/journal").rc == 0
    assert run("test -f /boot/firmware/voicekey-system.txt").rc == 0
    listening = run("ss -Hltnu").check().stdout.strip()
    assert listening == "", f"something listens on the network with no settings asking for it:\n{listening}"


def _journal_matches(booted: Booted, pattern: re.Pattern) -> list[re.Match]:
    return list(pattern.finditer(booted.journal()))


def _wait_journal(booted: Booted, pattern: re.Pattern, count: int, timeout: float, what: str) -> list[re.Match]:
    deadline = time.monotonic() + timeout
    while True:
        found = _journal_matches(booted, pattern)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{booted.journal()[-6000:]}")
        time.sleep(2)


def test_spoken_sentence_typed_with_the_fat_partition_layout(booted: Booted) -> None:
    """Button tapped through a real GPIO line, speech into snd-aloop, keys decoded with xkbcommon ``de``."""
    clip = piper(booted.guest.path("piper.wav"))
    # READY=1 comes at most 60 s after start; a slow model load (TCG) goes on after it
    deadline = time.monotonic() + READY_S
    while [m.group(2) for m in _journal_matches(booted, STATE)][-1:] != ["ready"]:
        assert time.monotonic() < deadline, f"the daemon never reached the ready state:\n{booted.journal()[-6000:]}"
        time.sleep(3)
    states_before = len(_journal_matches(booted, STATE))
    done_before = len(_journal_matches(booted, DICTATED))
    typed_before = len(_journal_matches(booted, TYPED))
    with Recorder(booted.guest, "dictation.jsonl") as recorder:
        t0 = time.monotonic()
        booted.guest.monitor("system_powerdown")
        states = _wait_journal(booted, STATE, states_before + 1, 120, "the button tap to change the state")
        entered = [m.group(2) for m in states[states_before:]]
        assert "listening" in entered, f"the tap did not start listening: states {entered}"
        played = booted.guest.run(f"aplay -q -D {PLAYBACK} {shlex.quote(str(clip.wav))}", timeout=120)
        assert played.rc == 0, f"aplay failed: {played.stderr}"
        outcome = _wait_journal(booted, DICTATED, done_before + 1, DICTATION_S, "the dictation to end")[-1]
        finished = time.monotonic() - t0
        deadline = time.monotonic() + 120
        while [m.group(2) for m in _journal_matches(booted, STATE)][-1:] != ["ready"]:
            assert time.monotonic() < deadline, "the daemon did not go back to ready"
            time.sleep(2)
        events = recorder.finish()
    log = booted.journal()
    typed_lines = TYPED.findall(log)
    meant = ast.literal_eval(typed_lines[-1]) if len(typed_lines) > typed_before else ""
    decoded = decode(events, LAYOUT)
    errors = word_errors(clip.text, decoded.text)
    booted.notes["dictation_s"] = finished
    print(f"\nspoken  {clip.text!r}\ntyped   {decoded.text!r} (decoded with xkbcommon {LAYOUT!r})"
          f"\ndaemon  {outcome.group(0)} (meant {meant!r})\ntap -> dictation done: {finished:.0f} s; "
          f"WER {errors.wer:.3f}")
    assert outcome.group(0).startswith("INFO appliance.dictation: dictation:"), log[-6000:]
    assert decoded.held == frozenset(), f"keys left held on the host: {sorted(decoded.held)}"
    assert decoded.text == meant, (decoded.text, meant)
    assert errors.wer <= MAX_WER, f"typed {decoded.text!r} for {clip.text!r}: WER {errors.wer:.2f}"


def test_memory_after_dictation_in_512_mb(booted: Booted) -> None:
    run = booted.guest.run
    meminfo = dict(line.split(":", 1) for line in run("cat /proc/meminfo").check().stdout.splitlines())
    available_mb = int(meminfo["MemAvailable"].split()[0]) // 1024
    total_mb = int(meminfo["MemTotal"].split()[0]) // 1024
    pid = booted.show("voicekey", "MainPID")["MainPID"]
    rss = run(f"grep -E 'VmHWM|VmRSS' /proc/{pid}/status").check().stdout.split()
    kernel = run("dmesg").check().stdout
    state = booted.show("voicekey", "ActiveState", "NRestarts")
    print(f"\n-m {MEMORY_MB}: MemTotal {total_mb} MB, MemAvailable after one dictation {available_mb} MB; "
          f"voicekey {' '.join(rss)}")
    assert "Out of memory" not in kernel and "oom-kill" not in kernel, kernel[-3000:]
    assert state == {"ActiveState": "active", "NRestarts": "0"}, state
    assert available_mb > 0


def test_led_pin_driven_by_the_daemon(booted: Booted) -> None:
    """The LED on its pl061 line shows READY (steady on) once the dictation is over."""
    out = booted.guest.run("cat /sys/kernel/debug/gpio").check().stdout
    base = re.search(r"GPIOs (\d+)-\d+, parent: \S+/9030000\.pl061", out)
    assert base, out
    line = re.search(rf"^ gpio-{int(base.group(1)) + LED_LINE} .*\b(out) (hi|lo)", out, re.MULTILINE)
    assert line, f"LED line {LED_LINE} not claimed as an output:\n{out}"
    assert line.group(2) == "hi", out


def test_bluetooth_daemon_with_voicekeys_drop_ins_and_bonds_on_the_data_partition(booted: Booted) -> None:
    """The emulated board has no radio: loading the kernel's Bluetooth core meets bluetooth.service's
    condition (/sys/class/bluetooth), as a Pi's own controller does at boot."""
    run = booted.guest.run
    run("modprobe bluetooth && systemctl start bluetooth", timeout=180).check()
    state = booted.show("bluetooth", "ActiveState", "MainPID")
    assert state["ActiveState"] == "active", f"{state}\n{booted.journal('bluetooth')[-3000:]}"
    pid = state["MainPID"]
    cmdline = run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").check().stdout
    assert "--noplugin=input" in cmdline, cmdline
    bonds = run(f"findmnt -N {pid} -no SOURCE,FSTYPE,OPTIONS /var/lib/bluetooth").check().stdout.split()
    data = run("findmnt -no SOURCE /var/lib/voicekey").check().stdout.strip()
    print(f"\nbluetoothd {cmdline.strip()!r}; /var/lib/bluetooth in its namespace: {bonds}")
    assert bonds[0] == f"{data}[/bluetooth]" and bonds[1] == "ext4" and "rw" in bonds[2].split(","), bonds
    main_conf = run("cat /etc/bluetooth/main.conf").check().stdout
    assert re.search(r"^Class = 0x000540$", main_conf, re.MULTILINE), main_conf


def test_broken_settings_file_gives_the_blink_code_and_defaults(booted: Booted) -> None:
    """The user puts a broken voicekey.yaml on the card (valid YAML with the board's pins, an
    unknown layout and a word where a number belongs); the daemon started again, as at the next boot."""
    run = booted.guest.run
    broken = config_yaml(keyboard={"layout": "klingon"}, audio={"pre_roll_ms": "lots"})
    run(f"mount -o remount,rw /boot/firmware && cat > {FAT_CONFIG} && sync && mount -o remount,ro /boot/firmware",
        input=broken, timeout=60).check()
    sampler = booted.guest.path("sampler.py")
    sampler.write_text(SAMPLER)
    changes_path = booted.guest.path("led.jsonl")
    since = run("date '+%Y-%m-%d %H:%M:%S'").check().stdout.strip()
    job = booted.guest.start(f"exec python3 {sampler} {LED_LINE} {READY_S} {changes_path}")
    t0 = time.monotonic()
    run("systemctl restart --no-block voicekey", timeout=60).check()
    time.sleep(5)
    state = booted.wait_active("voicekey", timeout=READY_S)
    log = run(f"journalctl -u voicekey -o cat --no-pager --since {shlex.quote(since)}", timeout=120).check().stdout
    print(f"\nvoicekey.service with the broken file: {state} ({time.monotonic() - t0:.0f} s after the restart)")
    assert state.get("ActiveState") == "active", f"{state}\n{log[-6000:]}"
    assert state.get("NRestarts") == "0", f"{state}\n{log[-6000:]}"
    time.sleep(12)  # let the blink code play (shown for controller.error_show_s = 4 s from READY) and end
    job.kill()
    changes = [json.loads(line) for line in changes_path.read_text().splitlines() if line.strip()]
    issues = [line for line in log.splitlines() if "config: " + FAT_CONFIG in line]
    print("\n".join(issues))
    # each bad key: logged with the file, the key and the default used instead
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


def test_root_partition_unchanged_after_boot(booted: Booted) -> None:
    """Runs last: powers the guest off (orderly), then hashes the root partition again."""
    booted.guest.close(timeout=180)
    after = booted.copy.root_hash()
    assert after == booted.root_before, "the read-only root partition was written during the boot"
