"""The CLI as a user meets it: exit codes, data on stdout, errors on stderr."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.catalogdb import postgres_url, raw_catalog
from tests.pgserver import PASSWORD

runner = CliRunner()


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def ingested(home: Path, recent_volume: Path) -> list[dict[str, object]]:
    code, _, _ = evidock("ingest", str(recent_volume), "--json")
    assert code == 1  # the truncated clip is a storage fault (R3)
    code, out, _ = evidock("log", "--json")
    assert code == 0
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def test_ingest_log_show_and_verify(home: Path, recent_volume: Path) -> None:
    code, out, _ = evidock("ingest", str(recent_volume), "--json")
    summary = json.loads(out)
    assert code == 1 and summary["files"] == {"quarantined": 1, "stored": 5}
    assert sorted(e["kind"] for e in summary["explanations"]) == [
        "media_truncated", "unregistered_device"]
    code, out, _ = evidock("log", "--json")
    rows = json.loads(out)
    assert len(rows) == 6
    for row in rows:
        for key in ("device", "officer", "start", "sha256", "signature", "deadline", "key_id"):
            assert row[key], key
    code, out, _ = evidock("show", str(rows[0]["id"]), "--json")
    assert code == 0 and json.loads(out)["sha256"] == rows[0]["sha256"]
    code, out, _ = evidock("verify")
    assert code == 0 and "6 recordings" in out and "all intact" in out
    code, out, _ = evidock("ingest", str(recent_volume))
    assert "already held 6" in out


def test_log_filters(ingested: list[dict[str, object]]) -> None:
    def count(*args: str) -> int:
        code, out, _ = evidock("log", "--json", *args)
        assert code == 0
        return len(json.loads(out))

    assert count("--device", "ZFY0001") == 6 and count("--device", "OTHER") == 0
    assert count("--officer", "100231") == 6
    assert count("--state", "quarantined") == 1
    starts = sorted(str(r["start"]) for r in ingested)
    assert count("--since", starts[1], "--until", starts[3]) == 2
    assert count("--since", starts[-1]) == 1
    assert count("--late") == 0
    rec_id = str(ingested[0]["id"])
    code, out, _ = evidock("annotate", rec_id, "--case", "2026-017", "--party", "张三",
                           "--by", "custodian")
    assert code == 0 and "case=2026-017" in out
    assert count("--case", "2026-017") == 1
    code, out, _ = evidock("verify")
    assert code == 0, out  # annotations are catalog data: the signed record is unchanged
    code, out, _ = evidock("log")
    assert code == 0 and "ZFY0001" in out and "2026-017" in out


def test_log_limit_shows_the_most_recent_and_says_how_many_match(
        ingested: list[dict[str, object]]) -> None:
    code, out, err = evidock("log", "--json", "--limit", "2", "--device", "ZFY0001")
    newest = sorted(ingested, key=lambda r: (str(r["start"]), int(str(r["id"]))))[-2:]
    assert code == 0 and [r["id"] for r in json.loads(out)] == [r["id"] for r in newest]
    assert "showing the 2 most recent of 6 recordings that match; --limit 0 shows all" in err
    code, out, err = evidock("log", "--json", "--limit", "0")
    assert code == 0 and len(json.loads(out)) == 6 and err == ""
    code, out, err = evidock("log", "--json", "--limit", "6")
    assert code == 0 and len(json.loads(out)) == 6 and err == ""  # all shown: no note
    code, _, err = evidock("log", "--limit", "-1")
    assert code == 2 and "--limit" in err


def flip_byte(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def vault_file(home: Path, row: dict[str, object]) -> Path:
    return home / "vault" / str(row["vault_path"])


def test_verify_finds_a_flipped_byte(home: Path, ingested: list[dict[str, object]]) -> None:
    flip_byte(vault_file(home, ingested[1]))
    code, out, _ = evidock("verify")
    assert code == 1 and f"altered: recording {ingested[1]['id']}" in out


def test_verify_finds_an_edited_digest(home: Path, ingested: list[dict[str, object]]) -> None:
    with raw_catalog(home) as db:
        db.execute("update recording set sha256 = ? where id = ?",
                   ("0" * 64, ingested[2]["id"]))
    code, out, _ = evidock("verify", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    kinds = {p["kind"] for p in report["problems"]}
    assert kinds == {"bad_signature", "altered", "row_differs"}


def test_verify_finds_a_deleted_and_an_unexpected_file(
        home: Path, ingested: list[dict[str, object]]) -> None:
    gone = vault_file(home, ingested[0])
    gone.unlink()
    (gone.parent / "planted.MP4").write_bytes(b"not evidence")
    code, out, _ = evidock("verify")
    assert code == 1
    assert f"missing: recording {ingested[0]['id']}" in out
    assert "unexpected_file" in out and "planted.MP4" in out


def test_verify_finds_a_removed_ledger_leaf(home: Path,
                                            ingested: list[dict[str, object]]) -> None:
    with raw_catalog(home) as db:
        db.execute("delete from ledger_leaf where seq = 3")
    code, out, _ = evidock("verify")
    assert code == 1 and "ledger_leaf: ledger leaf 4" in out and "leaves were removed" in out


@pytest.mark.parametrize(("args", "message"), [
    (["log", "--since", "yesterday"], "not a date"),
    (["log", "--state", "lost"], "--state must be"),
    (["show", "999"], "nothing has been stored"),
    (["verify"], "nothing has been stored"),
    (["annotate", "1", "--by", "x"], "at least one of"),
    (["ingest", "/no/such/volume"], "mount the recorder volume first"),
])
def test_bad_input_is_a_clear_error_with_exit_2(home: Path, args: list[str],
                                                message: str) -> None:
    code, out, err = evidock(*args)
    assert code == 2 and message in err and out == ""
    assert not home.exists()  # nothing was created: no key, no catalog, no vault


def test_an_unknown_recording_is_a_usage_error(ingested: list[dict[str, object]]) -> None:
    code, out, err = evidock("show", "999")
    assert code == 2 and "no recording with id 999" in err and out == ""


def test_invalid_settings_exit_2_and_config_commands(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("deadline_hours = 0\n")
    code, _, err = evidock("--config", str(bad), "config", "validate")
    assert code == 2 and "deadline_hours" in err
    good = tmp_path / "good.toml"
    good.write_text('agency = "某市城管局"\ndeadline_hours = 12\n')
    code, out, _ = evidock("--config", str(good), "config", "validate")
    assert code == 0 and "valid" in out
    code, out, _ = evidock("--config", str(good), "config", "show", "--json")
    shown = json.loads(out)
    # the file sets both; EVIDOCK_AGENCY from the environment wins over the file
    assert shown["deadline_hours"] == 12 and shown["agency"] == "Test Agency"
    assert shown["catalog_url"] == (postgres_url() or f"sqlite:///{home / 'catalog.db'}")
    assert "database_password" not in out or shown["database_password"] != PASSWORD


def test_keys_show_and_export(home: Path, tmp_path: Path) -> None:
    code, out, _ = evidock("keys", "show", "--json")
    key = json.loads(out)
    assert code == 0 and key["key_id"].startswith("ed25519:")
    assert (home / "keys" / "station.key").stat().st_mode & 0o777 == 0o400
    target = tmp_path / "station.pub"
    assert evidock("keys", "export-public", "-o", str(target))[0] == 0
    assert target.read_text() == key["public_key"]
    code, _, err = evidock("keys", "export-public", "-o", str(target))
    assert code == 2 and "not overwriting" in err
    assert os.environ["EVIDOCK_HOME"] == str(home)
