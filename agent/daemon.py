"""`evidock daemon`: dock and walk.

Discovery (udev, the simulated bus) reports recorders; each gets a worker in a
pool of ``workers`` threads that talks to it, mounts its volume read-only and
runs the same dock path as `evidock ingest`. Drop folders feed the same pool.
The main loop writes the status file, pings systemd's watchdog and stops
cleanly on SIGTERM: running docks are interrupted with a written explanation,
and what they had not copied stays on the recorder for the next dock.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from agent.dropfolder import DropFolderWatcher, OnlyThese
from agent.notify import notify, watchdog_interval
from agent.settings import Settings
from agent.status import write_status
from agent.worker import RecorderWorker
from devices.events import Discovery, Docked, DockEvent, ModelIds, RecorderInfo
from devices.mount import Mounter, MountError, choose_mounter
from ingest.dock import IngestContext
from ingest.plan import Identity
from ingest.session import DockRun
from storage.errors import EvidockError
from storage.models import now_utc

log = logging.getLogger(__name__)
TICK_S = 0.25


def model_ids(settings: Settings) -> list[ModelIds]:
    return [ModelIds(m.name, m.usb_vendor, m.usb_product) for m in settings.models]


def discoveries(settings: Settings, *, udev: bool = True) -> list[Discovery]:
    found: list[Discovery] = []
    if udev:
        from devices.udev import UdevDiscovery  # pyudev needs libudev; only load it here
        found.append(UdevDiscovery(model_ids(settings)))
    if settings.simbus_dir is not None:
        from devices.simbus import SimBusDiscovery
        found.append(SimBusDiscovery(settings.simbus_dir, model_ids(settings)))
    return found


class Daemon:
    def __init__(self, settings: Settings, station: IngestContext, sources: list[Discovery],
                 mounter: Mounter | None = None):
        self.settings = settings
        self.station = station
        self.sources = sources
        self.mounter = mounter
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="dock")
        self.active: dict[str, RecorderWorker] = {}
        self.recent: deque[RecorderWorker] = deque(maxlen=20)  # finished, newest first
        self.drops = (DropFolderWatcher(settings.drop_folders, settings.drop_settle_s)
                      if settings.drop_folders else None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.started = now_utc()

    # Events from discovery (their threads) ------------------------------

    def on_event(self, event: DockEvent) -> None:
        info = event.info
        with self._lock:
            worker = self.active.get(info.usb_serial)
            if isinstance(event, Docked):
                if worker is not None and not worker.finished:
                    if info.has_storage:
                        worker.offer_storage(info)
                    return
                if self._stop.is_set():
                    return
                worker = RecorderWorker(self.settings, self.station, info, self._mounter())
                self.active[info.usb_serial] = worker
                log.info("docked: %s", info.label)
                self.pool.submit(worker.run).add_done_callback(_report)
            elif worker is not None and not worker.finished and self._in_use(worker, info):
                log.warning("undocked mid-dock: %s", info.label)
                worker.cancel("the recorder was removed during the dock")

    @staticmethod
    def _in_use(worker: RecorderWorker, face: RecorderInfo) -> bool:
        """A face that vanishes matters unless it is the command port after the mode switch."""
        if face.tty is not None:
            return worker.state == "talking"
        return face == worker.storage_face or worker.storage_face is None

    def _mounter(self) -> Mounter | None:
        if self.mounter is None:
            try:
                self.mounter = choose_mounter(self.settings.mounter)
            except MountError as exc:
                log.error("%s", exc)
        return self.mounter

    # The main loop -------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        self._stop.set()

    def run(self) -> None:
        for source in self.sources:
            source.start(self.on_event)
        if self.drops:
            self.drops.start()
        notify("READY=1")
        notify(f"STATUS=waiting for recorders ({self.settings.workers} at once)")
        ping = watchdog_interval()
        last_ping = 0.0
        log.info("daemon running (pid %d)", os.getpid())
        while not self._stop.is_set():
            self.tick()
            if ping and time.monotonic() - last_ping >= ping:
                notify("WATCHDOG=1")
                last_ping = time.monotonic()
            self._stop.wait(TICK_S)
        self.shutdown()

    def tick(self) -> None:
        if self.drops:
            for folder, ready in self.drops.ready():
                self.pool.submit(self._drop, folder.path, folder.device, folder.officer,
                                 ready).add_done_callback(_report)
        with self._lock:
            for serial, worker in list(self.active.items()):
                if worker.finished:
                    self.recent.appendleft(worker)
                    del self.active[serial]
        self.write_status("running")

    def _drop(self, root: Path, device: str, officer: str | None, ready: set[str]) -> None:
        try:
            DockRun(self.station, OnlyThese(root, ready), Identity(device, officer)).run()
        except (EvidockError, OSError) as exc:
            log.error("drop folder %s: %s; the files stay there and are tried again when "
                      "they change or the daemon restarts", root, exc)

    def shutdown(self) -> None:
        notify("STOPPING=1")
        for source in self.sources:
            source.stop()
        if self.drops:
            self.drops.stop()
        with self._lock:
            for worker in self.active.values():
                worker.cancel("the station is stopping")
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.tick()
        self.write_status("stopped")
        log.info("daemon stopped")

    def write_status(self, state: str) -> None:
        with self._lock:
            docked = [w.status() for w in self.active.values()]
            recent = [w.status() for w in self.recent]
        write_status(self.settings.run_dir, {
            "state": state, "pid": os.getpid(), "station": self.station.station_id,
            "started_at": self.started, "updated_at": now_utc(), "docked": docked,
            "recent": recent,
        })

    def wait_for(self, usb_serial: str, timeout: float) -> RecorderWorker | None:
        """The finished worker of this recorder, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                done = next((w for w in self.recent if w.info.usb_serial == usb_serial), None)
            if done is not None:
                return done
            time.sleep(0.05)
        return None


def _report(future: Future[None]) -> None:
    """A task that raised what it should have handled: never let that pass unseen."""
    if (exc := future.exception()) is not None:
        log.critical("a dock task failed unexpectedly: %r", exc, exc_info=exc)


def run_daemon(settings: Settings, station: IngestContext, sources: list[Discovery]) -> None:
    daemon = Daemon(settings, station, sources)
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    daemon.run()
