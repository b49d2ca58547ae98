"""Telling a supervisor at once (R3): each new storage fault or violation is given, as
JSON on stdin, to the command the settings name (mail, SMS gateway, pager...).

The command runs while the dock waits (at most ``notify_timeout_s``), so the notice is
out before the dock goes on. What happened is recorded as a ledger event (``notify``:
delivered, or why not) and logged: a supervisor who was not told can be found out.
A notice that fails never stops a dock.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent import render
from ingest.explain import KINDS, needs_notice
from storage.errors import CatalogError
from storage.text import shown

if TYPE_CHECKING:
    from storage.catalog import Catalog
    from storage.models import Explanation

log = logging.getLogger(__name__)

NOTICE_FORMAT = "evidock-notice/1"


@dataclass
class Notifier:
    command: Sequence[str]
    catalog: Catalog
    station_id: str
    timeout_s: float = 30.0

    def __call__(self, exp: Explanation) -> None:
        if not self.command or not needs_notice(exp):
            return
        notice = {"format": NOTICE_FORMAT, "station": self.station_id,
                  "about": KINDS.get(exp.kind, ("", exp.kind))[1],
                  "explanation": render.explanation_dict(exp)}
        outcome = self._run(json.dumps(notice, ensure_ascii=False).encode("utf-8"))
        if outcome == "delivered":
            log.info("explanation %s (%s): the notify command took the notice (exit 0)",
                     exp.id, exp.kind)
        else:
            log.error("explanation %s (%s): the supervisor was NOT notified: %s", exp.id,
                      exp.kind, shown(outcome, 1000))
        try:
            self.catalog.log("notify", str(exp.id), {"command": self.command[0],
                                                     "outcome": outcome})
        except CatalogError as exc:
            log.error("the notice outcome for explanation %s could not be recorded: %s",
                      exp.id, exc)

    def _run(self, data: bytes) -> str:
        try:
            done = subprocess.run(list(self.command), input=data, capture_output=True,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return f"the notify command ran longer than {self.timeout_s:g} s and was stopped"
        except OSError as exc:
            return f"the notify command could not be run: {exc.strerror or exc}"
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip()[-300:]
            return f"the notify command exited {done.returncode}" + (f": {said}" if said else "")
        return "delivered"
