"""Composition root for the ``voicekey`` command.

Each sub-command lives in ``appliance/commands/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (``func(args) -> int``). Only command modules and this file
import hardware libraries, and they do so lazily so that ``voicekey --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from appliance import __version__
from appliance.errors import VoiceKeyError

#: Sub-command name -> the module that registers it, in the order ``--help`` lists them. Only the
#: module of the command being run is imported, so ``voicekey release`` (the service's stop action)
#: and ``voicekey type`` start fast even on a Pi Zero.
COMMANDS = {
    "run": "appliance.commands.run_cmd",
    "demo": "appliance.commands.run_cmd",
    "type": "appliance.commands.type_cmd",
    "release": "appliance.commands.type_cmd",
    "gadget": "appliance.commands.gadget_cmd",
    "transcribe": "appliance.commands.transcribe_cmd",
    "models": "appliance.commands.models_cmd",
    "doctor": "appliance.commands.doctor_cmd",
    "bluetooth": "appliance.commands.bluetooth_cmd",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="voicekey",
        description="VoiceKey: hold the button, speak, release; the words are typed on the host.",
    )
    parser.add_argument("--version", action="version", version=f"voicekey {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug; debug shows transcripts)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = [COMMANDS[only]] if only in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command_word(argv: list[str]) -> str | None:
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_command_word(argv))
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except VoiceKeyError as exc:
        print(f"voicekey {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
