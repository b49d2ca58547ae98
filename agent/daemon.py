"""`evidock daemon`: dock and walk.

Discovery (udev, the simulated bus) reports recorders; each gets a worker in a
pool of ``workers`` threads that talks to it, mounts its volume read-only and
runs the same dock path as `evidock ingest`. Drop folders feed the same pool.
The main loop writes the status file, pings systemd's watchdog, has what
crashed processes left repaired (ingest/recovery.py, in a thread of its own)
and stops on SIGTERM or SIGINT: running docks are interrupted and closed with a
written, true account, and docks not yet begun are not begun.

Signal handlers take no lock: they set a flag, and the signal's byte on the
wake-up pipe (signal.set_wakeup_fd) ends the main loop's select() at once.
A stop waits at most STOP_BUDGET_S for the docks: one that cannot be
interrupted in that time (blocked in a system call, ffprobe on a large copy)
is left as a crash leaves it, for the next start to close (run_daemon).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from types import FrameType

from agent.dropdock import DropDock
from agent.dropfolder import DropFolderWatcher
from agent.notify import notify, watchdog_interval
from agent.offline import offline_folder, replay_offline
from agent.progress import ignore_signals
from agent.settings import Settings
from agent.station import open_station
from agent.status import write_status
from agent.worker import STOPPING, RecorderWorker
from devices.events import ANY_STORAGE, Discovery, Docked, DockEvent, ModelIds, RecorderInfo
from devices.mount import Mounter, MountError, choose_mounter
from ingest.dock import IngestContext
from ingest.recovery import recover
from storage.errors import CatalogUnreachable, EvidockError
from storage.models import now_utc

log = logging.getLogger(__name__)
TICK_S = 0.25
RECOVER_EVERY_S = 60.0
# From the stop request to the last dock closed. With the interpreter's exit after it,
# the process is gone within 5 s of SIGTERM.
STOP_BUDGET_S = 4.0
EXIT_DOCKS_LEFT = 1  # a dock could not be stopped in time: left for the next start to close
# Started on the offline store, the daemon can reach the site catalog again: it stopped so
# that its unit starts it again on the site catalog (which replays the offline docks).
EXIT_SITE_BACK = 75


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
        self._stop_at: float | None = None  # monotonic time of the first stop request
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._tasks: dict[Future[None], _Task] = {}  # given to the pool, not yet done
        self._recovery: threading.Thread | None = None
        self.started = now_utc()
        self.site_back = False  # see EXIT_SITE_BACK

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
                worker = RecorderWorker(self.settings, self.station, info, self._mounter(),
                                        stopping=self.stop_requested)
                self.active[info.usb_serial] = worker
                log.info("docked: %s", info.label)
                self._submit(worker.run, _Task(worker.doing, worker.not_begun))
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
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._stopping = True
        if signum is None:  # not from a signal: wake the loop ourselves
            with suppress(BlockingIOError):  # the pipe is full of wake-ups already
                os.write(self._wake_w, b"\0")

    def stop_requested(self) -> bool:
        """Asked from the docks' threads: the flag, or a stop signal whose handler has not
        run yet (it runs in the main thread, perhaps a moment after its byte reached the
        wake-up pipe). A dock that sees its ffprobe die of the same Ctrl-C must know it
        was the stop, not the file."""
        if self._stopping:
            return True
        ready, _, _ = select.select([self._wake_r], [], [], 0)
        return bool(ready)

    def _sleep(self, seconds: float) -> None:
        """Wait for the next tick or a wake-up (a signal's byte), whichever comes first."""
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        if ready:
            with suppress(BlockingIOError):  # drained
                while os.read(self._wake_r, 512):
                    continue

    def run(self) -> list[str]:
        """Run until a stop is requested; returns the docks that could not be stopped in
        time (empty after a clean stop)."""
        for source in self.sources:
            source.start(self.on_event)
        if self.drops:
            self.drops.start()
        notify("READY=1")
        notify(f"STATUS=waiting for recorders ({self.settings.workers} at once)")
        ping = watchdog_interval()
        last_ping = last_recovery = time.monotonic()
        log.info("daemon running (pid %d)", os.getpid())
        if self.station.offline_because is None and offline_folder(self.settings).exists():
            self._start_recovery()  # replay the offline store at once, beside the loop
        while not self._stopping:
            self.tick()
            now = time.monotonic()
            if ping and now - last_ping >= ping:
                notify("WATCHDOG=1")
                last_ping = now
            if now - last_recovery >= RECOVER_EVERY_S:
                self._start_recovery()
                last_recovery = now
            self._sleep(TICK_S)
        return self.shutdown()

    def _start_recovery(self) -> None:
        """Repair in a thread of its own: re-reading a large copy must not stall the loop
        (status, watchdog, a stop)."""
        if self._recovery is not None and self._recovery.is_alive():
            return
        self._recovery = threading.Thread(target=self._recover, name="recovery", daemon=True)
        self._recovery.start()

    def _recover(self) -> None:
        if self.station.offline_because is not None:
            self._site_back()
        try:
            recover(self.station)
            self.station.replay_spool()  # what an outage kept, once it is over
            replay_offline(self.settings, self.station,  # ... and the docks it took
                           self.stop_requested)
        except (EvidockError, OSError) as exc:
            log.error("repairing what crashed processes left failed (tried again later): %s",
                      exc)

    def _site_back(self) -> None:
        """Started on the offline store: once the site catalog can be reached and no dock
        runs, stop (exit EXIT_SITE_BACK), so that the unit starts the daemon again on it."""
        with self._lock:
            if self.active or self._tasks:
                return
        try:
            open_station(self.settings).close()
        except CatalogUnreachable:
            return
        except (EvidockError, OSError) as exc:
            log.error("the site catalog answers, but cannot be opened: %s", exc)
            return
        with self._lock:  # (a dock begun meanwhile waits for the next try)
            if self.active or self._tasks:
                return
            self.site_back = True
            self.request_stop()  # under the lock: no dock begins after this
        log.warning("the site catalog can be reached again: the daemon stops so that its "
                    "unit starts it on the site catalog, which replays the offline docks")

    def tick(self) -> None:
        if self.drops and not self._stopping:
            for folder, ready in self.drops.ready():
                drop = DropDock(self.station, folder, ready, stopping=self.stop_requested)
                with self._lock:
                    self._submit(drop.run, _Task(drop.doing, drop.not_begun))
        self._collect()
        self.write_status("running")

    def _submit(self, run: Callable[[], None], task: _Task) -> None:
        """Give the pool a task (the caller holds self._lock)."""
        future = self.pool.submit(run)
        future.add_done_callback(_report)
        self._tasks[future] = task

    def _collect(self) -> None:
        """Move finished workers to the recent list; forget finished tasks."""
        with self._lock:
            for serial, worker in list(self.active.items()):
                if worker.finished:
                    self.recent.appendleft(worker)
                    del self.active[serial]
            for future in [f for f in self._tasks if f.done()]:
                del self._tasks[future]

    def shutdown(self) -> list[str]:
        """Stop within STOP_BUDGET_S of the stop request; return the docks still running."""
        deadline = (self._stop_at or time.monotonic()) + STOP_BUDGET_S
        notify("STOPPING=1")
        self.write_status("stopping")
        with self._lock:
            for worker in self.active.values():
                worker.cancel(STOPPING)
        for source in self.sources:
            source.stop()
        if self.drops:
            self.drops.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)  # docks not begun are not begun
        with self._lock:
            tasks = dict(self._tasks)
        for future, task in tasks.items():
            if future.cancelled():
                task.not_begun()
        # (wait() counts a future cancelled this way as pending until its timeout: leave
        # those out, or a stop with a dock still queued would always take the whole budget)
        begun = [future for future in tasks if not future.cancelled()]
        wait(begun, timeout=max(deadline - time.monotonic(), 0.0))
        if self._recovery is not None:
            self._recovery.join(timeout=max(deadline - time.monotonic(), 0.0))
        left = [task.doing() for future, task in tasks.items() if not future.done()]
        if self._recovery is not None and self._recovery.is_alive():
            left.append("repairing what crashed processes left (ingest/recovery.py)")
        self._collect()
        self.write_status("stopped")
        if not left:
            log.info("daemon stopped")
        return left

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


@dataclass(frozen=True)
class _Task:
    doing: Callable[[], str]  # what it is doing now, for a stop that has to leave it
    not_begun: Callable[[], None]  # the stop came before it began: say so


def _report(future: Future[None]) -> None:
    """A task that raised what it should have handled: never let that pass unseen."""
    if future.cancelled():  # never begun: the station stopped first (logged by shutdown)
        return
    if (exc := future.exception()) is not None:
        log.critical("a dock task failed unexpectedly: %r", exc, exc_info=exc)


def run_daemon(settings: Settings, station: IngestContext, sources: list[Discovery]) -> bool:
    """Run the daemon until SIGTERM or SIGINT; returns after a clean stop: whether it
    stopped because the site catalog can be reached again (see EXIT_SITE_BACK).

    If a dock could not be stopped within STOP_BUDGET_S, the process does not wait for
    it: it says which and exits at once with EXIT_DOCKS_LEFT, as if it had crashed there.
    That dock's session stays open and its unfinished copy in the work folder; the next
    start of any writing evidock (ingest/recovery.py) closes the session with a
    dock_interrupted explanation giving the catalog's account, and removes the copy.
    """
    daemon = Daemon(settings, station, sources)
    signal.set_wakeup_fd(daemon._wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, daemon.request_stop)
    signal.signal(signal.SIGINT, daemon.request_stop)
    left: list[str] = []
    try:
        left = daemon.run()
    finally:
        # Stopped: a further signal changes nothing now, and must not kill the process
        # while it closes the store or while the interpreter exits (which would turn
        # a clean stop's exit code 0 into death by that signal).
        ignore_signals(signal.SIGTERM, signal.SIGINT)
        signal.set_wakeup_fd(-1)
        if not left:
            station.close()
    if left:
        for doing in left:
            log.critical("%s: did not stop within %g s of the stop request; the daemon exits "
                         "without waiting for it, as a crash would: the next start closes the "
                         "session it leaves open with a dock_interrupted explanation giving "
                         "the catalog's account, and removes its unfinished copy", doing,
                         STOP_BUDGET_S)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(EXIT_DOCKS_LEFT)  # the threads still running cannot be joined
    return daemon.site_back
