"""`evidock demo`: a simulated recorder's shift, docked and ingested on this station."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path

from devices.media import ShiftPlan, record_shift
from devices.volume import FolderVolume
from ingest.plan import Identity
from ingest.session import DockRun, IngestContext, Progress, Summary


@contextmanager
def demo_volume(end: datetime, zone: tzinfo | None, shift: ShiftPlan | None = None
                ) -> Iterator[Path]:
    """A temporary recorder volume holding one shift's recordings (clock in ``zone``)."""
    clock_zone = zone or end.astimezone().tzinfo
    assert clock_zone is not None
    with tempfile.TemporaryDirectory(prefix="evidock-demo-") as folder:
        root = Path(folder)
        record_shift(root, shift or ShiftPlan(), end, clock_zone)
        yield root


def run_demo(ctx: IngestContext, progress: Progress | None = None) -> Summary:
    with demo_volume(ctx.clock(), ctx.options.zone) as root:
        return DockRun(ctx, FolderVolume(root), Identity(), progress).run()
