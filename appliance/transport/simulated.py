"""A simulated host for ``voicekey run --simulate`` and the demo: decodes what it receives into the
text a host with the same layout would show (including Backspace), and prints it."""

from __future__ import annotations

import sys
from collections.abc import Callable

from appliance.hid.encoder import EncoderOptions, backspace_strokes, encode
from appliance.hid.layouts import Layout
from appliance.hid.report import RELEASE_ALL
from appliance.transport.fake import FakeHidDevice


class SimulatedHost(FakeHidDevice):
    """Recognises whole strokes (press ... all released) of the layout and keeps a screen text.

    This decodes with our own layout tables, so it proves nothing about real hosts — the tests in
    tests/vm/ use libxkbcommon on the real kernel for that. It is here to show what would be typed.
    """

    def __init__(self, layout: Layout, echo: Callable[[str], None] | None = None) -> None:
        super().__init__()
        table: dict[tuple[bytes, ...], str] = {}
        for char in layout.chars:
            for stroke in encode(char, layout, EncoderOptions(allow_newline=True, allow_tab=True)).strokes:
                table.setdefault(stroke.reports, stroke.text)
        for stroke in encode("\n\t", layout, EncoderOptions(allow_newline=True, allow_tab=True)).strokes:
            table.setdefault(stroke.reports, stroke.text)
        table[backspace_strokes(1)[0].reports] = "\b"
        self._table = table
        self._longest = max(len(k) for k in table)
        self._pending: list[bytes] = []
        self.screen = ""
        self.echo = echo
        self.on_report = self._decode

    def _decode(self, report: bytes) -> None:
        if report == RELEASE_ALL and not self._pending:
            return  # idle release-all
        self._pending.append(report)
        if report != RELEASE_ALL:
            return
        text = self._table.get(tuple(self._pending))
        if text is None and len(self._pending) < self._longest:
            return  # the first half of a dead-key sequence
        self._pending = []
        if text is None:
            text = "\ufffd"
        if text == "\b":
            self.screen = self.screen[:-1]
            if self.echo:
                self.echo("\b \b")
        else:
            self.screen += text
            if self.echo:
                self.echo(text)


def print_echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
