"""Bluetooth transport: the same keyboard as ``/dev/hidg0``, over classic BR/EDR HID.

:class:`BluetoothHid` is a :class:`~appliance.transport.base.HidDevice`: one ``write_report`` sends
one report (``A1 01`` + the 8-byte boot report from ``appliance.hid``) on the interrupt channel.
It owns the HID L2CAP channels itself (PSM 0x11 control, 0x13 interrupt; bluetoothd runs without
its input plugin) and talks to BlueZ only for the adapter, the pairing window, the agent, the SDP
record and the bonds. Both edges are interfaces handed in (:class:`Bluez`, :class:`Links`): the
real ones are ``appliance.transport.bluez`` (D-Bus) and ``appliance.transport.l2cap`` (sockets),
the fakes ``appliance.transport.bt_fake``.

Sessions:
- the host connects (control, then interrupt) — accepted from a bonded host, or from any host
  while the pairing window is open; the first such connection closes the window;
- when no host is connected, the device connects to its last host itself, with a timeout per
  attempt and a growing pause between attempts (a new report to send restarts the pauses);
- a virtual cable unplug from the host forgets the bond;
- the host's LED output reports (control or interrupt channel) feed Caps Lock compensation.

Facts: ../shared/BLUETOOTH.md (checked against Debian's 6.1 kernel and BlueZ 5.66).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from appliance.config import BluetoothConfig, ControllerConfig
from appliance.errors import TransportError
from appliance.hid.report import REPORT_LENGTH, bluetooth_report
from appliance.transport.base import DeliveryFailed
from appliance.transport.hidp import PSM_CONTROL, PSM_INTERRUPT, ControlChannel, sdp_record

log = logging.getLogger(__name__)


# ---- the edges ---------------------------------------------------------------------------------
class Channel(Protocol):
    """One connected L2CAP channel."""

    peer: str
    """The host's address (``AA:BB:CC:DD:EE:FF``)."""

    async def send(self, data: bytes) -> None:
        """Send one message; returns once it has left this device's queue. Raises OSError when the
        link is gone."""

    async def recv(self) -> bytes:
        """The next message; ``b""`` once the channel is closed."""

    def close(self) -> None: ...


class Listener(Protocol):
    async def accept(self) -> Channel: ...

    def close(self) -> None: ...


class Links(Protocol):
    """Opens L2CAP channels on the local adapter."""

    def listen(self, local: str, psm: int) -> Listener:
        """Raises TransportError when the PSM cannot be bound (in use, no permission)."""

    async def connect(self, local: str, peer: str, psm: int) -> Channel:
        """Raises OSError when the host does not answer."""


class Bluez(Protocol):
    """The Bluetooth daemon: adapter, pairing window, agent, SDP record, bonds."""

    async def start(self, name: str, record: str, may_pair: Callable[[], bool]) -> str:
        """Power the adapter, name it, register the SDP record and a NoInputNoOutput agent that
        accepts a pairing only while ``may_pair()`` is true. Returns the adapter's address."""

    async def set_pairing(self, open_: bool, timeout_s: float) -> None:
        """Open (pairable + discoverable, closed by the daemon itself after ``timeout_s``) or close
        the pairing window."""

    async def bonded(self) -> list[str]:
        """Addresses of the bonded hosts."""

    async def pairable(self) -> bool:
        """Whether the adapter is pairable now (a window opened by us or by `voicekey bluetooth pair`)."""

    async def forget(self, address: str) -> None:
        """Remove the bond with ``address`` (nothing when there is none)."""

    async def close(self) -> None: ...


class LastHost:
    """The address of the last connected host, kept in a file on persistent storage (the bonds
    themselves are bluetoothd's, in /var/lib/bluetooth)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._value: str | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                self._value = path.read_text().strip() or None

    def get(self) -> str | None:
        return self._value

    def set(self, address: str | None) -> None:
        if address == self._value:
            return
        self._value = address
        if self.path is None:
            return
        try:
            if address is None:
                self.path.unlink(missing_ok=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(address + "\n")
                os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot keep the last Bluetooth host in %s: %s", self.path, exc)


# ---- the device --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BluetoothOptions:
    """How the Bluetooth keyboard behaves (``bluetooth.*`` settings; defaults from the config)."""

    name: str = BluetoothConfig.name
    """The name hosts see (``bluetooth.name``)."""
    pairing_s: float = ControllerConfig.pairing_s
    """How long an opened pairing window stays open (bluetoothd closes it itself after that;
    ``controller.pairing_s``)."""
    connect_timeout_s: float = BluetoothConfig.reconnect_timeout_s
    """One reconnect attempt to the last host gives up after this long (``bluetooth.reconnect_timeout_s``;
    a reconnect right after a
    disconnect can hang ~40 s while the old link is torn down)."""
    backoff_s: Sequence[float] = (1.0, 2.0, 5.0, 10.0, 30.0)
    """Pauses between reconnect attempts; the last one repeats."""
    send_timeout_s: float = 2.0
    """A report that has not left the queue after this long: the link is taken as gone."""
    bond_check_s: float = 2.0
    """How often to look for bonds made outside a pairing window (they are removed)."""


@dataclass
class _Session:
    peer: str
    ctrl: Channel
    intr: Channel
    control: ControlChannel = field(default_factory=ControlChannel)
    tasks: list[asyncio.Task] = field(default_factory=list)


class BluetoothHid:
    """The keyboard over Bluetooth HID. Build it on the event loop; it starts serving at once."""

    def __init__(self, bluez: Bluez, links: Links, last_host: LastHost,
                 options: BluetoothOptions = BluetoothOptions(),
                 on_pairing_closed: Callable[[], None] | None = None) -> None:
        self.bluez = bluez
        self.links = links
        self.last_host = last_host
        self.options = options
        self.on_pairing_closed = on_pairing_closed
        self.address: str | None = None
        self.pairing_open = False
        self.error: BaseException | None = None
        self._session: _Session | None = None
        self._leds = 0
        self._led_event = asyncio.Event()
        self._nudge = asyncio.Event()
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task] = set()
        self._ready = asyncio.Event()
        self._closed = False
        self._allowed: set[str] = set()
        self._spawn(self._serve(), "bt-serve")

    # ---- lifetime ------------------------------------------------------------------------------
    def _spawn(self, coro, name: str) -> asyncio.Task:  # noqa: ANN001 - a coroutine
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def ready(self) -> None:
        """Wait until the adapter is set up and the channels listen (raises the setup's error)."""
        await self._ready.wait()
        if self.error is not None:
            raise self.error

    async def _serve(self) -> None:
        try:
            self.address = await self.bluez.start(self.options.name, sdp_record(self.options.name),
                                                  lambda: self.pairing_open)
            ctrl = self.links.listen(self.address, PSM_CONTROL)
            self._listeners.append(ctrl)
            intr = self.links.listen(self.address, PSM_INTERRUPT)
            self._listeners.append(intr)
        except Exception as exc:  # noqa: BLE001 - shown as the HID part's fault and retried
            self.error = exc if isinstance(exc, TransportError) else TransportError(
                f"Bluetooth set-up failed: {exc}", fix="`voicekey doctor` checks the adapter and bluetoothd")
            log.error("%s", self.error)
            self._ready.set()
            return
        log.info("Bluetooth keyboard %r on %s", self.options.name, self.address)
        self._ready.set()
        self._allowed = set(await self.bluez.bonded())
        self._spawn(self._accept(ctrl, intr), "bt-accept")
        self._spawn(self._reconnect(), "bt-reconnect")
        self._spawn(self._police_bonds(), "bt-bonds")

    async def _police_bonds(self) -> None:
        """A bond that appears while no pairing window is open is removed: with Just Works and a
        NoInputNoOutput device the kernel accepts a pairing without asking the agent, and a
        controller may do so even while the adapter is not pairable (seen with btvirt)."""
        while True:
            await asyncio.sleep(self.options.bond_check_s)
            try:
                bonds = set(await self.bluez.bonded())
                if self.pairing_open or await self.bluez.pairable():
                    self._allowed |= bonds
                    continue
                for address in sorted(bonds - self._allowed):
                    log.warning("host %s paired outside the pairing window: bond removed", address)
                    if self._session is not None and self._session.peer == address:
                        self._drop("paired outside the pairing window")
                    await self.bluez.forget(address)
                self._allowed &= bonds
            except Exception as exc:  # noqa: BLE001 - BlueZ restarting; try again next round
                log.debug("bond check: %s", exc)

    def check(self) -> None:
        """Raises the set-up's error (the HID part then shows its fault and opens it again)."""
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop("closing")
        for listener in self._listeners:
            listener.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self.bluez.close())

    # ---- pairing -------------------------------------------------------------------------------
    def pairing(self, open_: bool) -> None:
        """Open or close the pairing window (the controller's long hold / its end)."""
        self.pairing_open = open_
        log.info("Bluetooth pairing window %s", "open" if open_ else "closed")
        self._spawn(self._set_pairing(open_), "bt-pairing")

    async def _set_pairing(self, open_: bool) -> None:
        await self._ready.wait()
        if self.error is None:
            try:
                await self.bluez.set_pairing(open_, self.options.pairing_s)
            except Exception as exc:  # noqa: BLE001
                log.error("cannot %s the pairing window: %s", "open" if open_ else "close", exc)

    def forget_all(self) -> None:
        """Forget every bonded host (the long hold inside the pairing window)."""
        self._spawn(self._forget_all(), "bt-forget")

    async def _forget_all(self) -> None:
        await self._ready.wait()
        self._drop("forgetting all hosts")
        self.last_host.set(None)
        for address in await self.bluez.bonded():
            await self.bluez.forget(address)
            log.info("forgot Bluetooth host %s", address)

    # ---- sessions ------------------------------------------------------------------------------
    async def _accept(self, ctrl_listener: Listener, intr_listener: Listener) -> None:
        while True:
            ctrl = await ctrl_listener.accept()
            try:
                allowed = self.pairing_open or (ctrl.peer in await self.bluez.bonded()
                                                and (ctrl.peer in self._allowed or await self.bluez.pairable()))
                if not allowed:
                    log.warning("refused a HID connection from %s: not bonded (open the pairing "
                                "window to pair it)", ctrl.peer)
                    ctrl.close()
                    continue
                intr = await asyncio.wait_for(intr_listener.accept(), self.options.connect_timeout_s)
            except (asyncio.TimeoutError, OSError) as exc:
                log.info("host %s did not open the interrupt channel: %r", ctrl.peer, exc)
                ctrl.close()
                continue
            if intr.peer != ctrl.peer:
                log.warning("interrupt channel from %s after control from %s: refused", intr.peer, ctrl.peer)
                ctrl.close()
                intr.close()
                continue
            log.info("host %s connected", ctrl.peer)
            self._attach(ctrl, intr)

    async def _reconnect(self) -> None:
        step = 0
        while True:
            peer = self.last_host.get()
            if self._session is not None or peer is None or self.pairing_open:
                self._nudge.clear()
                await self._wait_nudge(self.options.backoff_s[0])
                step = 0
                continue
            try:
                ctrl = await asyncio.wait_for(self.links.connect(self.address or "", peer, PSM_CONTROL),
                                              self.options.connect_timeout_s)
                try:
                    intr = await asyncio.wait_for(self.links.connect(self.address or "", peer, PSM_INTERRUPT),
                                                  self.options.connect_timeout_s)
                except BaseException:
                    ctrl.close()
                    raise
            except (asyncio.TimeoutError, OSError) as exc:
                pause = self.options.backoff_s[min(step, len(self.options.backoff_s) - 1)]
                log.info("reconnect to %s failed (%s); next try in %g s", peer,
                         exc.strerror if isinstance(exc, OSError) and exc.strerror else "timeout", pause)
                step += 1
                self._nudge.clear()
                if await self._wait_nudge(pause):
                    step = 0
                continue
            if self._session is not None:  # the host came back by itself meanwhile
                ctrl.close()
                intr.close()
                continue
            log.info("reconnected to host %s", peer)
            self._attach(ctrl, intr)
            step = 0

    async def _wait_nudge(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._nudge.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _attach(self, ctrl: Channel, intr: Channel) -> None:
        self._drop("replaced by a new connection")
        session = self._session = _Session(ctrl.peer, ctrl, intr)
        self._allowed.add(ctrl.peer)
        session.control.leds = self._leds
        session.tasks = [self._spawn(self._read_control(session), "bt-control"),
                         self._spawn(self._read_interrupt(session), "bt-interrupt")]
        self.last_host.set(ctrl.peer)
        if self.pairing_open:
            self.pairing(False)
            if self.on_pairing_closed is not None:
                self.on_pairing_closed()

    def _drop(self, why: str) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        log.info("host %s disconnected (%s)", session.peer, why)
        session.intr.close()
        session.ctrl.close()
        try:
            current = asyncio.current_task()
        except RuntimeError:
            current = None
        for task in session.tasks:
            if task is not current:
                task.cancel()

    async def _read_control(self, session: _Session) -> None:
        while True:
            message = await session.ctrl.recv()
            if not message:
                break
            result = session.control.handle(message)
            if result.reply is not None:
                try:
                    await session.ctrl.send(result.reply)
                except OSError:
                    break
            if result.leds is not None:
                self._set_leds(result.leds)
            if result.unplug:
                log.info("host %s unplugged the virtual cable: forgetting it", session.peer)
                if self.last_host.get() == session.peer:
                    self.last_host.set(None)
                if self._session is session:
                    self._drop("virtual cable unplug")
                await self.bluez.forget(session.peer)
                return
        if self._session is session:
            self._drop("control channel closed")

    async def _read_interrupt(self, session: _Session) -> None:
        while True:
            message = await session.intr.recv()
            if not message:
                break
            leds = session.control.interrupt(message)
            if leds is not None:
                self._set_leds(leds)
        if self._session is session:
            self._drop("interrupt channel closed")

    def _set_leds(self, leds: int) -> None:
        if leds != self._leds:
            log.debug("host LEDs %#04x -> %#04x", self._leds, leds)
        self._leds = leds
        self._led_event.set()

    # ---- HidDevice -----------------------------------------------------------------------------
    def host_connected(self) -> bool:
        if self._session is None:
            self._nudge.set()  # someone waits for the host: reconnect now, not after the pause
        return self._session is not None

    @property
    def leds(self) -> int:
        return self._leds

    async def wait_leds_changed(self, timeout: float) -> int:
        self._led_event.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._led_event.wait(), timeout)
        return self._leds

    async def write_report(self, report: bytes) -> None:
        if len(report) != REPORT_LENGTH:
            raise ValueError(f"one write must carry exactly one {REPORT_LENGTH}-byte report")
        session = self._session
        if session is None:
            self._nudge.set()
            raise DeliveryFailed("no Bluetooth host connected", delivered=False)
        try:
            await asyncio.wait_for(session.intr.send(bluetooth_report(report)), self.options.send_timeout_s)
        except (OSError, asyncio.TimeoutError) as exc:
            if self._session is session:
                self._drop(f"send failed: {exc!r}")
            raise DeliveryFailed(f"Bluetooth host {session.peer} went away", delivered=False) from exc
        session.control.sent(report)
