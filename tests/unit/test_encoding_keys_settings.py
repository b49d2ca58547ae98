from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.settings import load_settings
from ingest.record import IngestRecord
from storage.canonical import canonical_json
from storage.errors import ConfigError, StationKeyError
from storage.keys import PublicKey, load_or_create


def record(**changes: object) -> IngestRecord:
    base = dict(station="s1", agency="机构", session="sess", device="D1", officer="O1",
                source_path="DCIM/a.MP4", size=5, sha256="ab" * 32,
                recording_start=datetime(2026, 11, 20, 1, tzinfo=UTC),
                recording_end=datetime(2026, 11, 20, 2, tzinfo=UTC),
                ingested_at=datetime(2026, 11, 20, 3, tzinfo=UTC),
                deadline=datetime(2026, 11, 21, 2, tzinfo=UTC), vault_path="files/x")
    base.update(changes)
    return IngestRecord(**base)  # type: ignore[arg-type]


def test_canonical_encoding_is_sorted_compact_ascii_and_utc() -> None:
    east8 = timezone(timedelta(hours=8))
    data = canonical_json({"b": 1, "a": "机", "t": datetime(2026, 1, 1, 8, tzinfo=east8)})
    assert data == b'{"a":"\\u673a","b":1,"t":"2026-01-01T00:00:00.000000Z"}'
    with pytest.raises(ValueError, match="naive"):
        canonical_json({"t": datetime(2026, 1, 1)})


def test_the_record_names_its_format_and_changes_with_every_field() -> None:
    body = record().canonical()
    assert body.startswith(b'{"agency":"\\u673a\\u6784"') and b"evidock-ingest-record/1" in body
    assert record(size=6).canonical() != body
    assert record(sha256="cd" * 32).canonical() != body


def test_station_key_is_made_once_with_mode_0400(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "station.key"
    key = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create(path).key_id == key.key_id
    assert key.key_id.startswith("ed25519:") and len(key.key_id) == 24
    signature = key.sign(b"evidence")
    public = PublicKey.from_pem(key.public.pem())
    assert public.verify(signature, b"evidence")
    assert not public.verify(signature, b"evidencf")
    assert not public.verify("not base64!", b"evidence")


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "station.key"
    load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(StationKeyError, match="chmod 0400"):
        load_or_create(path)


def test_settings_come_from_defaults_file_then_environment(tmp_path: Path) -> None:
    conf = tmp_path / "evidock.toml"
    conf.write_text('agency = "From file"\nstation_id = "file-station"\ndeadline_hours = 12\n')
    env = {"EVIDOCK_HOME": str(tmp_path / "h"), "EVIDOCK_STATION_ID": "env-station"}
    s = load_settings(conf, env)
    assert (s.agency, s.station_id, s.deadline_hours) == ("From file", "env-station", 12)
    assert s.catalog_url == f"sqlite:///{tmp_path / 'h' / 'catalog.db'}"
    assert s.vault_dir == tmp_path / "h" / "vault"
    assert load_settings(None, {"EVIDOCK_CONFIG": str(conf)}).agency == "From file"


@pytest.mark.parametrize(("text", "env", "message"), [
    ("deadline_hours = -1", {}, "deadline_hours"),
    ("nonsense = 1", {}, "nonsense"),
    ('timezone = "Mars/Olympus"', {}, "unknown time zone"),
    ('file_patterns = ["(unclosed"]', {}, "does not compile"),
    ('file_patterns = ["^(?P<device>x)$"]', {}, "'date' and 'time'"),
    ("agency = ", {}, "not valid TOML"),
    ("", {"EVIDOCK_BLOCK_SIZE_KIB": "lots"}, "block_size_kib"),
    ("", {"EVIDOCK_COLOUR": "red"}, "EVIDOCK_COLOUR"),
])
def test_invalid_settings_name_the_problem(tmp_path: Path, text: str, env: dict[str, str],
                                           message: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(conf, env)


def test_a_named_settings_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", {})
