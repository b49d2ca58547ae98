"""R2 on a clock the test sets: the 24-hour boundary to the second, a declared duty
moving a deadline, and `evidock overdue` (time-machine for the CLI's own clock)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from typer.testing import CliRunner

from agent.settings import Settings
from agent.station import open_station
from cli import app
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from storage.duties import Duties
from storage.models import Duty, Officer
from storage.registry import Registry
from tests.conftest import SHIFT_END, Clock, run_dock

runner = CliRunner()


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def station_at(settings: Settings, home: Path, clock: Clock) -> IngestContext:
    ctx = open_station(settings.model_copy(update={"home": home}))
    ctx.clock = clock
    return ctx


@pytest.mark.sqlite_only  # three fresh stores, each a home with its own catalog
def test_the_deadline_holds_to_the_second(settings: Settings, one_clip: Path,
                                          tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    shutil.copy(one_clip, volume)
    first = station_at(settings, tmp_path / "a", Clock(SHIFT_END))
    run_dock(first, FolderVolume(volume))
    (row,) = first.catalog.recordings()
    deadline = row.deadline
    assert deadline == row.recording_end + timedelta(hours=24) and not row.late
    first.close()
    for name, now, late in (("on-time", deadline, False),
                            ("late", deadline + timedelta(seconds=1), True)):
        ctx = station_at(settings, tmp_path / name, Clock(now))
        summary = run_dock(ctx, FolderVolume(volume))
        (row,) = ctx.catalog.recordings()
        assert row.deadline == deadline and row.late is late, name
        assert any(e.kind == "late_ingest" for e in summary.explanations) is late
        ctx.close()


def declare(ctx: IngestContext, *, returned_h: float) -> Duty:
    Registry(ctx.catalog).add_officer(Officer(officer_no="100231", name="张伟",
                                              role="officer"), by="王芳")
    return Duties(ctx.catalog).declare(Duty(
        officer_no="100231", starts_at=SHIFT_END - timedelta(hours=3), ends_at=SHIFT_END,
        returned_at=SHIFT_END + timedelta(hours=returned_h), reason="驻外执勤",
        declared_at=ctx.clock()))


def test_a_declared_duty_moves_the_deadline_to_the_return(station: IngestContext,
                                                         volume: Path) -> None:
    station.clock = Clock(SHIFT_END + timedelta(hours=40))  # a day late by the recordings
    duty = declare(station, returned_h=30)
    summary = run_dock(station, FolderVolume(volume))
    rows = station.catalog.recordings()
    assert rows and all(r.deadline == duty.returned_at + timedelta(hours=24) for r in rows)
    assert not any(r.late for r in rows)
    assert not any(e.kind == "late_ingest" for e in summary.explanations)


def test_overdue_lists_late_recordings_until_explained_or_excused(
        station: IngestContext, volume: Path) -> None:
    station.clock = Clock(SHIFT_END + timedelta(hours=40))
    run_dock(station, FolderVolume(volume))
    with time_machine.travel(SHIFT_END + timedelta(hours=41), tick=False):
        code, out, err = evidock("overdue", "--json")
        assert code == 0, err
        late = json.loads(out)["late_recordings"]
        assert len(late) == 6 and all(r["explanation"] for r in late)
        code, out, _ = evidock("overdue")
        assert "late recordings with no completed explanation: 6" in out
        assert evidock("officer", "add", "100231", "--name", "张伟", "--by", "c")[0] == 0
        first = late[0]
        code, _, err = evidock("explain", "complete", str(first["explanation"]), "--reason",
                               "other", "--statement", "交通中断", "--signed-by", "100231")
        assert code == 0, err
        assert len(json.loads(evidock("overdue", "--json")[1])["late_recordings"]) == 5
        # a duty declared afterwards: stored within a day of the return (2026-11-21 04:00
        # UTC; stored 2026-11-22 02:00 UTC), so not late after all
        code, _, err = evidock("duty", "declare", "--officer", "100231", "--from",
                               "2026-11-20T15:00", "--until", "2026-11-20T18:00",
                               "--returned-at", "2026-11-21T12:00", "--reason", "驻外执勤")
        assert code == 0, err
        assert json.loads(evidock("overdue", "--json")[1])["late_recordings"] == []


def test_overdue_lists_recorders_not_docked_within_the_window(station: IngestContext,
                                                              volume: Path) -> None:
    run_dock(station, FolderVolume(volume))  # at SHIFT_END + 1 h: ZFY0001 seen then
    registry = Registry(station.catalog)
    registry.add_officer(Officer(officer_no="100231", name="张伟", role="officer"), by="c")
    registry.register("ZFY0001", usb_serial=None, model=None, officer_no="100231", by="c")
    registry.register("ZFY0002", usb_serial=None, model=None, officer_no=None, by="c")
    for hours, listed in ((24.5, []), (26, ["ZFY0001"])):
        with time_machine.travel(SHIFT_END + timedelta(hours=hours), tick=False):
            found = json.loads(evidock("overdue", "--json")[1])["undocked_recorders"]
        assert [r["device"] for r in found] == listed, hours  # ZFY0002: nobody's
    registry.retire("ZFY0001", by="c", reason="cracked")
    with time_machine.travel(SHIFT_END + timedelta(hours=26), tick=False):
        assert json.loads(evidock("overdue", "--json")[1])["undocked_recorders"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["--returned-at", "2026-11-23T09:00"], "in the future"),
    (["--until", "2026-11-20T14:00"], "must start before it ends"),
    (["--returned-at", "2026-11-20T17:00"], "no later than the return"),
    (["--officer", "999999"], "999999 is not registered"),
    (["--reason", " "], "--reason is empty"),
    (["--from", "yesterday"], "not a date or time"),
])
def test_bad_duties_change_nothing(station: IngestContext, args: list[str],
                                   message: str) -> None:
    Registry(station.catalog).add_officer(Officer(officer_no="100231", name="张伟",
                                                  role="officer"), by="c")
    given = {"--officer": "100231", "--from": "2026-11-20T15:00",
             "--until": "2026-11-20T18:00", "--returned-at": "2026-11-21T08:00",
             "--reason": "驻外执勤"}
    given.update(zip(args[::2], args[1::2], strict=True))
    before = station.catalog.head().size
    with time_machine.travel(SHIFT_END + timedelta(hours=40), tick=False):  # 11-22 10:00+08
        code, _, err = evidock("duty", "declare", *[x for kv in given.items() for x in kv])
    assert code == 2 and message in err, err
    assert station.catalog.head().size == before


def test_overlapping_duties_are_refused(station: IngestContext) -> None:
    station.clock = Clock(SHIFT_END + timedelta(hours=40))
    declare(station, returned_h=30)
    with time_machine.travel(SHIFT_END + timedelta(hours=40), tick=False):
        code, _, err = evidock("duty", "declare", "--officer", "100231", "--from",
                               "2026-11-20T17:00", "--until", "2026-11-20T20:00",
                               "--returned-at", "2026-11-21T08:00", "--reason", "夜间执勤")
    assert code == 2 and "overlaps" in err
    code, out, _ = evidock("duty", "list", "--json")
    assert code == 0 and len(json.loads(out)) == 1
