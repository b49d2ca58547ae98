"""The one byte encoding that is hashed and signed (documented in docs/formats.md).

JSON with keys sorted, no insignificant whitespace, ASCII only (non-ASCII as
``\\uXXXX``), times as RFC 3339 UTC with microseconds and a ``Z``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime cannot be encoded; use UTC-aware times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Mapping[str, Any]) -> bytes:
    def encode(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return utc_text(obj)
        raise TypeError(f"cannot encode {type(obj).__name__} canonically")

    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=encode,
        allow_nan=False,
    ).encode("ascii")
