"""The values of a dock: where it writes, what it was told, what came of it."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from devices.volume import SkippedEntry, SourceEntry
from storage.errors import CatalogError
from storage.terms import now_utc

if TYPE_CHECKING:
    from storage.catalog import Catalog
    from storage.keys import StationKey
    from storage.models import Explanation, LoggedDeviceEvent
    from storage.spool import Spool
    from storage.vault import Vault

log = logging.getLogger(__name__)


class OpenSource(Protocol):
    """One source file, open (devices.volume.SourceFile): read() until b"", then finish()
    raises SourceError if what was read is not the file as listed."""

    def read(self, size: int) -> bytes: ...
    def finish(self) -> None: ...
    def __enter__(self) -> OpenSource: ...
    def __exit__(self, *exc: object) -> None: ...


class Volume(Protocol):
    @property
    def label(self) -> str: ...
    def scan(self) -> tuple[list[SourceEntry], list[SkippedEntry]]: ...
    def open(self, entry: SourceEntry) -> OpenSource: ...


class DockInterrupted(Exception):
    """Raised through a dock run when its recorder is removed or the station stops."""


class Progress(Protocol):
    """Told how a run goes; check() and advance() may raise DockInterrupted to stop it."""

    def check(self) -> None: ...
    def begin(self, files: int, total_bytes: int) -> None: ...
    def file_started(self, path: str, size: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, path: str, status: str) -> None: ...


class NoProgress:
    def check(self) -> None:
        return None

    def begin(self, files: int, total_bytes: int) -> None:
        return None

    def file_started(self, path: str, size: int) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None

    def file_done(self, path: str, status: str) -> None:
        return None


@dataclass(frozen=True)
class IngestOptions:
    window_hours: float = 24.0
    patterns: tuple[re.Pattern[str], ...] = ()
    zone: tzinfo | None = None
    block_size: int = 1 << 20
    hash_thread: bool = True
    verify_reread: bool = True
    future_hours: float = 24.0  # a recording time further ahead than this is implausible
    past_days: float = 3650.0  # ... and so is one further back than this
    checkpoint_outbox: Path | None = None  # where each dock's signed checkpoint also goes
    gap_tolerance_s: float = 2.0  # a pause up to this between clips is a segment boundary
    gap_max_s: float = 300.0  # ... and one longer than this a separate recording
    ready_min_free_pct: float = 10.0  # R13: free storage a recorder leaves a dock with
    ready_min_battery_pct: float = 0.0  # ... and battery (0: not checked)


@dataclass
class IngestContext:
    """What a dock session writes to and signs with."""

    station_id: str
    agency: str
    key: StationKey
    catalog: Catalog
    vault: Vault
    options: IngestOptions = field(default_factory=IngestOptions)
    clock: Callable[[], datetime] = now_utc
    # Told of each explanation once it is recorded (agent/alerts.py tells supervisors).
    on_explanation: Callable[[Explanation], None] | None = None
    # Where explanations wait while the catalog cannot be reached (None: nowhere).
    spool: Spool | None = None
    # Set when this is the station's offline store (agent/offline.py), taken because the
    # site catalog could not be reached: why it could not.
    offline_because: str | None = None
    on_close: Callable[[], None] | None = None  # run after the store is closed

    def record_explanation(self, exp: Explanation,
                           device_events: Sequence[LoggedDeviceEvent] = ()) -> Explanation:
        self.catalog.add_explanation(exp, device_events)
        if self.on_explanation is not None:
            self.on_explanation(exp)
        return exp

    def replay_spool(self) -> int:
        """Record the explanations an outage kept in the spool (and tell of them); not in
        the offline store: they wait for the site catalog."""
        if self.spool is None or self.offline_because is not None:
            return 0
        return self.spool.replay(self.catalog, self.on_explanation)

    def close(self) -> None:
        try:
            self.vault.close(keep=self._notes_left())
            self.catalog.close()
        finally:
            if self.on_close is not None:
                self.on_close()

    def _notes_left(self) -> bool:
        """Whether the catalog notes copies of this process still pending (a catalog lost
        between a note and its row), or cannot be asked: its work folder must stay."""
        owner = self.vault.claimed
        if owner is None:
            return False
        try:
            return bool(self.catalog.pending(owner))
        except CatalogError as exc:
            log.warning("the catalog cannot say whether copies of this process wait to be "
                        "recorded (%s): its work folder stays for the next start", exc)
            return True


@dataclass
class FileOutcome:
    path: str
    status: str  # stored, quarantined, already_held, duplicate, failed
    recording_id: int | None = None
    vault_path: str | None = None
    detail: str = ""


@dataclass
class Summary:
    session_id: str
    source: str
    started_at: datetime
    finished_at: datetime | None = None
    outcomes: list[FileOutcome] = field(default_factory=list)
    explanations: list[Explanation] = field(default_factory=list)
    bytes_stored: int = 0
    unrecorded: list[str] = field(default_factory=list)  # explanations the catalog refused
    recorder: dict[str, Any] = field(default_factory=dict)  # what the recorder said
    device: str | None = None  # the dock's device number, when it has one
    interrupted: bool = False
    error: str | None = None  # why the dock ended early, if it did
    files_stored: int = 0  # recording rows of this session, counted in the catalog
    cleared: str | None = None  # the clearing outcome, or why there was none
    # A replay of an offline dock (ingest/replay.py): which, and what it was.
    replayed_from: dict[str, Any] | None = None

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        problems = {"failed", "quarantined"}
        return self.error is not None or any(o.status in problems for o in self.outcomes) or (
            bool(self.unrecorded)) or any(e.rule == "R3" for e in self.explanations)

    def to_dict(self) -> dict[str, Any]:
        counts = Counter(o.status for o in self.outcomes)
        return {
            "session": self.session_id, "source": self.source,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "files": dict(sorted(counts.items())), "bytes_stored": self.bytes_stored,
            "files_stored": self.files_stored, "interrupted": self.interrupted,
            "error": self.error, "cleared": self.cleared,
            "outcomes": [o.__dict__ for o in self.outcomes],
            "explanations": [
                {"id": e.id, "kind": e.kind, "rule": e.rule, "source_path": e.source_path,
                 "error": e.error, "action": e.action} for e in self.explanations
            ],
            "unrecorded_explanations": self.unrecorded,
            "recorder": self.recorder,
        } | ({"replayed_from": self.replayed_from} if self.replayed_from else {})
