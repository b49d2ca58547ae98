"""Wiring: build the station (key, catalog, vault, options) from the settings."""

from __future__ import annotations

from agent.settings import Settings
from ingest.naming import compile_patterns
from ingest.session import IngestContext, IngestOptions
from storage.catalog import Catalog
from storage.keys import PublicKey, load_or_create
from storage.models import Station, now_utc
from storage.vault import Vault


def ingest_options(settings: Settings) -> IngestOptions:
    return IngestOptions(
        window_hours=settings.deadline_hours,
        patterns=tuple(compile_patterns(settings.file_patterns)),
        zone=settings.zone,
        block_size=settings.block_size_kib << 10,
        hash_thread=settings.hash_thread,
        verify_reread=settings.verify_reread,
    )


def open_station(settings: Settings) -> IngestContext:
    """Open (and on first use create) the key, catalog and vault."""
    key = load_or_create(settings.key_file)
    catalog = Catalog.open(settings.catalog_url)
    catalog.ensure_station(Station(
        station_id=settings.station_id, agency=settings.agency, key_id=key.key_id,
        public_key_pem=key.public.pem(), first_seen=now_utc(),
    ))
    vault = Vault(settings.vault_dir, fsync_every=settings.fsync_every_mib << 20)
    return IngestContext(
        station_id=settings.station_id, agency=settings.agency, key=key, catalog=catalog,
        vault=vault, options=ingest_options(settings),
    )


def trusted_keys(ctx: IngestContext, settings: Settings) -> dict[str, PublicKey]:
    """The station's own key and the public keys the settings name."""
    keys = {ctx.key.key_id: ctx.key.public}
    for path in settings.trusted_keys:
        public = PublicKey.from_pem(path.read_text(encoding="ascii"))
        keys[public.key_id] = public
    return keys
