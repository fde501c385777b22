"""Developer tool: (re)write the layout JSON files from xkb-data and the system Compose table.

Run by hand, never at run time (the appliance only reads the committed JSON)::

    .venv/bin/python tools/generate_layouts.py            # all layouts
    .venv/bin/python tools/generate_layouts.py de fr      # some

It lives in ``tools/`` (development tools, not installed with the product) and writes into
``appliance/hid/layouts/`` of the checkout it is in.

It needs PyPI ``xkbcommon`` (test extra) with Debian ``libxkbcommon`` and ``xkb-data``. It reads
the compiled keymap *statically*: for each key position and each modifier combination we can send
(none, Shift, AltGr, Shift+AltGr) it asks which keysym that level has. Dead keys are combined
with base keys by parsing the Compose file's two-key ``<dead_x> <y> : "z"`` lines here, in plain
Python. The test oracle (``tests/oracle/xkb.py``) instead *runs* libxkbcommon's key-event state
machine and Compose state machine, so the round-trip tests compare two different paths; the files
were also checked by hand against ``/usr/share/X11/xkb/symbols/*``.

Choice rules when a character can be typed several ways: a single key beats a dead-key sequence;
fewer modifiers beat more (none, Shift, AltGr, Shift+AltGr); then the key-position order below
(number row first, then the letter rows, left to right); on the ``us`` family the ISO
``NonUS_Backslash`` key only for characters no other key gives. A character reachable only with
Caps Lock on (fr: Ç) is stored as ``"CapsLock <key> CapsLock"``. The ISO key left of Enter is
written as ``Backslash`` (0x31), which Linux, Windows and macOS treat like ``NonUS_Hash`` (0x32).
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

COMPOSE_FILE = Path("/usr/share/X11/locale/en_US.UTF-8/Compose")
#: Where the layout JSON files live (the package data of :mod:`appliance.hid.layouts`).
LAYOUT_DIR = Path(__file__).resolve().parents[1] / "appliance" / "hid" / "layouts"

#: Layouts we ship, with a human description.
LAYOUTS = {
    "us": "English (US)",
    "us(intl)": "English (US, intl., with dead keys)",
    "us(dvorak)": "English (Dvorak)",
    "gb": "English (UK)",
    "de": "German",
    "fr": "French (AZERTY)",
    "es": "Spanish",
    "it": "Italian",
}

# HID key name -> xkb key name (the physical position, ISO/ANSI pc105 geometry).
POSITIONS: dict[str, str] = {
    "Grave": "TLDE",
    **{d: f"AE{i:02d}" for i, d in enumerate("1234567890", start=1)},
    "Minus": "AE11", "Equal": "AE12",
    **{c: f"AD{i:02d}" for i, c in enumerate("QWERTYUIOP", start=1)},
    "LeftBracket": "AD11", "RightBracket": "AD12", "Backslash": "BKSL",
    **{c: f"AC{i:02d}" for i, c in enumerate("ASDFGHJKL", start=1)},
    "Semicolon": "AC10", "Apostrophe": "AC11",
    **{c: f"AB{i:02d}" for i, c in enumerate("ZXCVBNM", start=1)},
    "Comma": "AB08", "Period": "AB09", "Slash": "AB10",
    "Space": "SPCE",
}
#: The ISO key right of left Shift. For the US family (ANSI keyboards: the key is missing, and
#: Windows/macOS US layouts give it other characters than xkb's ``us`` does) it is used only for
#: characters no other key types; on ISO layouts it is an ordinary key (< > on de, fr, es, it).
ISO_POSITIONS = {"NonUS_Backslash": "LSGT"}

COMBOS = ("", "Shift+", "AltGr+", "Shift+AltGr+")

_COMPOSE_LINE = re.compile(r'^<(dead_\w+)>\s+<(\w+)>\s*:\s*"((?:[^"\\]|\\.)*)"')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def file_name(layout: str) -> str:
    """``"us(intl)"`` -> ``"us.intl.json"``, ``"de"`` -> ``"de.json"``."""
    if layout.endswith(")"):
        base, variant = layout[:-1].split("(", 1)
        return f"{base}.{variant}.json"
    return f"{layout}.json"


def read_compose(path: Path = COMPOSE_FILE) -> dict[tuple[str, str], str]:
    """Two-key dead-key sequences of a Compose file: ``(dead keysym name, keysym name) -> text``."""
    table: dict[tuple[str, str], str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _COMPOSE_LINE.match(line)
        if match:
            table.setdefault((match[1], match[2]), _unescape(match[3]))
    return table


def generate(layout: str, compose: dict[tuple[str, str], str]) -> dict:
    """Build the JSON document for one layout."""
    from xkbcommon import xkb

    base, _, variant = layout.rstrip(")").partition("(")
    ctx = xkb.Context(no_environment_names=True)
    keymap = ctx.keymap_new_from_names(rules="evdev", model="pc105", layout=base,
                                       variant=variant, options="")

    def mask_of(key_name: str) -> int | None:
        state = keymap.state_new()
        state.update_key(keymap.key_by_name(key_name), xkb.KeyDirection.XKB_KEY_DOWN)
        mask = state.serialize_mods(xkb.StateComponent.XKB_STATE_MODS_DEPRESSED)
        return mask or None

    shift = mask_of("LFSH")
    ralt_sym = xkb.keysym_get_name(keymap.state_new().key_get_one_sym(keymap.key_by_name("RALT")))
    altgr = mask_of("RALT") if ralt_sym == "ISO_Level3_Shift" else None
    masks = {"": 0, "Shift+": shift, "AltGr+": altgr,
             "Shift+AltGr+": (shift | altgr) if altgr else None}

    # (press spec, keysym) in preference order
    presses: list[tuple[str, int]] = []
    if base == "us":
        groups = (POSITIONS, ISO_POSITIONS)
    else:
        groups = ({**POSITIONS, **ISO_POSITIONS},)
    for positions in groups:
        for combo in COMBOS:
            mask = masks[combo]
            if mask is None:
                continue
            state = keymap.state_new()
            state.update_mask(mask, 0, 0, 0, 0, 0)
            for key, xkb_name in positions.items():
                sym = state.key_get_one_sym(keymap.key_by_name(xkb_name))
                if sym:
                    presses.append((f"{combo}{key}", sym))

    chars: dict[str, str] = {}
    dead: dict[str, str] = {}
    for spec, sym in presses:
        name = xkb.keysym_get_name(sym)
        if name.startswith("dead_"):
            dead.setdefault(name, spec)
            continue
        text = xkb.keysym_to_string(sym) or ""
        if len(text) == 1 and unicodedata.category(text) not in ("Cc", "Cs"):
            chars.setdefault(text, spec)

    # Compose index: dead keysym name -> base keysym value -> text (names resolved like xkb does,
    # so <U00E9> and <eacute> are the same keysym).
    by_dead: dict[str, dict[int, str]] = {}
    for (dead_name, base_name), text in compose.items():
        by_dead.setdefault(dead_name, {}).setdefault(xkb.keysym_from_name(base_name), text)
    direct = [(spec, sym) for spec, sym in presses
              if not xkb.keysym_get_name(sym).startswith("dead_")]
    dead_presses = [(spec, xkb.keysym_from_name(name)) for name, spec in dead.items()]
    sequences: dict[str, str] = {}
    for second in (direct, dead_presses):  # dead + key first, then dead + dead
        for dead_name, dead_spec in dead.items():
            results = by_dead.get(dead_name, {})
            for spec, sym in second:
                text = results.get(sym, "")
                if len(text) == 1 and text not in chars and text not in sequences:
                    sequences[text] = f"{dead_spec} {spec}"
    chars.update(sequences)

    # Last resort: with Caps Lock on, xkb capitalises the keysym of non-alphabetic keys too, which
    # is how fr types Ç (Caps Lock, ç key, Caps Lock). The encoder uses these only when asked.
    lock = keymap.mod_get_index("Lock")
    for positions in groups:
        for combo in COMBOS:
            mask = masks[combo]
            if mask is None:
                continue
            state = keymap.state_new()
            state.update_mask(mask, 0, 1 << lock, 0, 0, 0)
            for key, xkb_name in positions.items():
                sym = state.key_get_one_sym(keymap.key_by_name(xkb_name))
                text = (xkb.keysym_to_string(sym) or "") if sym else ""
                if (len(text) == 1 and unicodedata.category(text) not in ("Cc", "Cs")
                        and text not in chars):
                    chars[text] = f"CapsLock {combo}{key} CapsLock"
    return {
        "name": layout,
        "description": LAYOUTS.get(layout, layout),
        "source": "xkb-data symbols (rules evdev, model pc105) + en_US.UTF-8 Compose; "
                  "generated by tools/generate_layouts.py, checked by hand",
        "dead_keys": dict(sorted(dead.items())),
        "chars": dict(sorted(chars.items())),
    }


def main(argv: list[str]) -> int:
    """Write the JSON file of each named layout (default: all of :data:`LAYOUTS`)."""
    compose = read_compose()
    for layout in argv or list(LAYOUTS):
        doc = generate(layout, compose)
        path = LAYOUT_DIR / file_name(layout)
        lines = [f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
                 for k, v in doc["chars"].items()]
        head = {k: v for k, v in doc.items() if k != "chars"}
        text = json.dumps(head, ensure_ascii=False, indent=2)[:-2]
        text += ',\n  "chars": {\n  ' + ",\n  ".join(lines) + "\n  }\n}\n"
        json.loads(text)  # sanity
        path.write_text(text, encoding="utf-8")
        print(f"{layout}: {len(doc['chars'])} characters, dead keys {sorted(doc['dead_keys'])}"
              f" -> {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
