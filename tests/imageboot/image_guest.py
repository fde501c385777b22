"""Boot the built SD card image itself in ``qemu-system-aarch64 -M virt`` (TCG) and run commands in it.

The image under test is ``build/voicekey-VERSION-arm64.img`` (``make image``). Each boot works on a
sparse copy of it, so the test can (1) put files on its FAT partition, as a user would, and (2) hash
the root partition before and after the boot (the root must stay byte-for-byte unchanged: it is
mounted read-only). The original file is never written.

What the test adds, all on the FAT partition of the copy (the user-editable partition):

* ``voicekey.yaml`` for the emulated board: the button on pl061 line 3, the one QEMU's monitor
  command ``system_powerdown`` pulses (see ../shared/IMAGE.md), the LED on line 5, the snd-aloop
  capture, slow-guest audio settings;
* ``voicekey-test-agent.sh``, started through the kernel command line (``systemd.run=``): it mounts
  the test's 9p share and runs tests/vm/agent.py, the same job agent as the x86 guest tests, with the
  image's own Python. Nothing is installed into the root. (``systemd.run=`` would make its unit the
  boot's target: ``systemd.unit=multi-user.target`` keeps the image's own target and
  ``systemd.wants=`` adds the agent's unit to it.)

The kernel and initrd are read out of the copy's FAT partition (mcopy) and the kernel command line is
the image's cmdline.txt plus what the emulated board needs (console, dummy_hcd and snd-aloop, no
gpio_keys driver on the power-button line). QEMU's generated device tree gets a
``/system/linux,revision`` (a Raspberry Pi Compute Module 3's) so that gpiozero's lgpio pin factory accepts
the board; the GPIO chip (pl061, gpiochip0) is QEMU's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.vm.guest import Guest, GuestError

REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-aarch64"
#: Raspberry Pi Compute Module 3 revision code: gpiozero's lgpio factory maps its GPIO n to chip 0
#: line n. A Compute Module, because on boards with the 40-pin header gpiozero knows that GPIO 3 has
#: a physical pull-up and refuses the pull-down the pl061 line's active-high pulse needs.
PI_REVISION = 0xa020a0


def version() -> str:
    """The project version (the image's file name carries it)."""
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert match, "no version in pyproject.toml"
    return match.group(1)


def image_path() -> Path:
    """The raw image ``make image`` writes (``$VOICEKEY_IMAGE`` overrides)."""
    env = os.environ.get("VOICEKEY_IMAGE")
    return Path(env) if env else REPO / "build" / f"voicekey-{version()}-arm64.img"


@dataclass(frozen=True)
class Partition:
    number: int
    start: int   # bytes
    size: int    # bytes


def partitions(image: Path) -> list[Partition]:
    """The image's MBR partitions (sfdisk --json)."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], check=True,
                                      capture_output=True, text=True).stdout)["partitiontable"]
    sector = table.get("sectorsize", 512)
    return [Partition(i + 1, p["start"] * sector, p["size"] * sector)
            for i, p in enumerate(table["partitions"])]


def hash_range(image: Path, part: Partition) -> str:
    """SHA-256 of one partition's bytes."""
    digest = hashlib.sha256()
    with image.open("rb") as f:
        f.seek(part.start)
        left = part.size
        while left:
            block = f.read(min(left, 4 << 20))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


class ImageCopy:
    """A sparse, writable copy of the image, with helpers for its FAT partition (mtools)."""

    def __init__(self, source: Path, workdir: Path) -> None:
        if not source.is_file():
            raise FileNotFoundError(f"{source} not found: build it with `make image` (needs root)")
        self.path = workdir / source.name
        subprocess.run(["cp", "--sparse=always", str(source), str(self.path)], check=True)
        self.parts = partitions(self.path)
        self.fat = f"{self.path}@@{self.parts[0].start}"

    def fat_read(self, name: str) -> bytes:
        return subprocess.run(["mcopy", "-n", "-i", self.fat, f"::/{name}", "-"], check=True,
                              capture_output=True).stdout

    def fat_write(self, name: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            subprocess.run(["mcopy", "-o", "-i", self.fat, tmp.name, f"::/{name}"], check=True)

    def fat_extract(self, name: str, dest: Path) -> Path:
        dest.write_bytes(self.fat_read(name))
        return dest

    def root_hash(self) -> str:
        return hash_range(self.path, self.parts[1])


def kernel_files(copy: ImageCopy, dest: Path) -> tuple[Path, Path, str]:
    """(kernel, initrd, cmdline) as config.txt and cmdline.txt on the FAT partition name them."""
    config = copy.fat_read("config.txt").decode()
    kernel = re.search(r"^kernel=(\S+)", config, re.MULTILINE)
    initrd = re.search(r"^initramfs (\S+)", config, re.MULTILINE)
    if not kernel or not initrd:
        raise GuestError(f"config.txt on the image names no kernel= / initramfs:\n{config}")
    cmdline = copy.fat_read("cmdline.txt").decode().strip()
    return (copy.fat_extract(kernel.group(1), dest / "vmlinuz"),
            copy.fat_extract(initrd.group(1), dest / "initrd.img"), cmdline)


def board_dtb(dest: Path, machine: str, memory_mb: int, cpus: int, cpu: str) -> Path:
    """QEMU's own device tree for this machine, with a Raspberry Pi revision added."""
    raw = dest / "virt.dtb"
    subprocess.run([QEMU, "-M", f"{machine},dumpdtb={raw}", "-cpu", cpu, "-m", str(memory_mb),
                    "-smp", str(cpus), "-nographic", "-nodefaults"], check=True, capture_output=True)
    source = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", str(raw)], check=True,
                            capture_output=True, text=True).stdout
    source = source.rstrip().rstrip(";").rstrip()
    assert source.endswith("}"), "unexpected dtc output"
    source = source[:-1] + f"\n\tsystem {{\n\t\tlinux,revision = <0x{PI_REVISION:x}>;\n\t}};\n}};\n"
    out = dest / "board.dtb"
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(out), "-"], input=source,
                   check=True, capture_output=True, text=True)
    return out


AGENT_SCRIPT = """#!/bin/sh
# VoiceKey image boot test: mount the test's 9p share and run its job agent (tests/vm/agent.py).
set -e
# the unit runs on the console: a getty taking the console over hangs it up; the agent stays
trap '' HUP
mkdir -p {share}
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 jobs {share}
exec /opt/voicekey/bin/python {share}/agent.py --share {share} --cwd {share}/repo
"""


class ImageGuest(Guest):
    """The image booted in ``qemu-system-aarch64 -M virt``; commands run through tests/vm/agent.py.

    Commands run with cwd = a copy of the test helpers the guest needs (``tests/vm/guest_events.py``)
    in the share, so :mod:`tests.vm.keyboard`'s ``Recorder`` and ``gadget_up`` work unchanged.
    """

    def __init__(self, copy: ImageCopy, *, memory_mb: int = 1024, cpus: int = 2,
                 boot_timeout: float = 600, cpu: str = "cortex-a72") -> None:
        # The share is mounted in the guest at the same path as on the host: under /tmp, which is
        # a tmpfs in the image (its root is read-only).
        rundir = Path(tempfile.mkdtemp(prefix="voicekey-imageboot-", dir="/tmp"))
        super().__init__(repo=rundir / "share" / "repo", cache=rundir, memory_mb=memory_mb,
                         cpus=cpus, accel="tcg", python="/opt/voicekey/bin/python", boot_timeout=boot_timeout)
        self.rundir = rundir
        self.share = rundir / "share"
        self.console_log = rundir / "console.log"
        self.copy = copy
        self.cpu_model = cpu
        self.monitor_path = rundir / "monitor.sock"
        self.cmdline = ""
        self.booted_at = 0.0

    def boot(self) -> None:
        if shutil.which(QEMU) is None:
            raise GuestError(f"{QEMU} is not installed: apt-get install qemu-system-arm "
                             "(make image-system installs it)")
        self.share.mkdir(parents=True)
        helpers = self.share / "repo" / "tests" / "vm"
        helpers.mkdir(parents=True)
        shutil.copy2(REPO / "tests" / "vm" / "guest_events.py", helpers / "guest_events.py")
        shutil.copy2(REPO / "tests" / "vm" / "agent.py", self.share / "agent.py")
        self.copy.fat_write("voicekey-test-agent.sh",
                            AGENT_SCRIPT.format(share=shlex.quote(str(self.share))).encode())
        kernel, initrd, cmdline = kernel_files(self.copy, self.rundir)
        dtb = board_dtb(self.rundir, "virt", self.memory_mb, self.cpus, self.cpu_model)
        self.cmdline = (f"{cmdline} console=ttyAMA0 modules-load=dummy_hcd,snd-aloop,9pnet_virtio,9p "
                        "modprobe.blacklist=gpio_keys systemd.unit=multi-user.target "
                        "systemd.mask=serial-getty@ttyAMA0.service "
                        "systemd.wants=kernel-command-line.service systemd.run_success_action=none "
                        "systemd.run_failure_action=none "
                        "systemd.run=\"/bin/sh -c 'until mountpoint -q /boot/firmware; do sleep 1; done; "
                        "exec /bin/sh /boot/firmware/voicekey-test-agent.sh'\"")
        cmd = [
            QEMU, "-M", "virt", "-cpu", self.cpu_model, "-m", str(self.memory_mb),
            "-smp", str(self.cpus), "-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
            "-serial", f"file:{self.console_log}",
            "-monitor", f"unix:{self.monitor_path},server,nowait",
            "-dtb", str(dtb), "-kernel", str(kernel), "-initrd", str(initrd), "-append", self.cmdline,
            "-drive", f"if=none,id=sd,file={self.copy.path},format=raw,cache=unsafe",
            "-device", "virtio-blk-pci,drive=sd",
            "-fsdev", f"local,id=jobs,path={self.share},security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=jobs,mount_tag=jobs",
        ]
        qemu_err = (self.rundir / "qemu.stderr").open("wb")
        self.booted_at = time.monotonic()
        self._qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_err, stderr=qemu_err)
        qemu_err.close()
        ready = self.share / "ready"
        try:
            self._wait_for(ready.exists, self.boot_timeout, "the image to boot and start the test agent")
        except GuestError as exc:
            details = f"QEMU stderr: {self._qemu_stderr()}\n--- console\n{self.console_tail(120)}"
            self.close(timeout=5)
            raise GuestError(f"{exc}\n{details}") from None
        except BaseException:  # interrupted: leave no QEMU behind
            self.close(timeout=5)
            raise
        self.release = json.loads(ready.read_text())["release"]

    def monitor(self, command: str) -> str:
        """One QEMU monitor command (e.g. ``system_powerdown``: a pulse on pl061 line 3)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.monitor_path))
            s.recv(4096)  # banner + prompt
            s.sendall(command.encode() + b"\n")
            time.sleep(0.3)
            try:
                return s.recv(4096).decode(errors="replace")
            except TimeoutError:
                return ""

    def close(self, timeout: float = 60) -> None:
        """Power the guest off (systemd's orderly shutdown), kill QEMU if it does not exit."""
        qemu = self._qemu
        if qemu is None:
            return
        self._qemu = None
        if qemu.poll() is None:
            try:
                (self.share / "jobs").mkdir(exist_ok=True)
                spec = {"cmd": "systemctl poweroff", "cwd": "/", "env": {}, "stdin": False}
                self._write_atomic(self.share / "jobs" / "99999.json", json.dumps(spec))
            except OSError:
                pass
            try:
                qemu.wait(timeout)
            except subprocess.TimeoutExpired:
                qemu.kill()
                qemu.wait()

    def cleanup(self) -> None:
        shutil.rmtree(self.rundir, ignore_errors=True)
