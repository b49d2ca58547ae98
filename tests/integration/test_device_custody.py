"""R13 through `evidock` as a process: a faulty recorder out of service and back, its
log, check-out and check-in, and registry input that is refused without a change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.catalogdb import raw_catalog

EVIDOCK = str(Path(sys.executable).with_name("evidock"))


def evidock(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([EVIDOCK, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def ok(*args: str) -> str:
    code, out, err = evidock(*args)
    assert code == 0, (args, err)
    return out


def leaves(home: Path) -> int:
    with raw_catalog(home) as db:
        return int(db.execute("select count(*) from ledger_leaf").fetchone()[0])


def shown(device: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok("device", "show", device, "--json"))
    return data


@pytest.fixture
def registered(home: Path) -> Path:
    ok("officer", "add", "100231", "--name", "张伟", "--by", "王芳")
    ok("device", "register", "ZFY0001", "--officer", "100231", "--by", "王芳")
    return home


def test_a_faulty_recorder_out_of_service_and_back(registered: Path, volume: Path) -> None:
    ok("device", "maintain", "ZFY0001", "--kind", "fault", "--note", "镜头破裂", "--by", "王芳")
    ok("device", "out-of-service", "ZFY0001", "--reason", "送修", "--by", "王芳")
    assert shown("ZFY0001")["status"] == "out_of_service"
    code, _, err = evidock("device", "check-out", "ZFY0001", "--officer", "100231", "--by", "王芳")
    assert code == 2 and "out of service" in err
    code, _, _ = evidock("ingest", str(volume))  # docked all the same: ingested, flagged
    assert code == 1
    code, out, _ = evidock("explain", "list", "--kind", "out_of_service_device", "--json")
    [flag] = json.loads(out)
    assert flag["rule"] == "R13" and flag["device"] == "ZFY0001"
    assert len(json.loads(ok("log", "--json"))) == 6
    ok("device", "maintain", "ZFY0001", "--kind", "repair", "--note", "更换镜头", "--by", "李工")
    ok("device", "in-service", "ZFY0001", "--note", "检测正常", "--by", "王芳")
    ok("device", "check-out", "ZFY0001", "--officer", "100231", "--by", "王芳")
    assert shown("ZFY0001")["checked_out_to"] == "100231"
    code, _, err = evidock("device", "check-out", "ZFY0001", "--officer", "100231", "--by", "王芳")
    assert code == 2 and "check it in first" in err
    out = ok("device", "check-in", "ZFY0001", "--by", "王芳", "--note", "电量 80%")
    assert "checked in from 100231" in out
    data = shown("ZFY0001")
    assert data["status"] == "active" and data["checked_out_to"] is None
    assert [n["kind"] for n in data["log"]] == [
        "fault", "out-of-service", "repair", "in-service", "check-out", "check-in"]
    assert data["log"][5]["officer"] == "100231" and data["log"][2]["by"] == "李工"
    assert len(data["docks"]) == 1 and data["docks"][0]["files_stored"] == 6  # 1 quarantined
    ok("officer", "add", "100232", "--name", "李娜", "--by", "王芳")
    ok("device", "assign", "ZFY0001", "100232", "--by", "王芳")
    assert [(a["how"], a["officer"], a["by"]) for a in shown("ZFY0001")["assignments"]] == [
        ("register", "100231", "王芳"), ("assign", "100232", "王芳")]
    text = ok("device", "show", "ZFY0001")
    assert "镜头破裂" in text and "last docks (1)" in text and "assignments (2)" in text
    assert "to officer 100232 by 王芳 (assign" in text
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out, out


@pytest.mark.parametrize(("args", "message"), [
    (["device", "register", "ZFY0002", "--officer", "999999", "--by", "c"],
     "999999 is not registered"),
    (["device", "register", "ZFY0002", "--model", "no-such-model", "--by", "c"],
     "is not configured"),
    (["device", "register", "ZFY0002", "--by", " "], "--by is empty"),
    (["device", "assign", "ZFY0001", "999999", "--by", "c"], "999999 is not registered"),
    (["device", "maintain", "ZFY0001", "--kind", "party", "--note", "x", "--by", "c"], "party"),
    (["device", "maintain", "ZFY0001", "--kind", "check", "--note", "", "--by", "c"],
     "--note is empty"),
    (["device", "maintain", "ZFY9999", "--kind", "check", "--note", "x", "--by", "c"],
     "no device ZFY9999"),
    (["device", "in-service", "ZFY0001", "--note", "x", "--by", "c"], "not out of service"),
    (["device", "check-in", "ZFY0001", "--by", "c"], "not checked out"),
    (["device", "check-out", "ZFY0001", "--officer", "999999", "--by", "c"],
     "999999 is not registered"),
])
def test_registry_input_is_checked(registered: Path, args: list[str], message: str) -> None:
    before = leaves(registered)
    code, _, err = evidock(*args)
    assert code == 2 and message in err, err
    assert leaves(registered) == before
