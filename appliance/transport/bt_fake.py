"""Fakes for the Bluetooth edges, for in-process tests and the simulator.

:class:`FakeAir` joins a :class:`FakeBluez` (the daemon: bonds, pairing window, agent) and
:class:`FakeLinks` (L2CAP) to :class:`FakeHost`, which plays the computer: it pairs (only while the
device's agent accepts), connects, decodes the reports it receives, sends LED reports and control
requests, drops the link, and can be out of range so the device's reconnects fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from appliance.hid.report import LED_CAPS_LOCK, parse_report
from appliance.transport.hidp import PSM_CONTROL, PSM_INTERRUPT

CAPS_LOCK_USAGE = 0x39


class FakeChannel:
    """One end of an in-memory L2CAP channel."""

    def __init__(self, peer: str, inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
        self.peer = peer
        self._in = inbox
        self._out = outbox
        self.closed = False
        self.other: FakeChannel | None = None

    async def send(self, data: bytes) -> None:
        await asyncio.sleep(0)
        if self.closed or self.other is None or self.other.closed:
            raise ConnectionResetError(104, "Connection reset by peer")
        self._out.put_nowait(bytes(data))

    async def recv(self) -> bytes:
        if self.closed:
            return b""
        return await self._in.get()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._in.put_nowait(b"")
        if self.other is not None and not self.other.closed:
            self.other.closed = True
            self.other._in.put_nowait(b"")


def channel_pair(a: str, b: str) -> tuple[FakeChannel, FakeChannel]:
    """Two connected ends: the first's peer is ``b``, the second's is ``a``."""
    q1: asyncio.Queue = asyncio.Queue()
    q2: asyncio.Queue = asyncio.Queue()
    end_a, end_b = FakeChannel(b, q1, q2), FakeChannel(a, q2, q1)
    end_a.other, end_b.other = end_b, end_a
    return end_a, end_b


class FakeListener:
    def __init__(self) -> None:
        self.pending: asyncio.Queue[FakeChannel] = asyncio.Queue()
        self.closed = False

    async def accept(self) -> FakeChannel:
        return await self.pending.get()

    def close(self) -> None:
        self.closed = True


class FakeAir:
    """What is in range: the device's listeners and the hosts."""

    def __init__(self) -> None:
        self.listeners: dict[int, FakeListener] = {}
        self.hosts: dict[str, FakeHost] = {}


class FakeLinks:
    """:class:`~appliance.transport.bluetooth.Links` over :class:`FakeAir`."""

    def __init__(self, air: FakeAir) -> None:
        self.air = air
        self.connects: list[tuple[str, int]] = []

    def listen(self, local: str, psm: int) -> FakeListener:
        listener = self.air.listeners[psm] = FakeListener()
        return listener

    async def connect(self, local: str, peer: str, psm: int) -> FakeChannel:
        await asyncio.sleep(0)
        self.connects.append((peer, psm))
        host = self.air.hosts.get(peer)
        if host is None or not host.in_range or not host.accepts_reconnect:
            raise OSError(112, "Host is down")
        mine, theirs = channel_pair(local, peer)
        host._accepted(psm, theirs)
        return mine


class FakeBluez:
    """:class:`~appliance.transport.bluetooth.Bluez`: bonds and the pairing window in memory."""

    def __init__(self, address: str = "00:AA:01:00:00:00", fail: BaseException | None = None) -> None:
        self.address = address
        self.fail = fail
        self.bonds: set[str] = set()
        self.window_open = False
        self.may_pair: Callable[[], bool] = lambda: False
        self.on_accepted: Callable[[str], None] | None = None
        self.name: str | None = None
        self.record: str | None = None
        self.closed = False
        self.on_window_open: Callable[[], None] | None = None
        """Called when the window opens (a test's host pairs then)."""

    async def start(self, name: str, record: str, may_pair: Callable[[], bool]) -> str:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.name, self.record, self.may_pair = name, record, may_pair
        return self.address

    async def set_pairing(self, open_: bool, timeout_s: float) -> None:
        self.window_open = open_
        if open_ and self.on_window_open is not None:
            self.on_window_open()

    # the extra calls `voicekey bluetooth` makes
    async def connect(self) -> None:
        await asyncio.sleep(0)

    async def register_agent(self, may_pair: Callable[[], bool],
                             on_accepted: Callable[[str], None] | None = None) -> None:
        self.may_pair = may_pair
        self.on_accepted = on_accepted

    async def adapter_properties(self) -> dict:
        return {"Address": self.address, "Alias": self.name or "VoiceKey", "Powered": True,
                "Pairable": self.window_open, "Discoverable": self.window_open, "Class": 0x000540}

    async def devices(self) -> list[dict]:
        return [{"path": "/org/bluez/hci0/dev_" + a.replace(":", "_"), "Address": a, "Alias": "Fake host",
                 "Paired": True, "Connected": False} for a in sorted(self.bonds)]

    async def bonded(self) -> list[str]:
        return sorted(self.bonds)

    async def pairable(self) -> bool:
        return self.window_open

    async def forget(self, address: str) -> None:
        self.bonds.discard(address)

    async def close(self) -> None:
        self.closed = True

    def pair(self, address: str, behind_our_back: bool = False) -> bool:
        """A host asks to pair: the agent is asked (Just Works). True when bonded.
        ``behind_our_back``: the controller bonds without asking, window or not (as btvirt may)."""
        if behind_our_back:
            self.bonds.add(address)
            return True
        if self.window_open and self.may_pair():
            if self.on_accepted is not None:
                self.on_accepted(address)
            self.bonds.add(address)
            return True
        return False


class FakeHost:
    """A computer in range of the device: pairs, connects, and types what it receives."""

    def __init__(self, air: FakeAir, bluez: FakeBluez, address: str = "00:BB:02:00:00:01") -> None:
        self.air = air
        self.bluez = bluez
        self.address = address
        self.in_range = True
        self.accepts_reconnect = True
        self.leds = 0
        self.reports: list[bytes] = []
        """Input reports received (8 bytes each, the ``A1 01`` header checked and removed)."""
        self.control_replies: list[bytes] = []
        self.ctrl: FakeChannel | None = None
        self.intr: FakeChannel | None = None
        self._pending_ctrl: FakeChannel | None = None
        self._tasks: list[asyncio.Task] = []
        self._caps_down = False
        air.hosts[address] = self

    @property
    def connected(self) -> bool:
        return self.intr is not None and not self.intr.closed

    def pair(self, behind_our_back: bool = False) -> bool:
        return self.bluez.pair(self.address, behind_our_back)

    async def connect(self) -> None:
        """Open control then interrupt to the device, as a host reconnecting does."""
        ctrl_mine, ctrl_dev = channel_pair(self.address, self.bluez.address)
        self.air.listeners[PSM_CONTROL].pending.put_nowait(ctrl_dev)
        intr_mine, intr_dev = channel_pair(self.address, self.bluez.address)
        self.air.listeners[PSM_INTERRUPT].pending.put_nowait(intr_dev)
        self._start(ctrl_mine, intr_mine)
        await asyncio.sleep(0)

    def _accepted(self, psm: int, channel: FakeChannel) -> None:
        if psm == PSM_CONTROL:
            self._pending_ctrl = channel
        else:
            assert self._pending_ctrl is not None
            self._start(self._pending_ctrl, channel)
            self._pending_ctrl = None

    def _start(self, ctrl: FakeChannel, intr: FakeChannel) -> None:
        self.ctrl, self.intr = ctrl, intr
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_intr(intr)), loop.create_task(self._read_ctrl(ctrl))]

    async def _read_intr(self, intr: FakeChannel) -> None:
        while (message := await intr.recv()):
            assert message[:2] == bytes([0xA1, 0x01]) and len(message) == 10, message
            report = message[2:]
            self.reports.append(report)
            caps = CAPS_LOCK_USAGE in parse_report(report)[1]
            if caps and not self._caps_down:  # a host toggles Caps Lock and tells the keyboard
                self.leds ^= LED_CAPS_LOCK
                await intr.send(bytes([0xA2, 0x01, self.leds]))
            self._caps_down = caps

    async def _read_ctrl(self, ctrl: FakeChannel) -> None:
        while (message := await ctrl.recv()):
            self.control_replies.append(message)

    async def set_leds(self, leds: int) -> None:
        """The host's lock keys changed: SET_REPORT(output) on the control channel."""
        self.leds = leds
        assert self.ctrl is not None
        await self.ctrl.send(bytes([0x52, 0x01, leds]))
        await asyncio.sleep(0)

    async def control(self, message: bytes) -> None:
        assert self.ctrl is not None
        await self.ctrl.send(message)
        await asyncio.sleep(0)

    def drop(self) -> None:
        """The link is lost (out of range, host asleep)."""
        for channel in (self.intr, self.ctrl):
            if channel is not None:
                channel.close()
