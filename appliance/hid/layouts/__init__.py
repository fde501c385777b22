"""Keyboard layouts as data: which keys (and modifiers) type each character on the host.

A layout is named by its xkb name (``"us"``, ``"de"``, ``"us(intl)"`` = layout ``us`` variant
``intl``) and stored as ``<name>.json`` (``us.intl.json`` for ``us(intl)``) next to this module.
Each file maps a character to a space-separated list of key presses; one press is
``[Shift+][AltGr+]<key name>`` with the key names of :mod:`appliance.hid.keycodes`. Two presses are
a dead-key sequence, e.g. on ``de`` ``"ê": "Grave E"`` (dead circumflex, then e).

The files were generated once from xkb-data and the system Compose table by
``tools/generate_layouts.py`` (a development tool in the repository, not installed) and checked
by hand; they are only *read* here.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from appliance.errors import LayoutError
from appliance.hid import keycodes
from appliance.hid.report import MOD_LSHIFT, MOD_RALT

log = logging.getLogger(__name__)

#: Modifier prefix in the data files -> boot report modifier bits. AltGr is Right Alt.
MODIFIERS: Mapping[str, int] = MappingProxyType({"Shift": MOD_LSHIFT, "AltGr": MOD_RALT})

#: One key press: (modifier bits, HID usage id).
Press = tuple[int, int]


@dataclass(frozen=True, eq=False)
class Layout:
    """A host keyboard layout: for each character it can type, the key presses that type it."""

    name: str
    """xkb name, e.g. ``"de"`` or ``"us(intl)"``."""
    description: str
    """Human-readable name, e.g. ``"German"``."""
    chars: Mapping[str, tuple[Press, ...]] = field(repr=False)
    """Character -> presses; one press for a plain key, two for dead key + base key."""
    dead_keys: Mapping[str, Press] = field(repr=False)
    """xkb dead keysym name (``"dead_circumflex"``) -> the press that gives it."""

    def presses(self, char: str) -> tuple[Press, ...] | None:
        """The presses typing ``char``, or ``None`` if this layout cannot type it."""
        return self.chars.get(char)


def _file_for(name: str) -> str:
    if name.endswith(")") and "(" in name:
        base, variant = name[:-1].split("(", 1)
        return f"{base}.{variant}.json"
    return f"{name}.json"


def _name_for(file_name: str) -> str:
    stem = file_name[: -len(".json")]
    base, dot, variant = stem.partition(".")
    return f"{base}({variant})" if dot else base


@functools.cache
def available_layouts() -> tuple[str, ...]:
    """The xkb names of all shipped layouts, sorted."""
    folder = resources.files(__name__)
    return tuple(sorted(_name_for(p.name) for p in folder.iterdir()
                        if p.name.endswith(".json")))


def parse_press(spec: str) -> Press:
    """Parse one press like ``"Shift+AltGr+Q"`` into ``(modifier bits, usage)``.

    Raises ``ValueError`` naming the bad modifier or key.
    """
    *mods, key = spec.split("+")
    bits = 0
    for mod in mods:
        if mod not in MODIFIERS:
            raise ValueError(f"unknown modifier {mod!r} in {spec!r} (known: Shift, AltGr)")
        bits |= MODIFIERS[mod]
    if key not in keycodes.USAGES:
        raise ValueError(f"unknown key name {key!r} in {spec!r}")
    return bits, keycodes.USAGES[key]


@functools.cache
def load_layout(name: str) -> Layout:
    """Load (once; cached) the layout with xkb name ``name``.

    Raises :class:`~appliance.errors.LayoutError` naming the layout and listing the available ones.
    """
    name = name.strip() if isinstance(name, str) else name
    available = available_layouts()
    if name not in available:
        raise LayoutError(
            f"unknown keyboard layout {name!r}; available: {', '.join(available)}",
            fix="set the layout to one of the available xkb names (the layout the host uses), "
                "e.g. 'us', 'de' or 'us(intl)'")
    resource = resources.files(__name__).joinpath(_file_for(name))
    doc = json.loads(resource.read_text(encoding="utf-8"))
    chars: dict[str, tuple[Press, ...]] = {}
    for char, spec in doc["chars"].items():
        try:
            if len(char) != 1:
                raise ValueError("a table entry must be one character")
            chars[char] = tuple(parse_press(p) for p in spec.split())
        except ValueError as exc:
            raise ValueError(f"layout file {resource.name}: entry {char!r}: {exc}") from None
    dead = {sym: parse_press(spec) for sym, spec in doc.get("dead_keys", {}).items()}
    log.debug("loaded layout %s: %d characters", name, len(chars))
    return Layout(name=doc.get("name", name), description=doc.get("description", name),
                  chars=MappingProxyType(chars), dead_keys=MappingProxyType(dead))


__all__ = ["Layout", "Press", "MODIFIERS", "available_layouts", "load_layout", "parse_press"]
