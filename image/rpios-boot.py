#!/usr/bin/env python3
"""Edit Raspberry Pi OS's config.txt and cmdline.txt for VoiceKey (image/build-rpios.sh).

Idempotent: a second run changes nothing. Only these edits, the rest of both files stays as it is:

config.txt
    ``dtoverlay=dwc2,dr_mode=peripheral`` in an ``[all]`` section: the dwc2 controller in device
    (gadget) mode on the USB-C port (Raspberry Pi OS's own ``[cm5]`` section has
    ``dtoverlay=dwc2,dr_mode=host``, which is not ours and stays).
cmdline.txt (one line)
    ``root=PARTUUID=<disk id>-02``; ``ro`` (read-only root, no ``rw``); ``modules-load=dwc2``;
    ``fsck.mode=skip``; no first-boot ``init=/usr/lib/raspberrypi-sys-mods/firstboot`` (it grows
    the root partition, gives the card new PARTUUIDs and reboots) and no ``systemd.run=`` first-run
    script of Raspberry Pi Imager's customisation (both would write the read-only root).

Usage: rpios-boot.py --disk-id XXXXXXXX CONFIG_TXT CMDLINE_TXT
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

OVERLAY = "dtoverlay=dwc2,dr_mode=peripheral"
#: cmdline.txt words of Raspberry Pi OS's first boot and Imager's first-run script
FIRST_BOOT = re.compile(r"^(init=.*firstboot.*|systemd\.run=.*|systemd\.run_success_action=.*|"
                        r"systemd\.unit=kernel-command-line\.target)$")


def edit_config(text: str) -> str:
    """config.txt with the dwc2 peripheral overlay active for every board."""
    section = "all"
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip().lower()
        elif stripped == OVERLAY and section == "all":
            return text
    if text and not text.endswith("\n"):
        text += "\n"
    header = "" if section == "all" else "[all]\n"
    return text + f"{header}# VoiceKey: USB device (gadget) mode on the USB-C port\n{OVERLAY}\n"


def edit_cmdline(text: str, disk_id: str) -> str:
    """cmdline.txt for a read-only root on partition 2, dwc2 loaded, no first-boot scripts."""
    words = [w for w in text.split() if not FIRST_BOOT.match(w) and w != "rw"]
    root = f"root=PARTUUID={disk_id}-02"
    words = [root if w.startswith("root=") else w for w in words]
    if root not in words:
        words.insert(0, root)
    extra = []
    if "ro" not in words:
        extra.append("ro")
    loads = [i for i, w in enumerate(words) if w.startswith("modules-load=")]
    if loads:
        i = loads[0]
        mods = words[i].split("=", 1)[1].split(",")
        if "dwc2" not in mods:
            words[i] = "modules-load=" + ",".join([m for m in mods if m] + ["dwc2"])
    else:
        extra.append("modules-load=dwc2")
    if not any(w.startswith("fsck.mode=") for w in words):
        extra.append("fsck.mode=skip")
    at = words.index("rootwait") + 1 if "rootwait" in words else len(words)
    words[at:at] = extra
    return " ".join(words) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--disk-id", required=True, help="the MBR disk identifier, 8 hex digits")
    parser.add_argument("config", type=Path)
    parser.add_argument("cmdline", type=Path)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{8}", args.disk_id):
        parser.error(f"--disk-id {args.disk_id!r}: expected 8 lower-case hex digits")
    for path, edit in ((args.config, edit_config), (args.cmdline, lambda t: edit_cmdline(t, args.disk_id))):
        # FAT files written on Windows may have CRLF line ends: kept as they are in config.txt
        old = path.read_text(encoding="utf-8", errors="surrogateescape")
        new = edit(old)
        if new != old:
            path.write_text(new, encoding="utf-8", errors="surrogateescape")
            print(f"rpios-boot: {path.name} edited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
