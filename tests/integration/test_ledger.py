"""Custody: each attack on a station's files, on a fresh store, is caught by verify.

The attacker has the station's files (catalog, vault, even the key folder) but not
the checkpoints written to the outbox. Each case edits a real store made by a real
ingest and runs the real `evidock verify`.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from typer.testing import CliRunner

from agent.settings import load_settings
from agent.station import open_catalog
from cli import app
from ingest import custody
from storage import ledger
from storage.catalog import Catalog, make_engine
from storage.keys import load_or_create
from storage.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.catalogdb import RawCatalog, raw_catalog

runner = CliRunner()
Attack = Callable[[Path, RawCatalog], None]


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store(home: Path, recent_volume: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVIDOCK_CHECKPOINT_OUTBOX", str(home.parent / "outbox"))
    code, _, err = evidock("ingest", str(recent_volume), "--json")
    assert code == 1, err  # the truncated clip is a storage fault (R3)
    code, out, _ = evidock("verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    return home


def problems(*args: str) -> set[tuple[str, str]]:
    code, out, err = evidock("verify", "--json", *args)
    report = json.loads(out)
    assert code == 1 and not report["ok"], err
    return {(p["kind"], p["subject"]) for p in report["problems"]}


def sql(statement: str) -> Attack:
    def attack(_home: Path, db: RawCatalog) -> None:
        db.execute(statement)
    return attack


def delete_recording_and_file(home: Path, db: RawCatalog) -> None:
    (path,) = db.execute("select vault_path from recording where id = 2").fetchone()
    db.execute("delete from recording where id = 2")
    vault_file = home / "vault" / path
    vault_file.chmod(0o644)
    vault_file.unlink()


def rebuild_head(db: RawCatalog) -> None:
    """What an attacker with the database does after cutting leaves: a consistent head."""
    frontier: list[bytes] = []
    rows = db.execute("select seq, body from ledger_leaf order by seq").fetchall()
    db.execute("delete from ledger_leaf")
    for seq, (_, body) in enumerate(rows):
        data = json.loads(body)
        data["seq"] = seq
        raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("ascii")
        frontier = ledger.frontier_append(frontier, seq, leaf_hash(raw))
        db.execute("insert into ledger_leaf (seq, at, kind, subject, body, leaf_hash) "
                   "values (?, '2026-01-01 00:00:00', ?, '', ?, ?)",
                   (seq, data["kind"], raw.decode("ascii"), leaf_hash(raw).hex()))
    db.execute("update ledger_head set size = ?, frontier = ?, root = ?",
               (len(rows), json.dumps([h.hex() for h in frontier]),
                ledger.frontier_root(frontier).hex()))


def cut_the_last_leaves(_home: Path, db: RawCatalog) -> None:
    db.execute("delete from ledger_leaf where seq >= (select size - 3 from ledger_head)")


def remove_a_leaf_and_rebuild(_home: Path, db: RawCatalog) -> None:
    db.execute("delete from ledger_leaf where seq = 3")
    rebuild_head(db)


def edit_a_leaf(_home: Path, db: RawCatalog) -> None:
    db.execute("update ledger_leaf set body = replace(body, '\"state\":\"stored\"', "
               "'\"state\":\"quarantined\"') where kind = 'recording'")


def plant_a_row(_home: Path, db: RawCatalog) -> None:
    db.execute("insert into officer (officer_no, name) values ('999999', 'planted')")


ATTACKS: dict[str, tuple[Attack, set[str]]] = {
    "recording row and file deleted": (delete_recording_and_file, {"row_missing"}),
    "case number edited": (sql("update recording set case_no = 'A-1' where id = 1"),
                           {"row_differs"}),
    "party edited": (sql("update recording set party = 'x' where id = 1"), {"row_differs"}),
    "category edited": (sql("update recording set category = 'x' where id = 1"),
                        {"row_differs"}),
    "late flag flipped": (sql("update recording set late = not late where id = 1"),
                          {"row_differs"}),
    "explanation status edited": (sql("update explanation set status = 'completed'"),
                                  {"row_differs"}),
    "explanation text edited": (sql("update explanation set error = 'nothing happened'"),
                                {"row_differs"}),
    "dock facts edited": (sql("update dock_session set battery_pct = 100, "
                              "clock_drift_s = 0, device_log = '[]'"), {"row_differs"}),
    "officer name edited": (sql("update officer set name = 'someone else'"), {"row_differs"}),
    "device state edited": (sql("update device set status = 'retired'"), {"row_differs"}),
    "last leaves cut off": (cut_the_last_leaves, {"ledger_head", "checkpoint"}),
    "leaf removed, tree rebuilt": (remove_a_leaf_and_rebuild, {"checkpoint"}),
    "leaf edited": (edit_a_leaf, {"ledger_leaf", "ledger_head"}),
    "row planted": (plant_a_row, {"row_without_leaf"}),
    "checkpoint forged": (sql("update checkpoint set note = replace(note, 'evidock', 'evidocK')"),
                          {"checkpoint"}),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_is_caught(store: Path, name: str) -> None:
    attack, expected = ATTACKS[name]
    with raw_catalog(store) as db:
        attack(store, db)
    found = {kind for kind, _ in problems()}
    assert expected <= found, (name, found)


@pytest.mark.sqlite_only
def test_a_corrupted_sqlite_page_is_caught(store: Path) -> None:
    catalog = store / "catalog.db"
    with sqlite3.connect(catalog) as db:
        db.execute("pragma wal_checkpoint(truncate)")
        (page_size,) = db.execute("pragma page_size").fetchone()
        (root,) = db.execute("select rootpage from sqlite_master "
                             "where name = 'ix_recording_sha256'").fetchone()
    with catalog.open("r+b") as f:  # scribble over one index page
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xff" * 64)
    code, out, err = evidock("verify", "--json")
    assert code == 1
    assert "catalog_damaged" in out or "malformed" in (out + err), (out, err)


def test_a_rolled_back_ledger_is_caught_by_an_outside_checkpoint(store: Path) -> None:
    outbox = store.parent / "outbox"
    (kept,) = sorted(outbox.iterdir())  # the checkpoint written after the dock
    assert kept.read_text().startswith("evidock/station-1\n")
    with raw_catalog(store) as db:  # undo the dock's last file, fully
        (last,) = db.execute("select max(id) from recording").fetchone()
        (cut,) = db.execute("select min(seq) from ledger_leaf where kind = 'recording' "
                            "and subject = ?", (str(last),)).fetchone()
        db.execute("delete from ledger_leaf where seq >= ?", (cut,))
        db.execute("delete from explanation where recording_id = ?", (last,))
        db.execute("delete from recording where id = ?", (last,))
        db.execute("delete from checkpoint")
        rebuild_head(db)
    found = {kind for kind, _ in problems("--checkpoint", str(kept))}
    assert "checkpoint" in found


def test_a_replaced_station_key_is_refused_not_adopted(store: Path) -> None:
    key = store / "keys" / "station.key"
    key.chmod(0o600)
    key.unlink()
    code, _, err = evidock("checkpoint")  # a writer that is not first makes no key
    assert code != 0 and not key.exists()
    load_or_create(key)  # the attacker's new key
    for args in (["annotate", "1", "--case", "X", "--by", "a"], ["checkpoint"],
                 ["ingest", str(store)]):
        code, _, err = evidock(*args)
        assert code == 1 and "is not the key station station-1 signs with" in err, args
    code, _, err = evidock("log")  # readers never read the key, so never adopt it
    assert code == 0, err
    assert "key_changed" in {kind for kind, _ in problems()}  # verify says so, and why


def test_checkpoint_command_signs_prints_and_writes_the_outbox(store: Path) -> None:
    code, out, err = evidock("checkpoint")
    assert code == 0, err
    lines = out.split("\n")
    assert lines[0] == "evidock/station-1" and int(lines[1]) > 0 and lines[3] == ""
    assert lines[4].startswith("\u2014 evidock/station-1 ")
    written = sorted((store.parent / "outbox").iterdir())
    assert written[-1].read_text() == out
    code, out, _ = evidock("verify", "--checkpoint", str(written[-1]))
    assert code == 0 and "all intact" in out


@pytest.mark.sqlite_only
def test_a_store_with_an_event_chain_is_upgraded_and_says_so(
        home: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{home / 'catalog.db'}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(ledger.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.exec_driver_sql(
            "insert into officer (officer_no, name) values ('100231', 'old')")
        conn.exec_driver_sql(
            "insert into event (at, kind, subject, payload, prev_hash, hash) values "
            "('2026-01-01 00:00:00', 'officer', '100231', '{}', '" + "0" * 64 + "', 'h1')")
    engine.dispose()
    with caplog.at_level("WARNING", logger="evidock"):
        catalog = Catalog.open(url)
    try:
        kinds = [leaf.kind for leaf in catalog.leaves()]
        assert kinds == ["legacy-event", "ledger-start", "schema-upgrade"]
        start = json.loads(list(catalog.leaves())[1].body)
        assert start["payload"] == {"from_event_chain": 1, "chain_head": "h1",
                                    "rows": "as found"}
        assert {"table": "officer", "key": "100231"}.items() <= start["changes"][0].items()
        assert catalog.head().size == 3
    finally:
        catalog.close()
    assert "built from its event chain (1 events)" in caplog.text


def test_prove_gives_proofs_that_check_against_the_signed_checkpoint(store: Path) -> None:
    code, out, _ = evidock("log", "--json")
    recording = json.loads(out)[0]["id"]
    code, out, err = evidock("prove", str(recording))
    assert code == 0, err
    proof = json.loads(out)
    body = proof["leaf"].encode("ascii")
    leaf = json.loads(body)
    assert leaf["kind"] == "recording" and leaf["subject"] == str(recording)
    lines = proof["checkpoint"].split("\n")
    root = base64.b64decode(lines[2])
    assert int(lines[1]) == proof["tree_size"] and root.hex() == proof["root"]
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert verify_inclusion(leaf_hash(body), proof["leaf_index"], proof["tree_size"], path, root)
    assert not verify_inclusion(leaf_hash(body + b" "), proof["leaf_index"],
                                proof["tree_size"], path, root)
    code, out, err = evidock("prove", "--from", "3")
    assert code == 0, err
    step = json.loads(out)
    assert verify_consistency(3, step["new_size"], bytes.fromhex(step["old_root"]), root,
                              [bytes.fromhex(h) for h in step["proof"]])
    for bad in (["prove", "999"], ["prove", "--from", "100000"], ["prove"],
                ["prove", "1", "--from", "2"], ["prove", "--to", "3"]):
        code, _, err = evidock(*bad)
        assert code == 2 and err, bad


def test_a_rotated_key_keeps_old_records_checkable_and_signs_new_ones(
        store: Path, one_clip: Path) -> None:
    code, out, err = evidock("keys", "rotate")
    assert code == 0 and "station key rotated" in out, err
    assert len(list((store / "keys").glob("station.key.retired-*"))) == 1
    code, out, err = evidock("ingest", str(one_clip.parent), "--device", "ZFY0002",
                             "--officer", "1")
    assert code in (0, 1), err
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out, out


def test_a_rotation_stopped_half_way_is_finished_at_the_next_start(
        store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def power_cut(*_args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(custody, "finish_rotation", power_cut)
        assert evidock("keys", "rotate")[0] == 130  # the ledger has the new key, the file not
    assert (store / "keys" / "station.key.new").exists()
    code, _, err = evidock("checkpoint")  # a writer other than a start: refuses
    assert code == 1 and "signs with" in err
    code, out, err = evidock("verify")  # a reader: says what the next start repairs
    assert code == 0 and "unfinished_rotation" in out, out
    assert (store / "keys" / "station.key.new").exists()
    empty = store.parent / "empty-volume"
    empty.mkdir()
    code, _, err = evidock("ingest", str(empty))
    assert not (store / "keys" / "station.key.new").exists(), err  # a writer finished it
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out, out


def test_a_rotation_not_signed_by_the_old_key_is_caught(store: Path) -> None:
    catalog = open_catalog(load_settings())
    try:
        forged = load_or_create(store / "forged.key")
        statement = json.dumps({"old_key_id": "ed25519:0000", "new_key_id": forged.key_id})
        catalog.rotate_key("station-1", forged.key_id, forged.public.pem(), {
            "statement": statement, "old_signature": forged.sign(statement.encode()),
            "new_signature": forged.sign(statement.encode())})
    finally:
        catalog.close()
    assert "key_changed" in {kind for kind, _ in problems()}


@pytest.mark.sqlite_only  # the rolled-back station is a copy of the store's folder
def test_a_witness_cosigns_only_checkpoints_that_extend_what_it_cosigned(
        store: Path, tmp_path: Path, one_clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = store.parent / "outbox"
    code, pub, _ = evidock("keys", "export-public")
    (tmp_path / "station-1.pub").write_text(pub)
    rolled_back = tmp_path / "rolled-back"
    shutil.copytree(store, rolled_back)  # the station as it was after its first dock
    (first,) = sorted(outbox.iterdir())

    def as_witness(*args: str) -> tuple[int, str, str]:
        with monkeypatch.context() as patch:
            patch.setenv("EVIDOCK_HOME", str(tmp_path / "witness"))
            patch.setenv("EVIDOCK_STATION_ID", "station-2")
            load_or_create(tmp_path / "witness" / "keys" / "station.key")
            return evidock("witness", *args, "--log-key", str(tmp_path / "station-1.pub"),
                           "--log-station", "station-1")

    code, cosigned, err = as_witness(str(first))
    assert code == 0, err
    assert cosigned.startswith(first.read_text()) and "\u2014 evidock/station-2 " in cosigned
    (tmp_path / "cosigned.checkpoint").write_text(cosigned)
    code, out, _ = evidock("verify", "--checkpoint", str(tmp_path / "cosigned.checkpoint"))
    assert code == 0, out  # the station's verify accepts its checkpoint with a cosignature

    assert evidock("ingest", str(one_clip.parent), "--device", "D2", "--officer", "2")[0] in (
        0, 1)
    second = sorted(outbox.iterdir())[-1]
    code, _, err = as_witness(str(second))
    assert code == 2 and "consistency proof" in err
    size = int(first.read_text().split("\n")[1])
    code, proof, _ = evidock("prove", "--from", str(size))
    (tmp_path / "proof.json").write_text(proof)
    code, _, err = as_witness(str(second), "--proof", str(tmp_path / "proof.json"))
    assert code == 0, err

    with monkeypatch.context() as patch:  # the station, rolled back, docks something else
        patch.setenv("EVIDOCK_HOME", str(rolled_back))
        patch.setenv("EVIDOCK_CHECKPOINT_OUTBOX", str(tmp_path / "outbox-2"))
        assert evidock("ingest", str(one_clip.parent), "--device", "D3", "--officer",
                       "3")[0] in (0, 1)
        code, proof, _ = evidock("prove", "--from", str(size))
        (tmp_path / "forked-proof.json").write_text(proof)
    forked = sorted((tmp_path / "outbox-2").iterdir())[-1]
    code, _, err = as_witness(str(forked), "--proof", str(tmp_path / "forked-proof.json"))
    assert code == 2 and ("rolled back" in err or "forked" in err or "proof" in err), err


@pytest.mark.sqlite_only  # the old store is a SQLite file
def test_a_store_made_at_schema_0005_upgrades_and_still_verifies(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/data/store-0005.tar.gz: a real store (one registered officer and recorder, one
    late clip) made by the release whose catalog was at schema 0005. The rows it holds
    lack every column added since; the upgrade's own leaf says what they took."""
    import tarfile
    with tarfile.open(Path(__file__).parents[1] / "data" / "store-0005.tar.gz") as tar:
        tar.extractall(home, filter="tar")
    monkeypatch.setenv("EVIDOCK_STATION_ID", "s1")
    code, _, err = evidock("verify")
    assert code == 1 and "schema 0005" in err  # a reader upgrades nothing
    code, _, err = evidock("checkpoint")
    assert code == 0, err
    code, out, err = evidock("verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], report["problems"]
    catalog = Catalog.open_readonly(f"sqlite:///{home / 'catalog.db'}")
    try:
        upgrades = [json.loads(leaf.body) for leaf in catalog.leaves()
                    if leaf.kind == ledger.UPGRADE_KIND]
    finally:
        catalog.close()
    assert [(u["payload"]["from"], u["payload"]["to"]) for u in upgrades] == [("0005", "0008")]
    assert upgrades[0]["payload"]["columns"]["recording"]["sidecar"] is False
    # and an edit of a row it upgraded is still caught
    with sqlite3.connect(home / "catalog.db") as db:
        db.execute("update recording set sidecar = 1")
    assert ("row_differs", "recording 1") in problems()


@pytest.mark.sqlite_only
def test_the_columns_an_upgrade_names_are_every_column_added_since_the_ledger(
        tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(ledger.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        at_start = {name: {row[1] for row in conn.exec_driver_sql(f"pragma table_info({name})")}
                    for name in ledger.TABLES}
    engine.dispose()
    added = {name: {c.name for c in cls.__table__.columns} - at_start[name]  # type: ignore
             for name, cls in ledger.TABLES.items() if at_start[name]}
    assert {t: set(c) for t, c in ledger.COLUMNS_ADDED.items()} == {
        t: c for t, c in added.items() if c}
