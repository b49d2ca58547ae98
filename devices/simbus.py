"""A simulated USB bus: simulated recorders announce themselves in a spool folder.

Each plugged recorder is one JSON file ``<usb_serial>.json`` holding its USB
ids and its faces (``tty`` for the command port, ``volume`` once it has
switched to mass storage). Writing the file is plugging in or switching mode;
deleting it is unplugging. The daemon watches the folder when ``simbus_dir``
is set, exactly as it watches udev, and handles what it sees the same way.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices.events import Docked, DockEvent, ModelIds, RecorderInfo, Undocked, match_model
from devices.simulator import SimulatedRecorder

log = logging.getLogger(__name__)
POLL_S = 0.1


def announce(bus: Path, usb_serial: str, **faces: Any) -> Path:
    """Plug in (or update) a simulated recorder: atomically write its JSON file."""
    bus.mkdir(parents=True, exist_ok=True)
    path = bus / f"{usb_serial}.json"
    tmp = bus / f".{usb_serial}.tmp"
    tmp.write_text(json.dumps({"usb_serial": usb_serial, **faces}))
    tmp.replace(path)
    return path


def withdraw(bus: Path, usb_serial: str) -> None:
    """Unplug a simulated recorder."""
    (bus / f"{usb_serial}.json").unlink(missing_ok=True)


class SimBusDiscovery:
    """Polls the spool folder; emits Docked for each new face and Undocked on removal."""

    def __init__(self, bus: Path, models: list[ModelIds]):
        self.bus = bus
        self.models = models
        self._seen: dict[str, list[RecorderInfo]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, emit: Callable[[DockEvent], None]) -> None:
        self.bus.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, args=(emit,), name="simbus",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:  # it polls every POLL_S; a daemon thread, so never waited for long
            self._thread.join(timeout=1)

    def _read(self, path: Path) -> list[RecorderInfo]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("simulated bus: ignoring %s: %s", path.name, exc)
            return []
        model = match_model(self.models, data.get("vendor"), data.get("product"),
                            storage=bool(data.get("volume")) and not data.get("tty"))
        if model is None:
            return []  # not a recorder: a simulated USB stick, say
        common = dict(usb_serial=str(data["usb_serial"]), vendor=data["vendor"],
                      product=data["product"], model=model, origin="simbus")
        faces = []
        if data.get("tty"):
            faces.append(RecorderInfo(**common, tty=data["tty"]))
        if data.get("volume"):
            faces.append(RecorderInfo(**common, volume_path=data["volume"]))
        return faces

    def _run(self, emit: Callable[[DockEvent], None]) -> None:
        while not self._stop.is_set():
            present: dict[str, list[RecorderInfo]] = {}
            for path in sorted(self.bus.glob("*.json")):
                present[path.name] = self._read(path)
            for name, faces in self._seen.items():  # removals first: a quick re-plug
                for face in faces:                     # must not cancel the new dock
                    if face not in present.get(name, []):
                        emit(Undocked(face))
            for name, faces in present.items():
                for face in faces:
                    if face not in self._seen.get(name, []):
                        emit(Docked(face))
            self._seen = present
            self._stop.wait(POLL_S)


class SimulatedDock:
    """A simulated recorder plugged into the simulated bus.

    plug() announces its command port; when the station switches it to mass
    storage it announces its volume too; unplug() withdraws it and closes the port.
    """

    def __init__(self, bus: Path, recorder: SimulatedRecorder, usb_serial: str, *,
                 vendor: str = "1209", product: str = "e5d1"):
        self.bus = bus
        self.recorder = recorder
        self.usb_serial = usb_serial
        self.ids = {"vendor": vendor, "product": product}
        recorder.on_mass_storage = self._mass_storage

    def plug(self) -> SimulatedDock:
        self.recorder.start()
        announce(self.bus, self.usb_serial, **self.ids, tty=self.recorder.port)
        return self

    def _mass_storage(self) -> None:
        announce(self.bus, self.usb_serial, **self.ids, tty=self.recorder.port,
                 volume=str(self.recorder.volume))

    def unplug(self) -> None:
        withdraw(self.bus, self.usb_serial)
        self.recorder.stop()
