"""The catalog on PostgreSQL: schema, credentials, faults, and many writers at once.

Every test here uses the real PostgreSQL server the tests start (tests/pgserver.py).
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel
from typer.testing import CliRunner

import storage.models  # noqa: F401  (the tables compare_metadata checks)
from agent.settings import load_settings
from agent.station import open_catalog
from cli import app
from storage.catalog import Catalog
from storage.errors import CatalogError, CatalogUnreachable
from storage.models import Device, Officer, now_utc
from tests.pgserver import PASSWORD, PgServer

runner = CliRunner()


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def together(runs: list[Callable[[], None]]) -> None:
    """Run each in a thread of its own, all at once, and wait for them all."""
    threads = [threading.Thread(target=run) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def first_dock(home: Path) -> None:
    """The station's first dock (an empty recorder): its key, and its catalog's schema."""
    empty = home.parent / "empty-recorder"
    empty.mkdir(exist_ok=True)
    code, _, err = evidock("ingest", str(empty))
    assert code == 0, err


@pytest.fixture
def site_url(pg: PgServer) -> str:
    return pg.database()


@pytest.fixture
def on_pg(home: Path, site_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The home fixture's settings, with the catalog on PostgreSQL, password in a file."""
    secret = home.parent / "db-password"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("EVIDOCK_DATABASE_URL", site_url)
    monkeypatch.setenv("EVIDOCK_DATABASE_PASSWORD_FILE", str(secret))
    monkeypatch.delenv("EVIDOCK_DATABASE_PASSWORD", raising=False)
    return site_url


def test_the_migrations_make_the_models_schema_on_postgresql(site_url: str) -> None:
    catalog = Catalog.open(site_url, PASSWORD)
    try:
        with catalog.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        catalog.close()
    assert diff == []


def test_a_dock_into_postgresql_verifies_and_the_password_is_never_shown(
        on_pg: str, recent_volume: Path) -> None:
    code, _, err = evidock("ingest", str(recent_volume))
    assert code == 1, err  # the truncated clip is a storage fault (R3)
    code, out, _ = evidock("verify", "--json")
    assert code == 0 and json.loads(out)["recordings"] == 6
    _, out, _ = evidock("config", "show")
    assert code == 0 and PASSWORD not in out
    assert f'catalog_url = "{on_pg}"' in out
    code, out, _ = evidock("config", "show", "--json")
    assert PASSWORD not in out


def test_the_password_from_the_environment_also_works(
        home: Path, site_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDOCK_DATABASE_URL", site_url)
    monkeypatch.setenv("EVIDOCK_DATABASE_PASSWORD", PASSWORD)
    first_dock(home)
    assert evidock("checkpoint")[0] == 0
    _, out, _ = evidock("config", "show")
    assert PASSWORD not in out and 'database_password = "**********"' in out
    assert '"password": "000000"' not in out  # nor a recorder model's


@pytest.mark.parametrize(("change", "message"), [
    ({"EVIDOCK_DATABASE_URL": "postgresql://evidock:secret@127.0.0.1/x"},
     "must not hold a password"),
    ({"EVIDOCK_DATABASE_URL": "mysql://evidock@127.0.0.1/x"}, "must be empty (SQLite"),
    ({"EVIDOCK_DATABASE_PASSWORD_FILE": "/nonexistent/password"},
     "cannot read the database password from /nonexistent/password"),
])
def test_bad_database_settings_are_clear_errors(
        on_pg: str, home: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str],
        message: str) -> None:
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    empty = home.parent / "empty-recorder"
    empty.mkdir()
    code, out, err = evidock("ingest", str(empty))
    assert code == 2 and message in err and out == "", err
    assert "Traceback" not in err and not home.exists()  # nothing was made


def test_a_wrong_password_and_a_stopped_server_are_said_plainly(
        on_pg: str, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first_dock(home)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    monkeypatch.setenv("EVIDOCK_DATABASE_PASSWORD_FILE", str(wrong))
    code, _, err = evidock("log")  # a refusal is bad settings, not an outage
    assert code == 2 and "refused evidock" in err and "password authentication" in err, err
    assert "not-the-password" not in err
    empty = home.parent / "empty-recorder"
    code, _, err = evidock("ingest", str(empty))
    assert code == 2 and "refused evidock" in err
    assert not (home / "spool").exists()  # nothing waits for a server that said no
    code, _, err = evidock("config", "validate")
    assert code == 0, err  # the file is readable; only the server can tell it is wrong
    wrong.unlink()
    code, _, err = evidock("config", "validate")
    assert code == 2 and "cannot read the database password" in err
    wrong.write_text("not-the-password\n")
    monkeypatch.setenv("EVIDOCK_DATABASE_URL", on_pg.replace(
        on_pg.split("@")[1].split("/")[0], "127.0.0.1:1"))  # nothing listens on port 1
    code, _, err = evidock("checkpoint")
    assert code == 1 and "cannot reach the catalog postgresql://" in err, err
    assert "Traceback" not in err


def test_without_the_driver_the_catalog_says_what_to_install(
        site_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(CatalogError, match=r"pip install 'evidock\[postgres\]'"):
        Catalog.open(site_url, PASSWORD)


def test_many_writers_append_one_ledger_and_never_write_from_a_stale_read(
        on_pg: str) -> None:
    """Eight writers (as eight stations) each change the same device row and add their
    own rows 25 times; the ledger stays one gap-free sequence and every row matches it."""
    settings = load_settings()
    catalogs = [open_catalog(settings) for _ in range(8)]
    for n, catalog in enumerate(catalogs):
        catalog.station_id = f"station-{n}"
    errors: list[BaseException] = []

    def write(n: int, catalog: Catalog) -> None:
        try:
            for i in range(25):
                with catalog.transaction("test write") as db:
                    device = db.get(Device, "SHARED") or Device(
                        device_no="SHARED", first_seen=now_utc(), last_seen=now_utc())
                    device.model = f"{n}-{i}"  # each writer a different column value...
                    device.status = "active" if i % 2 else "in_repair"  # ...and another
                    db.add(device)
                    db.add(Officer(officer_no=f"{n:02d}{i:03d}"))
                    catalog.append_event(db, "test", f"{n}/{i}", {})
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    together([functools.partial(write, n, c) for n, c in enumerate(catalogs)])
    for catalog in catalogs:
        catalog.close()
    assert errors == []
    code, out, _ = evidock("verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], report["problems"]
    with psycopg.connect(on_pg, password=PASSWORD) as db:
        seqs = [r[0] for r in db.execute("select seq from ledger_leaf order by seq")]
        (officers,) = db.execute("select count(*) from officer").fetchone() or (0,)
    assert seqs == list(range(len(seqs))) and officers == 200


def test_stations_starting_together_migrate_an_empty_catalog_once(site_url: str) -> None:
    opened: list[Catalog] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(Catalog.open(site_url, PASSWORD))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    together([start] * 4)
    for catalog in opened:
        catalog.close()
    assert errors == [] and len(opened) == 4


def test_a_stopped_server_is_unreachable_not_a_damaged_catalog(
        pg: PgServer, site_url: str) -> None:
    catalog = Catalog.open(site_url, PASSWORD)
    catalog.close()
    pg.stop()
    try:
        with pytest.raises(CatalogUnreachable, match="cannot reach"):
            Catalog.open_readonly(site_url, PASSWORD)
    finally:
        pg.restart()


def test_verify_and_checkpoints_hold_while_other_stations_write(on_pg: str) -> None:
    """verify and checkpoint read one snapshot: writers busy at the same time never make
    them report a problem or refuse."""
    first_dock(Path(load_settings().home))
    settings = load_settings()
    writers = [open_catalog(settings) for _ in range(3)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(n: int, catalog: Catalog) -> None:
        catalog.station_id = f"busy-{n}"
        try:
            i = 0
            while not stop.is_set():
                with catalog.transaction("test write") as db:
                    db.add(Officer(officer_no=f"busy{n}-{i}"))
                i += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n, c)) for n, c in enumerate(writers)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            code, out, err = evidock("verify", "--json")
            report = json.loads(out)
            assert code == 0 and report["ok"], report["problems"]
            code, _, err = evidock("checkpoint")
            assert code == 0, err
    finally:
        stop.set()
        for t in threads:
            t.join()
        for catalog in writers:
            catalog.close()
    assert errors == []
