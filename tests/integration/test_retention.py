"""R8 and R9: retention classes, long-term holds and purge with tombstones, through the
CLI (its clock set with time-machine) on a real store of ffmpeg-made clips."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from typer.testing import CliRunner

from cli import app
from devices.volume import FolderVolume
from ingest.dock import IngestContext
from storage.errors import VaultError
from storage.vault import Vault
from tests.catalogdb import raw_catalog
from tests.conftest import run_dock

runner = CliRunner()
DAY = timedelta(days=1)


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = evidock(*args)
    assert code == 0, (args, err)
    return out


def leaves(home: Path) -> int:
    with raw_catalog(home) as db:
        return int(db.execute("select count(*) from ledger_leaf").fetchone()[0])


def due() -> dict[int, dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ok("purge", "--dry-run", "--json"))
    return {r["recording"]: r for r in rows}


def recording(rec_id: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok("show", str(rec_id), "--json"))
    return data


APPROVED = ("--by", "admin-li", "--approved-by", "supervisor-wang", "--approval", "SP-2027-04")


@pytest.fixture
def stored(station: IngestContext, volume: Path, home: Path) -> datetime:
    """A shift in the store; returns the end of recording 1 (its retention runs from it)."""
    run_dock(station, FolderVolume(volume))
    ok("annotate", "3", "--case", "2026-017", "--by", "c")
    return datetime.fromisoformat(recording(1)["end"])


def test_retention_runs_out_to_the_second_and_a_purge_leaves_a_tombstone_verify_accepts(
        stored: datetime, home: Path) -> None:
    with time_machine.travel(stored + timedelta(days=183) - timedelta(seconds=1), tick=False):
        assert not due()[1]["purgeable"] and due()[1]["class"] == "default"
        before = leaves(home)
        code, _, err = evidock("purge", "--apply", "1", *APPROVED)
        assert code == 2 and "kept until" in err and leaves(home) == before
    with time_machine.travel(stored + timedelta(days=183), tick=False):
        found = due()
        assert found[1]["purgeable"] and not found[3]["purgeable"]  # 3: a case, 30 years
        assert found[3]["class"] == "case"
        file = home / "vault" / recording(1)["vault_path"]
        assert file.exists()
        out = ok("purge", "--apply", "1", *APPROVED)
        assert "purged 1 recording(s): 1" in out
    assert not file.exists()
    tomb = recording(1)
    assert tomb["sha256"] and tomb["signature"]  # the digest and signed record stay
    with raw_catalog(home) as db:
        by, approved, approval, why = db.execute(
            "select purged_by, purge_approved_by, purge_approval, purge_why from recording "
            "where id = 1").fetchone()
    assert (by, approved, approval) == ("admin-li", "supervisor-wang", "SP-2027-04")
    assert "retention (default, 183 days from its end) ran out" in why
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out, out
    code, _, err = evidock("export", "--recording", "1", "--out", str(home.parent / "x"),
                           "--collector", "a", "--place", "b", "--reason", "c",
                           "--approved-by", "d")
    assert code == 2 and "purged by rule (R8)" in err, err
    # a file deleted without a purge is still caught
    (home / "vault" / recording(2)["vault_path"]).chmod(0o644)
    (home / "vault" / recording(2)["vault_path"]).unlink()
    code, out, _ = evidock("verify", "--json")
    problems = {(p["kind"], p["subject"].split(" (")[0]) for p in json.loads(out)["problems"]}
    assert code == 1 and problems == {("missing", "recording 2")}


def test_a_hold_keeps_footage_until_released(stored: datetime, home: Path) -> None:
    with time_machine.travel(stored + timedelta(days=400), tick=False):
        out = ok("hold", "add", "1", "--reason", "complaint", "--note", "群众投诉 2027-03",
                 "--by", "王芳")
        assert "hold 1 on recording 1 (complaint)" in out
        assert due()[1]["holds"] == [1] and not due()[1]["purgeable"]
        before = leaves(home)
        code, _, err = evidock("purge", "--apply", "1", *APPROVED)
        assert code == 2 and "is held (hold 1)" in err and leaves(home) == before
        out = ok("purge", "--apply", *APPROVED)  # everything due: not the held one
        assert "1" not in out.split(":")[1].split(";")[0].split(", ")
        assert recording(1)["vault_path"] and (home / "vault" / recording(1)["vault_path"]
                                               ).exists()
        ok("hold", "release", "1", "--note", "投诉已办结", "--by", "王芳")
        ok("purge", "--apply", "1", *APPROVED)
        assert not (home / "vault" / recording(1)["vault_path"]).exists()
        code, out, _ = evidock("verify")
        assert code == 0 and "all intact" in out, out


def test_a_hold_on_a_case_keeps_every_recording_of_it(stored: datetime) -> None:
    with time_machine.travel(stored + timedelta(days=40 * 365), tick=False):
        assert due()[3]["purgeable"]  # the case class ran out too
        ok("hold", "add", "--case", "2026-017", "--reason", "evidence", "--note", "再审",
           "--by", "王芳")
        assert due()[3]["holds"] == [1] and not due()[3]["purgeable"]
        held = json.loads(ok("hold", "list", "--json"))
        assert [(h["case"], h["reason"]) for h in held] == [("2026-017", "evidence")]


def test_a_purge_stopped_before_the_file_is_removed_is_finished_at_the_next_start(
        stored: datetime, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Vault, rel: object) -> None:
        raise VaultError("vault: remove refused (simulated stop)")

    with time_machine.travel(stored + timedelta(days=200), tick=False):
        with monkeypatch.context() as m:
            m.setattr(Vault, "unlink", refuse)
            code, _, err = evidock("purge", "--apply", "1", *APPROVED)
            assert code == 1 and "remove refused" in err
        file = home / "vault" / recording(1)["vault_path"]
        assert file.exists() and recording(1)["purged_at"] is not None  # tombstone first
        code, out, _ = evidock("verify", "--json")
        report = json.loads(out)
        assert code == 0 and report["ok"], report
        assert [r["kind"] for r in report["awaiting_repair"]] == ["unfinished_purge"]
        empty = home.parent / "empty"
        empty.mkdir()
        ok("ingest", str(empty))  # the next start of a writer repairs
        assert not file.exists()
        code, out, _ = evidock("verify", "--json")
        assert code == 0 and json.loads(out)["awaiting_repair"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["purge", "--apply", "1", "--by", "a", "--approved-by", "a", "--approval", "X"],
     "a second person"),
    (["purge", "--apply", "1", "--by", "a", "--approved-by", "b"], "--approval is empty"),
    (["purge", "--apply", "99", *APPROVED], "no recording with id 99"),
    (["purge", "--dry-run", "--apply"], "give --dry-run or --apply"),
    (["hold", "add", "99", "--reason", "dispute", "--note", "x", "--by", "y"],
     "no recording with id 99"),
    (["hold", "add", "--case", "NO-SUCH", "--reason", "dispute", "--note", "x", "--by", "y"],
     "no recording is annotated with case NO-SUCH"),
    (["hold", "add", "1", "--case", "2026-017", "--reason", "dispute", "--note", "x",
      "--by", "y"], "one recording ID or one --case"),
    (["hold", "add", "1", "--reason", "dispute", "--note", " ", "--by", "y"],
     "--note is empty"),
    (["hold", "release", "7", "--note", "x", "--by", "y"], "no hold with id 7"),
])
def test_bad_retention_input_changes_nothing(stored: datetime, home: Path, args: list[str],
                                             message: str) -> None:
    with time_machine.travel(stored + timedelta(days=200), tick=False):
        before = leaves(home)
        code, _, err = evidock(*args)
        assert code == 2 and message in err, err
        assert leaves(home) == before


def test_no_retention_class_may_be_shorter_than_six_months(home: Path) -> None:
    result = runner.invoke(app, ["config", "validate"],
                           env={"EVIDOCK_RETENTION_DAYS": '{"default": 90}'})
    assert result.exit_code == 2 and "at least 183 days" in result.stderr
    result = runner.invoke(app, ["config", "validate"],
                           env={"EVIDOCK_RETENTION_DAYS": '{"default": 200, "现场抓捕": 3650}'})
    assert result.exit_code == 0, result.stderr


def test_a_hold_placed_after_the_purge_chose_its_recordings_still_keeps_them(
        stored: datetime, station: IngestContext) -> None:
    from storage.errors import UsageError
    from storage.retention import Retention

    now = stored + timedelta(days=200)
    book = Retention(station.catalog, {"default": 183.0, "case": 10958.0})
    chosen = [d for d in book.due() if d.recording.id == 1]
    assert chosen[0].purgeable(now)
    book.hold(recording_id=1, case_no=None, reason="dispute", note="since", by="x", now=now)
    with pytest.raises(UsageError, match="no longer due"):
        book.purge(chosen, station.vault, by="a", approved_by="b", approval="R", now=now)
    assert station.catalog.recording(1).purged_at is None
    assert station.vault.path(station.catalog.recording(1).vault_path).exists()
