"""`evidock log` filters over a million recordings.

A catalog gets --recordings rows shaped like a large unit's years of work: 300
recorders, 300 officers, a clip every few minutes of duty over three years, 2 % late,
1 % in a case, 0.5 % quarantined. Each filter of `evidock log` is then timed in-process
(the query for the most recent 1000 that match, the count of all that match when there
are more, and the rows made ready to print, as the command does after start-up), median
of --repeat runs; the target is under 100 ms. On SQLite each filter is timed through
storage.catalog (ms) and through storage/quickread.py (quickread_ms: what `evidock log`
uses there), one after the other on the same catalog. The rows are inserted directly (no vault
files: only the query is measured).

Each engine gets the same rows: SQLite (a station's catalog) and PostgreSQL (a site's, on
a server this benchmark starts with Debian's initdb and pg_ctl, tests/pgserver.py).

Results go to bench/results/log-*.json.
Usage: python bench/log_bench.py [--recordings 1000000] [--repeat 5] [--dir DIR]
                                 [--engine sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from agent.render import recording_dict
from storage.catalog import Catalog
from storage.models import Recording
from storage.quickread import CatalogReads, QuickCatalog
from storage.terms import LogFilter

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.pgserver import PASSWORD, PgServer  # (the repository root, put on the path above)

START = datetime(2024, 1, 1, tzinfo=UTC)
DEVICES = 300
BATCH = 20_000
LIMIT = 1000  # `evidock log`'s default --limit


def fill(catalog: Catalog, count: int) -> None:
    rng = random.Random(11)
    assert catalog.writer is not None
    step = timedelta(days=3 * 365) / count
    for first in range(0, count, BATCH):
        rows = []
        for i in range(first, min(first + BATCH, count)):
            device = rng.randrange(DEVICES)
            start = START + step * i
            late = rng.random() < 0.02
            rows.append({
                "session_id": f"s{i // 40:07d}", "station_id": "bench", "agency": "bench",
                "case_no": f"2026-{rng.randrange(5000):04d}" if rng.random() < 0.01 else None,
                "device_no": f"ZFY{device:04d}", "officer_no": f"1{device:05d}",
                "source_path": f"DCIM/{i}.MP4", "source_size": 1 << 28,
                "source_mtime_ns": i, "size": 1 << 28, "sha256": f"{i:064x}",
                "signature": "s" * 88, "key_id": "ed25519:0000000000000000",
                "recording_start": start, "recording_end": start + timedelta(minutes=5),
                "start_from": "filename", "duration_s": 300.0,
                "ingested_at": start + timedelta(hours=30 if late else 9),
                "deadline": start + timedelta(hours=24, minutes=5), "late": late,
                "vault_path": f"files/{i}.MP4",
                "state": "quarantined" if rng.random() < 0.005 else "stored",
            })
        with Session(catalog.writer) as db, db.begin():
            db.execute(insert(Recording), rows)


def measure(url: str, password: str | None, count: int, repeat: int) -> dict[str, object]:
    writer = Catalog.open(url, password)
    started = time.perf_counter()
    fill(writer, count)
    writer.close()
    print(f"{count:,} recordings inserted in {time.perf_counter() - started:.0f} s", flush=True)
    catalog = Catalog.open_readonly(url, password)
    if catalog.engine.dialect.name == "postgresql":  # the statistics autovacuum would make
        with catalog.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE recording")
    middle = START + timedelta(days=500)
    filters = {
        "--device": LogFilter(device="ZFY0042"),
        "--officer": LogFilter(officer="100042"),
        "--since/--until (one day)": LogFilter(since=middle, until=middle + timedelta(days=1)),
        "--late": LogFilter(late=True),
        "--case": LogFilter(case="2026-0042"),
        "--state quarantined": LogFilter(state="quarantined"),
        "--device --since (one week)": LogFilter(device="ZFY0042", since=middle,
                                                 until=middle + timedelta(days=7)),
        "--device --late": LogFilter(device="ZFY0042", late=True),
    }
    readers: dict[str, CatalogReads] = {"ms": catalog}
    if url.startswith("sqlite:///"):  # what `evidock log` reads a station's catalog with
        readers["quickread_ms"] = QuickCatalog.of_url(url)
    report: dict[str, dict[str, float]] = {}
    for name, flt in filters.items():
        report[name] = {}
        for key, reader in readers.items():
            times, found = [], 0
            for _ in range(repeat):
                start = time.perf_counter()
                rows = reader.recordings(flt, limit=LIMIT)
                found = len([recording_dict(r) for r in rows])
                if found == LIMIT:  # the command then counts all that match, for its note
                    found = reader.count_recordings(flt=flt)
                times.append((time.perf_counter() - start) * 1e3)
            report[name] |= {"rows": found, key: statistics.median(times)}
        took = "  ".join(f"{report[name][key]:8.1f} ms" for key in readers)
        print(f"  {name:28} {found:7,} rows  {took}"
              + ("" if max(report[name][k] for k in readers) < 100
                 else "  (over the 100 ms target)"), flush=True)
    catalog.close()
    return dict(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp/evidock-bench", type=Path)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    work = args.dir / "log"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report: dict[str, object] = {"recordings": args.recordings, "filters": {}}
    if args.engine in ("sqlite", "both"):
        print("SQLite (a station's catalog)", flush=True)
        report["filters"] = measure(f"sqlite:///{work / 'catalog.db'}", None,
                                    args.recordings, args.repeat)
    if args.engine in ("postgres", "both"):
        print("PostgreSQL (a site's catalog, over TCP)", flush=True)
        server = PgServer().start()
        try:
            report["postgres_filters"] = measure(server.database(), PASSWORD,
                                                 args.recordings, args.repeat)
        finally:
            server.destroy()
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"log-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
