"""R13: once a dock is done, is the recorder ready to go out again?

The recorder is asked again over its command port (the same one ``CLR`` uses
after the copy): battery, storage and clock as they are now, after the copy, the
clock setting and any clearing. What it says goes on the dock session
(``ready_json``); free storage below ``ready_min_free_pct``, a clock still off by
more than the drift limit, or (where set) battery below ``ready_min_battery_pct``
is a ``not_ready`` explanation for the custodian. A recorder taken away at once
(dock-and-walk), or with no command port, is not a fault: its readiness is
recorded as unknown, with why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, TypeVar

from devices.errors import RecorderError
from ingest.rules import CLOCK_DRIFT_LIMIT_S
from ingest.talk import drift_of

if TYPE_CHECKING:
    from ingest.pipeline import Dock

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Readiness:
    """What the recorder said when asked after its dock; None: not said (see ``unknown``)."""

    battery_pct: int | None = None
    storage_free: int | None = None
    storage_total: int | None = None
    clock_drift_s: float | None = None
    unknown: list[str] = field(default_factory=list)  # what could not be asked, and why

    def problems(self, min_free_pct: float, min_battery_pct: float) -> list[str]:
        """Each way it is not ready, as the explanation states it."""
        found = []
        if min_free_pct and self.storage_free is not None and self.storage_total:
            share = 100 * self.storage_free / self.storage_total
            if share < min_free_pct:
                found.append(f"storage {share:.1f} % free ({self.storage_free:,} of "
                             f"{self.storage_total:,} bytes), below {min_free_pct:g} %")
        if self.clock_drift_s is not None and abs(self.clock_drift_s) > CLOCK_DRIFT_LIMIT_S:
            found.append(f"clock still {self.clock_drift_s:+.0f} s from the station's "
                         f"(more than {CLOCK_DRIFT_LIMIT_S:g} s)")
        if min_battery_pct and self.battery_pct is not None and (
                self.battery_pct < min_battery_pct):
            found.append(f"battery {self.battery_pct} %, below {min_battery_pct:g} %")
        return found


def ask(dock: Dock) -> Readiness | None:
    """Ask the recorder and record the answer on the dock session; None: no command port."""
    source, st = dock.source, dock.st
    ready = Readiness()

    def step(name: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except RecorderError as exc:
            ready.unknown.append(f"{name}: {exc}")
            return None

    try:
        with source.commands() as cmd:
            if cmd is None:
                return None
            cmd.authenticate(source.password)
            ready.battery_pct = step("BAT", cmd.battery)
            storage = step("STO", cmd.storage)
            if storage is not None:
                ready.storage_free, ready.storage_total = storage.free, storage.total
            ready.clock_drift_s = step("GTM", lambda: drift_of(cmd, st.clock, st.options.zone))
    except (RecorderError, OSError) as exc:  # taken away, or the port is gone: unknown
        ready.unknown.append(f"the recorder could not be asked: {exc}")
    dock.facts(ready_json=json.dumps(asdict(ready), ensure_ascii=False))
    return ready


def check(dock: Dock, device: str | None) -> None:
    """R13: ask, and explain each way the recorder is not ready for a shift."""
    ready = ask(dock)
    if ready is None:
        return
    if ready.unknown:
        log.info("%s: after the dock, not known: %s", dock.source.label,
                 "; ".join(ready.unknown))
    opts = dock.st.options
    found = ready.problems(opts.ready_min_free_pct, opts.ready_min_battery_pct)
    if found:
        dock.explain("not_ready", path=None, device=device,
                     error="asked after this dock: " + "; ".join(found),
                     action="the custodian must check the recorder before it goes out again "
                            "(clear, repair or replace it; `evidock device maintain`)")
