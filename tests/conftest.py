"""Shared fixtures: real clips made by ffmpeg, real SQLite catalogs, real vaults."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.settings import Settings, load_settings
from agent.station import open_station
from devices.media import ShiftPlan, make_clip, record_shift, recorder_name
from devices.source import FolderSource
from ingest.dock import IngestContext, Progress, Summary, Volume
from ingest.pipeline import Dock
from ingest.plan import Identity
from tests.pgserver import PASSWORD, PgServer

ZONE = ZoneInfo("Asia/Shanghai")
# The shift in the shared template volume ends here; tests' clocks sit just after it.
SHIFT_END = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock the tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _shift(factory: pytest.TempPathFactory, name: str, end: datetime) -> Path:
    """One recorder's shift, made once per test run: 3 clips, a truncated one, photo, audio."""
    root = factory.mktemp(name) / "volume"
    record_shift(root, ShiftPlan(), end, ZONE)
    return root


@pytest.fixture(scope="session")
def template_volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shift that ended at SHIFT_END, for tests on the mocked clock."""
    return _shift(tmp_path_factory, "template", SHIFT_END)


@pytest.fixture(scope="session")
def recent_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shift that ended an hour ago by the real clock, for tests of evidock as a process."""
    return _shift(tmp_path_factory, "recent", datetime.now(UTC) - timedelta(hours=1))


@pytest.fixture
def volume(tmp_path: Path, template_volume: Path) -> Path:
    """A private copy of the template volume for one test to change as it likes."""
    return Path(shutil.copytree(template_volume, tmp_path / "recorder"))


@pytest.fixture
def recent_volume(tmp_path: Path, recent_template: Path) -> Path:
    return Path(shutil.copytree(recent_template, tmp_path / "recent-recorder"))


@pytest.fixture(scope="session")
def one_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    start = SHIFT_END.astimezone(ZONE) - timedelta(hours=1)
    return make_clip(folder / recorder_name("ZFY0002", "100232", start, "MP4"), 2.0, start)


@pytest.fixture(autouse=True)
def _umask_kept() -> Iterator[None]:
    """A command run in-process sets the process's umask (setting `umask`); every test
    starts from the usual 022, whatever ran before it (session fixtures included)."""
    os.umask(0o022)
    yield
    os.umask(0o022)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """A real PostgreSQL server (Debian's), started for this test run."""
    server = PgServer().start()
    yield server
    server.destroy()


@pytest.fixture
def catalog_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The catalog settings of this run: none (SQLite in home), or under --catalog=postgres
    a new database on the run's PostgreSQL server, reached with a password."""
    if request.config.getoption("--catalog") != "postgres":
        return {}
    server: PgServer = request.getfixturevalue("pg")
    return {"EVIDOCK_DATABASE_URL": server.database(), "EVIDOCK_DATABASE_PASSWORD": PASSWORD}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_env: dict[str, str]) -> Path:
    """EVIDOCK_HOME for this test only; no other EVIDOCK_* variable leaks in, and no
    settings file is read unless the test names one."""
    for name in list(os.environ):
        if name.startswith("EVIDOCK_"):
            monkeypatch.delenv(name)
    data = tmp_path / "home"
    monkeypatch.setenv("EVIDOCK_HOME", str(data))
    monkeypatch.setenv("EVIDOCK_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("EVIDOCK_AGENCY", "Test Agency")
    monkeypatch.setenv("EVIDOCK_STATION_ID", "station-1")
    for name, value in catalog_env.items():
        monkeypatch.setenv(name, value)
    return data


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings()


@pytest.fixture
def clock() -> Clock:
    return Clock(SHIFT_END + timedelta(hours=1))


@pytest.fixture
def station(settings: Settings, clock: Clock) -> Iterator[IngestContext]:
    ctx = open_station(settings)
    ctx.clock = clock
    yield ctx
    ctx.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the torture and misbehaviour suites at their full counts")
    parser.addoption("--catalog", choices=("sqlite", "postgres"), default="sqlite",
                     help="the catalog the `home` fixture's settings name: SQLite in home, "
                     "or a database on a PostgreSQL server the tests start")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Torture suites' time limits fit their CI counts: under --long, or with a count set
    through EVIDOCK_TORTURE_*, they run without one. The --catalog=postgres pass leaves
    out the tests about SQLite itself (the SQLite pass runs them)."""
    if config.getoption("--catalog") == "postgres":
        kept = [i for i in items if i.get_closest_marker("sqlite_only") is None]
        if len(kept) != len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in kept])
            items[:] = kept
    if config.getoption("--long") or any(k.startswith("EVIDOCK_TORTURE_") for k in os.environ):
        for item in items:
            if item.get_closest_marker("torture") is not None:
                item.add_marker(pytest.mark.timeout(0), append=False)


@pytest.fixture(scope="session")
def long_mode(request: pytest.FixtureRequest) -> bool:
    """True under --long: proof suites run their full counts instead of the CI short mode."""
    return bool(request.config.getoption("--long"))


def run_dock(station: IngestContext, volume: Volume, given: Identity | None = None,
             progress: Progress | None = None) -> Summary:
    """Dock a folder the way `evidock ingest` does (no command port)."""
    return Dock(station, FolderSource(volume), given=given, progress=progress).run()
