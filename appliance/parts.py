"""Parts at the hardware edges that can be missing or fail, and the supervisor that retries them.

A part (the speech model, the HID device, the microphone, the button, the input-device trigger) is
opened by a blocking function in a worker thread. While it fails, the supervisor keeps its error (the
message and fix are logged once per new error), the controller shows its blink code, and the open is
retried every ``retry_s``; a part that was open is checked on the same period and re-opened when
its check fails. Nothing here ever ends the process: the device recovers when the part is back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from appliance.controller import Fault
from appliance.ui.led import LedPattern

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Part(Generic[T]):
    """One supervised part."""

    name: str
    pattern: LedPattern
    """The blink code shown while it fails."""
    open: Callable[[], T]
    """Makes the part ready (blocking, in a worker thread). Raises when it is missing or broken."""
    check: Callable[[T], None] | None = None
    """Raises when an open part has failed (blocking, in a worker thread); may repair it itself."""
    close: Callable[[T], None] | None = None
    blocks_dictation: bool = True
    check_while_busy: bool = False
    """Checked even while the device is recording or typing (cheap, non-disturbing checks only)."""
    inline: bool = False
    """Opened and checked on the event loop's thread, not a worker: for quick, non-blocking opens of
    a part the loop uses at the same time (the HID device), so a re-open never races a write."""
    value: T | None = None
    error: BaseException | None = None
    attempts: int = 0
    _last_message: str | None = field(default=None, repr=False)
    _busy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None

    def attempt(self) -> bool:
        """Open it if needed, else check it. Returns True when its health changed. Blocking.
        A no-op while another attempt is still running (a model load can outlast the retry period)."""
        if not self._busy.acquire(blocking=False):
            return False
        try:
            return self._attempt()
        finally:
            self._busy.release()

    @property
    def loading(self) -> bool:
        """The first open is still running (e.g. the model loads): not a fault yet."""
        return self._busy.locked() and self.value is None and self.error is None

    def _attempt(self) -> bool:
        before = self.ok
        if self.value is None:
            self.attempts += 1
            try:
                self.value = self.open()
            except Exception as exc:  # noqa: BLE001 - any failure of a hardware edge is a fault
                self._failed(exc)
            else:
                self.error = None
                self._last_message = None
                log.info("%s ready", self.name)
        elif self.check is not None:
            try:
                self.check(self.value)
            except Exception as exc:  # noqa: BLE001
                self._failed(exc)
                self.discard()
            else:
                if self.error is not None:
                    log.info("%s is back", self.name)
                self.error = None
                self._last_message = None
        return self.ok != before

    def discard(self) -> None:
        """Close and forget the part's value (it is re-opened by the next attempt)."""
        value, self.value = self.value, None
        if value is not None and self.close is not None:
            try:
                self.close(value)
            except Exception:  # noqa: BLE001 - closing a broken part may fail too
                log.debug("closing %s failed", self.name, exc_info=True)

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        message = str(exc)
        if message != self._last_message:  # once per new error, not every retry
            log.error("%s: %s (retrying)", self.name, message)
            self._last_message = message

    def fault(self) -> Fault | None:
        if self.ok:
            return None
        if self.loading:
            return Fault(self.name, LedPattern.STARTING, f"{self.name} is loading", self.blocks_dictation)
        message = str(self.error) if self.error is not None else f"{self.name} not ready yet"
        return Fault(self.name, self.pattern, message, self.blocks_dictation)


class Supervisor:
    """Keeps a set of parts open: a first round at start, then one task per part."""

    def __init__(self, parts: list[Part], retry_s: float = 2.0,
                 busy: Callable[[], bool] = lambda: False) -> None:
        self.parts = parts
        self.retry_s = retry_s
        self.busy = busy
        self._tasks: list[asyncio.Task] = []

    def __getitem__(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)

    def faults(self) -> list[Fault]:
        return [f for f in (p.fault() for p in self.parts) if f is not None]

    async def first_round(self, timeout_s: float | None = None) -> None:
        """Try every part once, concurrently (the model loads while the rest is checked). After
        ``timeout_s`` stop waiting: a part still opening goes on in its thread and shows as loading."""
        for part in self.parts:
            if part.inline:
                part.attempt()
        tasks = [asyncio.ensure_future(asyncio.to_thread(p.attempt)) for p in self.parts if not p.inline]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    def start(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(self._keep(p), name=f"part-{p.name}")
                       for p in self.parts]

    async def _keep(self, part: Part) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            if part.ok and part.check is None:
                continue
            if self.busy() and not part.check_while_busy:
                continue
            if part.inline:
                part.attempt()
            else:
                await asyncio.to_thread(part.attempt)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        for part in self.parts:
            part.discard()
