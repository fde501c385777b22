"""In-guest Bluetooth harness (runs inside the QEMU guest, as root): the radio-less Bluetooth stack
and the computer on the other side of it.

    stack [--restart-bluetoothd]   dbus-daemon (test config), ``btvirt -l2`` (hci0 = VoiceKey,
                                   hci1 = the computer), bluetoothd -n --noplugin=input with our
                                   main.conf and /var/lib/bluetooth on a guest tmpfs; prints READY
    pair --expect ok|refused       the computer discovers VoiceKey on hci1 and Pairs over D-Bus
    forget                         the computer removes its bond with VoiceKey
    host --out FILE [--boot] [--drop-after N] [--unplug-after N]
                                   the computer's HID host: connects to VoiceKey (control, then
                                   interrupt), hands both channels to the kernel's HIDP
                                   (HIDPCONNADD: a real hid-generic / boot-protocol input device),
                                   records its key events (read in the kernel's input core, see
                                   KernelKeys), accepts VoiceKey's own reconnects; SIGUSR1:
                                   finish once quiet;
                                   --drop-after: disconnect after N key presses;
                                   --unplug-after: virtual cable unplug after N key presses
    leds                           the computer's LEDs on VoiceKey's input device

The facts behind it: ../shared/BLUETOOTH.md. State lives in /run/bt (guest tmpfs).
"""

# No `from __future__ import annotations`: dbus-fast reads the agent's D-Bus signatures from them.
import argparse
import asyncio
import ctypes
import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

RUN = Path("/run/bt")
NAME = "VoiceKey"
HOST_NAME = "VoiceKey BT host"
#: HIDP names a boot-protocol input device itself (net/bluetooth/hidp/core.c), not after the request.
BOOT_NAME = "Bluetooth HID Boot Protocol Device"
AF_BLUETOOTH = 31
BTPROTO_L2CAP = 0
BTPROTO_HIDP = 6
SOL_BLUETOOTH = 274
BT_SECURITY = 4
HIDPCONNADD = 0x400448C8
HIDPCONNDEL = 0x400448C9
HIDP_VIRTUAL_CABLE_UNPLUG = 0
HIDP_BOOT_PROTOCOL_MODE = 1
INPUT_EVENT = struct.Struct("llHHi")
EV_KEY = 1
EVIOCGLED = 0x80084519  # EVIOCGLED(8)

DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the stack --------------------------------------------------------------------------------
def _spawn(name: str, argv: list[str]) -> int:
    out = open(RUN / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    (RUN / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _bluetoothd(bluez: Path, main_conf: Path) -> None:
    state = RUN / "var-lib-bluetooth"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    # bluetoothd keeps its bonds in the compiled-in /var/lib/bluetooth; the guest's root is the
    # host's, read-only: give it a private mount of the guest tmpfs there (kept across restarts).
    script = (f"mount -t tmpfs tmpfs /var/lib && mkdir /var/lib/bluetooth && "
              f"mount --bind {state} /var/lib/bluetooth && "
              f"exec {bluez}/usr/libexec/bluetooth/bluetoothd -n -d --noplugin=input -f {main_conf}")
    _spawn("bluetoothd", ["unshare", "-m", "--propagation", "private", "sh", "-c", script])


def _kill(name: str) -> None:
    pid_file = RUN / f"{name}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)


async def _adapters() -> dict[str, dict]:
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(Message(destination="org.bluez", path="/", member="GetManagedObjects",
                                       interface="org.freedesktop.DBus.ObjectManager"))
        if reply.message_type.name == "ERROR":
            return {}
        return {path.rsplit("/", 1)[1]: {k: v.value for k, v in ifaces["org.bluez.Adapter1"].items()}
                for path, ifaces in reply.body[0].items() if "org.bluez.Adapter1" in ifaces}
    finally:
        bus.disconnect()


def _wait_adapters(timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = asyncio.run(_adapters())
        except (OSError, EOFError):
            found = {}
        # Powered: bluetoothd has finished setting the adapters up (AutoEnable), so nothing it
        # does at start overrides what VoiceKey sets (Pairable) afterwards.
        if {"hci0", "hci1"} <= set(found) and all(found[a].get("Powered") for a in ("hci0", "hci1")):
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"adapters not on D-Bus within {timeout} s: {sorted(found)}")
        time.sleep(0.2)


def stack(args: argparse.Namespace) -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    if args.restart_bluetoothd:
        _kill("bluetoothd")
        _bluetoothd(args.bluez, args.main_conf)
    else:
        Path("/run/dbus").mkdir(parents=True, exist_ok=True)
        (RUN / "dbus.conf").write_text(DBUS_CONF)
        _spawn("dbus", ["dbus-daemon", "--nofork", f"--config-file={RUN / 'dbus.conf'}"])
        for _ in range(100):
            if Path("/run/dbus/system_bus_socket").exists():
                break
            time.sleep(0.05)
        _spawn("btvirt", [f"{args.bluez}/usr/bin/btvirt", "-l2"])
        for _ in range(200):
            if Path("/sys/class/bluetooth/hci1").exists():
                break
            time.sleep(0.05)
        _spawn("btmon", [f"{args.bluez}/usr/bin/btmon", "-w", str(RUN / "btmon.snoop")])
        _bluetoothd(args.bluez, args.main_conf)
    found = _wait_adapters(60)
    (RUN / "addresses.json").write_text(json.dumps({k: v["Address"] for k, v in found.items()}))
    print("READY " + json.dumps({k: v["Address"] for k, v in found.items()}), flush=True)
    return 0


def addresses() -> dict[str, str]:
    return json.loads((RUN / "addresses.json").read_text())


# ---- the computer: pairing over D-Bus ---------------------------------------------------------
async def _pair(expect: str, timeout: float) -> dict:
    from dbus_fast import BusType, Message, Variant
    from dbus_fast.aio import MessageBus
    from dbus_fast.service import ServiceInterface, method

    class Agent(ServiceInterface):
        def __init__(self) -> None:
            super().__init__("org.bluez.Agent1")

        @method()
        def Release(self):  # noqa: N802
            pass

        @method()
        def RequestConfirmation(self, device: "o", passkey: "u"):  # noqa: N802,F821
            pass

        @method()
        def RequestAuthorization(self, device: "o"):  # noqa: N802,F821
            pass

        @method()
        def AuthorizeService(self, device: "o", uuid: "s"):  # noqa: N802,F821
            pass

        @method()
        def Cancel(self):  # noqa: N802
            pass

    target = addresses()["hci0"]
    dev_path = "/org/bluez/hci1/dev_" + target.replace(":", "_")
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()

    async def call(path: str, iface: str, member: str, sig: str = "", body: list | None = None):
        reply = await bus.call(Message(destination="org.bluez", path=path, interface=iface, member=member,
                                       signature=sig, body=body or []))
        if reply.message_type.name == "ERROR":
            raise RuntimeError(f"{reply.error_name}: {reply.body[0] if reply.body else ''}")
        return reply.body

    bus.export("/test/agent", Agent())
    await call("/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os", ["/test/agent", "NoInputNoOutput"])
    await call("/org/bluez/hci1", "org.freedesktop.DBus.Properties", "Set", "ssv",
               ["org.bluez.Adapter1", "Powered", Variant("b", True)])
    await call("/org/bluez/hci1", "org.bluez.Adapter1", "SetDiscoveryFilter", "a{sv}",
               [{"Transport": Variant("s", "bredr")}])
    await call("/org/bluez/hci1", "org.bluez.Adapter1", "StartDiscovery")
    deadline = time.monotonic() + timeout
    found = False
    try:
        while time.monotonic() < deadline:
            objects = (await call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"))[0]
            if dev_path in objects:
                found = True
                break
            await asyncio.sleep(0.3)
    finally:
        try:
            await call("/org/bluez/hci1", "org.bluez.Adapter1", "StopDiscovery")
        except RuntimeError:
            pass
    result: dict = {"found": found}
    if found:
        try:
            await call(dev_path, "org.bluez.Device1", "Pair")
            result["paired"] = True
        except RuntimeError as exc:
            result["paired"] = False
            result["error"] = str(exc)
    bus.disconnect()
    return result


def pair(args: argparse.Namespace) -> int:
    result = asyncio.run(_pair(args.expect, args.timeout))
    print(json.dumps(result), flush=True)
    return 0 if result.get("paired") == (args.expect == "ok") else 1


async def _forget() -> None:
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    dev_path = "/org/bluez/hci1/dev_" + addresses()["hci0"].replace(":", "_")
    reply = await bus.call(Message(destination="org.bluez", path="/org/bluez/hci1", interface="org.bluez.Adapter1",
                                   member="RemoveDevice", signature="o", body=[dev_path]))
    bus.disconnect()
    if reply.message_type.name == "ERROR":
        raise SystemExit(f"RemoveDevice: {reply.error_name}")


def forget(args: argparse.Namespace) -> int:
    asyncio.run(_forget())
    print("forgotten", flush=True)
    return 0


# ---- the computer: HID host through the kernel's HIDP -------------------------------------------
class ConnAdd(ctypes.Structure):
    """struct hidp_connadd_req (include/net/bluetooth/hidp.h)."""

    _fields_ = [("ctrl_sock", ctypes.c_int), ("intr_sock", ctypes.c_int), ("parser", ctypes.c_uint16),
                ("rd_size", ctypes.c_uint16), ("rd_data", ctypes.c_void_p), ("country", ctypes.c_uint8),
                ("subclass", ctypes.c_uint8), ("vendor", ctypes.c_uint16), ("product", ctypes.c_uint16),
                ("version", ctypes.c_uint16), ("flags", ctypes.c_uint32), ("idle_to", ctypes.c_uint32),
                ("name", ctypes.c_char * 128)]


def _bdaddr(address: str) -> bytes:
    return bytes(reversed(bytes.fromhex(address.replace(":", ""))))


class KernelKeys:
    """The key events the computer's kernel produced, read where the input core receives them (a
    kprobe on ``input_handle_event``: what drivers report, what is injected, and the releases the
    kernel makes itself when a device with held keys is unregistered).

    Reading /dev/input/eventN instead loses events at a drop: evdev answers ENODEV as soon as the
    device is unregistered, before the events still in its buffer are read. The kernel's trace
    buffer keeps them, in order.
    """

    TRACING = Path("/sys/kernel/tracing")
    LINE = re.compile(r'\s(\d+\.\d+): (vkkey|vkgone): \([^)]*\) name="([^"]*)"(?: type=\d+ code=(\d+) value=(-?\d+))?')

    def __init__(self, names: tuple[str, ...], on_key, on_gone) -> None:  # noqa: ANN001
        self.names = names
        self.on_key = on_key
        self.on_gone = on_gone
        self.last_line = time.monotonic()
        if not (self.TRACING / "kprobe_events").exists():
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(self.TRACING)], check=True)
        (self.TRACING / "tracing_on").write_text("0")
        self.close()  # a previous host's probes: kprobe_events is busy while they are enabled
        (self.TRACING / "trace").write_text("")
        (self.TRACING / "kprobe_events").write_text(
            "p:vkkey input_handle_event name=+0(+0(%di)):string type=%si:u32 code=%dx:u32 value=%cx:s32\n")
        fd = os.open(self.TRACING / "kprobe_events", os.O_WRONLY | os.O_APPEND)  # no seek: tracefs refuses it
        os.write(fd, b"p:vkgone input_unregister_device name=+0(+0(%di)):string\n")
        os.close(fd)
        (self.TRACING / "events/kprobes/vkkey/filter").write_text("type == 1")
        (self.TRACING / "buffer_size_kb").write_text("4096")
        self._enable("1")
        (self.TRACING / "tracing_on").write_text("1")
        self.pipe = (self.TRACING / "trace_pipe").open("r")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.pipe:
            self.last_line = time.monotonic()
            m = self.LINE.search(line)
            if m is None or m.group(3) not in self.names:
                continue
            if m.group(2) == "vkgone":
                self.on_gone(float(m.group(1)))
            else:
                self.on_key(int(m.group(4)), int(m.group(5)), float(m.group(1)))

    def _enable(self, value: str) -> None:
        for event in ("vkkey", "vkgone"):
            enable = self.TRACING / f"events/kprobes/{event}/enable"
            if enable.exists():
                enable.write_text(value)

    def close(self) -> None:
        """Stop tracing (the probes cost a little on every input event of the guest)."""
        self._enable("0")

    def flush(self, quiet_s: float = 1.0) -> None:
        """Wait until the trace has been quiet for ``quiet_s`` (its reader has caught up)."""
        while time.monotonic() - self.last_line < quiet_s:
            time.sleep(0.1)


class HidHost:
    def __init__(self, out: Path, boot: bool, drop_after: int, unplug_after: int) -> None:
        from appliance.hid.report import BLUETOOTH_KEYBOARD_DESCRIPTOR

        self.descriptor = BLUETOOTH_KEYBOARD_DESCRIPTOR
        self.out = out.open("a")
        self.boot = boot
        self.drop_after = drop_after
        self.unplug_after = unplug_after
        self.local = addresses()["hci1"]
        self.peer = addresses()["hci0"]
        self.ctl = socket.socket(AF_BLUETOOTH, socket.SOCK_RAW, BTPROTO_HIDP)
        self.presses = 0
        self.finish = False
        self.sessions = 0
        self.lock = threading.Lock()
        self.pressed: set[int] = set()
        self.keys = KernelKeys((HOST_NAME, BOOT_NAME), self.on_key, self.on_gone)

    def on_key(self, code: int, value: int, when: float) -> None:
        if value == 1:
            self.pressed.add(code)
            self.presses += 1
        elif value == 0:
            self.pressed.discard(code)
        self.emit({"code": code, "value": value, "time": when})
        if self.presses in (self.drop_after, self.unplug_after) and value == 1:
            threading.Thread(target=self.disconnect, args=(self.presses == self.unplug_after,)).start()

    def on_gone(self, when: float) -> None:
        """The device is being unregistered (the kernel's releases of held keys follow)."""
        self.emit({"unregistered": sorted(self.pressed), "time": when})

    def emit(self, item: dict) -> None:
        with self.lock:
            self.out.write(json.dumps(item) + "\n")
            self.out.flush()

    def l2cap(self) -> socket.socket:
        sock = socket.socket(AF_BLUETOOTH, socket.SOCK_SEQPACKET, BTPROTO_L2CAP)
        sock.setsockopt(SOL_BLUETOOTH, BT_SECURITY, struct.pack("BB", 2, 0))
        return sock

    def connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ctrl, intr = self.l2cap(), self.l2cap()
            try:
                ctrl.bind((self.local, 0))
                ctrl.connect((self.peer, 0x11))
                intr.bind((self.local, 0))
                intr.connect((self.peer, 0x13))
                self.add(ctrl, intr)
                return
            except OSError as exc:
                ctrl.close()
                intr.close()
                if time.monotonic() > deadline:
                    raise SystemExit(f"cannot connect to VoiceKey: {exc}")
                time.sleep(0.5)

    def add(self, ctrl: socket.socket, intr: socket.socket) -> None:
        rd = ctypes.create_string_buffer(self.descriptor, len(self.descriptor))
        req = ConnAdd(ctrl_sock=ctrl.fileno(), intr_sock=intr.fileno(), parser=0x0111,
                      rd_size=0 if self.boot else len(self.descriptor),
                      rd_data=None if self.boot else ctypes.cast(rd, ctypes.c_void_p).value,
                      country=0, subclass=0x40, vendor=0x1d6b, product=0x0104, version=0x0100,
                      flags=(1 << HIDP_BOOT_PROTOCOL_MODE) if self.boot else 0, idle_to=0,
                      name=HOST_NAME.encode())
        fcntl.ioctl(self.ctl.fileno(), HIDPCONNADD, bytes(req))
        ctrl.close()  # HIDP holds its own references
        intr.close()
        self.sessions += 1
        self.emit({"session": self.sessions, "boot": self.boot, "time": time.time()})

    def disconnect(self, unplug: bool) -> None:
        req = _bdaddr(self.peer) + b"\0\0" + struct.pack("I", (1 << HIDP_VIRTUAL_CABLE_UNPLUG) if unplug else 0)
        try:
            fcntl.ioctl(self.ctl.fileno(), HIDPCONNDEL, req)
        except OSError as exc:
            log(f"HIDPCONNDEL: {exc}")
        self.emit({"disconnected": True, "unplug": unplug, "time": time.time()})

    def accept_reconnects(self) -> None:
        """VoiceKey reconnecting by itself: accept control then interrupt on hci1, like a host."""
        listeners = []
        for psm in (0x11, 0x13):
            sock = self.l2cap()
            sock.bind((self.local, psm))
            sock.listen(1)
            listeners.append(sock)
        while True:
            ctrl, (peer, _) = listeners[0].accept()
            intr, _ = listeners[1].accept()
            try:
                self.add(ctrl, intr)
            except OSError as exc:
                log(f"reconnect from {peer} not added: {exc}")

    def find_device(self, timeout: float) -> Path | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in sorted(Path("/sys/class/input").glob("event*")):
                try:
                    if (node / "device" / "name").read_text().strip() in (HOST_NAME, BOOT_NAME):
                        dev = Path("/dev/input") / node.name
                        if dev.exists():
                            return dev
                except OSError:
                    continue
            time.sleep(0.01)
        return None

    def record(self) -> None:
        quiet_since: float | None = None
        while True:
            device = self.find_device(1.0)
            if device is None:
                if self.finish:
                    break
                continue
            fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
            self.emit({"device": str(device), "time": time.time()})
            print(f"READY {device}", flush=True)
            gone = False
            while True:
                readable = select.select([fd], [], [], 0.1)[0]
                if not readable:
                    if self.finish:
                        quiet_since = quiet_since or time.monotonic()
                        if time.monotonic() - quiet_since > 2.0:
                            break
                    continue
                quiet_since = None
                try:
                    data = os.read(fd, INPUT_EVENT.size * 64)
                except OSError:
                    gone = True
                    break
                for off in range(0, len(data) - len(data) % INPUT_EVENT.size, INPUT_EVENT.size):
                    sec, usec, etype, code, value = INPUT_EVENT.unpack_from(data, off)
                    if etype == EV_KEY:  # what evdev readers got (the decoded text comes from KernelKeys)
                        self.emit({"evdev_code": code, "value": value, "time": sec + usec / 1e6})
            os.close(fd)
            self.emit({"gone": str(device), "time": time.time()})
            if not gone:
                break
        self.keys.flush()
        self.keys.close()
        self.emit({"stopped": True, "time": time.time()})


def host(args: argparse.Namespace) -> int:
    finish_early = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: finish_early.append(True))
    h = HidHost(args.out, args.boot, args.drop_after, args.unplug_after)
    h.finish = bool(finish_early)

    def on_finish(signum: int, frame: object) -> None:
        h.finish = True

    signal.signal(signal.SIGUSR1, on_finish)
    threading.Thread(target=h.accept_reconnects, daemon=True).start()
    if not args.wait_for_device:
        h.connect(args.timeout)
    h.record()
    return 0


def _event_node() -> Path | None:
    for node in sorted(Path("/sys/class/input").glob("event*")):
        if (node / "device" / "name").read_text().strip() in (HOST_NAME, BOOT_NAME):
            return Path("/dev/input") / node.name
    return None


def tap_caps(args: argparse.Namespace) -> int:
    """Caps Lock pressed on VoiceKey's input device (injected): the console's keyboard handler locks
    caps and sends the LED report to VoiceKey, as a desktop would."""
    node = _event_node()
    if node is None:
        raise SystemExit("no VoiceKey input device")
    fd = os.open(node, os.O_WRONLY)
    for value in (1, 0):
        os.write(fd, INPUT_EVENT.pack(0, 0, EV_KEY, 58, value) + INPUT_EVENT.pack(0, 0, 0, 0, 0))
    os.close(fd)
    return 0


def caps_off(args: argparse.Namespace) -> int:
    """Unlock Caps Lock on the guest's console keyboard (KDSKBLED: the lock flags every new
    keyboard starts from), so a test does not inherit the last one's Caps Lock."""
    KDGKBLED, KDSKBLED = 0x4B64, 0x4B65  # noqa: N806 - linux/kd.h
    fd = os.open("/dev/tty0", os.O_RDWR)
    try:
        flags = array_byte = bytearray(1)
        fcntl.ioctl(fd, KDGKBLED, array_byte, True)
        fcntl.ioctl(fd, KDSKBLED, flags[0] & ~0x04 & 0x77)
    finally:
        os.close(fd)
    return 0


def leds(args: argparse.Namespace) -> int:
    node = _event_node()
    if node is None:
        print(json.dumps({"leds": None}))
        return 1
    fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
    buf = bytearray(8)
    fcntl.ioctl(fd, EVIOCGLED, buf, True)
    os.close(fd)
    print(json.dumps({"leds": [b for b in range(64) if buf[b // 8] >> (b % 8) & 1]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bt_guest.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stack")
    s.add_argument("--bluez", type=Path, required=True)
    s.add_argument("--main-conf", type=Path, required=True)
    s.add_argument("--restart-bluetoothd", action="store_true")
    s.set_defaults(func=stack)
    p = sub.add_parser("pair")
    p.add_argument("--expect", choices=("ok", "refused"), required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(func=pair)
    f = sub.add_parser("forget")
    f.set_defaults(func=forget)
    h = sub.add_parser("host")
    h.add_argument("--out", type=Path, required=True)
    h.add_argument("--boot", action="store_true")
    h.add_argument("--drop-after", type=int, default=-1)
    h.add_argument("--unplug-after", type=int, default=-1)
    h.add_argument("--timeout", type=float, default=60)
    h.add_argument("--wait-for-device", action="store_true",
                   help="do not connect: wait for VoiceKey to reconnect by itself")
    h.set_defaults(func=host)
    tap = sub.add_parser("tap-caps")
    tap.set_defaults(func=tap_caps)
    co = sub.add_parser("caps-off")
    co.set_defaults(func=caps_off)
    led = sub.add_parser("leds")
    led.set_defaults(func=leds)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
