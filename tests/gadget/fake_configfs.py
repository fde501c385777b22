"""A configfs look-alike in a temporary directory.

Mimics what matters to the gadget code: attribute files that exist as soon as their directory is
made, rmdir of a directory that still holds attribute files, a UDC attribute that only accepts a
controller listed under sysfs, and attributes that refuse writes while the gadget is bound.
"""

from __future__ import annotations

from pathlib import Path

from appliance.gadget.configfs import ConfigFs

GADGET_ATTRS = ("idVendor", "idProduct", "bcdDevice", "bcdUSB", "UDC")
FUNCTION_ATTRS = ("protocol", "subclass", "report_length", "report_desc", "dev")


class FakeConfigFs(ConfigFs):
    def __init__(self, configfs_root: Path, sysfs_root: Path) -> None:
        self.configfs_root = configfs_root
        self.sysfs_root = sysfs_root
        self.writes: list[tuple[str, bytes]] = []
        (configfs_root / "usb_gadget").mkdir(parents=True, exist_ok=True)

    def _gadget_dir(self, path: Path) -> Path:
        rel = path.relative_to(self.configfs_root / "usb_gadget")
        return self.configfs_root / "usb_gadget" / rel.parts[0]

    def mkdir(self, path: Path) -> None:
        path.mkdir(exist_ok=True)
        if path.parent.name == "usb_gadget":
            for a in GADGET_ATTRS:
                (path / a).touch()
            (path / "configs").mkdir(exist_ok=True)
            (path / "functions").mkdir(exist_ok=True)
            (path / "strings").mkdir(exist_ok=True)
        elif path.parent.name == "configs":
            (path / "strings").mkdir(exist_ok=True)
            (path / "MaxPower").touch()
            (path / "bmAttributes").touch()
        elif path.parent.name == "functions":
            for a in FUNCTION_ATTRS:
                (path / a).touch()
            (path / "dev").write_text("236:0\n")

    def write(self, path: Path, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if not path.parent.is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        gadget = self._gadget_dir(path)
        bound = (gadget / "UDC").read_text().strip()
        if path.name == "UDC":
            name = raw.decode().strip()
            if name and not (self.sysfs_root / "class" / "udc" / name).is_dir():
                raise OSError(19, "No such device", str(path))
            if name:
                (self.sysfs_root / "class" / "udc" / name / "state").write_text("configured\n")
            elif bound:
                (self.sysfs_root / "class" / "udc" / bound / "state").write_text("not attached\n")
        elif bound:
            raise OSError(16, "Device or resource busy", str(path))
        self.writes.append((str(path.relative_to(gadget)), raw))
        path.write_bytes(raw)

    def rmdir(self, path: Path) -> None:
        if not path.is_dir():
            return
        for child in path.iterdir():
            if child.is_file():
                child.unlink()
            elif child.is_dir() and child.name in ("configs", "functions", "strings") and not any(child.iterdir()):
                child.rmdir()
        path.rmdir()
