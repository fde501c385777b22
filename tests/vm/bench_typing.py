"""Typing-throughput benchmark through the real gadget stack in the QEMU guest.

Run as ``python -m tests.vm.bench_typing`` (``make bench-typing``). Boots the guest, brings the
gadget up, and for each pacing setting types a 10,000-character text with
``voicekey type --rate N`` while the guest's host side records the key events. For each run it
reports delivered characters per second (first to last host key event), the character-level
errors of the xkbcommon-decoded text against the input, and the wall time of the command. The
peer in the same run is ``tests/vm/raw_type.py``: the same encoder's reports written in a bare
blocking loop, i.e. as fast as the host polls. The table goes to stdout and into BENCHMARKS.md
between ``<!-- typing-bench:start -->`` and ``<!-- typing-bench:end -->``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.vm.guest import REPO, Guest
from tests.vm.guest_events import EventsDropped
from tests.vm.keyboard import Recorder, char_errors, corpus_for, decode, gadget_up, type_command

START = "<!-- typing-bench:start -->"
END = "<!-- typing-bench:end -->"
DEFAULT_RATES = (250.0, 500.0, 1000.0, 2000.0, 0.0)
PEER_LABEL = "peer: raw blocking writes"


@dataclass
class Row:
    """One benchmark run."""

    label: str
    chars_per_s: float | None
    errors: int | None
    delivered: int
    wall_s: float
    note: str = ""


def bench_text(n: int, layout: str) -> str:
    """``n`` characters of the tricky-text corpus for ``layout``, repeated."""
    corpus = corpus_for(layout) + " "
    text = (corpus * (n // len(corpus) + 1))[:n]
    return text[:-1] + "." if text.endswith(" ") else text


def run_one(guest: Guest, label: str, cmd: str, text: str, layout: str, timeout: float,
            attempts: int = 2) -> Row:
    """Type ``text`` with ``cmd`` in the guest while recording; measure it.

    A recorder overflow (the guest's evdev buffer filled because the emulated CPU fell behind) says
    nothing about the typist, so that run is repeated, up to ``attempts`` runs in all.
    """
    for attempt in range(1, attempts + 1):
        with Recorder(guest, "bench.jsonl") as recorder:
            start = time.monotonic()
            result = guest.run(cmd, input=text, timeout=timeout)
            wall = time.monotonic() - start
            try:
                events = recorder.finish()
                break
            except EventsDropped:
                if attempt == attempts:
                    return Row(label, None, None, 0, wall, "recorder overflowed (SYN_DROPPED)")
    note = "" if result.rc == 0 else f"exit {result.rc}: {result.stderr.strip()[-120:]}"
    if attempt > 1:
        note = (note + "; " if note else "") + f"run {attempt}: earlier recorder overflow"
    decoded = decode(events, layout)
    real = [e for e in events if not e.synthetic]
    span = real[-1].time - real[0].time if len(real) > 1 else 0.0
    cps = len(decoded.text) / span if span > 0 else None
    if decoded.repeats:
        note = (note + "; " if note else "") + f"{decoded.repeats} autorepeats ignored"
    return Row(label, cps, char_errors(text, decoded.text), len(decoded.text), wall, note)


def machine_description(guest: Guest) -> str:
    """CPU, cores, kernels, QEMU and accelerator, date."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    accel = guest.accel.upper()
    note = (" (TCG: every guest instruction is emulated, so the guest's host side and the "
            "typist run many times slower than on real hardware; absolute numbers are a lower "
            "bound)" if guest.accel == "tcg" else "")
    return (f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
            f"- Machine: {cpu}, {os.cpu_count()} cores, host kernel {platform.release()}, "
            f"load average {os.getloadavg()[0]:.1f} at the end (other work shares these cores)\n"
            f"- Guest: Debian kernel {guest.release}, {guest.cpus} vCPU, {guest.memory_mb} MiB, "
            f"{qemu}, accelerator {accel}{note}\n"
            "- Path: `voicekey type` -> /dev/hidg0 -> usb_f_hid -> dummy_hcd -> usbhid -> "
            "evdev, decoded with xkbcommon (tests/oracle/xkb.py)")


def render(rows: list[Row], text_len: int, layout: str, machine: str) -> str:
    """The BENCHMARKS.md section (between the markers)."""
    lines = [
        "## Typing throughput (real USB gadget stack in a QEMU guest)",
        "",
        f"{text_len} characters of mixed text (layout `{layout}`), typed once per setting; "
        "chars/s = decoded characters / (last - first host key event); errors = character edit "
        "distance between the decoded text and the input. Produced by "
        "`python -m tests.vm.bench_typing`.",
        "",
        machine,
        "",
        "| setting | chars/s | vs peer | errors | delivered | wall s | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    peer = next((r.chars_per_s for r in rows if r.label.startswith(PEER_LABEL)), None)
    for r in rows:
        cps = f"{r.chars_per_s:.0f}" if r.chars_per_s is not None else "-"
        ratio = f"{r.chars_per_s / peer:.2f}x" if r.chars_per_s and peer else "-"
        err = str(r.errors) if r.errors is not None else "-"
        lines.append(f"| {r.label} | {cps} | {ratio} | {err} | {r.delivered} | {r.wall_s:.1f} | {r.note} |")
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Put ``body`` between the markers in ``path``, leaving the rest of the file alone."""
    block = f"{START}\n{body}\n{END}"
    text = path.read_text() if path.exists() else "# VoiceKey benchmarks\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text,
                      count=1, flags=re.DOTALL)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.bench_typing",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=list(DEFAULT_RATES),
                        help="voicekey type --rate values (reports/s; 0 = as fast as the host "
                             "polls); default: %(default)s")
    parser.add_argument("--chars", type=int, default=10_000, help="text length (default: %(default)s)")
    parser.add_argument("--layout", default="us", help="layout (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md",
                        help="file to update (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="only print the table")
    parser.add_argument("--no-peer", action="store_true", help="skip the raw-write peer run")
    parser.add_argument("--cpus", type=int, default=2,
                        help="guest vCPUs (default: %(default)s: the typist and the guest's host "
                             "side, which on real hardware are two machines, do not share one "
                             "emulated CPU; a Pi has four cores)")
    args = parser.parse_args(argv)

    text = bench_text(args.chars, args.layout)
    rows: list[Row] = []
    with Guest(cpus=args.cpus) as guest:
        gadget_up(guest)
        for rate in args.rates:
            label = f"`--rate {rate:g}`" + (" (host polling)" if rate == 0 else "")
            # Generous timeout: about 2.3 reports per character, and TCG may be slow.
            timeout = 600 + (len(text) * 2.5 / rate if rate else 0)
            row = run_one(guest, label, type_command(args.layout, rate=rate), text, args.layout,
                          timeout)
            rows.append(row)
            print(f"{row.label}: {row.chars_per_s or 0:.0f} chars/s, errors {row.errors}, "
                  f"wall {row.wall_s:.1f} s {row.note}", file=sys.stderr)
        if not args.no_peer:
            row = run_one(guest, f"{PEER_LABEL} (tests/vm/raw_type.py)",
                          f"exec python tests/vm/raw_type.py {args.layout}", text, args.layout, 900)
            rows.append(row)
        machine = machine_description(guest)
    body = render(rows, len(text), args.layout, machine)
    print(body)
    if not args.no_write:
        write_section(args.output, body)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
