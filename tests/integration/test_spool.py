"""The spool: explanations kept while the catalog cannot be reached, recorded once later."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.settings import Settings
from cli import app
from ingest.dock import IngestContext
from ingest.explain import dock_not_started
from storage.spool import Spool


def test_a_spooled_explanation_is_recorded_once_even_if_replayed_twice(
        station: IngestContext, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    kept = spool.keep(dock_not_started("/media/recorder", "the server is down",
                                       station.clock()))
    aside = shutil.copy(kept, tmp_path / "aside.json")
    assert spool.replay(station.catalog) == 1 and not kept.exists()
    shutil.copy(aside, kept)  # as if it crashed after the commit, before the removal
    assert spool.replay(station.catalog) == 0 and not kept.exists()
    (recorded,) = station.catalog.explanations()
    assert recorded.kind == "catalog_error" and recorded.session_id is None
    assert recorded.error == "/media/recorder: the dock could not start: the server is down"
    assert "recorded from the station's spool at " in recorded.action
    assert recorded.occurred_at == station.clock()


def test_an_unreadable_spool_file_is_left_and_said(
        station: IngestContext, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "spool")
    spool.keep(dock_not_started("/media/a", "down", station.clock()))
    bad = tmp_path / "spool" / "00000000T000000-garbage.json"
    bad.write_text("{not json")
    assert spool.replay(station.catalog) == 1
    assert bad.exists() and "cannot be read, left in the spool" in caplog.text
    assert len(station.catalog.explanations()) == 1


def test_status_says_what_waits_and_the_daemon_records_it_when_it_can(
        station: IngestContext, settings: Settings) -> None:
    from agent.daemon import Daemon
    from agent.status import write_status

    spool = Spool(settings.home / "spool")
    spool.keep(dock_not_started("/media/a", "down", station.clock()))
    write_status(settings.run_dir, {
        "state": "running", "pid": os.getpid(), "station": "station-1",
        "started_at": "2026-11-20T10:00:00+00:00", "updated_at": "2026-11-20T10:00:00+00:00",
        "docked": [], "recent": []})
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.stderr
    assert "explanations waiting in the spool for the catalog: 1" in result.stdout
    station.spool = spool
    daemon = Daemon(settings, station, [])
    try:
        daemon._recover()  # what its loop runs every few minutes
    finally:
        daemon.pool.shutdown()
    assert spool.waiting_count() == 0
    assert [e.kind for e in station.catalog.explanations()] == ["catalog_error"]
    result = CliRunner().invoke(app, ["status", "--json"])
    assert json.loads(result.stdout)["spooled"] == 0
