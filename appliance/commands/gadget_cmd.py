"""``voicekey gadget up|down|status``: the USB keyboard gadget in configfs."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from appliance.config import DEFAULT_PATHS, Config, TransportConfig, load_config
from appliance.gadget.configfs import Gadget, GadgetSettings

log = logging.getLogger(__name__)


def add_root_args(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that finds the gadget (type, release, doctor)."""
    p.add_argument("--configfs-root", type=Path, default=None,
                   help=f"configfs mount point (default: {TransportConfig.configfs_root})")
    p.add_argument("--sysfs-root", type=Path, default=None,
                   help=f"sysfs mount point (default: {TransportConfig.sysfs_root})")
    p.add_argument("--gadget-name", default=GadgetSettings.name, help="gadget directory name")


def gadget_from_args(args: argparse.Namespace, config: Config | None = None) -> Gadget:
    """The gadget the command line names. Roots not given on the command line and the USB serial
    (``transport.serial``; None derives it from the board) come from ``config`` (or the defaults)."""
    config = config or Config()
    configfs_root = args.configfs_root or config.transport.configfs_root
    sysfs_root = args.sysfs_root or config.transport.sysfs_root
    settings = GadgetSettings(name=args.gadget_name, serial=config.transport.serial)
    return Gadget(configfs_root, sysfs_root, settings)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gadget", help="set up, remove or inspect the USB keyboard gadget (needs root)",
                       description="Create the boot-keyboard USB gadget in configfs and bind it to "
                                   "the first USB device controller (idempotent), remove it, or show it. "
                                   "The USB serial number is transport.serial from the config, or one "
                                   "derived from the board's serial number (or machine id).")
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--udc", help="USB device controller to bind (default: the first in /sys/class/udc)")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help="config file to read the transport section from (default: the system config files)")
    add_root_args(p)
    p.set_defaults(func=run)


def load(args: argparse.Namespace) -> Config:
    """The config ``--config`` names (or the layered system config); issues are logged, not fatal."""
    loaded = load_config([args.config] if args.config else DEFAULT_PATHS)
    for issue in loaded.issues:
        log.warning("config: %s", issue)
    return loaded.config


def run(args: argparse.Namespace) -> int:
    config = load(args)
    gadget = gadget_from_args(args, config)
    if args.action == "up":
        st = gadget.up(args.udc)
        print(f"gadget {gadget.settings.name} bound to {st.udc} (state: {st.udc_state}); "
              f"device {st.device or 'unknown'}; serial {gadget.serial}")
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
