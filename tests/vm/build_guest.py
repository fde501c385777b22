"""Build (or reuse) the QEMU guest used by the real-kernel tests: Debian's kernel + a busybox initramfs.

Usage: ``python -m tests.vm.build_guest [--cache DIR] [--force]`` (``--help`` for details).

What it does, each step cached under the cache directory (``$VOICEKEY_VM_CACHE`` or
``<repo>/.cache/vm``) and skipped when its output is already there:

1. ``apt-get download linux-image-amd64`` (the metapackage) and the versioned ``linux-image-*-amd64``
   package it depends on; unpack the latter with ``dpkg-deb -x``.
2. Check the kernel config really has the USB stand-ins we need (``CONFIG_USB_DUMMY_HCD``,
   ``CONFIG_USB_CONFIGFS_F_HID``, ``CONFIG_USB_LIBCOMPOSITE``, ``CONFIG_SND_ALOOP``...).
3. Resolve the wanted modules and their dependencies (``modules.dep`` if the package ships one,
   otherwise the ``depends=`` field every ``.ko`` carries in its ``.modinfo`` section), decompress
   ``.ko.xz`` / ``.ko.zst`` files, and write them in load order into a newc cpio initramfs together
   with the static busybox from Debian's ``busybox-static`` and ``tests/vm/init.sh`` as ``/init``.

The result is ``<cache>/guest/vmlinuz`` + ``<cache>/guest/initramfs.cpio`` + ``manifest.json``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

#: Modules the guest loads (their dependencies are added automatically). Names as in the kernel
#: (``-`` and ``_`` are interchangeable).
WANTED_MODULES = (
    # virtio-9p: the host root (read-only) and the job share (read-write)
    "virtio_pci", "9pnet_virtio", "9p",
    # the USB gadget stack on the guest's own dummy host controller
    "configfs", "dummy_hcd", "libcomposite", "usb_f_hid",
    # the guest's host side of the same cable: HID keyboard -> input events
    "usbhid", "hid_generic", "evdev",
    # a real ALSA capture device for whole-device tests
    "snd_aloop",
    # virtual input devices (tests/vm/uinput_key.py): the daemon's input-key trigger
    "uinput",
    # Bluetooth with no radio (tests/vm/test_bluetooth_vm.py): virtual controllers for btvirt, the
    # kernel's HID host (the test's computer side) and the crypto Secure Simple Pairing needs
    "bluetooth", "hci_vhci", "hidp", "uhid",
    "cmac", "ecb", "af_alg", "algif_hash", "algif_skcipher", "drbg",
)

#: BlueZ user space for the Bluetooth guest tests (bluetoothd, btmon; btvirt), unpacked into the
#: cache like the kernel, so the machine running the tests needs no Bluetooth daemon installed.
BLUEZ_PACKAGES = ("bluez", "bluez-test-tools")

#: Kernel options that must be built in (``y``) or modules (``m``) for the harness to mean anything.
REQUIRED_CONFIG = (
    "CONFIG_USB_DUMMY_HCD", "CONFIG_USB_CONFIGFS_F_HID", "CONFIG_USB_CONFIGFS",
    "CONFIG_USB_LIBCOMPOSITE", "CONFIG_USB_F_HID", "CONFIG_USB_HID", "CONFIG_HID_GENERIC",
    "CONFIG_INPUT_EVDEV", "CONFIG_SND_ALOOP", "CONFIG_9P_FS", "CONFIG_NET_9P_VIRTIO",
    "CONFIG_VIRTIO_PCI", "CONFIG_CONFIGFS_FS", "CONFIG_DEVTMPFS", "CONFIG_TMPFS",
    "CONFIG_INPUT_UINPUT", "CONFIG_BT", "CONFIG_BT_HCIVHCI", "CONFIG_BT_HIDP", "CONFIG_UHID",
)

BUSYBOX = Path("/bin/busybox")
META_PACKAGE = "linux-image-amd64"


class BuildError(RuntimeError):
    """The guest could not be built; the message says why and what to install or change."""


@dataclass(frozen=True)
class GuestImage:
    """Paths of a built guest."""

    kernel: Path
    initramfs: Path
    manifest: Path
    release: str


def cache_dir() -> Path:
    """The cache root: ``$VOICEKEY_VM_CACHE`` or ``<repo>/.cache/vm``."""
    env = os.environ.get("VOICEKEY_VM_CACHE")
    return Path(env).resolve() if env else REPO / ".cache" / "vm"


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{cmd[0]} is not installed ({exc}); install it with apt-get "
                         "(the Makefile's `make system` does)") from exc
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n"
                         f"{proc.stderr.strip()}")
    return proc.stdout


def _apt_download(package: str, dest: Path) -> Path:
    """``apt-get download PACKAGE`` into ``dest`` (runs ``apt-get update`` once if apt has no lists)."""
    existing = sorted(dest.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    try:
        _run(["apt-get", "download", package], cwd=dest)
    except BuildError:
        log.warning("apt-get download %s failed; running apt-get update once and retrying", package)
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "download", package], cwd=dest)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if not found:
        raise BuildError(f"apt-get download {package} produced no .deb in {dest}")
    return found[-1]


def _first_dependency(deb: Path, prefix: str) -> str:
    """The name of the first ``Depends:`` alternative of ``deb`` starting with ``prefix``."""
    depends = _run(["dpkg-deb", "-f", str(deb), "Depends"]).strip()
    for clause in depends.split(","):
        for alt in clause.split("|"):
            name = alt.strip().split(" ")[0]
            if name.startswith(prefix):
                return name
    raise BuildError(f"{deb.name} does not depend on a {prefix}* package (Depends: {depends!r})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(path: Path) -> str:
    name = path.name
    for suffix in (".xz", ".zst", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return _norm(name[: -len(".ko")])


def _read_module(path: Path) -> bytes:
    """The uncompressed bytes of a kernel module (``.ko``, ``.ko.xz`` or ``.ko.zst``)."""
    if path.name.endswith(".xz"):
        return lzma.decompress(path.read_bytes())
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dcq", str(path)], check=True, capture_output=True).stdout
    if path.name.endswith(".gz"):
        import gzip
        return gzip.decompress(path.read_bytes())
    return path.read_bytes()


_DEPENDS_RE = re.compile(rb"\x00depends=([^\x00]*)\x00")


def module_graph(moddir: Path) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """Map module name -> file and module name -> dependency names for one kernel release dir.

    Uses ``modules.dep`` when present; Debian's package does not ship it (depmod runs in postinst),
    so otherwise the ``depends=`` string from each module's ``.modinfo`` section is used — the same
    field depmod reads.
    """
    files: dict[str, Path] = {}
    for path in (moddir / "kernel").rglob("*.ko*"):
        files[_module_name(path)] = path
    deps: dict[str, list[str]] = {}
    depfile = moddir / "modules.dep"
    if depfile.exists():
        for line in depfile.read_text().splitlines():
            target, _, rest = line.partition(":")
            deps[_module_name(Path(target))] = [_module_name(Path(d)) for d in rest.split()]
    return files, deps


def _deps_of(name: str, files: dict[str, Path], deps: dict[str, list[str]]) -> list[str]:
    if name not in deps:
        data = _read_module(files[name])
        match = _DEPENDS_RE.search(data)
        deps[name] = [_norm(d) for d in match.group(1).decode().split(",") if d] if match else []
    return deps[name]


def load_order(wanted: tuple[str, ...], files: dict[str, Path],
               deps: dict[str, list[str]], builtin: set[str]) -> list[str]:
    """Dependency-first order of ``wanted`` and everything they need (built-ins left out)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        name = _norm(name)
        if name in order or name in builtin:
            return
        if name not in files:
            raise BuildError(f"kernel module {name!r} is neither in the package nor built in")
        if name in visiting:
            raise BuildError(f"module dependency cycle at {name!r}")
        visiting.add(name)
        for dep in _deps_of(name, files, deps):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def check_config(config: Path) -> None:
    """Fail unless every option in ``REQUIRED_CONFIG`` is ``y`` or ``m`` in the kernel's config."""
    text = config.read_text()
    missing = [opt for opt in REQUIRED_CONFIG
               if not re.search(rf"^{opt}=[ym]$", text, flags=re.MULTILINE)]
    if missing:
        raise BuildError(f"{config.name} lacks {', '.join(missing)}: this kernel cannot run the "
                         "USB gadget guest tests")


def _write_cpio(root: Path, out: Path) -> None:
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        proc = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0"],
                              input="\n".join(["."] + names) + "\n", text=True,
                              cwd=root, stdout=fh, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise BuildError(f"cpio failed: {proc.stderr}")
    tmp.replace(out)


def build(cache: Path | None = None, force: bool = False) -> GuestImage:
    """Build the guest kernel + initramfs into ``cache`` (default :func:`cache_dir`), or reuse it.

    Several test sessions may start at once; a lock file serialises them.
    """
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(cache, force)


def _build_locked(cache: Path, force: bool) -> GuestImage:
    guest = cache / "guest"
    manifest = guest / "manifest.json"
    init_src = HERE / "init.sh"
    if manifest.exists() and not force:
        info = json.loads(manifest.read_text())
        image = GuestImage(guest / "vmlinuz", guest / "initramfs.cpio", manifest, info["release"])
        # The init script and the module list are ours and change; rebuild the cpio when they do.
        if (image.kernel.exists() and image.initramfs.exists()
                and info.get("init_sha256") == _sha256(init_src)
                and info.get("wanted") == list(WANTED_MODULES)):
            return image

    if not BUSYBOX.exists():
        raise BuildError(f"{BUSYBOX} is missing: apt-get install busybox-static")
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    meta = _apt_download(META_PACKAGE, debs)
    image_pkg = _first_dependency(meta, "linux-image-")
    image_deb = _apt_download(image_pkg, debs)

    unpacked = cache / "kernel" / image_deb.stem
    if not (unpacked / ".complete").exists():
        if unpacked.exists():
            shutil.rmtree(unpacked)
        unpacked.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(image_deb), str(unpacked)])
        (unpacked / ".complete").touch()

    moddirs = sorted((unpacked / "lib" / "modules").iterdir())
    if len(moddirs) != 1:
        raise BuildError(f"expected one kernel release in {image_deb.name}, found {moddirs}")
    moddir = moddirs[0]
    release = moddir.name
    check_config(unpacked / "boot" / f"config-{release}")

    builtin: set[str] = set()
    builtin_list = moddir / "modules.builtin"
    if builtin_list.exists():
        builtin = {_module_name(Path(line)) for line in builtin_list.read_text().split()}
    files, deps = module_graph(moddir)
    order = load_order(WANTED_MODULES, files, deps, builtin)
    log.info("module load order: %s", " ".join(order))

    guest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="initramfs-", dir=guest) as tmp:
        root = Path(tmp)
        for sub in ("bin", "dev", "proc", "sys", "host", "share", "lib/modules"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        for name in order:
            (root / "lib" / "modules" / f"{name}.ko").write_bytes(_read_module(files[name]))
        (root / "lib" / "modules" / "load.order").write_text("\n".join(order) + "\n")
        shutil.copy2(init_src, root / "init")
        (root / "init").chmod(0o755)
        _write_cpio(root, guest / "initramfs.cpio")

    kernel = guest / "vmlinuz"
    shutil.copy2(unpacked / "boot" / f"vmlinuz-{release}", kernel)
    manifest.write_text(json.dumps({
        "release": release, "package": image_deb.name, "modules": order,
        "init_sha256": _sha256(init_src), "wanted": list(WANTED_MODULES),
    }, indent=2) + "\n")
    return GuestImage(kernel, guest / "initramfs.cpio", manifest, release)


def bluez_root(cache: Path | None = None) -> Path:
    """``apt-get download`` + ``dpkg-deb -x`` of :data:`BLUEZ_PACKAGES` into ``<cache>/bluez``
    (once); returns that root (``usr/libexec/bluetooth/bluetoothd``, ``usr/bin/btvirt``, ...)."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        found = [_apt_download(p, debs) for p in BLUEZ_PACKAGES]
        root = cache / "bluez" / "-".join(d.stem for d in found)
        if not (root / ".complete").exists():
            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            for deb in found:
                _run(["dpkg-deb", "-x", str(deb), str(root)])
            (root / ".complete").touch()
        for tool in ("usr/libexec/bluetooth/bluetoothd", "usr/bin/btvirt", "usr/bin/btmon"):
            if not (root / tool).exists():
                raise BuildError(f"{tool} is not in {', '.join(d.name for d in found)}")
        return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.vm.build_guest",
        description="Build (or reuse) the QEMU test guest: Debian's linux-image-amd64 kernel and a "
                    "busybox initramfs with the 9p, USB gadget (dummy_hcd, usb_f_hid), usbhid, evdev "
                    "snd-aloop and uinput modules. Output goes to $VOICEKEY_VM_CACHE or <repo>/.cache/vm.")
    parser.add_argument("--cache", type=Path, default=None, help="cache directory (default: %(default)s"
                        " -> $VOICEKEY_VM_CACHE or <repo>/.cache/vm)")
    parser.add_argument("--force", action="store_true", help="rebuild the initramfs even if cached")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        image = build(args.cache, force=args.force)
    except BuildError as exc:
        print(f"build_guest: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"kernel": str(image.kernel), "initramfs": str(image.initramfs),
                      "release": image.release}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
