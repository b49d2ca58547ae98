"""Evidence export: a real ingest exported to a package, checked offline, and tampered with.

One store per module is ingested from a real volume and exported once; each tamper
case edits its own copy of that package and runs the real `evidock verify-export`
with EVIDOCK_HOME pointing nowhere (the checker needs no store).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from ingest.package import json_bytes
from storage.keys import load_or_create
from tests.catalogdb import raw_catalog

runner = CliRunner()
COLLECTOR = "李明"
DESCRIPTION = ["--collector", COLLECTOR, "--place", "某市城管局证据室",
               "--reason", "行政处罚案件 2026-017 举证", "--approved-by", "赵局长"]


def evidock(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def check(package: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = evidock("verify-export", str(package), "--json", *args)
    assert out, err
    report: dict[str, Any] = json.loads(out)
    assert code == (0 if report["ok"] else 1), (code, report)
    return code, report


def found(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["kind"], p["subject"]) for p in report["problems"]}


def leaves(home: Path, kind: str) -> list[dict[str, Any]]:
    with raw_catalog(home) as db:
        rows = db.execute("select body from ledger_leaf where kind = ? order by seq",
                          (kind,)).fetchall()
    return [json.loads(body) for (body,) in rows]


@dataclass
class Store:
    home: Path
    package: Path  # recordings 1, 2 and 6 by id; recording 1 annotated with a case first
    public_key: Path  # the station's key, exported separately (`keys export-public`)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, recent_template: Path) -> Iterator[Store]:
    base = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EVIDOCK_HOME", str(base / "home"))
        env.setenv("EVIDOCK_TIMEZONE", "Asia/Shanghai")
        env.setenv("EVIDOCK_AGENCY", "某市城市管理综合执法局")
        env.setenv("EVIDOCK_STATION_ID", "station-1")
        volume = shutil.copytree(recent_template, base / "volume")
        code, _, err = evidock("ingest", str(volume), "--json")
        assert code == 1, err  # the truncated clip is a storage fault (R3)
        assert evidock("annotate", "1", "--case", "2026-017", "--party", "张三",
                       "--by", "custodian")[0] == 0
        package = base / "package"
        code, out, err = evidock("export", "--recording", "1", "--recording", "2",
                                 "--recording", "6", "--out", str(package), *DESCRIPTION)
        assert code == 0, err
        assert "exported 3 recording(s)" in out
        public_key = base / "station.pub"
        assert evidock("keys", "export-public", "-o", str(public_key))[0] == 0
        yield Store(base / "home", package, public_key)


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """verify-export runs with no store and no settings: EVIDOCK_HOME names nothing."""
    for name in ("EVIDOCK_HOME", "EVIDOCK_STATION_ID", "EVIDOCK_AGENCY", "EVIDOCK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "no-such-home"
    monkeypatch.setenv("EVIDOCK_HOME", str(missing))
    monkeypatch.setenv("EVIDOCK_CONFIG", str(tmp_path / "no-such.toml"))
    return missing


@pytest.fixture
def copy(store: Store, tmp_path: Path, nowhere: Path) -> Path:
    """A writable copy of the exported package for one test to tamper with."""
    target = Path(shutil.copytree(store.package, tmp_path / "package"))
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def manifest_of(package: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((package / "manifest.json").read_bytes())
    return data


def edit_json(package: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = package / name
    path.chmod(0o644)
    data = json.loads(path.read_bytes())
    change(data)
    path.write_bytes(json_bytes(data))


# The round trip -------------------------------------------------------------------------

def test_export_round_trip_by_recording(store: Store, nowhere: Path) -> None:
    package = store.package
    names = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    manifest = manifest_of(package)
    files = sorted(r["file"] for r in manifest["recordings"])
    assert names == sorted([*files, "checkpoint.txt", "description.html", "description.pdf",
                            "description.txt", "manifest.json", "proofs.json", "station.pub",
                            "station.vkey"])
    assert [r["id"] for r in manifest["recordings"]] == [1, 2, 6]
    for entry in manifest["recordings"]:  # the very bytes of the vault
        copied = (package / entry["file"]).read_bytes()
        assert copied == (store.home / "vault" / entry["record"]["vault_path"]).read_bytes()
        assert hashlib.sha256(copied).hexdigest() == entry["sha256"] == entry["record"]["sha256"]
    first = manifest["recordings"][0]
    assert [leaf["kind"] for leaf in first["leaves"]] == ["recording", "annotate"]
    assert first["catalog"]["case"] == "2026-017"

    code, report = check(package)
    assert code == 0 and report["recordings"] == 3 and report["problems"] == []
    assert not report["key_independently_trusted"]
    code, out, _ = evidock("verify-export", str(package))
    assert code == 0 and "result: all intact" in out
    assert "not who made it" in out  # said plainly: the package's own key is not trusted
    assert not nowhere.exists()  # nothing was created

    code, report = check(package, "--key", str(store.public_key))
    assert code == 0 and report["key_independently_trusted"]
    vkey = (package / "station.vkey").read_text().strip()
    code, report = check(package, "--vkey", vkey)
    assert code == 0 and report["key_independently_trusted"]


def test_the_ledger_records_the_export_and_verify_stays_clean(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    (export,) = leaves(store.home, "export")
    manifest_bytes = (store.package / "manifest.json").read_bytes()
    payload = export["payload"]
    assert payload["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert payload["recordings"] == [1, 2, 6] and payload["collector"] == COLLECTOR
    assert payload["place"] == "某市城管局证据室" and payload["approved_by"] == "赵局长"
    assert payload["reason"] == "行政处罚案件 2026-017 举证"
    assert payload["out"] == str(store.package)
    assert export["subject"] == manifest_of(store.package)["package_id"]
    proofs = json.loads((store.package / "proofs.json").read_bytes())
    assert proofs["export_leaf"]["seq"] == export["seq"]
    assert proofs["checkpoint"]["size"] > export["seq"]  # the checkpoint covers the export
    monkeypatch.setenv("EVIDOCK_HOME", str(store.home))
    monkeypatch.setenv("EVIDOCK_STATION_ID", "station-1")
    monkeypatch.setenv("EVIDOCK_AGENCY", "某市城市管理综合执法局")
    code, out, _ = evidock("verify")
    assert code == 0 and "all intact" in out


def test_the_pdf_description_names_the_collector_in_chinese(store: Store) -> None:
    pdf = store.package / "description.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    for words in (COLLECTOR, "提取人", "证据清单", "List of recordings", "赵局长",
                  "ZFY0001", manifest_of(store.package)["recordings"][0]["sha256"][:32]):
        assert words in text, words
    plain = (store.package / "description.txt").read_text(encoding="utf-8")
    assert f"提取人 Collector: {COLLECTOR}" in plain and "提取地点 Place of collection" in plain
    assert "<td>李明</td>" in (store.package / "description.html").read_text(encoding="utf-8")


def test_export_by_case(home: Path, recent_volume: Path, tmp_path: Path) -> None:
    assert evidock("ingest", str(recent_volume))[0] == 1
    for rec_id in ("2", "3"):
        code, _, err = evidock("annotate", rec_id, "--case", "2026-042", "--by", "custodian")
        assert code == 0, err
    package = tmp_path / "case-2026-042"
    package.mkdir()  # an empty folder is fine
    code, out, err = evidock("export", "--case", "2026-042", "--out", str(package), "--json",
                             *DESCRIPTION)
    assert code == 0, err
    result = json.loads(out)
    assert result["recordings"] == [2, 3] and result["files"] == 2
    manifest = manifest_of(package)
    assert manifest["collection"]["case"] == "2026-042"
    assert all(r["catalog"]["case"] == "2026-042" for r in manifest["recordings"])
    assert all([leaf["kind"] for leaf in r["leaves"]] == ["recording", "annotate"]
               for r in manifest["recordings"])
    assert "案件编号 case 2026-042" in (package / "description.txt").read_text()
    code, report = check(package)
    assert code == 0, report


def test_records_signed_before_a_key_rotation_verify_through_the_ledger(
        home: Path, recent_volume: Path, tmp_path: Path) -> None:
    assert evidock("ingest", str(recent_volume))[0] == 1
    old_pub = tmp_path / "old.pub"
    assert evidock("keys", "export-public", "-o", str(old_pub))[0] == 0
    code, _, err = evidock("keys", "rotate")
    assert code == 0, err
    new_pub = tmp_path / "new.pub"
    assert evidock("keys", "export-public", "-o", str(new_pub))[0] == 0
    package = tmp_path / "package"
    assert evidock("export", "--recording", "1", "--out", str(package), *DESCRIPTION)[0] == 0
    manifest = manifest_of(package)
    assert [leaf["kind"] for leaf in manifest["station_keys"]] == ["station", "key-rotate"]
    assert manifest["recordings"][0]["key_id"] != manifest["key_id"]  # signed by the old key
    assert check(package)[0] == 0
    assert check(package, "--key", str(new_pub))[0] == 0
    code, report = check(package, "--key", str(old_pub))  # the checkpoint is the new key's
    assert code == 1 and ("untrusted_key", "station.pub") in found(report)

    def unrotated(data: dict[str, Any]) -> None:
        data["station_keys"] = data["station_keys"][:1]  # hide the rotation
    edit_json(package, "manifest.json", unrotated)
    kinds = {kind for kind, _ in found(check(package)[1])}
    assert {"key_chain", "record_signature", "export_leaf"} <= kinds, kinds


# Tampering --------------------------------------------------------------------------------

def _flip_byte(package: Path) -> str:
    name = manifest_of(package)["recordings"][1]["file"]
    path = package / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return name


def _remove_file(package: Path) -> str:
    name = manifest_of(package)["recordings"][2]["file"]
    (package / name).unlink()
    return name


def _extra_file(package: Path) -> str:
    (package / "files" / "planted.MP4").write_bytes(b"not evidence")
    return "files/planted.MP4"


def _set_record(field: str, value: object) -> Callable[[Path], str]:
    def tamper(package: Path) -> str:
        def change(manifest: dict[str, Any]) -> None:
            manifest["recordings"][0]["record"][field] = value
        edit_json(package, "manifest.json", change)
        return f"manifest.json: recording 1: record.{field}"
    return tamper


def _proof_of_first_leaf(change: Callable[[list[str]], None]) -> Callable[[Path], str]:
    def tamper(package: Path) -> str:
        seq = manifest_of(package)["recordings"][0]["leaves"][0]["seq"]

        def edit(proofs: dict[str, Any]) -> None:
            (item,) = [i for i in proofs["leaves"] if i["seq"] == seq]
            change(item["proof"])
        edit_json(package, "proofs.json", edit)
        return f"proofs.json: leaf {seq} proof"
    return tamper


def _wrong_hash(proof: list[str]) -> None:
    proof[1] = hashlib.sha256(b"forged").hexdigest()


def _edit_checkpoint(package: Path) -> str:
    path = package / "checkpoint.txt"
    lines = path.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim one more leaf
    path.write_text("\n".join(lines))
    return "checkpoint.txt"


def _edit_leaf_body(package: Path) -> str:
    def change(manifest: dict[str, Any]) -> None:
        leaf = manifest["recordings"][0]["leaves"][0]
        leaf["body"] = leaf["body"].replace('"officer_no":"100231"', '"officer_no":"100299"')
    edit_json(package, "manifest.json", change)
    return "manifest.json: recording 1: leaves[0]"


TAMPER: dict[str, tuple[Callable[[Path], str], set[str]]] = {
    # case: (tamper, which returns the subject that must be named; kinds that must be found)
    "a changed byte in a file": (_flip_byte, {"file_altered"}),
    "a removed file": (_remove_file, {"file_missing"}),
    "an extra file": (_extra_file, {"extra_file"}),
    "officer edited": (_set_record("officer", "100299"),
                       {"leaf_row", "record_signature", "export_leaf"}),
    "sha256 edited": (_set_record("sha256", "0" * 64),
                      {"leaf_row", "record_signature", "file_altered", "export_leaf"}),
    "start time edited": (_set_record("recording_start", "2026-11-01T00:00:00.000000Z"),
                          {"leaf_row", "record_signature", "export_leaf"}),
    "a truncated proof": (_proof_of_first_leaf(lambda proof: proof.pop()), {"proof"}),
    "a wrong hash in a proof": (_proof_of_first_leaf(_wrong_hash), {"proof"}),
    "checkpoint edited": (_edit_checkpoint, {"checkpoint"}),
    "a leaf body edited": (_edit_leaf_body, {"leaf_body", "export_leaf"}),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_each_tampering_is_named(copy: Path, case: str) -> None:
    tamper, kinds = TAMPER[case]
    subject = tamper(copy)
    code, report = check(copy)
    assert code == 1
    problems = found(report)
    assert kinds <= {kind for kind, _ in problems}, (case, problems)
    assert any(s == subject or s.startswith(subject) for _, s in problems), (subject, problems)
    code, out, _ = evidock("verify-export", str(copy))  # the text says it too
    assert code == 1 and "problem(s)" in out and subject.split(": ")[0] in out


def test_a_manifest_field_edit_names_the_field(copy: Path) -> None:
    _set_record("officer", "100299")(copy)
    _, report = check(copy)
    details = {p["subject"]: p["detail"] for p in report["problems"]}
    assert "'100299'" in details["manifest.json: recording 1: record.officer"]
    assert "'100231'" in details["manifest.json: recording 1: record.officer"]
    assert "manifest.json was changed" in details[
        "proofs.json: export_leaf.payload.manifest_sha256"]


def test_another_stations_key_is_refused(copy: Path, tmp_path: Path) -> None:
    other = load_or_create(tmp_path / "other" / "station.key")
    other_pub = tmp_path / "other.pub"
    other_pub.write_text(other.public.pem())
    code, report = check(copy, "--key", str(other_pub))
    assert code == 1 and report["key_independently_trusted"]
    kinds = {kind for kind, _ in found(report)}
    assert {"untrusted_key", "checkpoint", "record_signature"} <= kinds, kinds
    assert ("untrusted_key", "station.pub") in found(report)


# Unusable input and refused exports ---------------------------------------------------------

@pytest.mark.parametrize("what", ["missing", "empty", "not json", "other json"])
def test_not_a_package_exits_2(tmp_path: Path, nowhere: Path, what: str) -> None:
    folder = tmp_path / "folder"
    if what != "missing":
        folder.mkdir()
    if what == "not json":
        (folder / "manifest.json").write_text("{not json")
    if what == "other json":
        (folder / "manifest.json").write_text('{"format": "something-else/1"}')
    code, out, err = evidock("verify-export", str(folder))
    assert code == 2 and out == "" and "evidock: error:" in err


def test_an_unreadable_trusted_key_exits_2(store: Store, tmp_path: Path, nowhere: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    assert evidock("verify-export", str(store.package), "--key", str(bad))[0] == 2
    assert evidock("verify-export", str(store.package), "--vkey", "nonsense")[0] == 2


def test_export_refusals_write_nothing(home: Path, recent_volume: Path, tmp_path: Path) -> None:
    assert evidock("ingest", str(recent_volume))[0] == 1
    before = len(leaves(home, "export"))
    out_dir = tmp_path / "out"
    code, _, err = evidock("export", "--recording", "999", "--out", str(out_dir), *DESCRIPTION)
    assert code == 2 and "no recording with id 999" in err and not out_dir.exists()
    code, _, err = evidock("export", "--case", "NO-SUCH", "--out", str(out_dir), *DESCRIPTION)
    assert code == 2 and not out_dir.exists()
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    code, _, err = evidock("export", "--recording", "1", "--out", str(out_dir), *DESCRIPTION)
    assert code == 2 and "not empty" in err
    assert [p.name for p in out_dir.iterdir()] == ["keep.txt"]
    code, _, err = evidock("export", "--recording", "1", "--case", "X", "--out",
                           str(tmp_path / "o2"), *DESCRIPTION)
    assert code == 2 and "not both" in err
    code, _, err = evidock("export", "--recording", "1", "--out", str(tmp_path / "o3"),
                           "--collector", " ", "--place", "p", "--reason", "r",
                           "--approved-by", "a")
    assert code == 2 and "--collector is empty" in err and not (tmp_path / "o3").exists()
    code, _, err = evidock("export", "--recording", "1", "--out",
                           str(home / "vault" / "files" / "x"), *DESCRIPTION)
    assert code == 2 and "inside the vault" in err
    assert len(leaves(home, "export")) == before


def test_without_a_chinese_font_nothing_is_exported(
        home: Path, recent_volume: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert evidock("ingest", str(recent_volume))[0] == 1
    before = len(leaves(home, "export"))
    latin = tmp_path / "fonts.conf"  # fontconfig sees only DejaVu: Latin, no Chinese
    latin.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">'
                     "<fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir>"
                     f"<cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>")
    monkeypatch.setenv("FONTCONFIG_FILE", str(latin))
    out_dir = tmp_path / "out"
    code, _, err = evidock("export", "--recording", "1", "--out", str(out_dir), *DESCRIPTION)
    assert code == 2 and "no font that covers Chinese" in err and not out_dir.exists()
    assert len(leaves(home, "export")) == before


def test_a_vault_file_that_does_not_match_aborts_the_export(
        home: Path, recent_volume: Path, tmp_path: Path) -> None:
    assert evidock("ingest", str(recent_volume))[0] == 1
    _, out, _ = evidock("log", "--json")
    row = json.loads(out)[1]
    damaged = home / "vault" / row["vault_path"]
    damaged.chmod(0o644)
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    code, _, err = evidock("export", "--recording", "1", "--recording", str(row["id"]),
                           "--out", str(out_dir), *DESCRIPTION)
    assert code == 1 and "does not match its signed record" in err
    assert f"recording {row['id']}" in err and not out_dir.exists()
    assert leaves(home, "export") == []


def test_iso_image_for_disc_burning(home: Path, recent_volume: Path, tmp_path: Path) -> None:
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso is not installed (scripts/system-deps.sh test installs it)")
    assert evidock("ingest", str(recent_volume))[0] == 1
    iso = tmp_path / "evidence.iso"
    code, out, err = evidock("export", "--recording", "1", "--out", str(tmp_path / "pkg"),
                             "--iso", str(iso), "--json", *DESCRIPTION)
    assert code == 0, err
    result = json.loads(out)
    assert result["iso_sha256"] == hashlib.sha256(iso.read_bytes()).hexdigest()
    (image,) = leaves(home, "export-image")
    assert image["payload"]["sha256"] == result["iso_sha256"]
    burned = tmp_path / "from-disc"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/",
                    str(burned)], check=True, capture_output=True)
    code, report = check(burned)
    assert code == 0, report
