"""Deciding what to copy and in which order (pure: values in, a plan out)."""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from devices.volume import SourceEntry
from ingest.naming import parse_name
from ingest.rules import corrected

UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Identity:
    """Who and what a dock is: the recorder's own word, and what others say.

    The device is the one the recorder names (its identity reply), else the file
    name's, else the registry's or operator's (``given_*``). The officer is the
    file name's, else the recorder's, else the given one. What differs from the
    given values is explained (identity_conflict), never silently rewritten.
    """

    device: str | None = None  # what the recorder says (GID)
    officer: str | None = None
    officer_name: str | None = None
    unit: str | None = None  # unit number and name
    given_device: str | None = None  # the registry's, a drop folder's or --device
    given_officer: str | None = None


@dataclass(frozen=True)
class PlannedFile:
    entry: SourceEntry
    device: str
    officer: str
    start: datetime  # UTC, corrected by clock_offset_s
    start_from: str  # "filename" or "mtime"
    important: bool
    name_device: str | None  # what the file name says, when it says anything
    name_officer: str | None
    # the recorder's clock minus the station's (whole seconds), taken off the recorder's
    # times; None: unknown, the times are the recorder's
    clock_offset_s: int | None = None


@dataclass(frozen=True)
class Plan:
    to_copy: list[PlannedFile]
    already_held: list[PlannedFile]

    @property
    def total_bytes(self) -> int:
        return sum(p.entry.size for p in self.to_copy)


def plan_file(entry: SourceEntry, identity: Identity, patterns: Sequence[re.Pattern[str]],
              zone: tzinfo | None, clock_offset_s: int | None = None) -> PlannedFile:
    info = parse_name(entry.name, patterns, zone)
    if info is not None:
        start, start_from = info.start.astimezone(UTC), "filename"
    else:
        start, start_from = datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC), "mtime"
    name_device = info.device if info else None
    name_officer = info.officer if info else None
    return PlannedFile(
        entry=entry,
        device=identity.device or name_device or identity.given_device or UNKNOWN,
        officer=name_officer or identity.officer or identity.given_officer or UNKNOWN,
        start=corrected(start, clock_offset_s),
        start_from=start_from,
        important=bool(info and info.important),
        name_device=name_device,
        name_officer=name_officer,
        clock_offset_s=clock_offset_s,
    )


_DCF_FOLDER = re.compile(r"(?i)^(dcim|[0-9]{3}[a-z0-9_]{5})$")  # DCIM, 100MEDIA, 101_PANA


def looks_like_recorder(entries: Iterable[SourceEntry],
                        patterns: Sequence[re.Pattern[str]]) -> bool:
    """A DCIM-style tree holding at least one file named the way recorders name theirs."""
    for e in entries:
        folders = e.path.split("/")[:-1]
        if any(_DCF_FOLDER.match(f) for f in folders) and parse_name(
                e.name, patterns, None) is not None:
            return True
    return False


SourceKey = tuple[str, str, int, int]  # device, path on the recorder, size, mtime_ns


class HeldByDevice:
    """The sources the catalog holds, read one device at a time, as a plan asks about
    them (a dock reads its recorder's rows, not the whole site's)."""

    def __init__(self, load: Callable[[str], set[SourceKey]]) -> None:
        self._load = load
        self._devices: dict[str, set[SourceKey]] = {}

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or not key or not isinstance(key[0], str):
            return False
        if key[0] not in self._devices:
            self._devices[key[0]] = self._load(key[0])
        return key in self._devices[key[0]]


def make_plan(entries: Iterable[SourceEntry], identity: Identity,
              patterns: Sequence[re.Pattern[str]], zone: tzinfo | None,
              held: Container[SourceKey], clock_offset_s: int | None = None) -> Plan:
    """Oldest first; files the catalog holds (same device, path, size, mtime) set aside."""
    return plan_of([plan_file(e, identity, patterns, zone, clock_offset_s) for e in entries],
                   held)


def plan_of(planned: Iterable[PlannedFile], held: Container[SourceKey]) -> Plan:
    """Planned files oldest first, those ``held`` set aside."""
    to_copy: list[PlannedFile] = []
    already: list[PlannedFile] = []
    for item in sorted(planned, key=lambda p: (p.start, p.entry.raw_path)):
        key = (item.device, item.entry.path, item.entry.size, item.entry.mtime_ns)
        (already if key in held else to_copy).append(item)
    return Plan(to_copy, already)
