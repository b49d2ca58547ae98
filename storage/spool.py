"""The station's spool: explanations the catalog could not take when they happened.

A station whose catalog is out of reach (a site's PostgreSQL server down, the network
cut) still owes the written explanation of what went wrong (R3). It is kept durably in
``<home>/spool/`` as one JSON file per explanation (docs/formats.md, "The spool") and
recorded in the catalog at the next start or dock that reaches it. Each carries a random
id that its ledger leaf names, so an explanation replayed twice (a crash between its
commit and the removal of its file) is recorded once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from storage.canonical import utc_text
from storage.durable import fsync_dir, write_atomic
from storage.errors import CatalogError
from storage.terms import now_utc

if TYPE_CHECKING:  # (`evidock status` counts the spool without loading the ORM)
    from storage.catalog import Catalog
    from storage.models import Explanation

log = logging.getLogger(__name__)

SPOOL_FORMAT = "evidock-spooled-explanation/1"
_FIELDS = ("session_id", "recording_id", "related_recording_id", "kind", "rule", "device_no",
           "source_path", "vault_path", "error", "action")


@dataclass(frozen=True)
class Spooled:
    ref: str
    path: Path
    explanation: Explanation


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, exp: Explanation) -> Path:
        """Write ``exp`` durably to the spool (OSError if even that fails)."""
        ref = uuid.uuid4().hex
        body = {"format": SPOOL_FORMAT, "ref": ref, "occurred_at": utc_text(exp.occurred_at),
                **{name: getattr(exp, name) for name in _FIELDS}}
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.folder / f"{exp.occurred_at:%Y%m%dT%H%M%S}-{ref}.json"
        write_atomic(target, json.dumps(body, ensure_ascii=False, sort_keys=True).encode())
        return target

    def waiting(self) -> Iterator[Spooled]:
        """What is in the spool, oldest first; a file that cannot be read is logged and
        left where it is (never removed unrecorded)."""
        from storage.models import Explanation

        try:
            names = sorted(p for p in self.folder.glob("*.json"))
        except OSError as exc:
            log.error("the spool %s cannot be listed: %s", self.folder, exc)
            return
        for path in names:
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
                if body.get("format") != SPOOL_FORMAT:
                    raise ValueError(f"format {body.get('format')!r}")
                exp = Explanation(occurred_at=datetime.fromisoformat(body["occurred_at"]),
                                  **{name: body.get(name) for name in _FIELDS})
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("spooled explanation %s cannot be read, left in the spool: %s",
                          path, exc)
                continue
            yield Spooled(str(body["ref"]), path, exp)

    def replay(self, catalog: Catalog,
               recorded: Callable[[Explanation], None] | None = None) -> int:
        """Record what waits in the spool; returns how many were recorded now, each told to
        ``recorded`` (a supervisor's notice). Stops quietly (they stay spooled) while the
        catalog is still out of reach."""
        done = 0
        for item in self.waiting():
            try:
                if not catalog.spooled_recorded(item.ref):
                    exp = item.explanation
                    exp.action += (f"; recorded from the station's spool at "
                                   f"{utc_text(now_utc())}: the catalog could not take it "
                                   "when it happened")
                    catalog.add_explanation(exp, spooled=item.ref)
                    done += 1
                    if recorded is not None:
                        recorded(exp)
            except CatalogError as exc:
                log.warning("spooled explanations wait for the catalog: %s", exc)
                return done
            try:
                item.path.unlink()
                fsync_dir(item.path.parent)
            except OSError as exc:  # recorded; its ref keeps a second replay from repeating it
                log.error("spooled explanation %s was recorded but cannot be removed: %s",
                          item.path, exc)
                return done
        if done:
            log.warning("recorded %d explanation%s kept in the spool while the catalog "
                        "could not be reached", done, "" if done == 1 else "s")
        return done

    def waiting_count(self) -> int:
        """How many explanations wait in the spool (OSError if it cannot be listed)."""
        if not self.folder.exists():
            return 0
        return sum(1 for _ in self.folder.glob("*.json"))
