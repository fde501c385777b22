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

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "appliance.commands.run_cmd",
    "appliance.commands.type_cmd",
    "appliance.commands.gadget_cmd",
    "appliance.commands.doctor_cmd",
    "appliance.commands.transcribe_cmd",
    "appliance.commands.models_cmd",
    "appliance.commands.bench_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicekey",
        description="VoiceKey: hold the button, speak, release; the words are typed on the host.",
    )
    parser.add_argument("--version", action="version", version=f"voicekey {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug; debug shows transcripts)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
