"""The spool: explanations kept while the catalog cannot be reached, recorded once later."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
