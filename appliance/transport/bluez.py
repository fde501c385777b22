"""BlueZ over D-Bus (PyPI ``dbus-fast``, asyncio): the adapter, the pairing window, the agent, the
SDP record and the bonds (:class:`~appliance.transport.bluetooth.Bluez`).

D-Bus API: BlueZ's doc/org.bluez.Adapter.rst, org.bluez.AgentManager.rst, org.bluez.Agent.rst,
org.bluez.ProfileManager.rst. The agent is NoInputNoOutput (Just Works): it accepts a pairing only
while the device's pairing window is open. The window is bluetoothd's Pairable/Discoverable with
their timeouts, so it closes even if we die.
"""

# No `from __future__ import annotations` here: dbus-fast reads the D-Bus signatures ('o', 'u')
# from the agent's annotations.

import asyncio
import logging
from collections.abc import Callable

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

from appliance.errors import TransportError
from appliance.transport.hidp import HID_UUID

log = logging.getLogger(__name__)

BLUEZ = "org.bluez"
AGENT_PATH = "/org/voicekey/agent"
#: How long a call to bluetoothd may take before it counts as failed.
CALL_TIMEOUT_S = 10.0
#: Errors that mean "not now": the call is made again, for up to BUSY_RETRY_S.
BUSY_ERRORS = ("org.bluez.Error.Busy", "org.bluez.Error.InProgress")
BUSY_RETRY_S = 5.0
PROFILE_PATH = "/org/voicekey/hid"


class _Agent(ServiceInterface):
    """org.bluez.Agent1: Just Works, only while ``may_pair()``."""

    def __init__(self, may_pair: Callable[[], bool], on_accepted: Callable[[str], None] | None = None) -> None:
        super().__init__("org.bluez.Agent1")
        self.may_pair = may_pair
        self.on_accepted = on_accepted

    def _check(self, what: str, device: str) -> None:
        if not self.may_pair():
            log.warning("refused %s from %s: the pairing window is closed (hold the button 8 s)", what, device)
            raise DBusError("org.bluez.Error.Rejected", "pairing window closed")
        log.info("accepted %s from %s (pairing window open)", what, device)
        if what == "pairing" and self.on_accepted is not None:
            # /org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF -> AA:BB:CC:DD:EE:FF
            self.on_accepted(device.rsplit("/dev_", 1)[-1].replace("_", ":"))

    @method()
    def Release(self):  # noqa: N802 - D-Bus names
        pass

    @method()
    def RequestConfirmation(self, device: "o", passkey: "u"):  # noqa: N802,F821
        self._check("pairing", device)

    @method()
    def RequestAuthorization(self, device: "o"):  # noqa: N802,F821
        self._check("pairing", device)

    @method()
    def AuthorizeService(self, device: "o", uuid: "s"):  # noqa: N802,F821
        self._check(f"service {uuid}", device)

    @method()
    def RequestPinCode(self, device: "o") -> "s":  # noqa: N802,F821
        raise DBusError("org.bluez.Error.Rejected", "no PIN input on this keyboard")

    @method()
    def RequestPasskey(self, device: "o") -> "u":  # noqa: N802,F821
        raise DBusError("org.bluez.Error.Rejected", "no passkey input on this keyboard")

    @method()
    def DisplayPasskey(self, device: "o", passkey: "u", entered: "q"):  # noqa: N802,F821
        pass

    @method()
    def DisplayPinCode(self, device: "o", pincode: "s"):  # noqa: N802,F821
        pass

    @method()
    def Cancel(self):  # noqa: N802
        log.info("pairing cancelled by the host")


class _Profile(ServiceInterface):
    """org.bluez.Profile1: only carries the SDP record; the HID channels are our own sockets."""

    def __init__(self) -> None:
        super().__init__("org.bluez.Profile1")

    @method()
    def Release(self):  # noqa: N802
        pass

    @method()
    def NewConnection(self, device: "o", fd: "h", properties: "a{sv}"):  # noqa: N802,F821
        pass

    @method()
    def RequestDisconnection(self, device: "o"):  # noqa: N802,F821
        pass


class BluezDbus:
    """The real :class:`~appliance.transport.bluetooth.Bluez` on the system bus."""

    def __init__(self, adapter: str = "hci0", bus_address: str | None = None) -> None:
        self.adapter = adapter
        self.path = f"/org/bluez/{adapter}"
        self.bus_address = bus_address
        self.bus: MessageBus | None = None
        self._agent = False
        self._profile = False

    async def _call(self, path: str, interface: str, member: str, signature: str = "", body: list | None = None):
        assert self.bus is not None
        def message() -> Message:  # a new one for each try: the bus numbers what it sends
            return Message(destination=BLUEZ, path=path, interface=interface, member=member,
                           signature=signature, body=body or [])

        log.debug("BlueZ %s.%s %s", interface, member, path)
        deadline = asyncio.get_running_loop().time() + BUSY_RETRY_S
        pause = 0.25
        while True:
            try:
                # dbus-fast waits for a reply forever; bluetoothd answers some calls only once the
                # kernel did the work (e.g. an adapter setting in the middle of a pairing)
                reply = await asyncio.wait_for(self.bus.call(message()), CALL_TIMEOUT_S)
            except asyncio.TimeoutError:
                raise TransportError(f"BlueZ {interface}.{member}: no answer from bluetoothd in {CALL_TIMEOUT_S:g} s",
                                     fix="check `voicekey doctor` and `journalctl -u bluetooth`") from None
            # Busy / InProgress: the adapter is still applying an earlier change (seen right after
            # a pairing): try again for a while
            if (reply.message_type == MessageType.ERROR and reply.error_name in BUSY_ERRORS
                    and asyncio.get_running_loop().time() + pause < deadline):
                log.debug("BlueZ %s.%s: %s; again in %g s", interface, member, reply.error_name, pause)
                await asyncio.sleep(pause)
                pause = min(2.0, pause * 2)
                continue
            break
        if reply.message_type == MessageType.ERROR:
            raise TransportError(f"BlueZ {interface}.{member}: {reply.error_name}: "
                                 f"{reply.body[0] if reply.body else ''}",
                                 fix="check `voicekey doctor` (bluetoothd running, adapter present)")
        return reply.body

    async def _set(self, name: str, signature: str, value: object) -> None:
        try:
            await self._call(self.path, "org.freedesktop.DBus.Properties", "Set", "ssv",
                             ["org.bluez.Adapter1", name, Variant(signature, value)])
        except TransportError as exc:
            raise TransportError(f"setting {name}={value} on {self.adapter}: {exc.message}", fix=exc.fix) from None

    async def _get(self, name: str) -> object:
        body = await self._call(self.path, "org.freedesktop.DBus.Properties", "Get", "ss",
                                ["org.bluez.Adapter1", name])
        return body[0].value

    async def connect(self) -> None:
        if self.bus is not None:
            return
        try:
            self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
        except (OSError, EOFError) as exc:
            raise TransportError(f"cannot reach the D-Bus system bus: {exc}",
                                 fix="is dbus running? (`systemctl status dbus`)") from exc

    async def start(self, name: str, record: str, may_pair: Callable[[], bool]) -> str:
        await self.connect()
        assert self.bus is not None
        objects = await self.managed_objects()
        if self.path not in objects:
            raise TransportError(f"Bluetooth adapter {self.adapter} not found (bluetoothd has: "
                                 f"{', '.join(p for p in objects if p.count('/') == 3) or 'none'})",
                                 fix="check bluetooth.adapter in the config and `voicekey doctor`")
        await self._set("Powered", "b", True)
        await self._set("Alias", "s", name)
        await self.register_agent(may_pair)
        self.bus.export(PROFILE_PATH, _Profile())
        self._profile = True
        await self._call("/org/bluez", "org.bluez.ProfileManager1", "RegisterProfile", "osa{sv}",
                         [PROFILE_PATH, HID_UUID, {
                             "ServiceRecord": Variant("s", record),
                             "Role": Variant("s", "server"),
                             "RequireAuthentication": Variant("b", True),
                             "RequireAuthorization": Variant("b", False),
                         }])
        # The window is closed from the start; after the agent's registration, which may make
        # the adapter pairable again.
        await self.set_pairing(False, 0)
        return str(await self._get("Address"))

    async def register_agent(self, may_pair: Callable[[], bool],
                             on_accepted: Callable[[str], None] | None = None) -> None:
        """Our NoInputNoOutput agent, made the default one. ``on_accepted(address)``: the agent
        confirmed a pairing (a host pairing again over an existing bond asks it, as main.conf's
        ``JustWorksRepairing = confirm`` makes bluetoothd do)."""
        await self.connect()
        assert self.bus is not None
        self.bus.export(AGENT_PATH, _Agent(may_pair, on_accepted))
        self._agent = True
        await self._call("/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                         [AGENT_PATH, "NoInputNoOutput"])
        await self._call("/org/bluez", "org.bluez.AgentManager1", "RequestDefaultAgent", "o", [AGENT_PATH])

    async def set_pairing(self, open_: bool, timeout_s: float) -> None:
        if open_:
            await self._set("PairableTimeout", "u", int(timeout_s))
            await self._set("DiscoverableTimeout", "u", int(timeout_s))
            await self._set_mode("Pairable", True)
            await self._set("Discoverable", "b", True)
        else:
            await self._set_mode("Discoverable", False)
            await self._set_mode("Pairable", False)

    async def _set_mode(self, name: str, value: bool) -> None:
        """Pairable / Discoverable, if bluetoothd lets us. BlueZ 5.66 can keep answering Busy for a
        setting after an agent went away in the middle of a change of it (seen right after a re-pair,
        until bluetoothd restarts). Closing the window then rests on the agent (it refuses outside
        the window), the HID channels (refused from hosts that are not bonded) and the bond check;
        opening it needs Discoverable."""
        try:
            await self._set(name, "b", value)
        except TransportError as exc:
            if "org.bluez.Error.Busy" not in str(exc) or (name == "Discoverable" and value):
                raise
            log.warning("bluetoothd keeps answering Busy for %s=%s; going on without it", name, value)

    async def managed_objects(self) -> dict:
        body = await self._call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        return body[0]

    async def devices(self) -> list[dict]:
        """The adapter's known devices: Address, Name, Paired, Connected, Trusted, path."""
        out = []
        for path, ifaces in (await self.managed_objects()).items():
            dev = ifaces.get("org.bluez.Device1")
            if dev is None or not path.startswith(self.path + "/"):
                continue
            out.append({"path": path, **{k: v.value for k, v in dev.items()}})
        return out

    async def bonded(self) -> list[str]:
        return [d["Address"] for d in await self.devices() if d.get("Paired")]

    async def pairable(self) -> bool:
        return bool(await self._get("Pairable"))

    async def forget(self, address: str) -> None:
        for d in await self.devices():
            if d["Address"].upper() == address.upper():
                await self._call(self.path, "org.bluez.Adapter1", "RemoveDevice", "o", [d["path"]])

    async def adapter_properties(self) -> dict:
        body = await self._call(self.path, "org.freedesktop.DBus.Properties", "GetAll", "s", ["org.bluez.Adapter1"])
        return {k: v.value for k, v in body[0].items()}

    async def close(self) -> None:
        if self.bus is None:
            return
        for member, path, registered in (("UnregisterAgent", AGENT_PATH, self._agent),
                                         ("UnregisterProfile", PROFILE_PATH, self._profile)):
            if not registered:
                continue
            manager = "org.bluez.AgentManager1" if member == "UnregisterAgent" else "org.bluez.ProfileManager1"
            try:
                await self._call("/org/bluez", manager, member, "o", [path])
            except (TransportError, OSError, EOFError) as exc:
                log.debug("%s: %s", member, exc)
        self.bus.disconnect()
        self.bus = None
