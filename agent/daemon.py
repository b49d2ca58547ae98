"""`evidock daemon`: dock and walk.

Discovery (udev, the simulated bus) reports recorders; each gets a worker in a
pool of ``workers`` threads that talks to it, mounts its volume read-only and
runs the same dock path as `evidock ingest`. Drop folders feed the same pool.
The main loop writes the status file, pings systemd's watchdog, repairs what
crashed processes left (ingest/recovery.py) and stops cleanly on SIGTERM:
running docks are interrupted and closed with a written, true account.

Signal handlers take no lock: they set a flag, and the signal's byte on the
wake-up pipe (signal.set_wakeup_fd) ends the main loop's select() at once.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from types import FrameType

from agent.dropfolder import DropFolderWatcher, OnlyThese
from agent.notify import notify, watchdog_interval
from agent.settings import Settings
from agent.status import write_status
from agent.worker import RecorderWorker
from devices.events import ANY_STORAGE, Discovery, Docked, DockEvent, ModelIds, RecorderInfo
from devices.mount import Mounter, MountError, choose_mounter
from devices.source import FolderSource
from ingest.dock import IngestContext
from ingest.pipeline import Dock
from ingest.plan import Identity
from ingest.recovery import recover
from storage.errors import CatalogError, EvidockError
from storage.models import now_utc
from storage.text import shown

log = logging.getLogger(__name__)
TICK_S = 0.25
RECOVER_EVERY_S = 60.0


def model_ids(settings: Settings) -> list[ModelIds]:
    ids = [ModelIds(m.name, m.usb_vendor, m.usb_product) for m in settings.models]
    return [*ids, ANY_STORAGE] if settings.dock_unknown_recorders else ids


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
        self._stopping = False  # set by request_stop (a signal handler): a plain flag
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
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
                if self._stopping:
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
            return face.tty == worker.info.tty and worker.state == "talking"
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
        """Safe in a signal handler: sets a flag, takes no lock."""
        self._stopping = True
        if signum is None:  # not from a signal: wake the loop ourselves
            with suppress(BlockingIOError):  # the pipe is full of wake-ups already
                os.write(self._wake_w, b"\0")

    def _sleep(self, seconds: float) -> None:
        """Wait for the next tick or a wake-up (a signal's byte), whichever comes first."""
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        if ready:
            with suppress(BlockingIOError):  # drained
                while os.read(self._wake_r, 512):
                    continue

    def run(self) -> None:
        for source in self.sources:
            source.start(self.on_event)
        if self.drops:
            self.drops.start()
        notify("READY=1")
        notify(f"STATUS=waiting for recorders ({self.settings.workers} at once)")
        ping = watchdog_interval()
        last_ping = last_recovery = time.monotonic()
        log.info("daemon running (pid %d)", os.getpid())
        while not self._stopping:
            self.tick()
            now = time.monotonic()
            if ping and now - last_ping >= ping:
                notify("WATCHDOG=1")
                last_ping = now
            if now - last_recovery >= RECOVER_EVERY_S:
                self._recover()
                last_recovery = now
            self._sleep(TICK_S)
        self.shutdown()

    def _recover(self) -> None:
        try:
            recover(self.station)
        except (EvidockError, OSError) as exc:
            log.error("repairing what crashed processes left failed (tried again later): %s",
                      exc)

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
        given = Identity(given_device=device, given_officer=officer)
        try:
            source = FolderSource(OnlyThese(root, ready))
            Dock(self.station, source, given=given, given_by="the drop folder's settings").run()
        except (CatalogError, EvidockError, OSError) as exc:  # the dock could not even start
            log.error("drop folder %s: %s; nothing was copied; the files are tried again when "
                      "they change or the daemon restarts", shown(str(root)), exc)

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
    signal.set_wakeup_fd(daemon._wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    try:
        daemon.run()
    finally:
        signal.set_wakeup_fd(-1)
        station.close()
