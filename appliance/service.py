"""systemd service protocol (sd_notify): READY=1, STATUS=..., WATCHDOG=1 over $NOTIFY_SOCKET.

The protocol is one datagram per message (man 3 sd_notify); outside systemd it does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send ``message`` to systemd; False when not running under a notify-type unit."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(path)
        sock.sendall(message.encode())
    return True


def watchdog_period_s(env: dict[str, str] | None = None) -> float | None:
    """Half the unit's WatchdogSec (from $WATCHDOG_USEC), or None when there is no watchdog."""
    usec = (env if env is not None else os.environ).get("WATCHDOG_USEC")
    return int(usec) / 2e6 if usec and usec.isdigit() else None
