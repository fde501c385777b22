"""The Bluetooth keyboard against the real kernel and BlueZ, with no radio (x86 guest only).

``btvirt -l2`` makes two virtual controllers: VoiceKey on hci0 (``voicekey type --bluetooth`` and
``voicekey bluetooth ...``, built by the same composition root as ``voicekey run``, under the
unit's capability set: CAP_NET_BIND_SERVICE only), the computer on hci1 (tests/vm/bt_guest.py:
Pair over D-Bus, then the kernel's own HIDP host making a real input device, whose key events are
decoded with libxkbcommon on this side). One bluetoothd (-n --noplugin=input, our main.conf) and
one dbus-daemon serve both. The tests run in order and build on each other (one guest boot, one
Bluetooth stack): pairing refused, pairing in the window, typing in report and boot protocol, Caps
Lock, a drop mid-text, restarts, virtual cable unplug, forget and re-pair.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest

from tests.vm import build_guest
from tests.vm.guest import Guest
from tests.vm.guest_events import read_events
from tests.vm.keyboard import corpus_for, decode, describe_mismatch

pytestmark = [pytest.mark.vm, pytest.mark.skipif(
    os.environ.get("VOICEKEY_BT_VM") != "1",
    reason="Bluetooth guest tests still being brought up (issue 10): not yet green twice in a row; "
           "VOICEKEY_BT_VM=1 runs them")]

REPO = Path(__file__).resolve().parents[2]
HARNESS = "python tests/vm/bt_guest.py"
#: The unit's capability set (systemd/voicekey.service): root, CAP_NET_BIND_SERVICE only.
UNIT_CAPS = ("setpriv --bounding-set=-all,+net_bind_service --inh-caps=-all,+net_bind_service "
             "--ambient-caps=-all,+net_bind_service")
CAPSLOCK_CODE = 58
#: Reports per second. The computer's HIDP runs on the same single TCG vCPU as VoiceKey; faster,
#: its L2CAP receive queue (basic mode: no flow control) overflows and reports are dropped.
RATE = 200


class Bt:
    """The Bluetooth stack in the guest and helpers to drive both sides."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.bluez = build_guest.bluez_root(guest.cache)
        self.config = guest.path("voicekey-bt.yaml")
        self.config.write_text("bluetooth:\n  adapter: hci0\n  name: VoiceKey\n"
                               "  state_dir: /run/voicekey-state\n  reconnect_timeout_s: 5\n")
        self.main_conf = REPO / "systemd" / "bluetooth" / "main.conf"
        self.host_job = None
        self.events_file: Path | None = None

    def stack(self, restart_bluetoothd: bool = False) -> None:
        extra = " --restart-bluetoothd" if restart_bluetoothd else ""
        self.guest.run(f"{HARNESS} stack --bluez {self.bluez} --main-conf {self.main_conf}{extra}",
                       timeout=180).check()

    def voicekey(self, args: str, timeout: float = 180, input: str | None = None):  # noqa: A002
        return self.guest.run(f"exec {UNIT_CAPS} voicekey -v {args}", timeout=timeout, input=input)

    def start_typer(self, text: str, give_up: float = 120, rate: float = RATE):  # noqa: ANN201
        return self.guest.start(f"exec {UNIT_CAPS} voicekey -v type --bluetooth --config {self.config} "
                                f"--give-up {give_up:g} --settle 0.5 --rate {rate:g} - 2>&1", input=text)

    def start_host(self, *flags: str, wait_ready: bool = True) -> None:
        self.events_file = self.guest.path(f"bt-events-{time.monotonic_ns()}.jsonl")
        self.host_job = self.guest.start(f"exec {HARNESS} host --out {self.events_file} {' '.join(flags)}")
        if wait_ready:
            self.host_job.wait_for_output("READY", timeout=120)

    def finish_host(self):  # noqa: ANN201
        assert self.host_job is not None
        self.host_job.kill(signal.SIGUSR1)
        self.host_job.wait(60).check()
        self.host_job = None
        return read_events(self.events_file, allow_dropped=True)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]

    def pair_from_host(self, expect: str) -> dict:
        result = self.guest.run(f"{HARNESS} pair --expect {expect}", timeout=180)
        assert result.rc == 0, f"pairing: expected {expect}, got {result.stdout} {result.stderr}"
        return json.loads(result.stdout.strip().splitlines()[-1])

    def bonds(self) -> list[str]:
        status = self.voicekey(f"bluetooth status --json --config {self.config}").check()
        return [h["address"] for h in json.loads(status.stdout)["hosts"]]


@pytest.fixture(scope="module")
def bt(guest: Guest):  # noqa: ANN201
    b = Bt(guest)
    b.stack()
    yield b
    if b.host_job is not None and not b.host_job.done:
        b.host_job.kill(signal.SIGTERM)


def _typed_and_decoded(bt: Bt, text: str, *host_flags: str, layout: str = "us", give_up: float = 120):  # noqa: ANN202
    """VoiceKey types ``text``; the computer connects to it (or, with ``--wait-for-device``, waits
    for VoiceKey to reconnect by itself) and records what its input device produced."""
    typer = bt.start_typer(text, give_up=give_up)
    typer.wait_for_output("Bluetooth keyboard", timeout=120)  # listening
    bt.start_host(*host_flags, wait_ready=False)
    result = typer.wait(300)
    assert result.rc == 0, f"voicekey type --bluetooth failed:\n{result.stdout[-3000:]}"
    events = bt.finish_host()
    return decode(events, layout), events, result


def test_pairing_outside_the_window_is_refused(bt: Bt) -> None:
    # VoiceKey running (its agent registered, window closed); someone made it visible anyway.
    typer = bt.start_typer("x", give_up=5)
    typer.wait_for_output("Bluetooth keyboard", timeout=120)
    bt.guest.run("dbus-send --system --dest=org.bluez --print-reply /org/bluez/hci0 "
                 "org.freedesktop.DBus.Properties.Set string:org.bluez.Adapter1 string:Discoverable "
                 "variant:boolean:true").check()
    pairable = bt.guest.run("dbus-send --system --dest=org.bluez --print-reply /org/bluez/hci0 "
                            "org.freedesktop.DBus.Properties.Get string:org.bluez.Adapter1 string:Pairable").check()
    assert "boolean false" in pairable.stdout
    result = bt.pair_from_host("refused")
    assert result["found"] and not result["paired"]
    typer.wait(120)
    assert bt.bonds() == []


def test_pairing_inside_the_window_then_the_corpus_in_report_protocol(bt: Bt) -> None:
    window = bt.guest.start(f"exec {UNIT_CAPS} voicekey bluetooth pair --timeout 90 --config {bt.config}")
    window.wait_for_output("pairing window open", timeout=120)
    result = bt.pair_from_host("ok")
    assert result["paired"], result
    assert window.wait(120).rc == 0
    assert len(bt.bonds()) == 1
    text = corpus_for("us")
    decoded, events, _ = _typed_and_decoded(bt, text)
    assert decoded.text == text, describe_mismatch(text, decoded)
    assert decoded.held == frozenset()


def test_the_corpus_in_boot_protocol_after_voicekey_reconnects_by_itself(bt: Bt) -> None:
    text = corpus_for("us")
    decoded, events, result = _typed_and_decoded(bt, text, "--boot", "--wait-for-device")
    assert "reconnected to host" in result.stdout
    assert any(r.get("boot") for r in bt.records())
    assert decoded.text == text, describe_mismatch(text, decoded)
    assert decoded.held == frozenset()
