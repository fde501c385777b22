"""``voicekey type`` (type text or stdin on the host) and ``voicekey release`` (release all keys)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from appliance.commands.gadget_cmd import add_root_args, gadget_from_args
from appliance.config import KeyboardConfig, TransportConfig
from appliance.transport.typist import TypingOptions

log = logging.getLogger(__name__)


def _non_negative(value: str) -> float:
    """argparse type: a number >= 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a finite number >= 0")
    return number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("type", help="type TEXT (or stdin with '-') on the host through the HID device")
    p.add_argument("text", help="the text to type, or - to read stdin")
    p.add_argument("--layout", default=KeyboardConfig.layout,
                   help=f"the host's keyboard layout, by xkb name (default: {KeyboardConfig.layout})")
    p.add_argument("--device", default=str(TransportConfig.device),
                   help=f"HID gadget device (default: {TransportConfig.device})")
    p.add_argument("--rate", type=_non_negative, default=TypingOptions.rate,
                   help=f"reports per second, 0 = as fast as the host polls (default: {TypingOptions.rate:g})")
    p.add_argument("--give-up", type=_non_negative, default=TypingOptions.give_up_s, metavar="SECONDS",
                   help="how long to keep unsent text while the host is away")
    p.add_argument("--settle", type=_non_negative, default=TypingOptions.settle_s, metavar="SECONDS",
                   help="pause after the host (re)connects before typing on "
                        f"(default: {TypingOptions.settle_s:g})")
    p.add_argument("--unmapped", choices=("transliterate", "skip", "unicode"), default=KeyboardConfig.unmapped,
                   help="what to do with characters the layout cannot type")
    p.add_argument("--host-os", choices=("linux", "windows", "macos"), default=KeyboardConfig.host_os,
                   help="host OS, for --unmapped unicode")
    p.add_argument("--allow-newline", action="store_true", help="type newlines as Enter")
    p.add_argument("--allow-tab", action="store_true", help="type tabs as Tab")
    p.add_argument("--no-caps-compensation", action="store_true",
                   help="do not toggle the host's Caps Lock off while typing")
    p.add_argument("--bluetooth", action="store_true",
                   help="type on the paired Bluetooth host instead (bluetooth.* from --config or the system "
                        "config; waits up to --give-up for the host to connect or be reconnected)")
    p.add_argument("--config", help="config file for --bluetooth (default: the system config files)")
    add_root_args(p)
    p.set_defaults(func=run_type)

    r = sub.add_parser("release", help="release all keys on the host (systemd ExecStopPost)")
    r.add_argument("--device", help="HID device (default: transport.device from the config, /dev/hidg0)")
    r.add_argument("--config", help="config file to read transport.device from")
    r.set_defaults(func=run_release)


def run_type(args: argparse.Namespace) -> int:
    from appliance.hid import encoder
    from appliance.hid.layouts import load_layout
    from appliance.transport.typist import Typist
    from appliance.transport.usb import HidgDevice

    text = sys.stdin.read() if args.text == "-" else args.text
    layout = load_layout(args.layout)
    options = encoder.EncoderOptions(unmapped=args.unmapped, host_os=args.host_os,
                                     allow_newline=args.allow_newline, allow_tab=args.allow_tab)
    encoded = encoder.encode(text, layout, options)
    for skip in encoded.skipped:
        log.warning("not typed: %s", skip)
    options = TypingOptions(rate=args.rate, give_up_s=args.give_up, settle_s=args.settle,
                            caps_lock_compensation=not args.no_caps_compensation)
    if args.bluetooth:
        result = asyncio.run(_type_bluetooth(args, options, encoded.strokes))
    else:
        state_file = gadget_from_args(args).udc_state_file()
        device = HidgDevice(args.device, udc_state_file=state_file)
        typist = Typist(device, options, capslock=encoder.capslock_stroke())
        try:
            result = asyncio.run(typist.type(encoded.strokes))
        finally:
            device.close()
    if not result.complete:
        left = "".join(s.text for s in result.pending)
        print(f"voicekey type: host did not come back within {args.give_up:g} s; "
              f"{len(left)} characters not typed", file=sys.stderr)
        return 3
    log.info("typed %d characters in %.2f s (%d reports, %d reconnects)", len(result.typed),
             result.seconds, result.reports, result.reconnects)
    return 0


async def _type_bluetooth(args: argparse.Namespace, options, strokes):  # noqa: ANN001,ANN202
    """Type over the Bluetooth keyboard built by the composition root, as ``voicekey run`` does."""
    import dataclasses

    from appliance.compose import PiHardware
    from appliance.config import DEFAULT_PATHS, load_config
    from appliance.hid import encoder
    from appliance.transport.typist import Typist

    loaded = load_config([args.config] if args.config else DEFAULT_PATHS)
    for issue in loaded.issues:
        log.warning("config: %s", issue)
    config = dataclasses.replace(loaded.config, transport=dataclasses.replace(loaded.config.transport,
                                                                             kind="bluetooth"))
    device = PiHardware().hid_device(config)
    try:
        await device.ready()  # type: ignore[attr-defined]
        return await Typist(device, options, capslock=encoder.capslock_stroke()).type(strokes)
    finally:
        device.close()
        await asyncio.sleep(0.1)  # let BlueZ unregister the agent and profile


def run_release(args: argparse.Namespace) -> int:
    from appliance.transport.usb import release_all_now

    device = args.device
    if device is None:
        from appliance.config import DEFAULT_PATHS, load_config

        device = load_config([args.config] if args.config else DEFAULT_PATHS).config.transport.device
    release_all_now(device)
    return 0
