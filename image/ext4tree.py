#!/usr/bin/env python3
"""Copy an ext4 file system image into a directory with no mount and no loop device.

``debugfs -R "rdump / DEST"`` copies the files, but (e2fsprogs 1.47, measured here) it loses what a
root file system needs: set-user-ID/set-group-ID bits (it chmods before it chowns, and the chown
clears them), owners of symbolic links, hard links (each name becomes its own copy), device nodes
and FIFOs (skipped), and extended attributes (file capabilities such as ``cap_net_raw`` on ping).
This tool runs rdump, then reads every directory's entries with ``debugfs ls -p`` (inode, full
mode, owner, group) and every inode's extended attributes with ``ea_list``/``ea_get``, and puts
each of those back, so that ``mke2fs -d DEST`` makes a file system with the same content. It then
checks the result and prints what it repaired.

Usage: ext4tree.py extract IMAGE DEST      (as root: owners, device nodes, security.* attributes)
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Attributes whose on-disk form is not what setxattr() takes (ext4 stores POSIX ACLs in its own
#: compact format; system.data is inline file data): reported, not copied.
SKIPPED_XATTRS = ("system.data", "system.posix_acl_access", "system.posix_acl_default")


@dataclass
class Entry:
    """One directory entry as debugfs ``ls -p`` shows it."""

    path: str  # relative to the root, no leading slash
    ino: int
    mode: int
    uid: int
    gid: int


class DebugfsError(RuntimeError):
    """debugfs failed or printed something this tool does not understand."""


def debugfs(image: Path, commands: list[str]) -> list[tuple[str, str]]:
    """Run ``commands`` in one read-only debugfs session; return (command, output) pairs."""
    if not commands:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        proc = subprocess.run(["debugfs", "-f", script.name, str(image)], capture_output=True,
                              text=True, errors="surrogateescape", check=False)
    if proc.returncode != 0:
        raise DebugfsError(f"debugfs failed on {image}: {proc.stderr.strip()}")
    # debugfs echoes each command as "debugfs: CMD" before its output
    results: list[tuple[str, str]] = []
    current: list[str] | None = None
    for line in proc.stdout.splitlines(keepends=True):
        if line.startswith("debugfs: "):
            current = []
            results.append((line[len("debugfs: "):].rstrip("\n"), ""))
            continue
        if current is not None:
            cmd, out = results[-1]
            results[-1] = (cmd, out + line)
    if len(results) != len(commands):
        raise DebugfsError(f"debugfs answered {len(results)} of {len(commands)} commands on {image}")
    return results


LS_LINE = re.compile(r"^/(\d+)/(\d+)/(\d+)/(\d+)/(.*)/(\d*)/$")


def list_tree(image: Path) -> list[Entry]:
    """Every entry of the file system, breadth first, from ``ls -p <inode>`` (no path quoting)."""
    entries: list[Entry] = []
    level = [("", 2)]  # inode 2 is the root directory
    while level:
        answers = debugfs(image, [f"ls -p <{ino}>" for _, ino in level])
        next_level = []
        for (parent, _), (_, out) in zip(level, answers):
            for line in out.splitlines():
                m = LS_LINE.match(line)
                if not m:
                    if line.strip():
                        raise DebugfsError(f"unexpected debugfs ls output under /{parent}: {line!r}")
                    continue
                ino, mode, uid, gid, name = int(m[1]), int(m[2], 8), int(m[3]), int(m[4]), m[5]
                if name in (".", "..") or ino == 0 or not name:  # 0: an unused slot (lost+found)
                    continue
                path = f"{parent}/{name}" if parent else name
                entries.append(Entry(path, ino, mode, uid, gid))
                if stat.S_ISDIR(mode):
                    next_level.append((path, ino))
        level = next_level
    return entries


def root_entry(image: Path) -> Entry:
    out = debugfs(image, ["ls -p <2>"])[0][1]
    for line in out.splitlines():
        m = LS_LINE.match(line)
        if m and m[5] == ".":
            return Entry("", 2, int(m[2], 8), int(m[3]), int(m[4]))
    raise DebugfsError(f"no root directory entry in {image}")


EA_LINE = re.compile(r"^  (\S+) \((\d+)\)")


def xattrs(image: Path, inodes: list[int], workdir: Path) -> dict[int, dict[str, bytes]]:
    """Extended attributes of ``inodes`` (raw values, read with ``ea_get -f``)."""
    found: dict[int, list[str]] = {}
    chunk = 20000
    for i in range(0, len(inodes), chunk):
        part = inodes[i:i + chunk]
        for ino, (_, out) in zip(part, debugfs(image, [f"ea_list <{ino}>" for ino in part])):
            names = [m[1] for line in out.splitlines() if (m := EA_LINE.match(line))]
            if names:
                found[ino] = names
    values: dict[int, dict[str, bytes]] = {}
    commands, targets = [], []
    for ino, names in found.items():
        for n, name in enumerate(names):
            target = workdir / f"ea-{ino}-{n}"
            commands.append(f'ea_get -f "{target}" <{ino}> {name}')
            targets.append((ino, name, target))
    debugfs(image, commands)
    for ino, name, target in targets:
        values.setdefault(ino, {})[name] = target.read_bytes()
        target.unlink()
    return values


def device_numbers(image: Path, inodes: list[int]) -> dict[int, tuple[int, int]]:
    numbers = {}
    for ino, (_, out) in zip(inodes, debugfs(image, [f"stat <{ino}>" for ino in inodes])):
        m = re.search(r"Device major/minor number: (\d+):(\d+)", out)
        if not m:
            raise DebugfsError(f"no device number for inode {ino}")
        numbers[ino] = (int(m[1]), int(m[2]))
    return numbers


def set_owner_mode(path: Path, e: Entry, fixed: dict[str, int]) -> None:
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) != (e.uid, e.gid):
        os.lchown(path, e.uid, e.gid)
        fixed["owner"] += 1
        st = os.lstat(path)  # a chown clears set-user-ID/set-group-ID: mode again below
    if not stat.S_ISLNK(e.mode) and stat.S_IMODE(st.st_mode) != stat.S_IMODE(e.mode):
        os.chmod(path, stat.S_IMODE(e.mode))
        fixed["mode"] += 1


def extract(image: Path, dest: Path) -> dict[str, int]:
    """rdump ``image`` into ``dest`` (must not exist or be empty), then repair and check it."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise SystemExit(f"ext4tree: {dest} is not empty")
    proc = subprocess.run(["debugfs", "-R", f'rdump / "{dest}"', str(image)], capture_output=True, text=True)
    errors = [line for line in proc.stderr.splitlines() if line and not line.startswith("debugfs ")]
    if proc.returncode != 0 or errors:
        raise SystemExit(f"ext4tree: debugfs rdump of {image} failed: {' '.join(errors) or proc.returncode}")
    entries = list_tree(image)
    fixed = {"owner": 0, "mode": 0, "hardlink": 0, "special": 0, "xattr": 0, "skipped_xattr": 0}
    first_name: dict[int, Path] = {}
    specials = [e for e in entries if stat.S_ISCHR(e.mode) or stat.S_ISBLK(e.mode)]
    devnums = device_numbers(image, [e.ino for e in specials])
    for e in entries:
        path = dest / e.path
        if stat.S_ISREG(e.mode) and e.ino in first_name:
            path.unlink()
            os.link(first_name[e.ino], path)
            fixed["hardlink"] += 1
            continue
        if stat.S_ISREG(e.mode):
            first_name[e.ino] = path
        if stat.S_ISCHR(e.mode) or stat.S_ISBLK(e.mode) or stat.S_ISFIFO(e.mode) or stat.S_ISSOCK(e.mode):
            if os.path.lexists(path):
                path.unlink()
            if stat.S_ISSOCK(e.mode):
                print(f"ext4tree: socket /{e.path} not copied (made at run time)", file=sys.stderr)
                continue
            dev = os.makedev(*devnums[e.ino]) if e.ino in devnums else 0
            os.mknod(path, e.mode, dev)
            fixed["special"] += 1
        set_owner_mode(path, e, fixed)
    # the root directory itself
    root = root_entry(image)
    set_owner_mode(dest, root, fixed)
    # extended attributes last: a chown would drop security.capability again
    with tempfile.TemporaryDirectory() as tmp:
        by_inode = {e.ino: e for e in entries if stat.S_ISREG(e.mode) or stat.S_ISDIR(e.mode)}
        for ino, attrs in xattrs(image, sorted(by_inode), Path(tmp)).items():
            for name, value in attrs.items():
                if name in SKIPPED_XATTRS:
                    if name != "system.data":
                        print(f"ext4tree: {name} on /{by_inode[ino].path} not copied", file=sys.stderr)
                        fixed["skipped_xattr"] += 1
                    continue
                os.setxattr(dest / by_inode[ino].path, name, value, follow_symlinks=False)
                fixed["xattr"] += 1
    check(entries, dest, first_name)
    fixed["entries"] = len(entries)
    return fixed


def check(entries: list[Entry], dest: Path, first_name: dict[int, Path]) -> None:
    """Every entry is there with its type, mode, owner and hard-link partner."""
    bad = []
    for e in entries:
        st = os.lstat(dest / e.path)
        if (stat.S_IFMT(st.st_mode), st.st_uid, st.st_gid) != (stat.S_IFMT(e.mode), e.uid, e.gid) or (
                not stat.S_ISLNK(e.mode) and stat.S_IMODE(st.st_mode) != stat.S_IMODE(e.mode)):
            bad.append(f"/{e.path}: {st.st_mode:o} {st.st_uid}:{st.st_gid}, expected {e.mode:o} {e.uid}:{e.gid}")
        elif stat.S_ISREG(e.mode) and not os.path.samefile(first_name[e.ino], dest / e.path):
            bad.append(f"/{e.path}: not a hard link of {first_name[e.ino]}")
    if bad:
        raise SystemExit("ext4tree: the copy differs from the image:\n  " + "\n  ".join(bad[:20]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="copy the file system in IMAGE into DEST (as root)")
    ex.add_argument("image", type=Path)
    ex.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (owners, device nodes, security.* attributes)")
    fixed = extract(args.image, args.dest)
    print("ext4tree: {entries} entries; repaired after rdump: {owner} owners, {mode} modes, "
          "{hardlink} hard links, {special} device nodes/FIFOs, {xattr} extended attributes "
          "({skipped_xattr} ACLs not copied)".format(**fixed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
