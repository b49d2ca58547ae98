"""Golden signed records: the bytes evidock signs and hashes, pinned in tests/data/records.

A change to the ingest record, the session summary, the canonical encoding, the
key id or the event hash changes these bytes and fails here; if the change is
meant, it is a new format version, documented in docs/formats.md, and the files
are rewritten with ``python -m tests.unit.test_golden_records --write``.
Ed25519 signatures are deterministic, so the signatures are pinned too. The key is
a test key made from fixed bytes; it signs nothing outside these tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ingest.dock import FileOutcome, Summary
from ingest.record import IngestRecord
from storage import ledger
from storage.canonical import canonical_json
from storage.checkpoint import make_checkpoint
from storage.keys import PublicKey, StationKey
from storage.merkle import MerkleTree, leaf_hash
from storage.models import Explanation, Recording

DATA = Path(__file__).parents[1] / "data" / "records"
DOCS = Path(__file__).parents[2] / "docs"
KEY = StationKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
CLIP = b"evidock golden clip: these bytes stand for a recording\n"

# A version 1 record (signed before recorder clocks were corrected): still rebuilt as it was.
RECORD_V1 = IngestRecord(
    station="station-1", agency="测试公安局 Test PSB",
    session="6d2c1f0e-0000-4000-8000-000000000001",
    device="ZFY0001", officer="100231",
    source_path="DCIM/100MEDIA/DSJ_ZFY0001_100231_20261120_160000.MP4",
    size=len(CLIP), sha256="f6d82f40b9f2d0d6f03455739740d11968fd3fa19f2e2b1131f23938b0a1282a",
    recording_start=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
    recording_end=datetime(2026, 11, 20, 8, 0, 4, tzinfo=UTC),
    ingested_at=datetime(2026, 11, 20, 11, 5, 7, 123456, tzinfo=UTC),
    deadline=datetime(2026, 11, 21, 8, 0, 4, tzinfo=UTC),
    vault_path="files/Test_PSB/ZFY0001/2026-11-20/"
               "ZFY0001_100231_20261120T080000Z_DSJ_ZFY0001_100231_20261120_160000.MP4",
    version=1,
)
# The same recording from a recorder whose clock was 3.5 s slow (-3.5 rounds to -4): its
# name says 15:59:56 Asia/Shanghai, the corrected start is 08:00:00 UTC.
RECORD = replace(
    RECORD_V1, version=2, clock_offset_s=-4,
    source_path="DCIM/100MEDIA/DSJ_ZFY0001_100231_20261120_155956.MP4",
    vault_path="files/Test_PSB/ZFY0001/2026-11-20/"
               "ZFY0001_100231_20261120T080000Z_DSJ_ZFY0001_100231_20261120_155956.MP4")

LEAVES = [  # (at, (kind, subject, payload), changes)
    (datetime(2026, 11, 20, 11, 0, tzinfo=UTC), ("station", "station-1", {"key_id": "k"}),
     {("station", "station-1"): {"station_id": "station-1", "agency": RECORD.agency,
                                 "key_id": "k", "first_seen": "2026-11-20T11:00:00.000000Z"}}),
    (datetime(2026, 11, 20, 11, 5, 0, 1, tzinfo=UTC), ("session-start", RECORD.session, {}),
     {("dock_session", RECORD.session): {"session_id": RECORD.session,
                                         "clock_drift_s": "-3.5", "battery_pct": 64}}),
    (RECORD.ingested_at, None,
     {("pending_copy", "1"): None, ("officer", "100231"): {"officer_no": "100231",
                                                           "name": "张三"}}),
]


def summary() -> Summary:
    s = Summary(session_id=RECORD_V1.session, source="/dev/sdb1 (ZFY0001)",
                started_at=datetime(2026, 11, 20, 11, 5, tzinfo=UTC),
                finished_at=datetime(2026, 11, 20, 11, 6, 30, 5, tzinfo=UTC),
                bytes_stored=len(CLIP), files_stored=1, cleared="not_sent",
                recorder={"usb_serial": "SN-1", "clock_drift_s": -3, "clock_set": True,
                          "battery_percent": 64, "log_events": 2})
    s.outcomes.append(FileOutcome(RECORD_V1.source_path, "stored", 1, RECORD_V1.vault_path))
    s.outcomes.append(FileOutcome("DCIM/100MEDIA/X.MP4", "quarantined", 2, "quarantine/x",
                                  "media_truncated"))
    s.explanations.append(Explanation(
        id=7, kind="media_truncated", rule="R3", source_path="DCIM/100MEDIA/X.MP4",
        error="仅读到 46/100 个视频包", action="kept in quarantine"))
    return s


def shown(record: IngestRecord) -> dict[str, object]:
    """The fields of `evidock show ID --json` that docs/check_record.py reads."""
    fields = record.fields()
    show: dict[str, object] = {
        "station": record.station, "agency": record.agency, "session": record.session,
        "device": record.device, "officer": record.officer, "source_path": record.source_path,
        "size": record.size, "sha256": record.sha256, "vault_path": record.vault_path,
        "start": record.recording_start.isoformat(), "end": record.recording_end.isoformat(),
        "ingested_at": record.ingested_at.isoformat(), "deadline": record.deadline.isoformat(),
        "signature": KEY.sign(record.canonical()), "key_id": KEY.key_id,
        "record_format": fields["format"],
    }
    if record.version == 2:
        show.update(clock_offset_s=record.clock_offset_s,
                    recorder_start=record.recorder_start.isoformat(),
                    recorder_end=record.recorder_end.isoformat())
    return show


def build() -> dict[str, bytes]:
    """Every golden file, as the code makes it now."""
    body = RECORD.canonical()
    leaves = [ledger.leaf_body(seq, at, "station-1", ev, changes)
              for seq, (at, ev, changes) in enumerate(LEAVES)]
    tree = MerkleTree(leaf_hash(body) for body in leaves)
    chain = [{"body": body.decode("ascii"), "leaf_hash": leaf_hash(body).hex()}
             for body in leaves]
    point = make_checkpoint("evidock/station-1", tree.size, tree.root(), "evidock/station-1",
                            KEY.private)
    summary_body = canonical_json(summary().to_dict())
    text = json.dumps
    return {
        "station.pub": KEY.public.pem().encode("ascii"),
        "key_id.txt": KEY.key_id.encode("ascii") + b"\n",
        "clip.bin": CLIP,
        "ingest-record.canonical": body,
        "ingest-record.sig": KEY.sign(body).encode("ascii") + b"\n",
        "ingest-record-v1.canonical": RECORD_V1.canonical(),
        "ingest-record-v1.sig": KEY.sign(RECORD_V1.canonical()).encode("ascii") + b"\n",
        "show.json": text(shown(RECORD), indent=2, ensure_ascii=False).encode("utf-8") + b"\n",
        "show-v1.json": text(shown(RECORD_V1), indent=2, ensure_ascii=False).encode("utf-8")
        + b"\n",
        "session-summary.canonical": summary_body,
        "session-summary.sig": KEY.sign(summary_body).encode("ascii") + b"\n",
        "ledger-leaves.json": text(chain, indent=2).encode("ascii") + b"\n",
        "checkpoint.txt": point,
    }


def test_the_clip_digest_is_its_sha256() -> None:
    assert hashlib.sha256(CLIP).hexdigest() == RECORD.sha256


@pytest.mark.parametrize("name", sorted(build()))
def test_the_code_makes_the_golden_bytes(name: str) -> None:
    assert build()[name] == (DATA / name).read_bytes(), (
        f"{name} differs from tests/data/records/{name}: a wire or record format changed")


@pytest.mark.parametrize(("record", "name"), [(RECORD, "ingest-record"),
                                              (RECORD_V1, "ingest-record-v1")])
def test_a_catalog_row_rebuilds_the_golden_record_and_its_signature_checks(
        record: IngestRecord, name: str) -> None:
    row = Recording(
        session_id=record.session, station_id=record.station, agency=record.agency,
        device_no=record.device, officer_no=record.officer, source_path=record.source_path,
        source_size=record.size, source_mtime_ns=0, size=record.size, sha256=record.sha256,
        signature=(DATA / f"{name}.sig").read_text().strip(), key_id=KEY.key_id,
        recording_start=record.recording_start, recording_end=record.recording_end,
        start_from="filename", ingested_at=record.ingested_at, deadline=record.deadline,
        vault_path=record.vault_path, record_version=record.version,
        clock_offset_s=record.clock_offset_s)
    body = IngestRecord.from_row(row).canonical()
    assert body == (DATA / f"{name}.canonical").read_bytes()
    if record.version == 2:
        said = json.loads(body)
        assert (said["recorder_start"], said["clock_offset_s"]) == (
            "2026-11-20T07:59:56.000000Z", -4)
    public = PublicKey.from_pem((DATA / "station.pub").read_text())
    assert public.key_id == (DATA / "key_id.txt").read_text().strip()
    assert public.verify(row.signature, body)
    assert not public.verify(row.signature, body.replace(b"100231", b"100232"))


def test_the_golden_ledger_follows_the_documented_formulas() -> None:
    """docs/formats.md: leaf hash = SHA-256(0x00 || leaf); node = SHA-256(0x01 || l || r)."""
    leaves = json.loads((DATA / "ledger-leaves.json").read_text())
    hashes = [hashlib.sha256(b"\x00" + leaf["body"].encode("ascii")).digest() for leaf in leaves]
    assert [h.hex() for h in hashes] == [leaf["leaf_hash"] for leaf in leaves]

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    root = node(node(hashes[0], hashes[1]), hashes[2])  # three leaves: ((0 1) 2)
    lines = (DATA / "checkpoint.txt").read_text().split("\n")
    assert lines[:3] == ["evidock/station-1", "3", base64.b64encode(root).decode("ascii")]
    assert lines[3] == "" and lines[4].startswith("\u2014 evidock/station-1 ")
    signed = base64.b64decode(lines[4].split(" ")[2])
    key_hash = hashlib.sha256(b"evidock/station-1\n\x01" + KEY.public.key.public_bytes_raw())
    assert signed[:4] == key_hash.digest()[:4]
    KEY.public.key.verify(signed[4:], "\n".join(lines[:3]).encode("ascii") + b"\n")


def run_checker(show: Path, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DOCS / "check_record.py"), str(show),
                           str(DATA / "station.pub"), str(file)],
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("show", ["show.json", "show-v1.json"])
def test_the_documented_checker_accepts_the_golden_record(show: str) -> None:
    done = run_checker(DATA / show, DATA / "clip.bin")
    assert done.returncode == 0 and "signature good; file matches" in done.stdout, done.stderr


@pytest.mark.parametrize(("field", "value"), [
    ("officer", "100232"), ("size", 1), ("start", "2026-11-20T08:00:01+00:00"),
    ("clock_offset_s", -3), ("recorder_start", "2026-11-20T08:00:00+00:00"),
    ("record_format", "evidock-ingest-record/1")])
def test_the_documented_checker_refuses_an_edited_record(tmp_path: Path, field: str,
                                                         value: object) -> None:
    show = json.loads((DATA / "show.json").read_text())
    show[field] = value
    edited = tmp_path / "show.json"
    edited.write_text(json.dumps(show))
    done = run_checker(edited, DATA / "clip.bin")
    assert done.returncode != 0 and "InvalidSignature" in done.stderr


def test_the_documented_checker_refuses_other_bytes(tmp_path: Path) -> None:
    other = tmp_path / "clip.bin"
    other.write_bytes(CLIP + b"x")
    done = run_checker(DATA / "show.json", other)
    assert done.returncode == 1 and "the file differs" in done.stderr


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    DATA.mkdir(parents=True, exist_ok=True)
    for file_name, data in build().items():
        (DATA / file_name).write_bytes(data)
    print(f"wrote {len(build())} files to {DATA}")
