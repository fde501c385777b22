"""Boot the real-kernel QEMU test guest and run commands in it.

The guest boots Debian's kernel (tests/vm/build_guest.py) with the whole host root shared
read-only over virtio-9p and chrooted into, so it sees the same paths as the host: the repo, the
venv and ``voicekey`` work unchanged. A small read-write 9p share (mounted in the guest at the same
path as on the host) carries jobs and their results; tests/vm/agent.py runs them.

>>> with Guest() as guest:
...     result = guest.run("uname -r")
...     job = guest.start("sleep 100")
...     job.kill(signal.SIGKILL)
...     job.wait(10).rc
-9
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.vm import build_guest

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
POLL_SECONDS = 0.02


class GuestError(RuntimeError):
    """The guest could not be booted or did not answer; the message says why and where to look."""


class GuestTimeout(GuestError, TimeoutError):
    """A guest command did not finish in time (it was killed). Carries what it printed so far."""

    def __init__(self, message: str, result: GuestResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class GuestResult:
    """Exit status and output of one guest command. ``rc`` < 0: killed by signal ``-rc``."""

    cmd: str
    rc: int
    stdout: str
    stderr: str

    def check(self) -> GuestResult:
        """Return self if ``rc == 0``, else raise AssertionError showing the command's output."""
        if self.rc != 0:
            raise AssertionError(f"guest command failed (rc={self.rc}): {self.cmd}\n"
                                 f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")
        return self


class GuestJob:
    """A command running in the guest (see :meth:`Guest.start`)."""

    def __init__(self, guest: Guest, job_id: str, cmd: str) -> None:
        self.guest = guest
        self.id = job_id
        self.cmd = cmd
        self._result: GuestResult | None = None

    def _out(self, suffix: str) -> Path:
        return self.guest.share / "out" / f"{self.id}.{suffix}"

    @property
    def done(self) -> bool:
        """True once the job has exited."""
        return self._result is not None or self._out("rc").exists()

    def pid(self, timeout: float = 30) -> int:
        """The job's pid in the guest (also its process-group id); waits until it has started."""
        path = self._out("pid")
        self.guest._wait_for(path.exists, timeout, f"job {self.cmd!r} to start")
        return int(path.read_text())

    def stdout_so_far(self) -> str:
        """What the job has printed on stdout up to now."""
        try:
            return self._out("stdout").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, text: str, timeout: float = 60) -> str:
        """Wait until ``text`` appears in the job's stdout; fail early if the job exits first."""
        def seen() -> bool:
            if text in self.stdout_so_far():
                return True
            if self.done:
                result = self.wait(5)
                raise GuestError(f"job {self.cmd!r} exited (rc={result.rc}) before printing "
                                 f"{text!r}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
            return False
        self.guest._wait_for(seen, timeout, f"{text!r} from {self.cmd!r}")
        return self.stdout_so_far()

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the job's process group (no-op once it has exited)."""
        if self.done:
            return
        path = self.guest.share / "ctl" / f"{self.id}.signal"
        self.guest._write_atomic(path, str(int(sig)))

    def wait(self, timeout: float = 120) -> GuestResult:
        """Wait for the job to exit and return its result; on timeout SIGKILL it and raise."""
        if self._result is not None:
            return self._result
        try:
            self.guest._wait_for(self._out("rc").exists, timeout, f"{self.cmd!r} to finish")
        except GuestTimeout:
            self.kill(signal.SIGKILL)
            try:
                self.guest._wait_for(self._out("rc").exists, 15, "the killed job to exit")
            except GuestTimeout:
                pass
            raise GuestTimeout(f"guest command timed out after {timeout} s: {self.cmd}\n"
                               f"--- stdout\n{self.stdout_so_far()}\n--- stderr\n"
                               f"{self._read('stderr')}") from None
        self._result = GuestResult(self.cmd, int(self._out("rc").read_text()),
                                   self._read("stdout"), self._read("stderr"))
        for suffix in ("rc", "pid", "stdout", "stderr"):
            self._out(suffix).unlink(missing_ok=True)
        return self._result

    def _read(self, suffix: str) -> str:
        try:
            return self._out(suffix).read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Guest:
    """The QEMU guest, as a context manager: boots on enter, powers off on exit.

    ``accel`` defaults to ``$VOICEKEY_VM_ACCEL`` or ``tcg`` (works everywhere; ``kvm`` is much
    faster where /dev/kvm is usable); ``cpus`` to ``$VOICEKEY_VM_CPUS`` or 1. ``python`` is the interpreter whose venv the guest uses
    (default: the one running this code); ``repo`` is the working directory of guest commands.
    """

    def __init__(self, *, repo: Path = REPO, cache: Path | None = None, memory_mb: int = 1024,
                 cpus: int | None = None, accel: str | None = None, python: str | None = None,
                 boot_timeout: float = 300) -> None:
        self.repo = Path(repo).resolve()
        self.cache = cache or build_guest.cache_dir()
        self.memory_mb = memory_mb
        # One vCPU by default: with two, TCG runs each vCPU in its own host thread, and on a busy
        # host the one running the event recorder can stall while the other keeps delivering key
        # events, overflowing evdev's 64-event client buffer (SYN_DROPPED; seen on a loaded
        # 2-core machine). With one vCPU the guest stalls as a whole and the recorder, at
        # real-time priority, always reads before the next USB frame is processed.
        self.cpus = cpus or int(os.environ.get("VOICEKEY_VM_CPUS", "1"))
        self.accel = accel or os.environ.get("VOICEKEY_VM_ACCEL", "tcg")
        self.python = python or sys.executable
        self.cpu_model = os.environ.get("VOICEKEY_VM_CPU") or ("max" if self.accel == "tcg"
                                                               else "host")
        self.boot_timeout = boot_timeout
        self.rundir = self.cache / "runs" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.share = self.rundir / "share"
        self.console_log = self.rundir / "console.log"
        self.release = ""
        self._qemu: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Guest:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def boot(self) -> None:
        """Build (or reuse) the guest image, start QEMU and wait until the agent answers."""
        if shutil.which(QEMU) is None:
            raise GuestError(f"{QEMU} is not installed: apt-get install qemu-system-x86 "
                             "(or set VOICEKEY_SKIP_VM=1 to skip the guest tests)")
        for path in (self.repo, self.share):
            if any(c.isspace() for c in str(path)):
                raise GuestError(f"the guest cannot use a path with white space: {path}")
        image = build_guest.build(self.cache)
        self.share.mkdir(parents=True)
        env_lines = {
            "SHARE_PATH": str(self.share), "REPO": str(self.repo),
            "PYTHON": self.python, "AGENT": str(Path(__file__).resolve().parent / "agent.py"),
        }
        (self.share / "boot.env").write_text(
            "".join(f"{k}={shlex.quote(v)}\n" for k, v in env_lines.items()))
        cmd = [
            QEMU, "-accel", self.accel, "-cpu", self.cpu_model,
            "-m", str(self.memory_mb), "-smp", str(self.cpus),
            "-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
            "-serial", f"file:{self.console_log}",
            "-kernel", str(image.kernel), "-initrd", str(image.initramfs),
            "-append", "console=ttyS0 panic=-1 loglevel=5 quiet",
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=jobs,path={self.share},security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=jobs,mount_tag=jobs",
        ]
        log.info("booting guest: %s", " ".join(cmd))
        qemu_err = (self.rundir / "qemu.stderr").open("wb")
        self._qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_err,
                                      stderr=qemu_err)
        qemu_err.close()
        ready = self.share / "ready"
        try:
            self._wait_for(ready.exists, self.boot_timeout, "the guest to boot")
        except GuestError as exc:
            details = (f"QEMU stderr: {self._qemu_stderr()}\n"
                       f"--- console (kept in {self.cache / 'last-console.log'})\n"
                       f"{self.console_tail()}")
            self.close(timeout=5)
            raise GuestError(f"{exc}\n{details}") from None
        self.release = json.loads(ready.read_text())["release"]
        log.info("guest up: kernel %s", self.release)

    def close(self, timeout: float = 30) -> None:
        """Ask the guest to power off; kill QEMU if it has not exited within ``timeout``."""
        qemu = self._qemu
        if qemu is None:
            return
        self._qemu = None
        if qemu.poll() is None:
            try:
                (self.share / "shutdown").touch()
            except OSError:
                pass
            try:
                qemu.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("guest did not power off in %s s; killing QEMU", timeout)
                qemu.kill()
                qemu.wait()
        # Keep the last console log for diagnosis; drop the rest of the run directory.
        try:
            shutil.copy2(self.console_log, self.cache / "last-console.log")
        except OSError:
            pass
        shutil.rmtree(self.rundir, ignore_errors=True)

    def console_tail(self, lines: int = 60) -> str:
        """The last lines of the guest's serial console (kernel messages, /init output)."""
        try:
            text = self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- commands ----------------------------------------------------------------------------
    def start(self, cmd: str, input: str | bytes | None = None,
              env: dict[str, str] | None = None, cwd: str | Path | None = None) -> GuestJob:
        """Start ``bash -c cmd`` in the guest as root (cwd: the repo) and return at once."""
        if self._qemu is None:
            raise GuestError("the guest is not running")
        job_id = f"{next(self._ids):05d}"
        jobs = self.share / "jobs"
        if input is not None:
            data = input.encode() if isinstance(input, str) else input
            (jobs / f"{job_id}.stdin").write_bytes(data)
        spec = {"cmd": cmd, "cwd": str(cwd or self.repo), "env": env or {},
                "stdin": input is not None}
        self._write_atomic(jobs / f"{job_id}.json", json.dumps(spec))
        return GuestJob(self, job_id, cmd)

    def run(self, cmd: str, timeout: float = 120, input: str | bytes | None = None,
            env: dict[str, str] | None = None, cwd: str | Path | None = None) -> GuestResult:
        """Run ``bash -c cmd`` in the guest as root and wait for it (see :meth:`start`)."""
        return self.start(cmd, input=input, env=env, cwd=cwd).wait(timeout)

    def path(self, name: str) -> Path:
        """A fresh path in the read-write share: the same path works on the host and the guest."""
        scratch = self.share / "scratch"
        scratch.mkdir(exist_ok=True)
        return scratch / name

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            qemu = self._qemu
            if qemu is not None and qemu.poll() is not None:
                failed = self.share / "boot.failed"
                reason = failed.read_text() if failed.exists() else ""
                raise GuestError(f"QEMU exited (rc={qemu.returncode}) while waiting for {what}. "
                                 f"{reason}\nQEMU stderr: {self._qemu_stderr()}\n"
                                 f"--- console\n{self.console_tail()}")
            if time.monotonic() > deadline:
                raise GuestTimeout(f"timed out after {timeout} s waiting for {what}")
            time.sleep(POLL_SECONDS)

    def _qemu_stderr(self) -> str:
        try:
            return (self.rundir / "qemu.stderr").read_text(errors="replace").strip()
        except FileNotFoundError:
            return ""
