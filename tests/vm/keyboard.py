"""Host-side helpers for the guest keyboard tests and the typing benchmark.

* :class:`Recorder` runs ``guest_events.py record`` in the guest and, when finished, types an
  end-of-stream sentinel key through the gadget so every earlier event is known to have arrived.
* :func:`decode` feeds the recorded events to the xkbcommon oracle (``tests/oracle/xkb.py``).
* :func:`corpus_for` builds a per-layout corpus of tricky text the layout can type.
"""

from __future__ import annotations

import json
import shlex
import signal
import time
from dataclasses import dataclass

from tests.vm.guest import Guest, GuestError
from tests.vm.guest_events import SENTINEL_CODE, KeyEvent, read_events

#: How the guest runs guest_events.py (stdlib only: -S skips site-packages, saving a second).
EVENTS = "-S tests/vm/guest_events.py"
GADGET_NAME = "voicekey"  # appliance.gadget.configfs.GadgetSettings.name
UDC = "dummy_udc.0"

#: Caps Lock: HID usage 0x39 = evdev KEY_CAPSLOCK (58).
CAPSLOCK_USAGE = 0x39
CAPSLOCK_CODE = 58


class Recorder:
    """Record the gadget keyboard's key events in the guest (see ``guest_events.py record``)."""

    def __init__(self, guest: Guest, name: str = "events.jsonl") -> None:
        self.guest = guest
        self.path = guest.path(f"{time.monotonic_ns()}-{name}")
        self.job = None

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.job is not None and not self.job.done:
            self.job.kill(signal.SIGTERM)
            self.job.wait(30)

    def start(self) -> Recorder:
        """Start recording; returns once the recorder has the device open."""
        self.job = self.guest.start(f"exec python {EVENTS} record {shlex.quote(str(self.path))}")
        self.job.wait_for_output("READY", timeout=120)
        return self

    def events(self) -> list[KeyEvent]:
        """Events recorded so far (including any sentinel)."""
        try:
            return read_events(self.path, allow_dropped=True)
        except (FileNotFoundError, json.JSONDecodeError):
            return []  # a line may be half-written while the recorder runs

    def finish(self, timeout: float = 120) -> list[KeyEvent]:
        """Have the recorder tap the sentinel key and exit once it arrived (SIGUSR1); return the
        events before the sentinel."""
        assert self.job is not None
        self.job.kill(signal.SIGUSR1)
        try:
            self.job.wait(timeout).check()
        except GuestError as exc:
            raise GuestError(f"the recorder did not see the sentinel key: {exc}") from None
        events = read_events(self.path)
        cut = next(i for i, e in enumerate(events) if e.code == SENTINEL_CODE and e.value == 1)
        return events[:cut]


@dataclass(frozen=True)
class Decoded:
    """What the oracle made of the recorded events."""

    text: str
    held: frozenset[int]
    keysyms: list[str]
    repeats: int


def decode(events: list[KeyEvent], layout: str) -> Decoded:
    """Decode key events with :class:`tests.oracle.xkb.XkbDecoder`.

    Autorepeat events (value 2) are left out: the guest's input core generates them when a key is
    held past the repeat delay, which under TCG can happen because the *VM* stalled; they are
    counted in ``repeats`` so a test can show them.
    """
    from tests.oracle.xkb import XkbDecoder

    decoder = XkbDecoder(layout)
    repeats = 0
    for event in events:
        if event.value == 2:
            repeats += 1
            continue
        decoder.key(event.code, event.value == 1)
    return Decoded(decoder.text, decoder.held, list(decoder.keysyms), repeats)


def type_command(layout: str, rate: float | None = None, extra: str = "",
                 verbose: bool = False) -> str:
    """The ``voicekey type`` command line reading the text from stdin (``verbose``: INFO logs)."""
    rate_arg = f" --rate {rate:g}" if rate is not None else ""
    log_arg = " -v" if verbose else ""
    return (f"exec voicekey{log_arg} type --layout {shlex.quote(layout)} --device /dev/hidg0"
            f"{rate_arg} {extra} -")


def gadget_up(guest: Guest, timeout: float = 120, force: bool = False) -> str:
    """Make sure the gadget is up and enumerated; returns the host-side keyboard's event device.

    Runs ``voicekey gadget up`` (and waits for the host side) unless, with ``force`` false, the
    gadget's keyboard is already there: ``voicekey`` takes ~10 s to start under TCG.
    """
    if not force:
        present = guest.run(f"python {EVENTS} --wait 0 find && "
                            f"test \"$(cat /sys/kernel/config/usb_gadget/{GADGET_NAME}/UDC)\" = {UDC}")
        if present.rc == 0:
            return present.stdout.strip()
    guest.run("voicekey gadget up", timeout=timeout).check()
    result = guest.run(f"python {EVENTS} --wait 60 find", timeout=timeout).check()
    return result.stdout.strip()


def leds(guest: Guest) -> list[int]:
    """LEDs lit on the gadget keyboard, as the guest's host side sees them (1 = Caps Lock)."""
    result = guest.run(f"python {EVENTS} leds").check()
    return json.loads(result.stdout)["leds"]


def held(guest: Guest) -> list[int]:
    """Keys the guest's input core believes are held on the gadget keyboard."""
    result = guest.run(f"python {EVENTS} held").check()
    return json.loads(result.stdout)["held"]


# --- corpus ------------------------------------------------------------------------------------

#: Tricky text: punctuation (including the keys that are dead on some layouts), digits, repeated
#: letters (a release must separate equal presses), mixed case, accented letters of all our layouts.
BASE_CORPUS = (
    "Hello, World! The quick brown fox jumps over the lazy dog. 0123456789 "
    "aa bbb cccc Mississippi bookkeeper LLama ooO ZZz "
    "MiXeD cAsE tExT; e-mail: first.last+tag@example.com, path/to/file_name.txt "
    "brackets ([{<>}]) quotes 'single' \"double\" `back` ~tilde^caret "
    "50% off & $5 #1 *star* |pipe| \\back\\ =eq= _us_ ?! :: ;; ,, .. "
    "l'été, garçon, où, naïve, forêt, Noël, Ça, À bientôt, élève, ÉCOLE "
    "Grüße aus Köln, Äpfel, Öl, Übermut, Straße "
    "¿Qué tal? ¡Olé! año, Niño, cañón, pingüino, 1º 2ª "
    "perché, città, più, però, così "
    "£10 €20 §3 °C µ ² "
)

#: Characters each layout must be able to type directly or with its dead keys; if the encoder
#: drops one of these, the corpus filter below would hide a real gap, so the test fails instead.
NATIVE: dict[str, str] = {
    "us": "!@#$%^&*()_+{}|:\"<>?~`-=[]\\;',./",
    "us(intl)": "áéíóúÁÉÍÓÚñÑçÇäöüÄÖÜàèâêß¿¡",
    "gb": "£€\"@#~\\|",
    "de": "äöüÄÖÜß€§°^`",
    "fr": "éèàçùÉâêîôûäëïöüÿ€£²µ§°",
    "es": "ñÑçÇáéíóúÁÉÍÓÚüÜ¿¡ºª€",
    "it": "àèéìòùç€£§°",
    "us(dvorak)": "!@#$%^&*()_+{}|:\"<>?~`-=[]\\;',./",
}

LAYOUTS = tuple(NATIVE)


def typeable(text: str, layout: str) -> tuple[str, str]:
    """Split ``text`` into (what ``layout`` types directly, the characters it cannot) per encoder."""
    from appliance.hid.encoder import EncoderOptions, encode

    options = EncoderOptions(unmapped="skip")
    kept, dropped = [], []
    for char in text:
        (dropped if encode(char, layout, options).skipped else kept).append(char)
    return "".join(kept), "".join(dict.fromkeys(dropped))


def corpus_for(layout: str) -> str:
    """The tricky-text corpus for ``layout``: :data:`BASE_CORPUS` + the layout's native characters
    (:data:`NATIVE`), minus what the layout cannot type according to the encoder (a test checks
    separately that no native character is among those)."""
    native_kept, _ = typeable(NATIVE[layout], layout)
    kept, _ = typeable(BASE_CORPUS, layout)
    # Collapse the double spaces the filter leaves where a whole word went.
    text = " ".join(kept.split())
    return f"{text} {native_kept} {native_kept[::-1]}"


def char_errors(expected: str, got: str) -> int:
    """Character-level edit distance (insertions + deletions + substitutions)."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(expected, got))


def describe_mismatch(expected: str, decoded: Decoded) -> str:
    """A failure message showing where decoded text first differs from the expected text."""
    i = next((n for n, (a, b) in enumerate(zip(expected, decoded.text)) if a != b),
             min(len(expected), len(decoded.text)))
    return (f"decoded text differs at index {i} ({char_errors(expected, decoded.text)} char errors):\n"
            f"  expected ...{expected[max(0, i - 30):i + 30]!r}\n"
            f"  decoded  ...{decoded.text[max(0, i - 30):i + 30]!r}\n"
            f"  held at end: {sorted(decoded.held)}, autorepeats: {decoded.repeats}")

