"""``voicekey bluetooth status|pair|forget [ADDR|--all]``: the Bluetooth keyboard's adapter and hosts.

``pair`` works with or without the daemon: it registers its own Just Works agent (the default one
while it runs), opens the pairing window in bluetoothd and waits until a host has paired or the
window's time is up. ``forget`` removes bonds (the host must pair again inside a window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
from pathlib import Path

from appliance.config import DEFAULT_PATHS, Config, load_config
from appliance.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

ADDRESS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bluetooth", help="Bluetooth keyboard: show, pair or forget hosts",
                       description="status: the adapter, the pairing window and the paired hosts. "
                                   "pair: open the pairing window (controller.pairing_s, or --timeout) "
                                   "and wait for a host to pair. forget ADDR | --all: remove paired hosts.")
    p.add_argument("action", choices=("status", "pair", "forget"))
    p.add_argument("address", nargs="?", help="the host to forget (AA:BB:CC:DD:EE:FF)")
    p.add_argument("--all", action="store_true", help="forget: every paired host")
    p.add_argument("--timeout", type=float, help="pair: seconds the window stays open")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help="config file (default: the system config files)")
    p.set_defaults(func=run)


def _last_host_file(config: Config) -> Path:
    return config.bluetooth.state_dir / f"last-host-{config.bluetooth.adapter}"


def run(args: argparse.Namespace, bluez=None) -> int:  # noqa: ANN001 - a Bluez for tests
    loaded = load_config([args.config] if args.config else DEFAULT_PATHS)
    for issue in loaded.issues:
        log.warning("config: %s", issue)
    config = loaded.config
    if args.action == "forget":
        if args.all == bool(args.address):
            raise ConfigError("forget needs exactly one of: a host address, or --all",
                              fix="`voicekey bluetooth status` lists the paired hosts")
        if args.address and not ADDRESS.fullmatch(args.address):
            raise ConfigError(f"{args.address!r} is not a Bluetooth address",
                              fix="give it as AA:BB:CC:DD:EE:FF (see `voicekey bluetooth status`)")
    if bluez is None:
        from appliance.transport.bluez import BluezDbus

        bluez = BluezDbus(config.bluetooth.adapter)
    return asyncio.run(_run(args, config, bluez))


async def _run(args: argparse.Namespace, config: Config, bluez) -> int:  # noqa: ANN001
    await bluez.connect()
    try:
        if args.action == "status":
            return await _status(args, config, bluez)
        if args.action == "forget":
            return await _forget(args, config, bluez)
        return await _pair(args, config, bluez)
    finally:
        await bluez.close()


async def _status(args: argparse.Namespace, config: Config, bluez) -> int:  # noqa: ANN001
    adapter = await bluez.adapter_properties()
    devices = await bluez.devices()
    last = _last_host_file(config)
    last_host = last.read_text().strip() if last.exists() else None
    info = {
        "adapter": config.bluetooth.adapter, "address": adapter.get("Address"), "name": adapter.get("Alias"),
        "powered": adapter.get("Powered"), "pairable": adapter.get("Pairable"),
        "discoverable": adapter.get("Discoverable"), "class": f"{adapter.get('Class', 0):#08x}",
        "last_host": last_host,
        "hosts": [{"address": d["Address"], "name": d.get("Alias") or d.get("Name"),
                   "paired": bool(d.get("Paired")), "connected": bool(d.get("Connected"))}
                  for d in devices if d.get("Paired")],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"adapter {info['adapter']} {info['address']} name {info['name']!r} class {info['class']}"
          f" powered {info['powered']}")
    print("pairing window: " + ("open" if info["pairable"] else "closed"))
    if not info["hosts"]:
        print("no paired hosts (hold the button 8 s, or `voicekey bluetooth pair`)")
    for h in info["hosts"]:
        mark = " (last)" if h["address"] == last_host else ""
        print(f"  {h['address']}  {h['name'] or '?'}  {'connected' if h['connected'] else 'not connected'}{mark}")
    return 0


async def _forget(args: argparse.Namespace, config: Config, bluez) -> int:  # noqa: ANN001
    bonded = await bluez.bonded()
    targets = bonded if args.all else [a for a in bonded if a.upper() == args.address.upper()]
    if not targets and not args.all:
        raise TransportError(f"{args.address} is not a paired host",
                             fix="`voicekey bluetooth status` lists the paired hosts")
    last = _last_host_file(config)
    last_host = last.read_text().strip().upper() if last.exists() else None
    for address in targets:
        await bluez.forget(address)
        print(f"forgot {address}")
        if address.upper() == last_host:
            try:
                last.unlink()
            except OSError as exc:
                log.warning("cannot remove %s: %s", last, exc)
    if not targets:
        print("no paired hosts")
    return 0


async def _pair(args: argparse.Namespace, config: Config, bluez) -> int:  # noqa: ANN001
    timeout = args.timeout if args.timeout is not None else config.controller.pairing_s
    if not 1 <= timeout <= 3600:
        raise ConfigError(f"--timeout {timeout:g} is out of range", fix="give 1 to 3600 seconds")
    deadline = time.monotonic() + timeout
    before = set(await bluez.bonded())
    accepted: set[str] = set()  # a host pairing again keeps its address: the agent saw it
    await bluez.register_agent(lambda: time.monotonic() < deadline, accepted.add)
    await bluez.set_pairing(True, timeout)
    print(f"pairing window open for {timeout:g} s: pair {config.bluetooth.name!r} from the computer")
    try:
        while time.monotonic() < deadline:
            bonded = set(await bluez.bonded())
            new, again = bonded - before, bonded & before & accepted
            if new or again:
                print("paired: " + ", ".join(sorted(new | again)) + (" (again)" if again and not new else ""))
                return 0
            await asyncio.sleep(0.5)
        print("no host paired before the window closed")
        return 1
    finally:
        try:
            await bluez.set_pairing(False, timeout)
        except TransportError as exc:  # bluetoothd closes the window itself at its timeout
            log.warning("could not close the pairing window: %s", exc)
