"""Wiring: build the station (key, catalog, vault, options) from the settings."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.alerts import Notifier
from agent.owner import no_access
from ingest.dock import IngestContext, IngestOptions
from ingest.naming import compile_patterns
from storage.errors import ConfigError, StationKeyError, UsageError
from storage.terms import now_utc
from storage.vault import Vault

if TYPE_CHECKING:
    from agent.settings import Settings
    from storage.catalog import Catalog
    from storage.keys import PublicKey, StationKey
    from storage.models import Station
    from storage.quickread import CatalogReads

log = logging.getLogger(__name__)


def ingest_options(settings: Settings) -> IngestOptions:
    return IngestOptions(
        window_hours=settings.deadline_hours,
        patterns=tuple(compile_patterns(settings.file_patterns)),
        zone=settings.zone,
        block_size=settings.block_size_kib << 10,
        hash_thread=settings.hash_thread,
        verify_reread=settings.verify_reread,
        future_hours=settings.implausible_future_hours,
        past_days=settings.implausible_past_days,
        checkpoint_outbox=settings.checkpoint_outbox,
        gap_tolerance_s=settings.gap_tolerance_s,
        gap_max_s=settings.gap_max_s,
        ready_min_free_pct=settings.ready_min_free_pct,
        ready_min_battery_pct=settings.ready_min_battery_pct,
    )


def open_station(settings: Settings, *, create: bool = True) -> IngestContext:
    """Open the key, catalog and vault for writing; on first use create them, unless
    ``create`` is off (then the store must exist).

    A key that is not the one the catalog pins for the station is refused; a rotation a
    crash stopped half-way is finished first.
    """
    from ingest.custody import resume_rotation
    from ingest.recovery import recover
    from storage.keys import load, load_or_create
    from storage.spool import Spool

    if not create:
        require_store(settings)
    settings.catalog_password()  # an unreadable password file is refused before anything is made
    key = load_or_create(settings.key_file) if create else load(settings.key_file)
    catalog = open_catalog(settings)
    catalog.station_id = settings.station_id
    try:
        catalog.ensure_station(station_row(settings, key), write=create)
    except StationKeyError:
        known = catalog.station(settings.station_id)  # a rotation stopped half-way?
        if not create or known is None or not resume_rotation(settings.key_file, known.key_id):
            raise
        key = load(settings.key_file)
        catalog.ensure_station(station_row(settings, key))
    vault = Vault(settings.vault_dir, fsync_every=settings.fsync_every_mib << 20,
                  station=settings.station_id if settings.shared_vault else None)
    ctx = IngestContext(
        station_id=settings.station_id, agency=settings.agency, key=key, catalog=catalog,
        vault=vault, options=ingest_options(settings),
    )
    if settings.notify_command:
        ctx.on_explanation = Notifier(settings.notify_command, catalog, settings.station_id,
                                      settings.notify_timeout_s)
    if create:  # a writer: first finish what crashed processes left
        recover(ctx)
    ctx.spool = Spool(settings.home / "spool")
    ctx.replay_spool()  # and record what an outage kept in the spool
    return ctx


def open_catalog(settings: Settings, *, readonly: bool = False) -> Catalog:
    """The catalog the settings name (its password from the settings), for writing (it is
    migrated first) or for reading only."""
    from storage.catalog import Catalog

    url, password = settings.catalog_url, settings.catalog_password()
    return (Catalog.open_readonly(url, password) if readonly
            else Catalog.open(url, password))


def station_row(settings: Settings, key: StationKey) -> Station:
    from storage.models import Station

    return Station(station_id=settings.station_id, agency=settings.agency, key_id=key.key_id,
                   public_key_pem=key.public.pem(), first_seen=now_utc())


def require_store(settings: Settings, *, catalog: bool = True, key: bool = True) -> None:
    """Raise UsageError, creating nothing, unless these settings name an existing store.

    For the read-only commands: a mistyped EVIDOCK_HOME or --config must be an error, not
    a new empty store (with a new signing key) in the wrong folder. ``catalog`` or ``key``
    off leaves that part unchecked (`keys export-public` reads only the key).
    """
    for folder in (settings.home, settings.vault_dir):
        if folder.exists() and not os.access(folder, os.R_OK | os.X_OK):
            raise UsageError(no_access(folder))
    wanted = (_sqlite_file(settings.catalog_url) if catalog else None,
              settings.key_file if key else None)
    missing = next((p for p in wanted if p is not None and not p.exists()), None)
    if missing is None:
        return
    where = settings.home if missing.is_relative_to(settings.home) else missing.parent
    raise UsageError(f"no evidock store at {where}: nothing has been stored with these "
                     f"settings yet ({missing} does not exist); check EVIDOCK_HOME or --config")


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


@dataclass
class Reader:
    """What the read-only commands use: no private key, a catalog that cannot write."""

    catalog: Catalog
    vault: Vault

    def close(self) -> None:
        self.catalog.close()


def open_reader(settings: Settings) -> Reader:
    """Open an existing store for reading: creates, migrates and writes nothing.

    The station key is not read (the keys that signed are pinned in the ledger), so a
    copy of the catalog and vault is enough, and a user without the key can read.
    """
    require_store(settings, key=False)
    catalog = open_catalog(settings, readonly=True)
    catalog.station_id = settings.station_id
    return Reader(catalog, Vault(settings.vault_dir, station=settings.station_id
                                 if settings.shared_vault else None))


def open_reads(settings: Settings) -> CatalogReads:
    """What `log`, `show` and `status` read the catalog with: on a SQLite catalog of this
    release, reads without the ORM (storage/quickread.py), whose import alone would take
    longer than these commands may (issue 11); else the catalog, read-only. (R12's
    registration of a look at others' recordings opens a writer of its own.)"""
    from storage.quickread import QuickCatalog, Unsuitable

    require_store(settings, key=False)
    try:
        return QuickCatalog.of_url(settings.catalog_url)
    except Unsuitable as exc:  # open_reader reads it, or says what is wrong
        log.debug("the catalog is read through the ORM: %s", exc)
    return open_reader(settings).catalog


def key_file_ids(settings: Settings) -> tuple[str | None, str | None, str]:
    """For verify: the key id in the station key file (None if it cannot be read), that
    of a rotation's new key not yet moved into place (or None), and why the first is None.
    """
    from ingest.custody import pending_key_file
    from storage.keys import load

    pending = pending_key_file(settings.key_file)
    try:
        pending_id = load(pending).key_id if pending.exists() else None
    except StationKeyError:
        pending_id = None
    try:
        return load(settings.key_file).key_id, pending_id, ""
    except StationKeyError as exc:
        return None, pending_id, str(exc)


def trusted_keys(settings: Settings) -> dict[str, PublicKey]:
    """The public keys the settings name (besides those the ledger pins)."""
    from storage.keys import PublicKey

    keys: dict[str, PublicKey] = {}
    for path in settings.trusted_keys:
        try:
            public = PublicKey.from_pem(path.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"trusted key {path} cannot be read: {exc}") from exc
        keys[public.key_id] = public
    return keys
