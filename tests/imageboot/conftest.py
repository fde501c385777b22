"""Fixtures for the SD image boot tests: the built image, copied and booted in qemu-system-aarch64.

The image comes from ``make image`` (``make test`` builds it first; unchanged inputs reuse it).
If it is missing the tests FAIL with what to run; ``VOICEKEY_SKIP_IMAGE=1`` skips them instead.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.imageboot.image_guest import ImageCopy, ImageGuest, image_path
from tests.vm.guest import GuestError

#: The snd-aloop pair: the daemon captures device 1, the test plays into device 0 (card 0: the
#: emulated board has no other sound card).
CAPTURE = "Loopback: PCM (hw:0,1)"
PLAYBACK = "plughw:Loopback,0,0"
#: The button: QEMU's ``system_powerdown`` pulses pl061 line 3 for ~100 ms (a tap). The LED: line 5.
BUTTON_LINE = 3
LED_LINE = 5
#: Slow-guest capture settings, as in tests/vm/test_appliance_vm.py (no resampling, large buffers,
#: no stall detection while transcription starves the audio thread under TCG).
AUDIO = {"device": CAPTURE, "sample_rate": 16000, "block_ms": 250, "latency_s": 1.0,
         "stall_timeout_s": None}


def config_yaml(**sections: dict) -> str:
    """voicekey.yaml for the emulated board, with ``sections`` merged over the board's settings."""
    base: dict[str, dict] = {
        # a tap starts hands-free dictation at once (no wait for a second tap)
        "button": {"pin": BUTTON_LINE, "pull_up": False, "double_press_s": 0},
        "led": {"pin": LED_LINE, "active_high": True},
        "audio": dict(AUDIO),
        "transport": {"rate": 20},
        "logging": {"level": "DEBUG"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for section, values in base.items():
        lines.append(f"{section}:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in values.items()]  # JSON scalars are YAML
    return "\n".join(lines) + "\n"


@dataclass
class Booted:
    """One boot of a copy of the image."""

    guest: ImageGuest
    copy: ImageCopy
    root_before: str
    booted_s: float = 0.0
    ready_s: float = 0.0
    notes: dict = field(default_factory=dict)

    def journal(self, unit: str = "voicekey") -> str:
        return self.guest.run(f"journalctl -b -u {unit} -o cat --no-pager", timeout=120).check().stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.guest.run(f"systemctl show {unit} -p {','.join(props)}", timeout=60).check().stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_active(self, unit: str, timeout: float) -> dict[str, str]:
        """Wait (bounded) until ``unit`` is active (for Type=notify: READY=1 was sent)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.show(unit, "ActiveState", "SubState", "NRestarts", "Type", "StatusText", "Result")
            if state.get("ActiveState") == "active" or time.monotonic() > deadline:
                return state
            if state.get("ActiveState") == "failed":
                return state
            time.sleep(3)


def boot_copy(tmp_path_factory: pytest.TempPathFactory, fat_files: dict[str, str], memory_mb: int) -> Iterator[Booted]:
    """Copy the image, put ``fat_files`` on its FAT partition, boot it; yields, then powers off."""
    if os.environ.get("VOICEKEY_SKIP_IMAGE") == "1":
        pytest.skip("VOICEKEY_SKIP_IMAGE=1: image boot tests skipped")
    source = image_path()
    if not source.is_file():
        pytest.fail(f"{source} not found: run `make image` (as root) first, or set VOICEKEY_IMAGE "
                    "(VOICEKEY_SKIP_IMAGE=1 skips these tests)", pytrace=False)
    copy = ImageCopy(source, tmp_path_factory.mktemp("image"))
    for name, text in fat_files.items():
        copy.fat_write(name, text.encode())
    root_before = copy.root_hash()
    guest = ImageGuest(copy, memory_mb=memory_mb)
    t0 = time.monotonic()
    try:
        guest.boot()
    except GuestError as exc:
        guest.cleanup()
        pytest.fail(f"the image did not boot in QEMU: {exc}", pytrace=False)
    booted = Booted(guest, copy, root_before, booted_s=time.monotonic() - t0)
    try:
        yield booted
    finally:
        guest.close()
        guest.cleanup()
        copy.path.unlink(missing_ok=True)
