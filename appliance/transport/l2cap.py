"""L2CAP sockets for the Bluetooth HID channels (:class:`~appliance.transport.bluetooth.Links`).

Needs a Python with ``socket.AF_BLUETOOTH`` (Debian's ``/usr/bin/python3``; a pyenv build without
the BlueZ headers has none). PSMs below 0x1001 need ``CAP_NET_BIND_SERVICE``; PSM 0x11/0x13 are
taken by bluetoothd's input plugin unless it runs with ``--noplugin=input``.
"""

from __future__ import annotations

import array
import asyncio
import errno
import fcntl
import logging
import socket
import struct
import termios

from appliance.errors import TransportError

log = logging.getLogger(__name__)

SOL_BLUETOOTH = 274
BT_SECURITY = 4
BT_SECURITY_MEDIUM = 2  # authenticated link (bonded): what a keyboard must have
BTPROTO_L2CAP = 0
_DRAIN_POLL_S = 0.001


def _socket() -> socket.socket:
    family = getattr(socket, "AF_BLUETOOTH", None)
    if family is None:
        raise TransportError("this Python has no Bluetooth sockets (socket.AF_BLUETOOTH)",
                             fix="run VoiceKey with Debian's /usr/bin/python3 (`make venv` builds the venv from it)")
    sock = socket.socket(family, socket.SOCK_SEQPACKET, BTPROTO_L2CAP)
    sock.setsockopt(SOL_BLUETOOTH, BT_SECURITY, struct.pack("BB", BT_SECURITY_MEDIUM, 0))
    sock.setblocking(False)
    return sock


def _free_room(sock: socket.socket) -> int:
    """The send buffer's free room (TIOCOUTQ on a Bluetooth socket: sndbuf minus queued bytes)."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf, True)
    return buf[0]


class L2capChannel:
    """One connected L2CAP channel, driven by the asyncio loop."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        sock.setblocking(False)
        self._idle_room = _free_room(sock)

    async def send(self, data: bytes) -> None:
        """Send one message and wait until it has left our queue (handed to the controller):
        a send() alone only queues, and reports queued behind a lost link would be lost too."""
        if self.sock.fileno() < 0:
            raise ConnectionResetError(errno.ECONNRESET, "channel closed")
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, data)
        while self.sock.fileno() >= 0 and _free_room(self.sock) < self._idle_room:
            await asyncio.sleep(_DRAIN_POLL_S)

    async def recv(self) -> bytes:
        if self.sock.fileno() < 0:
            return b""
        try:
            return await asyncio.get_running_loop().sock_recv(self.sock, 1024)
        except OSError as exc:
            log.debug("L2CAP recv from %s: %s", self.peer, exc)
            return b""

    def close(self) -> None:
        self.sock.close()


class L2capListener:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def accept(self) -> L2capChannel:
        conn, (peer, _psm) = await asyncio.get_running_loop().sock_accept(self.sock)
        return L2capChannel(conn, peer)

    def close(self) -> None:
        self.sock.close()


class L2capLinks:
    """:class:`~appliance.transport.bluetooth.Links` over real L2CAP sockets."""

    def listen(self, local: str, psm: int) -> L2capListener:
        sock = _socket()
        try:
            sock.bind((local, psm))
            sock.listen(1)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise TransportError(f"L2CAP PSM {psm:#x} on {local} is taken (bluetoothd's input plugin?)",
                                     fix="run bluetoothd with --noplugin=input (the image's "
                                         "bluetooth.service drop-in does)") from exc
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise TransportError(f"no permission to listen on L2CAP PSM {psm:#x}",
                                     fix="the daemon needs CAP_NET_BIND_SERVICE "
                                         "(voicekey.service grants it)") from exc
            raise TransportError(f"cannot listen on L2CAP PSM {psm:#x} on {local}: {exc.strerror}",
                                 fix="check `voicekey doctor`") from exc
        return L2capListener(sock)

    async def connect(self, local: str, peer: str, psm: int) -> L2capChannel:
        sock = _socket()
        try:
            sock.bind((local, 0))
            await asyncio.get_running_loop().sock_connect(sock, (peer, psm))
        except BaseException:
            sock.close()
            raise
        return L2capChannel(sock, peer)
