"""The independent verifier (written from the docs alone) against real packages.

A real package is made with the real ``evidock`` CLI (ingest of ffmpeg-made media,
then export), then copied and tampered with in several ways. The independent
verifier must accept the good package and reject every tampered copy, and
``evidock verify-export`` must agree with it on good versus bad.

Two packages are made: one of fresh recordings (version 2 ingest records,
``evidock-ingest-record/2``) and one exported from the real schema-0005 store of
tests/data (a recording stored before recorder clocks were corrected: a version 1
record). Tamperings aimed at one rule of the document also name the problem the
independent verifier must report for it, so that the rule itself is seen to work
even where another check (the record's signature, a leaf's hash) also catches the
edit.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.timeout(300)

VENV = Path("/work/main/.venv/bin")
EVIDOCK = str(VENV / "evidock")
PYTHON = str(VENV / "python")
VERIFIER = str(Path(__file__).with_name("verify_package.py"))
# a real store at schema 0005 (station "s1", agency "T"), one recording with a /1 record
STORE_0005 = Path(__file__).parents[1] / "data" / "store-0005.tar.gz"
TIME_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _env(home: Path, station: str = "station-1", agency: str = "Test") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EVIDOCK_HOME=str(home),
        EVIDOCK_AGENCY=agency,
        EVIDOCK_STATION_ID=station,
        EVIDOCK_TIMEZONE="Asia/Shanghai",
    )
    return env


def _run(args, env, check=True):
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    base = tmp_path_factory.mktemp("indep")
    env = _env(base / "home")
    vol = base / "vol" / "DCIM"
    vol.mkdir(parents=True)
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    t1 = (now - timedelta(hours=1)).strftime("%Y%m%d_%H%M%S")
    t2 = (now - timedelta(minutes=50)).strftime("%Y%m%d_%H%M%S")
    t3 = (now - timedelta(minutes=40)).strftime("%Y%m%d_%H%M%S")
    ff = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi"]
    for t, rate in ((t1, 25), (t2, 30)):
        _run(
            [
                *ff,
                "-i",
                f"testsrc=size=320x240:rate={rate}",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                str(vol / f"DSJ_ZFY0001_100231_{t}.MP4"),
            ],
            env,
        )
    _run(
        [
            *ff,
            "-i",
            "testsrc=size=320x240:rate=1",
            "-frames:v",
            "1",
            str(vol / f"DSJ_ZFY0001_100231_{t3}.JPG"),
        ],
        env,
    )
    _run([EVIDOCK, "ingest", str(vol.parent)], env)
    log = json.loads(_run([EVIDOCK, "log", "--json"], env).stdout)
    ids = [str(r["id"]) for r in log]
    assert len(ids) == 3
    pkg = base / "pkg"
    args = [
        EVIDOCK,
        "export",
        "--out",
        str(pkg),
        "--collector",
        "张三",
        "--place",
        "某派出所",
        "--reason",
        "测试",
        "--approved-by",
        "李四",
    ]
    for i in ids:
        args += ["--recording", i]
    _run(args, env)
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    other_key = base / "other.pub"
    other_key.write_bytes(other)
    return {"base": base, "pkg": pkg, "env": env, "other_key": other_key}


@pytest.fixture(scope="module")
def made_v1(tmp_path_factory):
    """A package of a recording whose signed record is version 1, from a real old store."""
    base = tmp_path_factory.mktemp("indep-v1")
    home = base / "home"
    home.mkdir()
    with tarfile.open(STORE_0005) as tar:
        tar.extractall(home, filter="data")
    env = _env(home, station="s1", agency="T")
    pkg = base / "pkg"
    _run(
        [
            EVIDOCK,
            "export",
            "--recording",
            "1",
            "--out",
            str(pkg),
            "--collector",
            "张三",
            "--place",
            "某派出所",
            "--reason",
            "测试",
            "--approved-by",
            "李四",
        ],
        env,
    )
    m = _load(pkg / "manifest.json")
    assert m["recordings"][0]["record"]["format"] == "evidock-ingest-record/1"
    return {"base": base, "pkg": pkg, "env": env}


def _copy(made, name) -> Path:
    dst = made["base"] / "copies" / name
    shutil.copytree(made["pkg"], dst, symlinks=True)
    for root, _dirs, files in os.walk(dst):
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    return dst


def _verdicts(made, pkg, key=None):
    extra = ["--key", str(key)] if key else []
    mine = subprocess.run(
        [PYTHON, VERIFIER, str(pkg), *extra], capture_output=True, text=True, timeout=120
    )
    real = subprocess.run(
        [EVIDOCK, "verify-export", str(pkg), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(made["base"] / "nowhere"),
    )
    return mine, real


def _media(pkg: Path, suffix=".MP4") -> Path:
    return sorted(p for p in (pkg / "files").rglob("*" + suffix))[0]


def _load(p: Path):
    return json.loads(p.read_text("utf-8"))


def _dump(p: Path, obj):
    p.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8")


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _shift(t: str, seconds: int) -> str:
    return (datetime.strptime(t, TIME_FMT) + timedelta(seconds=seconds)).strftime(TIME_FMT)


def _edit_record(pkg: Path, edit: Callable[[dict], None]) -> None:
    """Edit the signed record of the first recording (a plain edit: not re-signed; the
    tests have no way to re-sign, and the ledger row holds the old signature anyway)."""
    m = _load(pkg / "manifest.json")
    edit(m["recordings"][0]["record"])
    _dump(pkg / "manifest.json", m)


def _edit_insert_row(pkg: Path, edit: Callable[[dict], None]) -> None:
    """Edit the recording row in the first recording's first leaf, keeping the body
    canonical (its hash no longer matches the proven leaf hash, of course)."""
    m = _load(pkg / "manifest.json")
    r = m["recordings"][0]
    leaf = r["leaves"][0]
    body = json.loads(leaf["body"])
    rows = [
        c["row"] for c in body["changes"] if c["table"] == "recording" and c["key"] == str(r["id"])
    ]
    assert len(rows) == 1
    edit(rows[0])
    leaf["body"] = _canonical(body)
    _dump(pkg / "manifest.json", m)


def _expect(kind: str, field: str, *, absent: bool = False):
    """The independent verifier must (or, with absent, must not) report `kind` for
    `field` of the first recording; several may be stacked."""

    def mark(f):
        f.expect = [*getattr(f, "expect", []), (kind, field, absent)]
        return f

    return mark


# --- tamperings: each takes the package copy (and `made`), returns extra verifier args


def t_flip_media_byte(pkg, made):
    f = _media(pkg)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def t_remove_file(pkg, made):
    _media(pkg, ".JPG").unlink()


def t_remove_description(pkg, made):
    (pkg / "description.pdf").unlink()


def t_extra_file(pkg, made):
    (_media(pkg).parent / "extra.MP4").write_bytes(b"not evidence")


def t_extra_top_file(pkg, made):
    (pkg / "README.txt").write_text("hello")


def t_manifest_officer(pkg, made):
    m = _load(pkg / "manifest.json")
    m["recordings"][0]["record"]["officer"] = "999999"
    _dump(pkg / "manifest.json", m)


def t_manifest_sha256(pkg, made):
    m = _load(pkg / "manifest.json")
    m["recordings"][0]["sha256"] = "0" * 64
    _dump(pkg / "manifest.json", m)


def t_manifest_collector(pkg, made):
    m = _load(pkg / "manifest.json")
    m["collection"]["collector"] = "王五"
    _dump(pkg / "manifest.json", m)


def t_truncated_proof(pkg, made):
    p = _load(pkg / "proofs.json")
    p["leaves"][0]["proof"] = p["leaves"][0]["proof"][:-1]
    _dump(pkg / "proofs.json", p)


def t_truncated_export_proof(pkg, made):
    p = _load(pkg / "proofs.json")
    p["export_leaf"]["proof"] = p["export_leaf"]["proof"][:-1]
    _dump(pkg / "proofs.json", p)


def t_wrong_proof_hash(pkg, made):
    p = _load(pkg / "proofs.json")
    h = p["leaves"][-1]["proof"][0]
    p["leaves"][-1]["proof"][0] = ("1" if h[0] != "1" else "2") + h[1:]
    _dump(pkg / "proofs.json", p)


def t_checkpoint_size_line(pkg, made):
    cp = (pkg / "checkpoint.txt").read_bytes().split(b"\n")
    cp[1] = str(int(cp[1]) + 1).encode()
    (pkg / "checkpoint.txt").write_bytes(b"\n".join(cp))


def t_checkpoint_root_line(pkg, made):
    import base64
    import hashlib

    cp = (pkg / "checkpoint.txt").read_bytes().split(b"\n")
    cp[2] = base64.b64encode(hashlib.sha256(cp[2]).digest())
    (pkg / "checkpoint.txt").write_bytes(b"\n".join(cp))


def t_leaf_body(pkg, made):
    m = _load(pkg / "manifest.json")
    leaf = m["recordings"][0]["leaves"][0]
    body = leaf["body"]
    i = body.index('"at":"') + len('"at":"2')
    leaf["body"] = body[:i] + ("1" if body[i] != "1" else "2") + body[i + 1 :]
    _dump(pkg / "manifest.json", m)


def t_export_leaf_body(pkg, made):
    p = _load(pkg / "proofs.json")
    body = p["export_leaf"]["body"]
    p["export_leaf"]["body"] = body.replace('"place":"', '"place":"X', 1)
    assert p["export_leaf"]["body"] != body
    _dump(pkg / "proofs.json", p)


def t_other_key(pkg, made):
    return ["--key", made["other_key"]]


# --- version 2 records (step 8.1: recorder times, clock_offset_s; step 8.7: leaf row)


@_expect("manifest", "record.recorder_start")
def t_v2_recorder_start_not_offset(pkg, made):
    # recorder_start is not recording_start + clock_offset_s (null: + 0)
    _edit_record(pkg, lambda rec: rec.update(recorder_start=_shift(rec["recording_start"], 1)))


@_expect("manifest", "record.recorder_end")
@_expect("manifest", "record.recorder_start")
def t_v2_offset_without_recorder_times(pkg, made):
    # an offset is claimed, but the recorder times are still the station's
    def edit(rec):
        assert rec["clock_offset_s"] is None
        rec["clock_offset_s"] = 30

    _edit_record(pkg, edit)


@_expect("leaf_row", "record.clock_offset_s")
@_expect("manifest", "record.recorder_start", absent=True)
@_expect("manifest", "record.recorder_end", absent=True)
def t_v2_offset_consistent_but_not_the_ledgers(pkg, made):
    # 8.1 holds (recorder = recording + 30 s), but the ledger row says null (8.7)
    def edit(rec):
        rec["clock_offset_s"] = 30
        rec["recorder_start"] = _shift(rec["recording_start"], 30)
        rec["recorder_end"] = _shift(rec["recording_end"], 30)

    _edit_record(pkg, edit)


@_expect("manifest", "record.clock_offset_s")
def t_v2_offset_boolean(pkg, made):
    # true would pass as 1 in a language where a boolean is an integer
    def edit(rec):
        rec["clock_offset_s"] = True
        rec["recorder_start"] = _shift(rec["recording_start"], 1)
        rec["recorder_end"] = _shift(rec["recording_end"], 1)

    _edit_record(pkg, edit)


@_expect("manifest", "record.clock_offset_s")
def t_v2_offset_false(pkg, made):
    # false would pass as 0 (recorder times = station times, as for null)
    _edit_record(pkg, lambda rec: rec.update(clock_offset_s=False))


@_expect("manifest", "record.clock_offset_s")
def t_v2_offset_float_zero(pkg, made):
    # 0.0 would pass as 0 (recorder times = station times)
    _edit_record(pkg, lambda rec: rec.update(clock_offset_s=0.0))


@_expect("manifest", "record.clock_offset_s")
def t_v2_offset_float(pkg, made):
    def edit(rec):
        rec["clock_offset_s"] = 5.0
        rec["recorder_start"] = _shift(rec["recording_start"], 5)
        rec["recorder_end"] = _shift(rec["recording_end"], 5)

    _edit_record(pkg, edit)


@_expect("manifest", "record.recorder_start")
@_expect("manifest", "record.recording_start")
def t_v2_time_not_a_date(pkg, made):
    # canonical in shape, but no such day: not canonical time text
    def edit(rec):
        rec["recording_start"] = "2026-02-30T10:00:00.000000Z"
        rec["recorder_start"] = rec["recording_start"]

    _edit_record(pkg, edit)


@_expect("manifest", "record.recorder_end")
@_expect("manifest", "record.recorder_start")
def t_v2_offset_beyond_any_time(pkg, made):
    # recording_start + clock_offset_s is no time of years 0001-9999
    _edit_record(pkg, lambda rec: rec.update(clock_offset_s=10**20))


@_expect("manifest", "record.recorder_end")
def t_v2_recorder_time_not_canonical(pkg, made):
    # the same moment, but not canonical time text (no fraction)
    def edit(rec):
        assert rec["clock_offset_s"] is None and rec["recorder_end"].endswith(".000000Z")
        rec["recorder_end"] = rec["recorder_end"].replace(".000000Z", "Z")

    _edit_record(pkg, edit)


@_expect("manifest", "record")
def t_v2_field_missing(pkg, made):
    _edit_record(pkg, lambda rec: rec.pop("recorder_end"))


@_expect("manifest", "record.format")
def t_v2_unknown_version(pkg, made):
    _edit_record(pkg, lambda rec: rec.update(format="evidock-ingest-record/3"))


@_expect("leaf_row", "record.format")
@_expect("manifest", "record", absent=True)
def t_v2_relabelled_v1(pkg, made):
    # a well-formed version 1 record, but the ledger row has record_version 2
    def edit(rec):
        rec["format"] = "evidock-ingest-record/1"
        for k in ("clock_offset_s", "recorder_start", "recorder_end"):
            del rec[k]

    _edit_record(pkg, edit)


@_expect("manifest", "record")
def t_v2_relabelled_v1_fields_kept(pkg, made):
    _edit_record(pkg, lambda rec: rec.update(format="evidock-ingest-record/1"))


@_expect("leaf_row", "record.format")
def t_v2_leaf_row_record_version(pkg, made):
    _edit_insert_row(pkg, lambda row: row.update(record_version=1))


@_expect("leaf_row", "record.format")
def t_v2_leaf_row_record_version_true(pkg, made):
    _edit_insert_row(pkg, lambda row: row.update(record_version=True))


@_expect("leaf_row", "record.format")
def t_v2_leaf_row_record_version_absent(pkg, made):
    # only clock_offset_s has a default when absent (null), record_version has none
    _edit_insert_row(pkg, lambda row: row.pop("record_version"))


@_expect("leaf_row", "record.clock_offset_s")
def t_v2_leaf_row_clock_offset(pkg, made):
    _edit_insert_row(pkg, lambda row: row.update(clock_offset_s=3))


@_expect("leaf_row", "record.clock_offset_s", absent=True)
def t_v2_leaf_row_clock_offset_absent(pkg, made):
    # an absent clock_offset_s column counts as null, as the record's: not a leaf_row
    # problem; only the leaf's hash shows the edit
    _edit_insert_row(pkg, lambda row: row.pop("clock_offset_s"))


TAMPERINGS = [v for k, v in sorted(globals().items()) if k.startswith("t_")]


# --- version 1 records (tampered copies of the package made from the old store)


@_expect("leaf_row", "record.format")
@_expect("manifest", "record", absent=True)
@_expect("manifest", "record.recorder_start", absent=True)
def v1_relabelled_v2(pkg, made):
    # a well-formed version 2 record (no offset), but the ledger row has record_version 1
    def edit(rec):
        rec["format"] = "evidock-ingest-record/2"
        rec["clock_offset_s"] = None
        rec["recorder_start"] = rec["recording_start"]
        rec["recorder_end"] = rec["recording_end"]

    _edit_record(pkg, edit)


@_expect("manifest", "record")
def v1_with_clock_field(pkg, made):
    _edit_record(pkg, lambda rec: rec.update(clock_offset_s=None))


@_expect("leaf_row", "record.format")
def v1_leaf_row_record_version(pkg, made):
    _edit_insert_row(pkg, lambda row: row.update(record_version=2))


@_expect("leaf_row", "record.clock_offset_s", absent=True)
def v1_leaf_row_clock_offset_not_compared(pkg, made):
    # a version 1 record has no clock_offset_s to compare the row's with: only the
    # leaf's hash shows the edit
    _edit_insert_row(pkg, lambda row: row.update(clock_offset_s=5))


@_expect("leaf_row", "record.recording_start")
def v1_recording_start(pkg, made):
    _edit_record(pkg, lambda rec: rec.update(recording_start=_shift(rec["recording_start"], -1)))


V1_TAMPERINGS = [v for k, v in sorted(globals().items()) if k.startswith("v1_")]


def test_good_package_accepted(made):
    mine, real = _verdicts(made, made["pkg"])
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert real.returncode == 0, real.stdout + real.stderr
    assert "NOT independently trusted" in mine.stderr
    mine, real = _verdicts(made, made["pkg"], key=made["pkg"] / "station.pub")
    assert (mine.returncode, real.returncode) == (0, 0), mine.stdout + real.stdout


def test_good_package_records_are_version_2(made):
    m = _load(made["pkg"] / "manifest.json")
    assert {r["record"]["format"] for r in m["recordings"]} == {"evidock-ingest-record/2"}


def test_good_v1_package_accepted(made_v1):
    mine, real = _verdicts(made_v1, made_v1["pkg"])
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert real.returncode == 0, real.stdout + real.stderr
    mine, real = _verdicts(made_v1, made_v1["pkg"], key=made_v1["pkg"] / "station.pub")
    assert (mine.returncode, real.returncode) == (0, 0), mine.stdout + real.stdout


def test_untouched_copy_accepted(made):
    pkg = _copy(made, "untouched")
    mine, real = _verdicts(made, pkg)
    assert (mine.returncode, real.returncode) == (0, 0), mine.stdout + real.stdout


def _check_rejected(made, tamper):
    pkg = _copy(made, tamper.__name__)
    rid = _load(pkg / "manifest.json")["recordings"][0]["id"]
    extra = tamper(pkg, made) or []
    key = extra[1] if extra else None
    mine, real = _verdicts(made, pkg, key=key)
    assert mine.returncode == 1, (
        f"independent verifier accepted {tamper.__name__}:\n{mine.stdout}{mine.stderr}"
    )
    assert mine.stdout.strip(), "a rejection must name at least one problem"
    for kind, fld, absent in getattr(tamper, "expect", []):
        prefix = f"{kind}: manifest.json: recording {rid}: {fld}: "
        named = any(line.startswith(prefix) for line in mine.stdout.splitlines())
        assert named != absent, (
            f"independent verifier {'named' if absent else 'did not name'} {prefix!r} "
            f"on {tamper.__name__}:\n{mine.stdout}"
        )
    assert real.returncode == 1, (
        f"evidock verify-export disagrees on {tamper.__name__}:\n{real.stdout}{real.stderr}"
    )


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__[2:] for t in TAMPERINGS])
def test_tampered_copy_rejected(made, tamper):
    _check_rejected(made, tamper)


@pytest.mark.parametrize("tamper", V1_TAMPERINGS, ids=[t.__name__[3:] for t in V1_TAMPERINGS])
def test_tampered_v1_copy_rejected(made_v1, tamper):
    _check_rejected(made_v1, tamper)


def test_not_a_package(made):
    empty = made["base"] / "copies" / "empty"
    empty.mkdir(parents=True)
    mine, real = _verdicts(made, empty)
    assert (mine.returncode, real.returncode) == (2, 2), mine.stdout + real.stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
