"""Recorder sources for the dock pipeline (ingest/source.py): real recorders and folders."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devices.errors import RecorderError
from devices.events import RecorderInfo
from devices.mount import Mounter, mounted
from devices.protocol import Link, RecorderClient
from devices.serial_link import SerialLink
from devices.volume import FolderVolume

CHECK_EVERY_S = 0.1


class FolderSource:
    """A mounted volume or any folder: no command port, nothing to clear."""

    usb_serial: str | None = None
    model: str | None = None
    password = ""
    sets_clock = False
    can_clear = False

    def __init__(self, volume: FolderVolume):
        self._volume = volume

    @property
    def label(self) -> str:
        return self._volume.label

    @contextmanager
    def commands(self) -> Iterator[None]:
        yield None

    @contextmanager
    def volume(self) -> Iterator[FolderVolume]:
        yield self._volume


class CheckedLink:
    """A Link whose waits are cut into slices of ``every`` seconds with ``check`` between
    them, so that a stop (``check`` raising) is seen at once and not after a silent
    recorder's full reply timeout and retries (seconds each). What ``check`` raises goes
    through unchanged: it is not a failure of the link."""

    def __init__(self, link: Link, check: Callable[[], None], every: float = CHECK_EVERY_S):
        self.link = link
        self.check = check
        self.every = every

    def write(self, data: bytes) -> None:
        self.check()
        self.link.write(data)

    def read(self, size: int, timeout: float) -> bytes:
        until = time.monotonic() + timeout
        while True:
            self.check()
            left = until - time.monotonic()
            got = self.link.read(size, max(min(left, self.every), 0.0))
            if got or left <= self.every:
                return got

    def close(self) -> None:
        self.link.close()


class DockedRecorder:
    """A recorder on the USB bus: its command port (if its model has one) and its storage."""

    def __init__(self, info: RecorderInfo, *, serial: bool, baudrate: int, password: str,
                 sets_clock: bool, can_clear: bool, wait_storage: Callable[[], RecorderInfo],
                 mounter: Mounter | None, mount_dir: Path,
                 check: Callable[[], None] | None = None):
        self.info = info
        self.serial = serial and info.tty is not None
        self.baudrate = baudrate
        self.password = password
        self.sets_clock = sets_clock
        self.can_clear = can_clear and self.serial
        self.wait_storage = wait_storage
        self.mounter = mounter
        self.mount_dir = mount_dir
        self.check = check  # called while waiting on the command port; may raise to stop

    @property
    def label(self) -> str:
        return self.info.label

    @property
    def usb_serial(self) -> str | None:
        return self.info.usb_serial

    @property
    def model(self) -> str | None:
        return self.info.model

    @contextmanager
    def commands(self) -> Iterator[RecorderClient | None]:
        if not self.serial or self.info.tty is None:
            yield None
            return
        serial_link = SerialLink(self.info.tty, self.baudrate)
        link: Link = serial_link if self.check is None else CheckedLink(serial_link, self.check)
        try:
            yield RecorderClient(link)
        finally:
            link.close()

    @contextmanager
    def volume(self) -> Iterator[FolderVolume]:
        face = self.info if self.info.has_storage else self.wait_storage()
        if face.volume_path is not None:
            yield FolderVolume(Path(face.volume_path))
            return
        if self.mounter is None or face.block_device is None:
            raise RecorderError(f"{face.label}: no way to mount it here")
        target = self.mount_dir / _safe(face.usb_serial)
        with mounted(self.mounter, face.block_device, face.fs_type, target) as root:
            yield FolderVolume(root)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "recorder"
