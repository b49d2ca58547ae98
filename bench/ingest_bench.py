"""Ingest throughput against baselines on the same bytes, in the same run.

For each size (default 1 GiB and 4 GiB of random data) it measures, each in its
own process and each starting with the source's pages dropped from the cache:

  hash-only    read + SHA-256 in 1 MiB blocks (the floor of any verified ingest)
  dd           dd bs=1M conv=fsync (the disk's durable write rate)
  ingest       `evidock ingest` without the verify re-read
  ingest+v     `evidock ingest` with the re-read of the stored copy (the default)
  site         with --site: ingest+v with the catalog on PostgreSQL (a server this
               benchmark starts, tests/pgserver.py, over TCP on this machine)

Each ingest runs on a store made just before it (not timed: the ingest of an empty
folder creates the key and the catalog's schema), as a docking station has one.
It prints throughputs, ratios and peak RSS; results go to bench/results/.
The four are measured in rounds (--repeat, default 3), interleaved so that a
slow spell of the disk hits all of them alike; the median of each is reported.
Usage: python bench/ingest_bench.py [--sizes 1,4] [--repeat 3] [--dir /var/tmp/evidock-bench]
                                    [--vault DIR]   (where dd and ingest write; default --dir)
                                    [--site]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from benchlib import BIN, drop_cache, run_timed, save

HASH_ONLY = """
import hashlib, os, sys
sha = hashlib.sha256()
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = bytearray(1 << 20)
while n := os.readv(fd, [buf]):
    sha.update(memoryview(buf)[:n])
print(sha.hexdigest())
"""


def prepare(env: dict[str, str]) -> None:
    """Make the station's store, key and catalog (schema and all) before the timed run, as
    a station that docks has them: the ingest of an empty folder, not timed."""
    with tempfile.TemporaryDirectory(prefix="evidock-empty-") as empty:
        subprocess.run([str(BIN / "evidock"), "ingest", empty], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_source(folder: Path, gib: int) -> Path:
    volume = folder / f"vol-{gib}g"
    path = volume / f"DSJ_BENCH01_000001_20261120_0{gib}0000.MP4"
    if path.exists() and path.stat().st_size == gib << 30:
        return path
    volume.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(gib * 64):
            out.write(os.urandom(16 << 20))
    return path


def dock_seconds(summary: bytes) -> float:
    """The dock's own duration (as a running daemon docks: no process start-up)."""
    got = json.loads(summary)
    return (datetime.fromisoformat(got["finished_at"])
            - datetime.fromisoformat(got["started_at"])).total_seconds()


def run_size(folder: Path, target: Path, gib: int, repeat: int,
             site: Callable[[], dict[str, str]] | None = None) -> dict[str, object]:
    """``site``: the settings of a site station with a new database (--site)."""
    source = make_source(folder, gib)
    size = source.stat().st_size
    runs: dict[str, list[tuple[float, int]]] = {}
    docks: dict[str, list[float]] = {}  # the dock's own seconds, from its summary

    def measure(name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        drop_cache(source)
        got = run_timed(cmd, env, ok=(0, 1))  # ingest exits 1: random bytes are not media
        seconds, rss = got.seconds, got.peak_rss
        runs.setdefault(name, []).append((seconds, rss))
        if "--json" in cmd:
            docks.setdefault(name, []).append(dock_seconds(got.out))
        print(f"  {name:10} {size / seconds / 1e6:8.1f} MB/s  {seconds:6.2f} s  "
              f"peak RSS {rss / 1e6:6.1f} MB", flush=True)

    print(f"{gib} GiB ({size:,} bytes)")
    dd_out = target / "dd.out"
    for _ in range(repeat):
        measure("hash-only", [sys.executable, "-c", HASH_ONLY, str(source)])
        measure("dd", ["dd", f"if={source}", f"of={dd_out}", "bs=1M", "conv=fsync",
                       "status=none"])
        dd_out.unlink()
        variants: list[tuple[str, str, dict[str, str]]] = [
            ("ingest", "false", {}), ("ingest+v", "true", {})]
        if site is not None:
            variants.append(("site", "true", site()))
        for name, reread, extra in variants:
            home = folder / f"home-{name}"
            shutil.rmtree(home, ignore_errors=True)
            vault = target / f"vault-{name}"
            env = {**os.environ, "EVIDOCK_HOME": str(home), "EVIDOCK_VERIFY_REREAD": reread,
                   "EVIDOCK_VAULT_ROOT": str(vault),
                   "EVIDOCK_STATION_ID": "bench", "EVIDOCK_AGENCY": "bench", **extra}
            prepare(env)
            measure(name, [str(BIN / "evidock"), "ingest", "--json", str(source.parent)], env)
            shutil.rmtree(home)
            shutil.rmtree(vault)
    results = {
        name: {"seconds": statistics.median(s for s, _ in got),
               "mb_per_s": size / statistics.median(s for s, _ in got) / 1e6,
               "peak_rss_mb": max(r for _, r in got) / 1e6,
               "all_mb_per_s": [size / s / 1e6 for s, _ in got]}
        for name, got in runs.items()
    }
    for name, seconds in docks.items():
        results[name]["dock_mb_per_s"] = size / statistics.median(seconds) / 1e6
    print("  medians: " + ", ".join(f"{n} {r['mb_per_s']:.0f} MB/s" for n, r in results.items()))
    base = results["hash-only"]["mb_per_s"]
    dd = results["dd"]["mb_per_s"]
    ratios = {
        f"{name}/{ref_name}": results[name]["mb_per_s"] / ref
        for name in ("ingest", "ingest+v") for ref_name, ref in (("hash-only", base), ("dd", dd))
    }
    if "site" in results:
        ratios["site/ingest+v"] = results["site"]["mb_per_s"] / results["ingest+v"]["mb_per_s"]
    for key, value in ratios.items():
        print(f"  {key:20} {value:5.2f} x")
    return {"gib": gib, "bytes": size, "results": results, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4", help="GiB sizes, comma separated")
    parser.add_argument("--dir", default="/var/tmp/evidock-bench", type=Path)
    parser.add_argument("--vault", type=Path, help="where dd and ingest write (default --dir)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--keep", action="store_true", help="keep the random sources")
    parser.add_argument("--site", action="store_true",
                        help="also ingest+v with the catalog on PostgreSQL (a site station)")
    parser.add_argument("--out", type=Path, help="the results file (default bench/results/)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    target = args.vault or args.dir
    target.mkdir(parents=True, exist_ok=True)
    print(f"sources in {args.dir}, writes to {target}")
    site: Callable[[], dict[str, str]] | None = None
    server = None
    if args.site:
        sys.path.insert(0, str(Path(__file__).parents[1]))
        from tests.pgserver import PASSWORD, PgServer
        server = PgServer().start()

        def site() -> dict[str, str]:
            assert server is not None
            return {"EVIDOCK_DATABASE_URL": server.database(),
                    "EVIDOCK_DATABASE_PASSWORD": PASSWORD, "EVIDOCK_SHARED_VAULT": "true"}
    try:
        report = [run_size(args.dir, target, int(g), args.repeat, site)
                  for g in args.sizes.split(",")]
    finally:
        if server is not None:
            server.destroy()
    save("ingest", {"sources": str(args.dir), "writes": str(target), "sizes": report}, args.out)
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
