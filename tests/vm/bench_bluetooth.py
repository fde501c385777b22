"""Bluetooth typing benchmark beside USB, in one QEMU guest run.

Run as ``python -m tests.vm.bench_bluetooth`` (``make bench-bluetooth``). Boots the guest, types a
10,000-character text over USB (``voicekey type`` -> /dev/hidg0 -> dummy_hcd -> usbhid) and over
Bluetooth (``voicekey type --bluetooth`` on btvirt's hci0 -> the kernel's HIDP host on hci1), at the
same pacing settings, decoding both with xkbcommon. chars/s = decoded characters / (last - first
key event on the computer's side); errors = character edit distance to the input. The table goes
to stdout and into BENCHMARKS.md between ``<!-- bluetooth-bench:start -->`` and ``-end -->``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.vm.bench_typing import Row, bench_text, machine_description, run_one
from tests.vm.guest import REPO, Guest
from tests.vm.keyboard import char_errors, decode, gadget_up, type_command
from tests.vm.test_bluetooth_vm import HARNESS, UNIT_CAPS, Bt

START = "<!-- bluetooth-bench:start -->"
END = "<!-- bluetooth-bench:end -->"


def run_bluetooth(bt: Bt, rate: float, text: str, layout: str) -> Row:
    label = f"Bluetooth `--rate {rate:g}`"
    start = time.monotonic()
    typer = bt.start_typer(text, give_up=120, rate=rate)
    typer.wait_for_output("Bluetooth keyboard", timeout=120)
    bt.start_host(wait_ready=False)
    result = typer.wait(600 + len(text) * 2.5 / max(rate, 1))
    wall = time.monotonic() - start
    events = bt.finish_host()
    decoded = decode(events, layout)
    real = [e for e in events if not e.synthetic]
    span = real[-1].time - real[0].time if len(real) > 1 else 0.0
    note = "" if result.rc == 0 else f"exit {result.rc}"
    if decoded.repeats:
        note = (note + "; " if note else "") + f"{decoded.repeats} autorepeats ignored"
    return Row(label, len(decoded.text) / span if span > 0 else None, char_errors(text, decoded.text),
               len(decoded.text), wall, note)


def render(rows: list[Row], text_len: int, layout: str, machine: str) -> str:
    lines = [
        "## Bluetooth typing beside USB (real kernel and BlueZ in a QEMU guest, no radio)",
        "",
        f"{text_len} characters of mixed text (layout `{layout}`), typed once per row in the same "
        "guest boot; chars/s = decoded characters / (last - first key event on the computer's side); "
        "errors = character edit distance between the decoded text and the input. Produced by "
        "`python -m tests.vm.bench_bluetooth`. Bluetooth here is btvirt's virtual controllers: "
        "no air time, but the computer's HIDP runs on the same emulated CPUs as VoiceKey.",
        "",
        machine.replace("- Path: `voicekey type` -> /dev/hidg0", "- Paths: USB `voicekey type` -> /dev/hidg0")
        + "; Bluetooth `voicekey type --bluetooth` -> L2CAP on hci0 -> btvirt -> hci1 -> HIDP -> evdev",
        "",
        "| transport / setting | chars/s | errors | delivered | wall s | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        cps = f"{r.chars_per_s:.0f}" if r.chars_per_s is not None else "-"
        err = str(r.errors) if r.errors is not None else "-"
        lines.append(f"| {r.label} | {cps} | {err} | {r.delivered} | {r.wall_s:.1f} | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.bench_bluetooth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 500.0],
                        help="--rate values for both transports (default: %(default)s)")
    parser.add_argument("--chars", type=int, default=10_000, help="text length (default: %(default)s)")
    parser.add_argument("--layout", default="us")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="only print the table")
    parser.add_argument("--cpus", type=int, default=1, help="guest vCPUs (default: %(default)s)")
    args = parser.parse_args(argv)

    text = bench_text(args.chars, args.layout)
    rows: list[Row] = []
    with Guest(cpus=args.cpus) as guest:
        gadget_up(guest)
        for rate in args.rates:
            rows.append(run_one(guest, f"USB `--rate {rate:g}`", type_command(args.layout, rate=rate), text,
                                args.layout, 600 + len(text) * 2.5 / rate))
            print(rows[-1], file=sys.stderr)
        bt = Bt(guest)
        bt.stack()
        window = guest.start(f"exec {UNIT_CAPS} voicekey bluetooth pair --timeout 120 --config {bt.config}")
        window.wait_for_output("pairing window open", timeout=120)
        guest.run(f"{HARNESS} pair --expect ok", timeout=180).check()
        window.wait(150).check()
        for rate in args.rates:
            rows.append(run_bluetooth(bt, rate, text, args.layout))
            print(rows[-1], file=sys.stderr)
        machine = machine_description(guest)
    body = render(rows, len(text), args.layout, machine)
    print(body)
    if not args.no_write:
        path = args.output
        text_md = path.read_text() if path.exists() else ""
        import re

        block = f"{START}\n{body}\n{END}"
        if START in text_md and END in text_md:
            text_md = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text_md,
                             count=1, flags=re.DOTALL)
        else:
            text_md = text_md.rstrip("\n") + "\n\n" + block + "\n"
        path.write_text(text_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
