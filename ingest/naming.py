"""What a recorder's file name says: device, officer, start time, important flag (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo


@dataclass(frozen=True)
class NameInfo:
    device: str | None
    officer: str | None
    start: datetime  # aware, in the recorder's zone
    important: bool


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in patterns]


def parse_name(name: str, patterns: Sequence[re.Pattern[str]], zone: tzinfo | None
               ) -> NameInfo | None:
    """The first pattern matching all of ``name`` with a real date and time, else None.

    ``zone`` is the zone of the recorder's clock; None means the station's local zone.
    """
    for pattern in patterns:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        groups = match.groupdict()
        # separators inside the groups are allowed: 2026-11-20 and 08-15-30 as 20261120, 081530
        digits = re.sub(r"[-_.:/ T]", "", groups["date"] + groups["time"])
        try:
            if len(digits) != 14 or not digits.isdigit():
                raise ValueError(digits)
            naive = datetime.strptime(digits, "%Y%m%d%H%M%S")
        except ValueError:
            continue
        start = naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()
        return NameInfo(
            device=groups.get("device") or None,
            officer=groups.get("officer") or None,
            start=start,
            important=bool(groups.get("important")),
        )
    return None
