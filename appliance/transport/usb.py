"""USB transport: ``/dev/hidgN`` from the configfs HID function (usb_f_hid).

Kernel behaviour this relies on (drivers/usb/gadget/function/f_hid.c):
- one write() queues exactly one IN request of at most report_length bytes; while it is in flight a
  non-blocking write returns EAGAIN, and poll() reports POLLOUT again once the request completed —
  either taken by the host or cancelled because the host went away;
- when the host disconnects or deconfigures, write() returns ESHUTDOWN until it configures us again;
- read() returns the host's output reports (for a boot keyboard: 1 byte of LED bits).
Whether a completed report was taken by the host or cancelled is told apart by the UDC state
(``/sys/class/udc/<udc>/state``) read right after completion: "configured" means the host took it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import time
from pathlib import Path

from appliance.errors import HostNotConnected, TransportError
from appliance.hid.report import REPORT_LENGTH
from appliance.transport.base import DeliveryFailed

log = logging.getLogger(__name__)

_GONE = {errno.ESHUTDOWN, errno.ECONNRESET, errno.EPIPE, errno.ENODEV, errno.ENXIO}


class HidgDevice:
    """Non-blocking writer/reader of a hidg character device, driven by the asyncio loop."""

    def __init__(self, path: str | Path = "/dev/hidg0", udc_state_file: str | Path | None = None,
                 write_timeout: float = 0.5, spin_ms: int = 3) -> None:
        """``udc_state_file`` is ``/sys/class/udc/<udc>/state``; None (a plain file standing in for
        the device, or an unknown UDC) means the host is assumed present.

        ``spin_ms``: how long to wait for a report's completion with a plain poll() before handing
        the wait to the event loop. The host polls a full-speed keyboard every millisecond or so;
        waiting through the loop's machinery per report costs more than that on a Pi Zero.
        """
        self.path = Path(path)
        self.udc_state_file = Path(udc_state_file) if udc_state_file else None
        self.write_timeout = write_timeout
        self.spin_ms = spin_ms
        self._state_fd = -1
        self._leds = 0
        self._led_event: asyncio.Event | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise TransportError(f"HID device {self.path} does not exist",
                                 fix="create the USB gadget first: `sudo voicekey gadget up` "
                                     "(or check the device path in the config)") from exc
        except PermissionError as exc:
            raise TransportError(f"no permission to open {self.path}",
                                 fix="run as root or give the voicekey user access to the device "
                                     "(the systemd unit does)") from exc
        except OSError as exc:
            raise TransportError(f"cannot open HID device {self.path}: {exc.strerror}",
                                 fix="check `voicekey gadget status`") from exc
        self._is_char_device = self.path.is_char_device()
        self._identity = self._stat_identity(os.fstat(self.fd))
        # One poll() tells both "the report in flight completed" (POLLOUT) and "the host sent an
        # LED report" (POLLIN), so the hot path needs no extra read() per keystroke.
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLOUT | select.POLLIN)
        self._leds_read = False

    @staticmethod
    def _stat_identity(st: os.stat_result) -> tuple[int, int, int]:
        return (st.st_dev, st.st_ino, st.st_rdev)

    def replaced(self) -> bool:
        """True when the device node is gone or is no longer the one we have open: the gadget was
        removed and created again (``voicekey gadget up`` after a ``down``, a reboot of the gadget
        unit), which leaves our file descriptor pointing at a dead function. One stat() call."""
        try:
            return self._stat_identity(os.stat(self.path)) != self._identity
        except OSError:
            return True

    def check(self) -> None:
        """Raises TransportError when the device must be opened again (see :meth:`replaced`)."""
        if self.fd < 0 or self.replaced():
            raise TransportError(f"HID device {self.path} was removed or re-created",
                                 fix="nothing to do: it is opened again as soon as it is back "
                                     "(`voicekey gadget status` shows the gadget)")

    # ---- host state -------------------------------------------------------------------------
    def udc_state(self) -> str | None:
        if self.udc_state_file is None:
            return None
        try:
            if self._state_fd < 0:
                self._state_fd = os.open(self.udc_state_file, os.O_RDONLY | os.O_CLOEXEC)
            # sysfs attributes are re-read from offset 0 on a kept-open fd: one syscall per check.
            return os.pread(self._state_fd, 64, 0).decode().strip()
        except OSError:
            if self._state_fd >= 0:
                os.close(self._state_fd)
                self._state_fd = -1
            return None

    def host_connected(self) -> bool:
        state = self.udc_state()
        return state is None or state == "configured"

    # ---- LEDs ------------------------------------------------------------------------------
    @property
    def leds(self) -> int:
        """The host's LED bits. Kept current by the loop's reader and by the completion polls while
        typing; read directly only the first time (a report may be waiting since the open)."""
        self._ensure_reader()
        if not self._leds_read:
            self._leds_read = True
            self._drain_leds()
        return self._leds

    def _ensure_reader(self) -> None:
        if not self._is_char_device:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._reader_loop is not loop:
            loop.add_reader(self.fd, self._drain_leds)
            self._reader_loop = loop
            self._led_event = asyncio.Event()

    def _drain_leds(self) -> None:
        if not self._is_char_device:
            return
        while True:
            try:
                data = os.read(self.fd, 64)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _GONE:
                    return
                raise
            if not data:
                return
            if data[-1] != self._leds:
                log.debug("host LEDs %#04x -> %#04x", self._leds, data[-1])
            self._leds = data[-1]
            if self._led_event is not None:
                self._led_event.set()

    async def wait_leds_changed(self, timeout: float) -> int:
        self._ensure_reader()
        self._drain_leds()
        if self._led_event is None:
            return self._leds
        self._led_event.clear()
        try:
            await asyncio.wait_for(self._led_event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self._leds

    # ---- writing ---------------------------------------------------------------------------
    def _spin(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` with a plain poll() for the report in flight to complete
        (POLLOUT); host LED reports seen on the way are taken. False on timeout."""
        deadline = None  # the clock is read only if an LED report cuts the wait short (rare)
        while True:
            ready = self._poll.poll(timeout_ms)
            if not ready:
                return False
            revents = ready[0][1]
            if revents & select.POLLIN:
                self._drain_leds()
            if revents & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                return True
            if deadline is None:
                deadline = time.monotonic() + timeout_ms / 1000
            timeout_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if timeout_ms == 0:
                return False

    async def _writable(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        fd = self.fd  # close() may run while we wait (the device node was re-created)
        loop.add_writer(fd, ready)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            loop.remove_writer(fd)

    async def write_report(self, report: bytes) -> None:
        if len(report) != REPORT_LENGTH:
            raise ValueError(f"one write must carry exactly one {REPORT_LENGTH}-byte report")
        if self.fd < 0:
            raise DeliveryFailed(f"{self.path} was closed (re-opened by its supervisor)", delivered=False)
        self._ensure_reader()
        while True:
            if self.fd < 0:
                raise DeliveryFailed(f"{self.path} was closed (re-opened by its supervisor)", delivered=False)
            try:
                written = os.write(self.fd, report)
            except BlockingIOError:
                # The previous report is still in flight: wait for the host to poll it.
                if self._spin(self.spin_ms):
                    continue
                if not await self._writable(self.write_timeout) and not self.host_connected():
                    raise DeliveryFailed(f"host stopped reading {self.path} (UDC {self.udc_state()})",
                                         delivered=False) from None
                continue
            except OSError as exc:
                if exc.errno in _GONE:
                    raise DeliveryFailed(f"host not connected to {self.path} ({exc.strerror})",
                                         delivered=False) from exc
                raise TransportError(f"write to {self.path} failed: {exc.strerror}",
                                     fix="check `voicekey gadget status` and dmesg") from exc
            if written != REPORT_LENGTH:
                raise TransportError(f"short write to {self.path}: {written} of {REPORT_LENGTH} bytes")
            break
        if not self._is_char_device:
            return
        # Wait for completion, then judge from the UDC state whether the host took it.
        if not self._spin(self.spin_ms):
            while self.fd >= 0 and not await self._writable(self.write_timeout):
                if not self.host_connected():
                    break
        if self.fd < 0:  # the node was re-created meanwhile: the old function's queue is gone
            raise DeliveryFailed(f"{self.path} was re-created while a report was in flight", delivered=False)
        if not self.host_connected():
            raise DeliveryFailed(f"host went away from {self.path} (UDC {self.udc_state()})",
                                 delivered=False)

    def close(self) -> None:
        if self._reader_loop is not None:
            try:
                self._reader_loop.remove_reader(self.fd)
            except (RuntimeError, ValueError):
                pass
            self._reader_loop = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._state_fd >= 0:
            os.close(self._state_fd)
            self._state_fd = -1


def release_all_now(path: str | Path, timeout: float = 1.0) -> bool:
    """Send one all-zero report without an event loop (the systemd ExecStopPost action).

    Returns True if the report was written. A host that is not there has no keys held by us.
    """
    deadline = time.monotonic() + timeout
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        log.info("%s does not exist: nothing to release", path)
        return False
    try:
        while True:
            try:
                return os.write(fd, bytes(REPORT_LENGTH)) == REPORT_LENGTH
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HostNotConnected(f"{path} stayed busy for {timeout} s: the host is not reading",
                                           fix="nothing is held on a host that does not read reports")
                time.sleep(0.005)
            except OSError as exc:
                if exc.errno in _GONE:
                    log.info("host not connected: nothing to release")
                    return False
                raise
    finally:
        os.close(fd)
