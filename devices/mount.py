"""Mounting a recorder's volume read-only, behind one interface.

- ``udisks2``: ``udisksctl`` over D-Bus, where udisks2 runs (desktops, most stations);
- ``mount``: ``mount -o ro`` with the kernel's driver (needs root);
- ``fusefat``: FUSE, read-only, where the kernel has no vfat driver.

``auto`` picks the first that can work here. Every mount is read-only and is
undone when the dock ends.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from devices.errors import RecorderError

log = logging.getLogger(__name__)
TIMEOUT_S = 30
RO_OPTIONS = "ro,nosuid,nodev,noexec"


class MountError(RecorderError):
    pass


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MountError(f"{cmd[0]} failed: {exc}") from exc
    if done.returncode != 0:
        raise MountError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


class Mounter(Protocol):
    name: str

    def mount(self, device: str, fs_type: str | None, target: Path) -> Path: ...
    def unmount(self, device: str, mounted: Path) -> None: ...


class MountCommand:
    name = "mount"

    def mount(self, device: str, fs_type: str | None, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        kind = ["-t", fs_type] if fs_type else []
        _run(["mount", *kind, "-o", RO_OPTIONS, device, str(target)])
        return target

    def unmount(self, device: str, mounted: Path) -> None:
        _run(["umount", str(mounted)])


class FuseFat:
    name = "fusefat"

    def mount(self, device: str, fs_type: str | None, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        _run(["fusefat", "-o", "ro", device, str(target)])
        return target

    def unmount(self, device: str, mounted: Path) -> None:
        tool = shutil.which("fusermount3") or shutil.which("fusermount") or "umount"
        _run([tool, "-u", str(mounted)] if "fusermount" in tool else [tool, str(mounted)])


class Udisks2:
    name = "udisks2"
    _MOUNTED = re.compile(r"Mounted \S+ at (.+?)\.?$")

    def mount(self, device: str, fs_type: str | None, target: Path) -> Path:
        out = _run(["udisksctl", "mount", "--no-user-interaction", "-b", device,
                    "-o", RO_OPTIONS])
        found = self._MOUNTED.search(out.strip())
        if not found:
            raise MountError(f"udisksctl did not say where it mounted {device}: {out!r}")
        return Path(found.group(1))

    def unmount(self, device: str, mounted: Path) -> None:
        _run(["udisksctl", "unmount", "--no-user-interaction", "-b", device])


def kernel_has(fs_type: str) -> bool:
    try:
        known = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    return any(line.split()[-1] == fs_type for line in known.splitlines() if line.strip())


def _udisks_running() -> bool:
    if not (shutil.which("udisksctl") and shutil.which("busctl")):
        return False
    probe = subprocess.run(["busctl", "status", "org.freedesktop.UDisks2"],
                           capture_output=True, check=False, timeout=TIMEOUT_S)
    return probe.returncode == 0


def choose_mounter(kind: str, fs_type: str | None = "vfat") -> Mounter:
    if kind == "udisks2":
        return Udisks2()
    if kind == "mount":
        return MountCommand()
    if kind == "fusefat":
        return FuseFat()
    if kernel_has(fs_type or "vfat"):
        return Udisks2() if _udisks_running() else MountCommand()
    if shutil.which("fusefat"):
        return FuseFat()
    raise MountError("no way to mount a FAT volume here: no kernel vfat driver, no fusefat")


@contextmanager
def mounted(mounter: Mounter, device: str, fs_type: str | None, target: Path) -> Iterator[Path]:
    """Mount read-only for the duration of the block; always try to unmount."""
    where = mounter.mount(device, fs_type, target)
    log.info("mounted %s read-only at %s (%s)", device, where, mounter.name)
    try:
        yield where
    finally:
        try:
            mounter.unmount(device, where)
        except MountError as exc:
            log.error("could not unmount %s from %s: %s", device, where, exc)
