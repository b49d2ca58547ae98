"""The ledger at a million leaves: appends, checkpoints and proofs, against baselines.

  append     one catalog write through the real path (``Catalog.log``: BEGIN IMMEDIATE,
             the head row, the leaf, commit with synchronous=FULL), against the same
             leaf body written to a plain table in the same kind of durable transaction
             (the cost of the commit alone); side by side, at an empty ledger and at
             --leaves leaves
  grow       the ledger grown to --leaves with the ledger's own encoding, hashing and
             compact range (leaf_body, leaf_hash, frontier_append), 10 000 leaves per
             transaction: leaves per second
  checkpoint ``custody.make`` at --leaves (reads the stored leaf hashes, checks the head
             and the previous checkpoint, signs)
  proofs     ``evidock prove`` work at --leaves: an inclusion proof for random leaves and
             a consistency proof from random sizes, made from the catalog, and the time
             to verify each (what a court's verifier spends)

Prints medians; results go to bench/results/ledger-*.json.
Usage: python bench/ledger_bench.py [--leaves 1000000] [--dir /var/tmp/evidock-bench]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, update
from sqlmodel import Session, col

from ingest import custody
from storage import ledger
from storage.catalog import Catalog
from storage.keys import load_or_create
from storage.merkle import leaf_hash, verify_consistency, verify_inclusion
from storage.models import LedgerHead, LedgerLeaf

PAYLOAD = {"what": "bench", "detail": "x" * 200}  # about the size of a real event leaf
BATCH = 10_000


def appends(catalog: Catalog, plain: sqlite3.Connection, count: int) -> dict[str, float]:
    """Median microseconds per append: the ledger path and the plain durable insert,
    interleaved in blocks of 25."""
    got: dict[str, list[float]] = {"ledger": [], "plain": []}
    body = json.dumps(PAYLOAD)
    for block in range(count // 25):
        start = time.perf_counter()
        for i in range(25):
            catalog.log("bench", f"{block}.{i}", PAYLOAD)
        got["ledger"].append((time.perf_counter() - start) / 25 * 1e6)
        start = time.perf_counter()
        for _ in range(25):
            plain.execute("BEGIN IMMEDIATE")
            plain.execute("INSERT INTO leaf (body) VALUES (?)", (body,))
            plain.execute("COMMIT")
        got["plain"].append((time.perf_counter() - start) / 25 * 1e6)
    return {name: statistics.median(values) for name, values in got.items()}


def grow(catalog: Catalog, to: int) -> float:
    """Append leaves until the ledger has ``to``; leaves per second."""
    head = catalog.head()
    frontier = [bytes.fromhex(h) for h in json.loads(head.frontier)]
    size = head.size
    at = datetime.now(UTC)
    start = time.perf_counter()
    added = 0
    while size < to:
        rows = []
        for seq in range(size, min(size + BATCH, to)):
            body = ledger.leaf_body(seq, at, "bench", ("bench", str(seq), PAYLOAD), {})
            digest = leaf_hash(body)
            frontier = ledger.frontier_append(frontier, seq, digest)
            rows.append({"seq": seq, "at": at, "kind": "bench", "subject": str(seq),
                         "body": body.decode("ascii"), "leaf_hash": digest.hex()})
        assert catalog.writer is not None
        with Session(catalog.writer) as db, db.begin():
            db.execute(insert(LedgerLeaf), rows)
            db.execute(update(LedgerHead).where(col(LedgerHead.id) == 1).values(
                size=seq + 1, frontier=json.dumps([h.hex() for h in frontier]),
                root=ledger.frontier_root(frontier).hex()))
        added += len(rows)
        size = seq + 1
    return added / (time.perf_counter() - start)


def timed(fn: object, *args: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start, result


def proofs(catalog: Catalog, size: int, rounds: int) -> dict[str, float]:
    rng = random.Random(7)
    made: dict[str, list[float]] = {"inclusion_make_s": [], "inclusion_verify_us": [],
                                    "consistency_make_s": [], "consistency_verify_us": []}
    for _ in range(rounds):
        seq = rng.randrange(size)
        seconds, got = timed(custody.inclusion, catalog, seq)
        p = dict(got)  # type: ignore[call-overload]
        made["inclusion_make_s"].append(seconds)
        path = [bytes.fromhex(h) for h in p["proof"]]
        start = time.perf_counter()
        verify_inclusion(bytes.fromhex(p["leaf_hash"]), seq, p["tree_size"], path,
                         bytes.fromhex(p["root"]))
        made["inclusion_verify_us"].append((time.perf_counter() - start) * 1e6)
        old = rng.randrange(1, size)
        seconds, got = timed(custody.consistency, catalog, old, None)
        c = dict(got)  # type: ignore[call-overload]
        made["consistency_make_s"].append(seconds)
        path = [bytes.fromhex(h) for h in c["proof"]]
        start = time.perf_counter()
        verify_consistency(old, c["new_size"], bytes.fromhex(c["old_root"]),
                           bytes.fromhex(c["new_root"]), path)
        made["consistency_verify_us"].append((time.perf_counter() - start) * 1e6)
    return {name: statistics.median(values) for name, values in made.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=500, help="appends timed per size")
    parser.add_argument("--rounds", type=int, default=5, help="proofs made per kind")
    parser.add_argument("--dir", default="/var/tmp/evidock-bench", type=Path)
    args = parser.parse_args()
    work = args.dir / "ledger"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    catalog = Catalog.open(f"sqlite:///{work / 'catalog.db'}")
    catalog.station_id = "bench"
    key = load_or_create(work / "station.key")
    plain = sqlite3.connect(work / "plain.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL"):
        plain.execute(f"PRAGMA {pragma}")
    plain.execute("CREATE TABLE leaf (id INTEGER PRIMARY KEY, body TEXT)")
    report: dict[str, object] = {"leaves": args.leaves}

    small = appends(catalog, plain, args.appends)
    print(f"append at {catalog.head().size} leaves: ledger {small['ledger']:.0f} us, "
          f"plain durable insert {small['plain']:.0f} us "
          f"({small['ledger'] / small['plain']:.2f} x)", flush=True)
    rate = grow(catalog, args.leaves)
    print(f"grow to {args.leaves:,} leaves: {rate:,.0f} leaves/s", flush=True)
    big = appends(catalog, plain, args.appends)
    print(f"append at {catalog.head().size:,} leaves: ledger {big['ledger']:.0f} us, "
          f"plain durable insert {big['plain']:.0f} us "
          f"({big['ledger'] / big['plain']:.2f} x); against an empty ledger "
          f"{big['ledger'] / small['ledger']:.2f} x", flush=True)
    report["append_small_us"], report["append_big_us"], report["grow_leaves_per_s"] = (
        small, big, rate)

    seconds, _ = timed(custody.make, catalog, key, "bench", None)
    print(f"checkpoint at {catalog.head().size:,} leaves: {seconds:.2f} s", flush=True)
    report["checkpoint_s"] = seconds
    got = proofs(catalog, catalog.head().size - args.appends, args.rounds)
    print(f"inclusion proof: make {got['inclusion_make_s']:.2f} s, verify "
          f"{got['inclusion_verify_us']:.0f} us; consistency proof: make "
          f"{got['consistency_make_s']:.2f} s, verify {got['consistency_verify_us']:.0f} us",
          flush=True)
    report["proofs"] = got
    catalog.close()
    plain.close()
    out = Path(__file__).with_name("results")
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"ledger-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
