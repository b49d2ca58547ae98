"""The station's offline store: where docks go while the site catalog cannot be reached.

``<home>/offline/`` is a store of its own (a SQLite catalog, a vault, the station's key
and id), made on the first dock that finds the site catalog (PostgreSQL) out of reach.
Docks write to it as to any store; they never clear a recorder. Once the site catalog
can be reached, the next start of the daemon, its periodic repair, a dock, or
``evidock replay`` replays each offline dock into the site (ingest/replay.py), notes it in
``replayed.json`` and, when every one is in, moves the whole store aside to
``<home>/offline-replayed/<UTC time>/``: it is kept, never deleted by evidock.

``<home>/offline.lock`` keeps a replay and offline docks apart: docks hold it shared, a
replay exclusively (and gives up at once if a dock holds it: it is tried again later).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from agent.settings import Settings
from agent.station import ingest_options, open_station, station_row
from ingest.dock import IngestContext, Summary
from ingest.explain import dock_not_started
from storage.durable import fsync_dir, write_atomic
from storage.errors import CatalogUnreachable, EvidockError
from storage.terms import now_utc
from storage.vault import Vault

log = logging.getLogger(__name__)

OFFLINE = "offline"
RETIRED = "offline-replayed"
MARKS = "replayed.json"
MARKS_FORMAT = "evidock-offline-replayed/1"


class OfflineBusy(EvidockError):
    """The offline store is being replayed (or docked into) by another process."""


def offline_folder(settings: Settings) -> Path:
    return settings.home / OFFLINE


def _lock(settings: Settings, how: int) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.home / "offline.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OfflineBusy("the station's offline store is in use by another evidock "
                          "process (a replay into the site catalog, or a dock); try again "
                          "when it is done") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open(settings: Settings, why: str, lock: int | None) -> IngestContext:
    """The offline store for writing, first finishing what a crash left in it."""
    from ingest.recovery import recover
    from storage.catalog import Catalog
    from storage.keys import load_or_create

    folder = offline_folder(settings)
    folder.mkdir(mode=0o700, exist_ok=True)
    key = load_or_create(settings.key_file)
    catalog = Catalog.open(f"sqlite:///{folder / 'catalog.db'}")
    try:
        catalog.station_id = settings.station_id
        catalog.ensure_station(station_row(settings, key))
        vault = Vault(folder / "vault", fsync_every=settings.fsync_every_mib << 20)
    except BaseException:
        catalog.close()
        raise
    ctx = IngestContext(
        station_id=settings.station_id, agency=settings.agency, key=key, catalog=catalog,
        vault=vault, options=replace(ingest_options(settings), checkpoint_outbox=None),
        offline_because=why, on_close=None if lock is None else lambda: os.close(lock))
    try:  # (no spool: what waits there is for the site catalog)
        recover(ctx)
    except BaseException:
        ctx.close()
        raise
    return ctx


def open_for_dock(settings: Settings, label: str) -> IngestContext:
    """The store a dock of ``label`` writes to: the station's, after replaying into it what
    the offline store holds; or, if the catalog cannot be reached, the offline store (if
    the settings allow it). If neither can be had, the dock's explanation is kept in the
    station's spool (storage/spool.py) before the error goes on."""
    from storage.spool import Spool

    try:
        station = open_station(settings)
    except CatalogUnreachable as exc:
        if settings.offline_docking:
            try:
                return open_offline(settings, str(exc))
            except (EvidockError, OSError) as offline_exc:
                exc = CatalogUnreachable(f"{exc} (and the station's offline store cannot be "
                                         f"opened: {offline_exc})")
        try:
            Spool(settings.home / "spool").keep(dock_not_started(label, exc, now_utc()))
        except OSError as spool_exc:
            raise CatalogUnreachable(f"{exc} (and the explanation could not be kept in the "
                                     f"spool: {spool_exc.strerror or spool_exc})") from exc
        raise CatalogUnreachable(f"{exc}; nothing was copied; the explanation is kept in "
                                 "the station's spool until the catalog can be reached") \
            from exc
    try:
        done = replay_offline(settings, station)
        if done is not None and done.summaries:
            log.warning("the station's offline store: %d offline dock(s) replayed into the site "
                        "catalog%s", done.sessions, f", {len(done.left)} wait (tried again)"
                        if done.left else "; every one is in")
    except (EvidockError, OSError) as exc:  # the dock goes on; the replay is tried again
        log.error("the station's offline store could not be replayed into the site catalog "
                  "(tried again at the next start, dock or repair): %s", exc)
    except BaseException:
        station.close()
        raise
    return station


def open_offline(settings: Settings, why: str) -> IngestContext:
    """The offline store, for a dock that cannot reach the site catalog because ``why``."""
    lock = _lock(settings, fcntl.LOCK_SH)
    try:
        return _open(settings, why, lock)
    except BaseException:
        os.close(lock)
        raise


@dataclass
class Replay:
    """What a replay of the offline store did."""

    sessions: int = 0  # offline dock sessions replayed into the site now
    summaries: list[Summary] = field(default_factory=list)  # of each replay run now
    left: list[str] = field(default_factory=list)  # offline sessions to try again, why
    retired: Path | None = None  # where the store went once every dock was in the site


def waiting(settings: Settings) -> int | None:
    """How many offline dock sessions wait for the site catalog (None: no offline store)."""
    folder = offline_folder(settings)
    if not (folder / "catalog.db").exists():
        return None
    from storage.catalog import Catalog

    catalog = Catalog.open_readonly(f"sqlite:///{folder / 'catalog.db'}")
    try:
        return len({s.session_id for s in catalog.sessions()} - set(_marks(folder)))
    finally:
        catalog.close()


def replay_offline(settings: Settings, site: IngestContext,
                   stopping: Callable[[], bool] = lambda: False) -> Replay | None:
    """Replay every offline dock not yet in the site catalog ``site``; None if there is no
    offline store, or another process is replaying it (then it is tried again later).
    ``stopping`` true ends the replay at its next file (the rest waits for the next)."""
    folder = offline_folder(settings)
    if site.offline_because is not None or not (folder / "catalog.db").exists():
        return None
    try:
        lock = _lock(settings, fcntl.LOCK_EX)
    except OfflineBusy as exc:
        log.info("%s", exc)
        return None
    try:
        if not (folder / "catalog.db").exists():  # another process replayed it meanwhile
            return None
        done = _replay(settings, site, folder, stopping)
        if not done.left:
            done.retired = _retire(settings, folder, now_utc())
        return done
    finally:
        os.close(lock)


def _replay(settings: Settings, site: IngestContext, folder: Path,
            stopping: Callable[[], bool]) -> Replay:
    from ingest.replay import complete, replay_session

    done = Replay()
    store = _open(settings, "the store is being replayed", None)
    try:
        marks = _marks(folder)
        sessions = store.catalog.sessions()
        for offline in sessions:
            if offline.session_id in marks:
                continue
            if offline.finished_at is None or stopping():  # (a dock still open: none can
                done.left.append(f"{offline.session_id}: not replayed yet")  # run now)
                continue
            summary = replay_session(site, store, offline, stopping)
            done.summaries.append(summary)
            if not complete(summary):
                done.left.append(f"{offline.session_id}: {summary.error or 'a file waits'}")
                continue
            marks[offline.session_id] = {"site_session": summary.session_id,
                                         "replayed_at": now_utc().isoformat()}
            _write_marks(folder, marks)
            done.sessions += 1
            log.info("offline dock %s replayed into the site catalog as dock session %s",
                     offline.session_id, summary.session_id)
    finally:
        store.close()
    return done


def _marks(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / MARKS
    if not path.exists():
        return {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvidockError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != MARKS_FORMAT or not isinstance(
            body.get("sessions"), dict):
        raise EvidockError(f"{path} is not an {MARKS_FORMAT} file")
    sessions: dict[str, dict[str, str]] = body["sessions"]
    return sessions


def _write_marks(folder: Path, marks: dict[str, dict[str, str]]) -> None:
    write_atomic(folder / MARKS, json.dumps({"format": MARKS_FORMAT, "sessions": marks},
                                            indent=1, sort_keys=True).encode("utf-8"))


def _retire(settings: Settings, folder: Path, at: datetime) -> Path:
    """Move the replayed store aside (kept: evidock never deletes it)."""
    target = settings.home / RETIRED / f"{at:%Y%m%dT%H%M%S%fZ}"
    target.parent.mkdir(mode=0o700, exist_ok=True)
    folder.rename(target)
    fsync_dir(target.parent)
    fsync_dir(settings.home)
    log.info("every offline dock is in the site catalog; the offline store is kept at %s",
             target)
    return target
