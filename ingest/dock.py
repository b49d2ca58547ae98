"""The values of a dock: where it writes, what it was told, what came of it."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Protocol

from devices.volume import SkippedEntry, SourceEntry, SourceFile
from ingest.rules import LoggedEvent
from storage.catalog import Catalog
from storage.keys import StationKey
from storage.models import Explanation, now_utc
from storage.vault import Vault


class Volume(Protocol):
    @property
    def label(self) -> str: ...
    def scan(self) -> tuple[list[SourceEntry], list[SkippedEntry]]: ...
    def open(self, entry: SourceEntry) -> SourceFile: ...


class DockInterrupted(Exception):
    """Raised through a dock run when its recorder is removed or the station stops."""


class Progress(Protocol):
    """Told how a run goes; advance() may raise DockInterrupted to stop the run."""

    def begin(self, files: int, total_bytes: int) -> None: ...
    def file_started(self, path: str, size: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, path: str, status: str) -> None: ...


class NoProgress:
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


@dataclass(frozen=True)
class DockFacts:
    """What a recorder said about itself at this dock, and what the registry knows."""

    usb_serial: str | None = None
    model: str | None = None
    clock_drift_s: float | None = None  # recorder minus station, measured before setting
    clock_set: bool = False
    battery_pct: int | None = None
    storage_free: int | None = None
    storage_total: int | None = None
    events: tuple[LoggedEvent, ...] = ()
    registry: str = "registered"  # registered, unregistered, retired, unknown

    def log_json(self) -> str:
        return json.dumps([{"at": e.at.isoformat(), "kind": e.kind, "detail": e.detail}
                           for e in self.events], ensure_ascii=False)


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
    recorder: dict[str, Any] = field(default_factory=dict)  # the DockFacts of this dock
    device: str | None = None  # the dock's device number, when it has one

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        problems = {"failed", "quarantined"}
        return any(o.status in problems for o in self.outcomes) or bool(self.unrecorded) or any(
            e.rule == "R3" for e in self.explanations)

    def to_dict(self) -> dict[str, Any]:
        counts = Counter(o.status for o in self.outcomes)
        return {
            "session": self.session_id, "source": self.source,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "files": dict(sorted(counts.items())), "bytes_stored": self.bytes_stored,
            "outcomes": [o.__dict__ for o in self.outcomes],
            "explanations": [
                {"id": e.id, "kind": e.kind, "rule": e.rule, "source_path": e.source_path,
                 "error": e.error, "action": e.action} for e in self.explanations
            ],
            "unrecorded_explanations": self.unrecorded,
            "recorder": self.recorder,
        }
