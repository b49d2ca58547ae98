"""What discovery tells the daemon: plain values, no pyudev objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RecorderInfo:
    """One face of a docked recorder: its command port or its storage."""

    usb_serial: str
    vendor: str  # USB vendor id, 4 hex digits
    product: str  # USB product id, 4 hex digits
    model: str  # name of the configured model these ids match
    tty: str | None = None  # command port device node
    block_device: str | None = None  # volume to mount (partition or whole disk)
    fs_type: str | None = None
    volume_path: str | None = None  # a volume that is already mounted (simulated)
    origin: str = "udev"

    @property
    def has_storage(self) -> bool:
        return self.block_device is not None or self.volume_path is not None

    @property
    def label(self) -> str:
        face = self.tty or self.block_device or self.volume_path
        return f"{self.model} {self.usb_serial} ({face})"


@dataclass(frozen=True)
class Docked:
    info: RecorderInfo


@dataclass(frozen=True)
class Undocked:
    info: RecorderInfo


DockEvent = Docked | Undocked


class Discovery(Protocol):
    """A source of dock events (udev, the simulated bus)."""

    def start(self, emit: Callable[[DockEvent], None]) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class ModelIds:
    name: str
    vendor: str  # 4 hex digits, or "*" for any
    product: str


# A USB mass-storage volume of no configured model: docked only if its files look like a
# recorder's (agent/worker.py checks the layout), never by its command port.
UNKNOWN_MODEL = "unknown"
ANY_STORAGE = ModelIds(UNKNOWN_MODEL, "*", "*")


def match_model(models: list[ModelIds], vendor: str | None, product: str | None, *,
                storage: bool) -> str | None:
    """The name of the model with these USB ids, or None for any other device.

    The wildcard ANY_STORAGE (if listed) matches only a storage face (``storage``)."""
    if vendor is None or product is None:
        return None
    v, p = vendor.lower(), product.lower()
    for m in models:
        if (m.vendor, m.product) == (v, p):
            return m.name
        if m.vendor == "*" and storage:
            return m.name
    return None
