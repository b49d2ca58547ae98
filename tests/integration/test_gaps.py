"""R4, R5: a pause between consecutive clips of one recorder becomes an explanation; around
an important-event recording it is a violation a supervisor is told of at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.media import make_clip, make_photo, recorder_name
from tests.conftest import ZONE

EVIDOCK = str(Path(sys.executable).with_name("evidock"))


def evidock(*args: str, **env: str) -> tuple[int, str, str]:
    done = subprocess.run([EVIDOCK, *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, **env})
    return done.returncode, done.stdout, done.stderr


def explanations(kind: str) -> list[dict[str, Any]]:
    code, out, err = evidock("explain", "list", "--kind", kind, "--json")
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


@pytest.fixture(scope="module")
def gappy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clips of 4 s: A, then B right after it (a segment boundary), a 60 s pause, C, a
    30 s pause, D flagged important; a photo between C and D is not a clip."""
    root = tmp_path_factory.mktemp("gappy") / "volume"
    video = root / "DCIM" / "100MEDIA"
    video.mkdir(parents=True)
    start = (datetime.now(UTC) - timedelta(hours=3)).astimezone(ZONE).replace(microsecond=0)
    offsets = {"A": 0, "B": 4, "C": 68, "D": 102}
    for name, offset in offsets.items():
        at = start + timedelta(seconds=offset)
        make_clip(video / recorder_name("ZFY0001", "100231", at, "MP4", important=name == "D"),
                  4.0, at)
    make_photo(video / recorder_name("ZFY0001", "100231", start + timedelta(seconds=80), "JPG"))
    return root


def test_gaps_and_a_continuity_violation(home: Path, gappy: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tell = tmp_path / "tell.sh"
    tell.write_text(f'#!/bin/sh\ncat > "{inbox}/$$.json"\n')
    tell.chmod(0o755)
    code, _, err = evidock("ingest", str(gappy), EVIDOCK_NOTIFY_COMMAND=json.dumps([str(tell)]))
    assert code == 0, err
    code, out, _ = evidock("log", "--json")
    ids = {Path(r["source_path"]).name: r["id"] for r in json.loads(out)}
    by_start = [ids[n] for n in sorted(ids) if n.endswith(".MP4")]  # names sort by time
    [gap] = explanations("recording_gap")
    assert gap["rule"] == "R4" and gap["recording_id"] == by_start[2]  # C, after A-B-pause
    assert gap["error"].startswith("60 s with no stored playable clip of this recorder "
                                   f"between recording {by_start[1]} ")
    [violation] = explanations("continuity_violation")
    assert violation["rule"] == "R5" and violation["recording_id"] == by_start[3]
    assert violation["error"].startswith("30 s") and "important" in violation["error"]
    notices = [json.loads(p.read_text()) for p in inbox.iterdir()]
    assert [n["explanation"]["kind"] for n in notices] == ["continuity_violation"]
    code, _, _ = evidock("ingest", str(gappy))  # docked again: nothing new, nothing twice
    assert len(explanations("recording_gap")) == len(explanations("continuity_violation")) == 1
    code, _, err = evidock("officer", "add", "100231", "--name", "张伟", "--by", "c")
    assert code == 0, err
    code, _, err = evidock("explain", "complete", str(violation["id"]), "--reason",
                           "low-battery", "--statement", "电量耗尽", "--signed-by", "100231")
    assert code == 2 and "2 or more" in err and "R5" in err


def test_the_tolerances_are_settings(home: Path, gappy: Path) -> None:
    code, _, err = evidock("ingest", str(gappy), EVIDOCK_GAP_MAX_S="50")
    assert code == 0, err
    assert explanations("recording_gap") == []  # 60 s is a separate recording here
    assert len(explanations("continuity_violation")) == 1  # 30 s is still a cut


def test_bad_tolerances_are_refused(home: Path) -> None:
    code, _, err = evidock("config", "validate", EVIDOCK_GAP_TOLERANCE_S="400")
    assert code == 2 and "gap_max_s" in err


def test_a_category_recorded_without_a_break_turns_its_gaps_into_violations(
        home: Path, gappy: Path) -> None:
    continuous = {"EVIDOCK_CONTINUOUS_CATEGORIES": json.dumps(["现场抓捕"])}
    code, _, err = evidock("ingest", str(gappy), **continuous)
    assert code == 0, err
    [gap] = explanations("recording_gap")
    assert len(explanations("continuity_violation")) == 1  # the important clip's
    code, out, err = evidock("annotate", str(gap["recording_id"]), "--category", "交通",
                             "--by", "c", **continuous)
    assert code == 0 and "continuity_violation" not in out, err  # not a continuous category
    code, out, err = evidock("annotate", str(gap["recording_id"]), "--category", "现场抓捕",
                             "--by", "c", **continuous)
    assert code == 0 and f"for the gap of explanation {gap['id']}" in out, err
    violations = explanations("continuity_violation")
    assert len(violations) == 2 and violations[1]["recording_id"] == gap["recording_id"]
    assert "现场抓捕" in violations[1]["error"]
    code, out, _ = evidock("annotate", str(gap["recording_id"]), "--category", "现场抓捕",
                           "--by", "c", **continuous)
    assert code == 0 and len(explanations("continuity_violation")) == 2  # once only
