"""`log`, `show` and `status` read a SQLite catalog without the ORM (storage/quickread.py):
the rows they get are the ones storage.catalog gives, on the same catalog, for every
filter; anything unusual goes back to storage.catalog, which names it.

The catalog here is a real SQLite file written through storage.catalog (as evidock writes
it: its types, its time text), with rows that differ in every field a filter or the
order looks at: several devices, officers, states, cases and sessions, late and not,
times that tie and times with microseconds, purged rows, sidecars, version 1 records.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlmodel import Session

from agent.render import explanation_dict, recording_dict
from storage.catalog import Catalog
from storage.errors import CatalogError, NotFound
from storage.models import Explanation, Officer, Recording, UTCDateTime
from storage.quickread import ExplanationRow, QuickCatalog, RecordingRow, Unsuitable
from storage.terms import LogFilter

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
DEVICES = ("ZFY0001", "ZFY0002", "执法0003")
OFFICERS = ("100231", "100232", "100233")
CASES = (None, "2026-0001", "2026-0002")
SESSIONS = ("s1", "s2", "s3")
COUNT = 80


def _recordings(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(COUNT):
        start = T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 7),
                               microseconds=rng.choice((0, 0, 1, 999_999)))
        purged = rng.random() < 0.1
        rows.append({
            "session_id": rng.choice(SESSIONS), "station_id": "st", "agency": "ag",
            "category": rng.choice((None, "traffic")), "case_no": rng.choice(CASES),
            "party": rng.choice((None, "张三")), "device_no": rng.choice(DEVICES),
            "officer_no": rng.choice(OFFICERS), "officer_name": rng.choice((None, "李四")),
            "unit": None, "source_path": f"DCIM/{i}.MP4", "source_size": 1 << 33,
            "source_mtime_ns": 1_700_000_000_000_000_000 + i, "size": 1 << 33,
            "sha256": f"{i:064x}", "signature": "s" * 88, "key_id": "ed25519:00",
            "record_version": rng.choice((1, 2, 2)), "recording_start": start,
            "recording_end": start + timedelta(seconds=rng.randrange(0, 900)),
            "start_from": rng.choice(("filename", "metadata", "mtime")),
            "duration_s": rng.choice((None, 12.5, 300.0)),
            "media_json": rng.choice((None, json.dumps({"format": "mov", "streams": []}))),
            "important": rng.random() < 0.2, "ingested_at": start + timedelta(hours=9),
            "deadline": start + timedelta(hours=24), "late": rng.random() < 0.3,
            "vault_path": f"files/{i}.MP4",
            "state": "quarantined" if rng.random() < 0.15 else "stored",
            "sidecar": rng.random() < 0.1, "attached_to": rng.choice((None, 1)),
            "clock_offset_s": rng.choice((None, 0, -3600, 17)),
            "purged_at": start + timedelta(days=200) if purged else None,
            "purged_by": "admin" if purged else None, "purge_why": "R8" if purged else None,
        })
    return rows


def _explanations(rng: random.Random) -> list[dict[str, Any]]:
    return [{"session_id": rng.choice((None, *SESSIONS)),
             "recording_id": rng.choice((None, rng.randrange(1, COUNT + 1))),
             "related_recording_id": rng.choice((None, 2)), "kind": "late_ingest",
             "rule": rng.choice(("R2", "R3")), "device_no": rng.choice((None, *DEVICES)),
             "source_path": None, "vault_path": None,
             "occurred_at": T0 + timedelta(hours=i, microseconds=i), "error": "e",
             "action": "a", "status": rng.choice(("open", "completed")),
             "text": rng.choice((None, "说明"))} for i in range(40)]


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quickread") / "catalog.db"
    writer = Catalog.open(f"sqlite:///{path}")
    assert writer.writer is not None
    rng = random.Random(7)
    with Session(writer.writer) as db, db.begin():
        db.execute(insert(Recording), _recordings(rng))
        db.execute(insert(Explanation), _explanations(rng))
        db.execute(insert(Officer), [  # two officers share one login; one has none
            {"officer_no": OFFICERS[0], "login": "zhang"},
            {"officer_no": OFFICERS[1], "login": "zhang"},
            {"officer_no": OFFICERS[2], "login": None}])
    writer.close()
    return path


@pytest.fixture(scope="module")
def both(catalog_file: Path) -> Iterator[tuple[Catalog, QuickCatalog]]:
    full = Catalog.open_readonly(f"sqlite:///{catalog_file}")
    quick = QuickCatalog(catalog_file)
    yield full, quick
    quick.close()
    full.close()


def shown(data: object) -> str:
    """As `--json` prints it: True and 1, or two spellings of one time, differ here."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def test_the_rows_have_the_models_fields_with_their_kinds() -> None:
    """A column added to a model must be added here too (SELECT * would not fit)."""
    for row, model in ((RecordingRow, Recording), (ExplanationRow, Explanation)):
        names = set(row.__dataclass_fields__)
        assert names == set(model.model_fields)
        table = model.__table__  # type: ignore[attr-defined]
        times = {c.name for c in table.columns if isinstance(c.type, UTCDateTime)}
        flags = {c.name for c in table.columns if c.type.python_type is bool}
        assert {n for n, f in row.__dataclass_fields__.items()
                if str(f.type).startswith("datetime")} == times
        assert {n for n, f in row.__dataclass_fields__.items() if f.type == "bool"} == flags


#: The rows' own start times (the fixture's generator, run again): bounds that fall on
#: a row are where < and <= differ.
STARTS = sorted({r["recording_start"] for r in _recordings(random.Random(7))})
MOMENTS = st.one_of(
    st.none(), st.sampled_from(STARTS),
    st.sampled_from(STARTS).map(lambda t: t.astimezone(timezone(timedelta(hours=8)))),
    st.datetimes(min_value=datetime(2026, 11, 19), max_value=datetime(2026, 11, 24),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])))
FILTERS = st.builds(
    LogFilter, device=st.sampled_from((None, *DEVICES, "nobody")),
    officer=st.sampled_from((None, *OFFICERS)), since=MOMENTS, until=MOMENTS,
    late=st.sampled_from((None, True, False)),
    state=st.sampled_from((None, "stored", "quarantined")), case=st.sampled_from(CASES),
    session=st.sampled_from((None, *SESSIONS)))


@settings(max_examples=300, deadline=None)
@given(flt=FILTERS, limit=st.sampled_from((None, 1, 5, 1000)))
def test_the_log_is_the_same_by_either_path(both: tuple[Catalog, QuickCatalog],
                                            flt: LogFilter, limit: int | None) -> None:
    full, quick = both
    want = shown([recording_dict(r) for r in full.recordings(flt, limit=limit)])
    assert shown([recording_dict(r) for r in quick.recordings(flt, limit=limit)]) == want
    assert quick.count_recordings(flt=flt) == full.count_recordings(flt=flt)


def test_one_recording_and_explanations_are_the_same_by_either_path(
        both: tuple[Catalog, QuickCatalog]) -> None:
    full, quick = both
    for rec_id in range(1, COUNT + 1):
        assert (shown(recording_dict(quick.recording(rec_id)))
                == shown(recording_dict(full.recording(rec_id))))
        assert (shown([explanation_dict(e) for e in quick.explanations(recording_id=rec_id)])
                == shown([explanation_dict(e) for e in full.explanations(recording_id=rec_id)]))
    for missing in (0, COUNT + 1, 2**62):
        with pytest.raises(NotFound, match=f"no recording with id {missing}"):
            quick.recording(missing)
    for kw in ({}, {"open_only": True}, {"session_id": "s2"},
               {"session_id": "s1", "open_only": True}):
        want = [explanation_dict(e) for e in full.explanations(**kw)]
        assert shown([explanation_dict(e) for e in quick.explanations(**kw)]) == shown(want)
        assert want  # (each case has rows to compare)
    assert quick.count_recordings(session_id="s3") == full.count_recordings(session_id="s3")
    for login in ("zhang", "nobody", ""):
        assert quick.officers_of(login) == full.officers_of(login)
    assert quick.officers_of("zhang") == set(OFFICERS[:2])


def test_one_quick_reader_reads_one_snapshot(catalog_file: Path, tmp_path: Path) -> None:
    """`log` counts what it lists: a dock that commits between the two is in neither."""
    path = Path(shutil.copy(catalog_file, tmp_path / "catalog.db"))
    quick = QuickCatalog(path)
    try:
        before = len(quick.recordings())
        writer = Catalog.open(f"sqlite:///{path}")
        assert writer.writer is not None
        with Session(writer.writer) as db, db.begin():
            db.execute(insert(Recording), _recordings(random.Random(1))[:3])
        writer.close()
        assert len(quick.recordings()) == quick.count_recordings() == before
    finally:
        quick.close()
    later = QuickCatalog(path)
    assert later.count_recordings() == before + 3
    later.close()


def test_what_is_not_read_quickly_is_named(catalog_file: Path, tmp_path: Path) -> None:
    """Each of these is read through storage.catalog, which tells the user what is wrong
    (tests/integration/test_readers.py holds its messages)."""
    with pytest.raises(Unsuitable, match="not a SQLite catalog"):
        QuickCatalog.of_url("postgresql+psycopg://evidock@localhost/evidock")
    older = Path(shutil.copy(catalog_file, tmp_path / "older.db"))
    with sqlite3.connect(older) as db:
        db.execute("UPDATE alembic_version SET version_num = '0003'")
    with pytest.raises(Unsuitable, match="at schema"):
        QuickCatalog(older)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(Unsuitable, match="no such table"):
        QuickCatalog(empty)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(Unsuitable, match="not a database"):
        QuickCatalog(garbage)
    with pytest.raises(Unsuitable, match="No such file or directory"):
        QuickCatalog(tmp_path / "nowhere" / "catalog.db")


def test_a_read_that_fails_once_open_is_a_catalog_error(catalog_file: Path,
                                                       tmp_path: Path) -> None:
    """Not a reason to read some other way: the command says it, as through the ORM."""
    path = Path(shutil.copy(catalog_file, tmp_path / "catalog.db"))
    quick = QuickCatalog(path)
    try:
        size = path.stat().st_size
        with path.open("r+b") as db:  # every page but the first (the schema) damaged
            db.seek(4096)
            db.write(b"\xff" * (size - 4096))
        with pytest.raises(CatalogError, match=r"catalog: cannot read .*catalog\.db: "
                                               r"database disk image is malformed"):
            quick.recordings()
    finally:
        quick.close()


def test_the_readers_import_no_orm(home: Path, recent_volume: Path) -> None:
    """`log` and `show` on a SQLite store of this release load neither SQLAlchemy nor
    SQLModel (their import alone is longer than these commands may take, issue 11)."""
    evidock = str(Path(sys.executable).with_name("evidock"))
    subprocess.run([evidock, "ingest", str(recent_volume)], capture_output=True, timeout=300,
                   check=False)
    probe = (f"import runpy, sys\nsys.argv = ['evidock', *sys.argv[1:]]\ntry:\n"
             f"    runpy.run_path({evidock!r}, run_name='__main__')\nfinally:\n"
             "    sys.stderr.write('ORM' if 'sqlalchemy' in sys.modules else 'no ORM')\n")
    for args in (["log", "--json"], ["show", "1", "--json"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)
        assert done.stderr.rstrip().endswith("no ORM"), done.stderr
