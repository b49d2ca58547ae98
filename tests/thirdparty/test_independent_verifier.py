"""The independent verifier (written from the docs alone) against real packages.

A real package is made with the real ``evidock`` CLI (ingest of ffmpeg-made media,
then export), then copied and tampered with in several ways. The independent
verifier must accept the good package and reject every tampered copy, and
``evidock verify-export`` must agree with it on good versus bad.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
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


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        EVIDOCK_HOME=str(home),
        EVIDOCK_AGENCY="Test",
        EVIDOCK_STATION_ID="station-1",
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


TAMPERINGS = [v for k, v in sorted(globals().items()) if k.startswith("t_")]


def test_good_package_accepted(made):
    mine, real = _verdicts(made, made["pkg"])
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert real.returncode == 0, real.stdout + real.stderr
    assert "NOT independently trusted" in mine.stderr
    mine, real = _verdicts(made, made["pkg"], key=made["pkg"] / "station.pub")
    assert (mine.returncode, real.returncode) == (0, 0), mine.stdout + real.stdout


def test_untouched_copy_accepted(made):
    pkg = _copy(made, "untouched")
    mine, real = _verdicts(made, pkg)
    assert (mine.returncode, real.returncode) == (0, 0), mine.stdout + real.stdout


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__[2:] for t in TAMPERINGS])
def test_tampered_copy_rejected(made, tamper):
    pkg = _copy(made, tamper.__name__)
    extra = tamper(pkg, made) or []
    key = extra[1] if extra else None
    mine, real = _verdicts(made, pkg, key=key)
    assert mine.returncode == 1, (
        f"independent verifier accepted {tamper.__name__}:\n{mine.stdout}{mine.stderr}"
    )
    assert mine.stdout.strip(), "a rejection must name at least one problem"
    assert real.returncode == 1, (
        f"evidock verify-export disagrees on {tamper.__name__}:\n{real.stdout}{real.stderr}"
    )


def test_not_a_package(made):
    empty = made["base"] / "copies" / "empty"
    empty.mkdir(parents=True)
    mine, real = _verdicts(made, empty)
    assert (mine.returncode, real.returncode) == (2, 2), mine.stdout + real.stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
