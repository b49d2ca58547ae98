"""R14: statistics by officer, device, category and unit, as JSON, CSV and an HTML report
with charts, and the yearly case list, checked for their values."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from storage.registry import Registry
from tests.conftest import SHIFT_END, Clock, run_dock

runner = CliRunner()


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def report(*args: str) -> dict[str, Any]:
    code, out, err = evidock("report", "--json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture
def shift(station: IngestContext, volume: Path) -> IngestContext:
    """One shift docked 40 h after it ended: 6 recordings, all late; one annotated."""
    station.clock = Clock(SHIFT_END + timedelta(hours=40))
    run_dock(station, FolderVolume(volume))
    assert evidock("annotate", "1", "--category", "城管", "--case", "2026-017",
                   "--by", "c")[0] == 0
    registry = Registry(station.catalog)
    registry.register("ZFY0001", usb_serial=None, model=None, officer_no=None, by="c")
    registry.maintain("ZFY0001", kind="fault", note="镜头破裂", by="c")
    return station


def test_by_officer_device_and_category(shift: IngestContext) -> None:
    rows = shift.catalog.recordings()
    data = report("--by", "officer")
    [line] = data["lines"]
    assert line["group"] == "100231" and line["recordings"] == 6 == line["late"]
    assert line["late_rate"] == 1.0 and line["bytes"] == sum(r.size for r in rows)
    assert line["hours"] == round(sum(r.duration_s or 0 for r in rows) / 3600, 3)
    assert line["explanations_open"] == 7  # 6 late, 1 damaged clip
    assert data["total"]["explanations_open"] == 8  # + the unregistered recorder (no recording)
    assert data["total"]["device_faults"] == 1 and line["device_faults"] == 0
    by_device = report("--by", "device")
    assert by_device["lines"][0]["device_faults"] == 1
    assert by_device["lines"][0]["explanations_open"] == 8
    by_category = {x["group"]: x["recordings"] for x in report("--by", "category")["lines"]}
    assert by_category == {"(none)": 5, "城管": 1}
    assert report("--from", "2026-11-21")["total"]["recordings"] == 0  # started on the 20th


def test_csv_html_and_the_yearly_case_list(shift: IngestContext, tmp_path: Path) -> None:
    code, out, _ = evidock("report", "--csv", "--by", "category")
    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["category"] for r in table] == ["(none)", "城管", "total"]
    assert table[-1]["recordings"] == "6" and table[-1]["late_rate"] == "1.0"
    page = tmp_path / "report.html"
    code, _, err = evidock("report", "--by", "category", "--html", str(page))
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") == 2 and "城管" in text and "100.0%" in text
    assert "城管" in text.split("<svg", 1)[1]  # the charts' labels are text, not paths
    code, _, err = evidock("report", "--html", str(page))
    assert code == 2 and "never overwrites" in err
    code, out, _ = evidock("report", "--year", "2026", "--cases", "--json")
    [case] = json.loads(out)
    assert case["case"] == "2026-017" and case["recordings"] == 1 and case["ended_at"] is None
    assert json.loads(evidock("report", "--year", "2025", "--cases", "--json")[1]) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "weather"], "weather"),
    (["--cases"], "--cases needs --year"),
    (["--year", "2026", "--from", "2026-01-01"], "not both"),
    (["--from", "2026-12-01", "--to", "2026-11-01"], "before --to"),
    (["--json", "--csv"], "one of"),
])
def test_bad_options(shift: IngestContext, args: list[str], message: str) -> None:
    code, _, err = evidock("report", *args)
    assert code == 2 and message in err, err
