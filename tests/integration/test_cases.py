"""R11: closing a case starts the 30-day filing clock; `case list --overdue` (the CLI's
clock set with time-machine)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import time_machine
from typer.testing import CliRunner

from cli import app
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from tests.conftest import SHIFT_END, run_dock

runner = CliRunner()


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def cases(*args: str) -> list[dict[str, Any]]:
    code, out, err = evidock("case", "list", "--json", *args)
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_the_filing_clock(station: IngestContext, volume: Path) -> None:
    run_dock(station, FolderVolume(volume))
    for rec_id in ("1", "2"):
        assert evidock("annotate", rec_id, "--case", "2026-017", "--by", "c")[0] == 0
    assert evidock("annotate", "3", "--case", "2026-018", "--by", "c")[0] == 0
    with time_machine.travel(SHIFT_END + timedelta(days=2), tick=False):
        code, out, err = evidock("case", "close", "2026-017", "--ended-at",
                                 "2026-11-20T18:00", "--by", "王芳")
        assert code == 0 and "due in the case file by 2026-12-20 18:00:00 +08:00" in out, err
        assert {c["case"]: c["status"] for c in cases()} == {"2026-017": "closed",
                                                            "2026-018": "open"}
        code, _, err = evidock("case", "close", "2026-017", "--ended-at", "2026-11-20T18:00",
                               "--by", "王芳")
        assert code == 2 and "not closed again" in err
    with time_machine.travel(SHIFT_END + timedelta(days=30, hours=-1), tick=False):
        assert cases("--overdue") == []  # 2026-12-20 09:00 UTC: due at 10:00
    with time_machine.travel(SHIFT_END + timedelta(days=30, seconds=1), tick=False):
        [late] = cases("--overdue")
        assert late["case"] == "2026-017" and late["recordings"] == 2
        code, out, _ = evidock("case", "list", "--overdue")
        assert "2026-017: 2 recording(s), overdue" in out
        code, _, err = evidock("case", "file", "2026-017", "--by", "王芳", "--note", "档案号 A-12")
        assert code == 0, err
        assert cases("--overdue") == []
        [filed] = [c for c in cases() if c["case"] == "2026-017"]
        assert filed["status"] == "filed" and filed["filed_by"] == "王芳"
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out, out


def test_bad_input_changes_nothing(station: IngestContext, volume: Path) -> None:
    run_dock(station, FolderVolume(volume))
    assert evidock("annotate", "1", "--case", "2026-017", "--by", "c")[0] == 0
    before = station.catalog.head().size
    with time_machine.travel(SHIFT_END + timedelta(days=2), tick=False):
        for args, message in (
            (["close", "NO-SUCH", "--ended-at", "2026-11-20T18:00", "--by", "c"],
             "no recording is annotated with case NO-SUCH"),
            (["close", "2026-017", "--ended-at", "2026-12-30T18:00", "--by", "c"],
             "in the future"),
            (["close", "2026-017", "--ended-at", "last week", "--by", "c"], "not a date"),
            (["close", "2026-017", "--ended-at", "2026-11-20T18:00", "--by", " "], "--by"),
            (["file", "2026-017", "--by", "c"], "is not closed"),
        ):
            code, _, err = evidock("case", *args)
            assert code == 2 and message in err, (args, err)
    assert station.catalog.head().size == before
