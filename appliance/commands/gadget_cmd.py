"""``voicekey gadget up|down|status``: the USB keyboard gadget in configfs."""

from __future__ import annotations

import argparse
import json

from appliance.gadget.configfs import Gadget, GadgetSettings


def add_root_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that finds the gadget (type, release, doctor)."""
    p.add_argument("--configfs-root", default="/sys/kernel/config", help="configfs mount point")
    p.add_argument("--sysfs-root", default="/sys", help="sysfs mount point")
    p.add_argument("--gadget-name", default=GadgetSettings.name, help="gadget directory name")


def gadget_from_args(args: argparse.Namespace) -> Gadget:
    return Gadget(args.configfs_root, args.sysfs_root, GadgetSettings(name=args.gadget_name))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gadget", help="set up, remove or inspect the USB keyboard gadget (needs root)",
                       description="Create the boot-keyboard USB gadget in configfs and bind it to "
                                   "the first USB device controller (idempotent), remove it, or show it.")
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--udc", help="USB device controller to bind (default: the first in /sys/class/udc)")
    p.add_argument("--json", action="store_true", help="status as JSON")
    add_root_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gadget = gadget_from_args(args)
    if args.action == "up":
        st = gadget.up(args.udc)
        print(f"gadget {gadget.settings.name} bound to {st.udc} (state: {st.udc_state}); "
              f"device {st.device or 'unknown'}")
        return 0
    if args.action == "down":
        gadget.down()
        print(f"gadget {gadget.settings.name} removed")
        return 0
    st = gadget.status()
    if args.json:
        print(json.dumps({"exists": st.exists, "udc": st.udc, "udc_state": st.udc_state,
                          "device": st.device, "bcd_device": st.bcd_device,
                          "configured": st.configured}))
    elif not st.exists:
        print(f"gadget {gadget.settings.name}: not set up (run `sudo voicekey gadget up`)")
    else:
        bcd = f"{st.bcd_device:#06x}" if st.bcd_device is not None else "unknown"
        print(f"gadget {gadget.settings.name}: bound to {st.udc or 'nothing'}, "
              f"host state {st.udc_state or 'unknown'}, device {st.device or 'none'}, bcdDevice {bcd}")
    return 0 if st.configured else 1
