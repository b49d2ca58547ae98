"""Recorder discovery through udev (the only module importing pyudev).

The monitor starts receiving before the devices already present are listed,
so a recorder plugged in during start-up is seen once, not missed. Matching
uses udev's own properties (ID_BUS=usb, ID_VENDOR_ID, ID_MODEL_ID,
ID_SERIAL_SHORT), which real USB devices get from udev's usb_id builtin.
Faces: a tty (command port), or a block device carrying a file system (a
partition, or a whole disk without a partition table).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pyudev

from devices.events import Docked, DockEvent, ModelIds, RecorderInfo, Undocked, match_model

log = logging.getLogger(__name__)


def face_of(props: dict[str, str], models: list[ModelIds]) -> RecorderInfo | None:
    """The recorder face a udev device is, or None (pure: takes udev properties)."""
    if props.get("ID_BUS") != "usb":
        return None
    subsystem = props.get("SUBSYSTEM")
    storage = subsystem == "block" and props.get("ID_FS_USAGE") == "filesystem"
    model = match_model(models, props.get("ID_VENDOR_ID"), props.get("ID_MODEL_ID"),
                        storage=storage)
    if model is None:
        return None
    serial = props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL") or props.get("DEVPATH", "")
    common: dict[str, Any] = dict(usb_serial=serial, vendor=props["ID_VENDOR_ID"].lower(),
                                  product=props["ID_MODEL_ID"].lower(), model=model)
    if subsystem == "tty":
        return RecorderInfo(**common, tty=props.get("DEVNAME"))
    if storage:
        return RecorderInfo(**common, block_device=props.get("DEVNAME"),
                            fs_type=props.get("ID_FS_TYPE"))
    return None


class UdevDiscovery:
    def __init__(self, models: list[ModelIds]):
        self.models = models
        self.context = pyudev.Context()
        self.monitor = pyudev.Monitor.from_netlink(self.context)
        self.monitor.filter_by("block")
        self.monitor.filter_by("tty")
        self._known: dict[str, RecorderInfo] = {}  # devpath -> face
        self._lock = threading.Lock()
        self._observer: pyudev.MonitorObserver | None = None
        self._emit: Callable[[DockEvent], None] | None = None

    def start(self, emit: Callable[[DockEvent], None]) -> None:
        self._emit = emit
        self._observer = pyudev.MonitorObserver(self.monitor, callback=self._event,
                                                name="udev-monitor")
        self._observer.start()  # receiving from here on; now list what is already there
        for subsystem in ("block", "tty"):
            for device in self.context.list_devices(subsystem=subsystem):
                self.handle("add", device.device_path, dict(device.properties))

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()

    def _event(self, device: Any) -> None:
        self.handle(device.action or "add", device.device_path, dict(device.properties))

    def handle(self, action: str, devpath: str, props: dict[str, str]) -> None:
        """Turn one udev event into at most one dock event; repeats are dropped."""
        assert self._emit is not None
        with self._lock:
            known = self._known.get(devpath)
            if action == "remove":
                if known is not None:
                    del self._known[devpath]
                    self._emit(Undocked(known))
                return
            if action not in ("add", "change") or known is not None:
                return  # a change to a docked face, or a second report of it
            face = face_of(props, self.models)
            if face is None:
                return
            self._known[devpath] = face
            log.info("docked: %s", face.label)
            self._emit(Docked(face))
