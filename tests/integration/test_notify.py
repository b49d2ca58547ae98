"""R3 "at once": storage faults reach a supervisor through a real notify command, the
outcome is recorded, and journald gets each line with its priority."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.catalogdb import raw_catalog

EVIDOCK = str(Path(sys.executable).with_name("evidock"))


def ingest(volume: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVIDOCK, "ingest", str(volume)], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **env})


def notify_leaves(home: Path) -> list[dict[str, Any]]:
    with raw_catalog(home) as db:
        rows = db.execute("select body from ledger_leaf where kind = 'notify' order by seq")
        return [json.loads(body)["payload"] for (body,) in rows]


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_each_storage_fault_is_given_to_the_command_at_once(home: Path, volume: Path,
                                                             tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tell = script(tmp_path / "tell.sh", f'cat > "{inbox}/$$.json"')
    done = ingest(volume, EVIDOCK_NOTIFY_COMMAND=json.dumps([str(tell)]))
    assert done.returncode == 1, done.stderr  # the truncated clip (R3); everything stored
    notices = [json.loads(p.read_text(encoding="utf-8")) for p in inbox.iterdir()]
    assert [n["explanation"]["kind"] for n in notices] == ["media_truncated"]  # R2 is not
    notice = notices[0]
    assert notice["format"] == "evidock-notice/1" and notice["station"] == "station-1"
    assert notice["explanation"]["rule"] == "R3" and notice["explanation"]["status"] == "open"
    assert "packets" in notice["explanation"]["error"]
    assert notify_leaves(home) == [{"command": str(tell), "outcome": "delivered"}]
    code = subprocess.run([EVIDOCK, "verify"], capture_output=True, text=True, check=False)
    assert code.returncode == 0, code.stdout


@pytest.mark.parametrize(("body", "extra", "outcome"), [
    ("echo 'gateway down' >&2; exit 3", {}, "the notify command exited 3: gateway down"),
    ("sleep 30", {"EVIDOCK_NOTIFY_TIMEOUT_S": "1"},
     "the notify command ran longer than 1 s and was stopped"),
])
def test_a_notice_that_fails_is_recorded_and_never_stops_the_dock(
        home: Path, volume: Path, tmp_path: Path, body: str, extra: dict[str, str],
        outcome: str) -> None:
    tell = script(tmp_path / "tell.sh", body)
    done = ingest(volume, EVIDOCK_NOTIFY_COMMAND=json.dumps([str(tell)]), **extra)
    assert done.returncode == 1
    assert "the supervisor was NOT notified" in done.stderr and outcome in done.stderr
    assert notify_leaves(home) == [{"command": str(tell), "outcome": outcome}]
    listed = subprocess.run([EVIDOCK, "log", "--json"], capture_output=True, text=True,
                            check=True)
    assert len(json.loads(listed.stdout)) == 6  # every file stored all the same


def test_a_missing_command_is_recorded(home: Path, volume: Path, tmp_path: Path) -> None:
    done = ingest(volume, EVIDOCK_NOTIFY_COMMAND=json.dumps([str(tmp_path / "nowhere")]))
    assert done.returncode == 1
    [leaf] = notify_leaves(home)
    assert leaf["outcome"].startswith("the notify command could not be run")


def test_journald_gets_each_line_with_its_priority(home: Path, volume: Path) -> None:
    read_end, write_end = os.pipe()
    info = os.fstat(write_end)
    proc = subprocess.Popen([EVIDOCK, "ingest", str(volume)], stdout=subprocess.DEVNULL,
                            stderr=write_end,
                            env={**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    assert proc.wait(timeout=120) == 1
    truncated = [line for line in lines if "media_truncated" in line]
    late = [line for line in lines if "late_ingest" in line]
    assert truncated and all(line.startswith("<3>evidock: ERROR: ") for line in truncated)
    assert late and all(line.startswith("<4>evidock: WARNING: ") for line in late)
    plain = subprocess.run([EVIDOCK, "ingest", str(volume)], capture_output=True, text=True,
                           check=False)  # not the journal: no prefixes
    assert plain.stderr and not any(line.startswith("<") for line in plain.stderr.splitlines())


def test_an_outage_explanation_from_the_spool_is_told_when_it_is_recorded(
        home: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from ingest.explain import dock_not_started
    from storage.spool import Spool

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tell = script(tmp_path / "tell.sh", f'cat > "{inbox}/$$.json"')
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ingest(empty).returncode == 0
    Spool(home / "spool").keep(dock_not_started("/media/a", "the server is down",
                                                datetime.now(UTC)))
    done = ingest(empty, EVIDOCK_NOTIFY_COMMAND=json.dumps([str(tell)]))
    assert done.returncode == 0, done.stderr
    notices = [json.loads(p.read_text(encoding="utf-8")) for p in inbox.iterdir()]
    assert [n["explanation"]["kind"] for n in notices] == ["catalog_error"]
    assert "recorded from the station's spool" in notices[0]["explanation"]["action"]
