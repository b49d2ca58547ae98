"""`evidock verify` against hashing the vault's bytes alone, on the same vault.

A store gets --files recordings of random bytes, --gib GiB in all, through
`evidock ingest`. Each round then measures, each in its own process and each with the
vault's pages dropped from the cache first:

  hash-only  every vault file read in 1 MiB blocks and SHA-256 hashed (the floor: no
             catalog, no signatures, no ledger)
  verify     `evidock verify` (SQLite's integrity check, every ledger leaf and catalog
             row, every checkpoint, every signature, every vault file)

and prints MB/s and verify against hash-only (target: at least 0.9), median of
--repeat rounds run side by side. `verify` of an empty store is timed too: the fixed
cost of starting the command (imports, settings, catalog), which the vault's size does
not change; the ratio without it is printed as well. Results go to bench/results/verify-*.json.
Usage: python bench/verify_bench.py [--gib 8] [--files 8] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from benchlib import BIN, drop_cache, run_timed, save

HASH_ONLY = """
import hashlib, os, sys
for name in sys.argv[1:]:
    sha = hashlib.sha256()
    fd = os.open(name, os.O_RDONLY)
    buf = bytearray(1 << 20)
    while n := os.readv(fd, [buf]):
        sha.update(memoryview(buf)[:n])
    os.close(fd)
"""


def make_store(work: Path, gib: int, files: int, env: dict[str, str]) -> list[Path]:
    volume = work / "volume"
    volume.mkdir(parents=True)
    each = (gib << 30) // files
    for i in range(files):
        with (volume / f"DSJ_BENCH01_000001_20261120_08{i:02d}00.MP4").open("wb") as out:
            for _ in range(each >> 24):
                out.write(os.urandom(16 << 20))
    done = subprocess.run([str(BIN / "evidock"), "ingest", str(volume)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1: random bytes are not playable media (R3)
        raise SystemExit(f"ingest failed: {done.stderr}")
    shutil.rmtree(volume)
    stored = sorted(p for p in (work / "home" / "vault").rglob("*.MP4") if p.is_file())
    if len(stored) != files:
        raise SystemExit(f"expected {files} stored files, found {len(stored)}")
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=int, default=8)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp/evidock-bench", type=Path)
    parser.add_argument("--out", type=Path, help="the results file (default bench/results/)")
    args = parser.parse_args()
    work = args.dir / "verify"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "EVIDOCK_HOME": str(work / "home"), "EVIDOCK_STATION_ID": "bench",
           "EVIDOCK_AGENCY": "bench", "EVIDOCK_VERIFY_REREAD": "false"}
    stored = make_store(work, args.gib, args.files, env)
    size = sum(p.stat().st_size for p in stored)
    empty_env = {**env, "EVIDOCK_HOME": str(work / "empty")}
    (work / "nothing").mkdir()
    run_timed([str(BIN / "evidock"), "ingest", str(work / "nothing")], empty_env)  # empty store
    print(f"{len(stored)} files, {size:,} bytes in {work}", flush=True)
    runs: dict[str, list[float]] = {"hash-only": [], "verify": [], "verify (empty store)": []}
    for _ in range(args.repeat):
        drop_cache(*stored)
        runs["hash-only"].append(
            run_timed([sys.executable, "-c", HASH_ONLY, *map(str, stored)], env).seconds)
        drop_cache(*stored)
        runs["verify"].append(run_timed([str(BIN / "evidock"), "verify"], env).seconds)
        runs["verify (empty store)"].append(
            run_timed([str(BIN / "evidock"), "verify"], empty_env).seconds)
        print("  " + ", ".join(f"{n} {v[-1]:.2f} s" for n, v in runs.items()), flush=True)
    median = {name: statistics.median(values) for name, values in runs.items()}
    ratio = median["hash-only"] / median["verify"]
    fixed = median["verify (empty store)"]
    per_byte = median["hash-only"] / (median["verify"] - fixed)
    print(f"hash-only {size / median['hash-only'] / 1e6:.0f} MB/s, verify "
          f"{size / median['verify'] / 1e6:.0f} MB/s: verify/hash-only {ratio:.2f} x "
          f"(target 0.9); verify of an empty store {fixed:.2f} s; without that fixed cost "
          f"{per_byte:.2f} x", flush=True)
    save("verify", {"bytes": size, "files": len(stored), "seconds": runs, "median_s": median,
                    "verify_over_hash_only": ratio, "without_fixed_cost": per_byte}, args.out)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
