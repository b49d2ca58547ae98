"""`evidock demo`: a simulated recorder's shift, docked through the daemon.

The shift is recorded with ffmpeg into a temporary volume; a simulated recorder
owning it is plugged into a simulated USB bus that a real Daemon watches, so
the demo goes through discovery, the command port (identity, clock, battery,
event log, mass-storage switch), the worker and the dock run, as a docked
recorder would.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from agent.daemon import Daemon, model_ids
from agent.settings import Settings
from agent.worker import RecorderWorker
from devices.media import ShiftPlan, record_shift
from devices.protocol import DeviceEvent
from devices.simbus import SimBusDiscovery, SimulatedDock
from devices.simulator import SimState, SimulatedRecorder
from ingest.dock import IngestContext
from storage.errors import EvidockError

DEMO_SERIAL = "SIM-DEMO-0001"
DOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class DemoDock:
    port: str
    worker: RecorderWorker


def shift_state(end: datetime, zone: tzinfo) -> SimState:
    """A recorder that ran low on battery mid-recording and whose clock is 95 s slow."""
    local = end.astimezone(zone).replace(tzinfo=None)
    return SimState(drift=timedelta(seconds=-95), battery=64, events=[
        DeviceEvent(local - timedelta(hours=2, minutes=5), "power_on"),
        DeviceEvent(local - timedelta(hours=2), "record_start"),
        DeviceEvent(local - timedelta(hours=1, minutes=31), "low_battery", "15%"),
        DeviceEvent(local - timedelta(hours=1, minutes=30), "record_stop"),
        DeviceEvent(local - timedelta(minutes=50), "power_off"),
    ])


def run_demo(settings: Settings, station: IngestContext) -> DemoDock:
    zone = settings.zone or station.clock().astimezone().tzinfo
    assert zone is not None
    with tempfile.TemporaryDirectory(prefix="evidock-demo-") as folder:
        root = Path(folder)
        volume = root / "recorder"
        record_shift(volume, ShiftPlan(), station.clock(), zone)
        bus = root / "bus"
        demo_settings = settings.model_copy(update={"simbus_dir": bus,
                                                    "runtime_dir": root / "run"})
        daemon = Daemon(demo_settings, station,
                        [SimBusDiscovery(bus, model_ids(demo_settings))])
        thread = threading.Thread(target=daemon.run, name="daemon")
        thread.start()
        recorder = SimulatedRecorder(volume, shift_state(station.clock(), zone), zone=zone)
        dock = SimulatedDock(bus, recorder, DEMO_SERIAL).plug()
        try:
            worker = daemon.wait_for(DEMO_SERIAL, DOCK_TIMEOUT_S)
        finally:
            dock.unplug()
            daemon.request_stop()
            thread.join()
        if worker is None:
            raise EvidockError(f"the simulated recorder was not ingested in {DOCK_TIMEOUT_S} s")
        return DemoDock(recorder.port, worker)
