"""`make bench`: the benchmarks as one record. Each runs in a process of its own, one after
the other (they share the disk and the cores); then one table is printed and one JSON is
written to bench/results/bench-<time>.json: the machine's facts, the date, every
benchmark's own results, and the table's rows (measured, what it is measured against,
the ratio, the target and whether it is met).

Parts (each also runs alone, see its file): ingest_bench (1 and 4 GiB, read-back, a site),
usb_bench (a source throttled to USB rates), dock_bench (1, 2 and 8 recorders at once),
small_files_bench (500 photos), startup_bench (CLI start-up) and verify_bench (`verify`
against hash-only). Without root or the blkio cgroup the USB part says why and is left out.
Usage: python bench/suite.py [--dir /var/tmp/evidock-bench] [--only ingest,usb,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import machine, save

HERE = Path(__file__).parent
PARTS: dict[str, list[str]] = {
    "ingest": ["ingest_bench.py", "--sizes", "1,4", "--repeat", "3", "--site"],
    "usb": ["usb_bench.py", "--rates", "35,200", "--mib", "256,1024", "--repeat", "3"],
    "dock": ["dock_bench.py", "--rounds", "3", "--mib", "256"],
    "small_files": ["small_files_bench.py", "--files", "500", "--repeat", "3", "--site"],
    "startup": ["startup_bench.py", "--repeat", "10"],
    "verify": ["verify_bench.py", "--gib", "4", "--files", "8", "--repeat", "3"],
}

Row = dict[str, Any]


def row(what: str, measured: float, unit: str, *, against: str = "", base: float | None = None,
        ratio: float | None = None, target: str = "", met: bool | None = None) -> Row:
    return {"what": what, "measured": measured, "unit": unit, "against": against,
            "baseline": base, "ratio": ratio, "target": target, "met": met}


def ingest_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for size in r["sizes"]:
        res = size["results"]
        floor_name = min(("hash-only", "dd"), key=lambda n: res[n]["mb_per_s"])
        floor = res[floor_name]["mb_per_s"]
        v = res["ingest+v"]["mb_per_s"]
        rows.append(row(f"ingest {size['gib']} GiB, read-back", v, "MB/s",
                        against=f"min(hash-only, dd) = {floor_name}", base=floor,
                        ratio=v / floor, target=">= 0.9", met=v / floor >= 0.9))
        dock = res["ingest+v"]["dock_mb_per_s"]
        rows.append(row(f"ingest {size['gib']} GiB, read-back: the dock alone", dock, "MB/s",
                        against=floor_name, base=floor, ratio=dock / floor, target=">= 0.9",
                        met=dock / floor >= 0.9))
        plain = res["ingest"]["mb_per_s"]
        rows.append(row(f"ingest {size['gib']} GiB, no read-back", plain, "MB/s",
                        against=floor_name, base=floor, ratio=plain / floor))
        if "site" in res:
            site = res["site"]["mb_per_s"]
            rows.append(row(f"site {size['gib']} GiB (PostgreSQL catalog)", site, "MB/s",
                            against="station", base=v, ratio=site / v, target=">= 0.9",
                            met=site / v >= 0.9))
    return rows


def usb_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for rate in r["rates"]:
        name = f"USB source {rate['throttle_mb_s']} MB/s"
        rows.append(row(f"{name}: dock (daemon running)", rate["dock_mb_s"], "MB/s",
                        against="source read alone", base=rate["source_mb_s"],
                        ratio=rate["dock/source"], target=">= 0.97",
                        met=rate["dock/source"] >= 0.97))
        rows.append(row(f"{name}: `evidock ingest` process", rate["ingest_mb_s"], "MB/s",
                        against="source read alone", base=rate["source_mb_s"],
                        ratio=rate["ingest/source"]))
        rows.append(row(f"{name}: CPU used by ingest", rate["ingest_cpu_cores"], "cores"))
    return rows


def dock_rows(r: dict[str, Any]) -> list[Row]:
    lat, one = r["latency"], r["one"]
    rows = [row("3-clip recorder: plug to first byte", lat["first_byte_s"], "s",
                target="<= 1", met=lat["first_byte_s"] <= 1),
            row("3-clip recorder: plug to verified", lat["verified_s"], "s",
                target="<= 3", met=lat["verified_s"] <= 3),
            row("1 recorder (256 MiB of H.264)", one["aggregate_mb_s"], "MB/s")]
    for name, count in (("two", 2), ("eight", 8)):
        many = r[name]
        rows.append(row(f"{count} recorders at once, aggregate", many["aggregate_mb_s"], "MB/s",
                        against="1 recorder", base=one["aggregate_mb_s"],
                        ratio=many["aggregate_mb_s"] / one["aggregate_mb_s"]))
        rows.append(row(f"{count} recorders: slowest against the mean",
                        many["fairness_min"], "x", target=">= 0.8",
                        met=many["fairness_min"] >= 0.8))
    rows.append(row("8 recorders: peak RSS", r["eight"]["peak_rss_mb"], "MB", target="<= 200",
                    met=r["eight"]["peak_rss_mb"] <= 200))
    return rows


def small_files_rows(r: dict[str, Any]) -> list[Row]:
    rate = r["files_per_s"]
    rows = [row(f"{r['files']} photos, station", rate["ingest"], "files/s",
                against="durable copy loop", base=rate["baseline"],
                ratio=rate["ingest"] / rate["baseline"], target=">= 50 files/s",
                met=rate["ingest"] >= 50)]
    if "site" in rate:
        rows.append(row(f"{r['files']} photos, site", rate["site"], "files/s",
                        against="station", base=rate["ingest"],
                        ratio=rate["site"] / rate["ingest"], target=">= 0.9",
                        met=rate["site"] / rate["ingest"] >= 0.9))
    return rows


def startup_rows(r: dict[str, Any]) -> list[Row]:
    m = r["median_s"]
    return [row(f"start-up: {name}", value, "s",
                target="" if not name.startswith("evidock") else f"<= {r['target_s']}",
                met=None if not name.startswith("evidock") else value <= r["target_s"])
            for name, value in m.items()]


def verify_rows(r: dict[str, Any]) -> list[Row]:
    size = r["bytes"]
    m = r["median_s"]
    return [row(f"verify, {size / (1 << 30):.0f} GiB vault", size / m["verify"] / 1e6, "MB/s",
                against="hash-only", base=size / m["hash-only"] / 1e6,
                ratio=r["verify_over_hash_only"], target=">= 0.9",
                met=r["verify_over_hash_only"] >= 0.9)]


ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "ingest": ingest_rows, "usb": usb_rows, "dock": dock_rows,
    "small_files": small_files_rows, "startup": startup_rows, "verify": verify_rows}


def table(rows: list[Row]) -> str:
    def num(v: float | None) -> str:
        return "" if v is None else f"{v:,.2f}" if v < 10 else f"{v:,.0f}"
    lines = [f"{'measure':50} {'measured':>14} {'against':>28} {'ratio':>6} "
             f"{'target':>13} {'met':>4}"]
    for r in rows:
        against = f"{r['against']} {num(r['baseline'])}".strip()
        met = "" if r["met"] is None else "yes" if r["met"] else "NO"
        lines.append(f"{r['what'][:50]:50} {num(r['measured']) + ' ' + r['unit']:>14} "
                     f"{against[:28]:>28} {num(r['ratio']):>6} {r['target']:>13} {met:>4}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/evidock-bench"))
    parser.add_argument("--only", help="comma-separated parts (default: all)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(PARTS)
    args.dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    parts: dict[str, Any] = {}
    durations: dict[str, float] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="evidock-suite-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(HERE / PARTS[name][0]), *PARTS[name][1:], "--out",
                   str(out)]
            if name in ("ingest", "usb", "verify"):
                cmd += ["--dir", str(args.dir / name)]
            print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
            began = time.monotonic()
            done = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
            durations[name] = time.monotonic() - began
            print(done.stdout, end="", flush=True)
            if done.returncode != 0:
                raise SystemExit(f"bench part {name} failed ({done.returncode})")
            if not out.exists():  # the part said why it could not run
                skipped[name] = done.stdout.strip().splitlines()[-1]
                continue
            parts[name] = json.loads(out.read_text())
    rows = [r for name, got in parts.items() for r in ROWS[name](got)]
    print()
    print(table(rows))
    for name, why in skipped.items():
        print(f"{name}: {why}")
    total = time.monotonic() - started
    path = save("bench", {"machine": machine(args.dir), "seconds": total,
                          "part_seconds": durations, "skipped": skipped, "rows": rows,
                          "parts": parts})
    print(f"\n{total / 60:.1f} min; results in {path}")


if __name__ == "__main__":
    main()
