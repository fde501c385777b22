"""The typing benchmark's peer: encode stdin and write the reports to a hidg device in a bare loop.

Runs IN the guest. No pacing, no host-loss handling, no Caps Lock compensation: one blocking
``write()`` per report, which is as fast as the host's interrupt polling takes them. Uses our
encoder (so the same reports as ``voicekey type``) but not our transport.

Usage: ``python tests/vm/raw_type.py LAYOUT [DEVICE] < text``
"""

from __future__ import annotations

import os
import sys

from appliance.hid.encoder import EncoderOptions, encode


def main(argv: list[str]) -> int:
    """Write the encoded reports of stdin for layout ``argv[0]`` to ``argv[1]`` (/dev/hidg0)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    layout = argv[0]
    device = argv[1] if len(argv) > 1 else "/dev/hidg0"
    result = encode(sys.stdin.read(), layout, EncoderOptions(unmapped="skip"))
    fd = os.open(device, os.O_WRONLY)
    try:
        for report in result.reports:
            os.write(fd, report)
    finally:
        os.close(fd)
    print(f"{len(result.reports)} reports", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
