"""Explanations as a workflow, through `evidock` as a process: officers complete and sign
them, corrections are linked, and the written explanation prints for the case file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.settings import load_settings
from agent.station import open_catalog
from storage.models import Explanation
from tests.catalogdb import raw_catalog

EVIDOCK = str(Path(sys.executable).with_name("evidock"))


def evidock(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([EVIDOCK, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def listed(*args: str) -> list[dict[str, Any]]:
    code, out, err = evidock("explain", "list", "--json", *args)
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def leaves(home: Path) -> int:
    with raw_catalog(home) as db:
        return int(db.execute("select count(*) from ledger_leaf").fetchone()[0])


@pytest.fixture
def store(home: Path, volume: Path) -> Path:
    """A shift docked days after it ended: late (R2), a damaged clip (R3), an unregistered
    recorder (R13); officers 100231 (officer), 100232 (officer), 900001 (custodian)."""
    code, _, err = evidock("ingest", str(volume))
    assert code == 1, err
    for no, name, role in (("100231", "张伟", "officer"), ("100232", "李强", "officer"),
                           ("900001", "王芳", "custodian")):
        code, _, err = evidock("officer", "add", no, "--name", name, "--role", role,
                               "--by", "王芳")
        assert code == 0, err
    return home


def one(kind: str) -> int:
    return int(next(r for r in listed("--kind", kind))["id"])


def test_a_storage_fault_is_signed_by_the_custodian_once_then_corrected(store: Path) -> None:
    fault = one("media_truncated")
    before = leaves(store)
    code, _, err = evidock("explain", "complete", str(fault), "--reason", "device-fault",
                           "--statement", "记录仪进水", "--signed-by", "100231")
    assert code == 2 and "R3" in err and "custodian or a supervisor" in err
    assert leaves(store) == before  # refused: nothing written
    code, out, err = evidock("explain", "complete", str(fault), "--reason", "device-fault",
                             "--statement", "记录仪进水", "--signed-by", "900001")
    assert code == 0 and "completed with statement" in out, err
    code, _, err = evidock("explain", "complete", str(fault), "--reason", "weather",
                           "--statement", "again", "--signed-by", "900001")
    assert code == 2 and "is not completed again" in err and "explain correct" in err
    code, _, err = evidock("explain", "correct", str(fault), "--reason", "weather",
                           "--statement", "更正：暴雨", "--signed-by", "900001")
    assert code == 0, err
    code, out, _ = evidock("explain", "show", str(fault), "--json")
    shown = json.loads(out)
    first, second = shown["statements"]
    assert shown["status"] == "completed" and first["reason"] == "device-fault"
    assert second["corrects"] == first["id"] and second["text"] == "更正：暴雨"
    assert second["signers"] == [{"officer": "900001", "name": "王芳", "role": "custodian"}]
    assert fault not in {r["id"] for r in listed("--open")}
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out, out


def test_an_interruption_needs_two_distinct_registered_officers(store: Path) -> None:
    catalog = open_catalog(load_settings())
    catalog.station_id = "station-1"
    try:  # as the pipeline records one from the recorder's log
        exp = catalog.add_explanation(Explanation(
            kind="recording_interrupted", rule="R4", device_no="ZFY0001",
            occurred_at=datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
            error="the recorder logged low_battery at 2026-11-20 09:00:00+08:00",
            action="officers state the reason"))
    finally:
        catalog.close()
    base = ["explain", "complete", str(exp.id), "--reason", "low-battery", "--statement",
            "电量耗尽，录像中断约 5 分钟"]
    before = leaves(store)
    for signers, message in ((["100231"], "2 or more distinct registered officers"),
                             (["100231", "100231"], "signs more than once"),
                             (["100231", "999999"], "999999 is not registered"),
                             (["100231", "ZFY0001"], "ZFY0001 is not registered")):
        code, _, err = evidock(*base, *[a for no in signers for a in ("--signed-by", no)])
        assert code == 2 and message in err, err
    assert leaves(store) == before
    code, _, err = evidock(*base, "--signed-by", "100231", "--signed-by", "100232")
    assert code == 0, err
    assert listed("--rule", "R4")[0]["status"] == "completed"


def test_bad_input_changes_nothing(store: Path) -> None:
    late = one("late_ingest")
    before = leaves(store)
    for args, message in (
        (["--reason", "boredom", "--statement", "x", "--signed-by", "100231"], "boredom"),
        (["--reason", "other", "--statement", "  ", "--signed-by", "100231"], "empty"),
        (["--reason", "other", "--statement", "x"], "--signed-by"),
    ):
        code, _, err = evidock("explain", "complete", str(late), *args)
        assert code == 2 and message in err, err
    code, _, err = evidock("explain", "complete", "99999", "--reason", "other",
                           "--statement", "x", "--signed-by", "100231")
    assert code == 2 and "no explanation 99999" in err
    code, _, err = evidock("explain", "correct", str(late), "--reason", "other",
                           "--statement", "x", "--signed-by", "100231")
    assert code == 2 and "no statement yet" in err
    for args, message in ((["officer", "add", "1", "--name", " ", "--by", "x"], "--name"),
                          (["officer", "add", "1", "--name", "A", "--by", ""], "--by"),
                          (["officer", "add", "1", "--name", "A", "--by", "x", "--role",
                            "chief"], "chief")):
        code, _, err = evidock(*args)
        assert code == 2 and message in err, err
    assert leaves(store) == before


def test_filters(store: Path) -> None:
    everything = listed()
    assert {r["rule"] for r in everything} >= {"R2", "R3", "R13"}
    assert {r["kind"] for r in listed("--rule", "R2")} == {"late_ingest"}
    assert all(r["device"] == "ZFY0001" for r in listed("--device", "ZFY0001"))
    assert listed("--device", "OTHER") == []
    mine = listed("--officer", "100231")  # through the recording or the dock
    assert {r["kind"] for r in mine} >= {"late_ingest", "media_truncated"}
    assert listed("--officer", "100232") == []
    assert listed("--since", "2099-01-01") == []
    assert len(listed("--open")) == len(everything)


def test_the_written_explanation_prints_in_chinese(store: Path, tmp_path: Path) -> None:
    late = one("late_ingest")
    code, _, err = evidock("explain", "complete", str(late), "--reason", "other",
                           "--statement", "交通拥堵，未能按时返回单位", "--signed-by", "100231")
    assert code == 0, err
    pdf, page = tmp_path / "late.pdf", tmp_path / "late.html"
    assert evidock("explain", "print", str(late), "--out", str(pdf))[0] == 0
    assert evidock("explain", "print", str(late), "--out", str(page))[0] == 0
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for expected in ("情况说明", "交通拥堵，未能按时返回单位", "100231 张伟", "其他原因 other",
                     "R2: stored after the deadline", "(UTC+08:00)"):
        assert expected in text, expected
    assert "交通拥堵，未能按时返回单位" in page.read_text(encoding="utf-8")
    code, _, err = evidock("explain", "print", str(late), "--out", str(pdf))
    assert code == 2 and "never overwrites" in err
    code, _, err = evidock("explain", "print", str(late), "--out", str(tmp_path / "x.doc"))
    assert code == 2 and ".pdf or .html" in err
    open_one = one("media_truncated")  # an open one prints blanks to fill in by hand
    blank = tmp_path / "open.pdf"
    assert evidock("explain", "print", str(open_one), "--out", str(blank))[0] == 0
    text = subprocess.run(["pdftotext", "-layout", str(blank), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "待说明" in text and "custodian or supervisor" in " ".join(text.split())


def test_a_statement_edited_behind_the_ledger_is_caught(store: Path) -> None:
    late = one("late_ingest")
    assert evidock("explain", "complete", str(late), "--reason", "other", "--statement",
                   "真实的说明", "--signed-by", "100231")[0] == 0
    with raw_catalog(store) as db:
        db.execute("update statement set text = '伪造的说明', signers_json = '[\"100232\"]'")
    code, out, _ = evidock("verify")
    assert code == 1 and "row_differs" in out and "statement" in out, out
