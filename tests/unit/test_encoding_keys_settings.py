from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.settings import DEFAULT_PATTERN, load_settings
from ingest.record import IngestRecord
from storage import keys
from storage.canonical import canonical_json
from storage.errors import ConfigError, StationKeyError
from storage.keys import PublicKey, load, load_or_create


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
    assert body.startswith(b'{"agency":"\\u673a\\u6784"') and b"evidock-ingest-record/2" in body
    assert record(size=6).canonical() != body
    assert record(sha256="cd" * 32).canonical() != body
    assert record(clock_offset_s=0).canonical() != body  # 0 s measured is not unknown
    assert b"evidock-ingest-record/1" in record(version=1).canonical()


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
    ("deadline_hours = inf", {}, "deadline_hours: Input should be a finite number"),
    ("deadline_hours = nan", {}, "deadline_hours: Input should be a finite number"),
    ("deadline_hours = 87601", {}, "deadline_hours: Input should be less than or equal"),
    ("drop_settle_s = inf", {}, "drop_settle_s: Input should be a finite number"),
    ("storage_wait_s = inf", {}, "storage_wait_s: Input should be a finite number"),
    ("storage_wait_s = 0", {}, "storage_wait_s: Input should be greater than 0"),
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


def test_station_key_is_made_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "station.key"
    key = load_or_create(path)
    assert [p.name for p in path.parent.iterdir()] == ["station.key"]
    assert load(path).key_id == key.key_id
    # a second maker (another process racing this one) gets the key already there
    assert keys._create(path).key_id == key.key_id
    assert [p.name for p in path.parent.iterdir()] == ["station.key"]


@pytest.mark.parametrize("crash_in", ["write", "fsync", "link"])
def test_a_crash_while_making_the_key_leaves_no_key_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_in: str) -> None:
    path = tmp_path / "keys" / "station.key"

    def crash(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(f"storage.keys.os.{crash_in}", crash)
    with pytest.raises(StationKeyError, match=f"cannot create station key {path}"):
        load_or_create(path)
    monkeypatch.undo()
    assert list(path.parent.iterdir()) == []  # neither an empty key nor a temporary
    assert load_or_create(path).key_id.startswith("ed25519:")  # the next start makes one


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty"),
    (b"\n \n", "is empty"),
    (b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "is damaged"),
    (b"\x00\xff" * 40, "is damaged"),
])
def test_an_empty_or_garbled_key_is_a_clear_error_naming_the_file(
        tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "station.key"
    path.write_bytes(content)
    path.chmod(0o400)
    with pytest.raises(StationKeyError, match=f"station key {path} {message}.*restore the key"):
        load_or_create(path)
    assert path.read_bytes() == content  # never replaced by a new key


def test_a_key_of_another_kind_or_a_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "station.key"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.chmod(0o400)
    with pytest.raises(StationKeyError, match="not an Ed25519 key"):
        load_or_create(path)
    folder = tmp_path / "folder.key"
    folder.mkdir(mode=0o700)
    with pytest.raises(StationKeyError, match=f"station key {folder} is not a regular file"):
        load_or_create(folder)


def test_an_unreadable_key_is_a_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "station.key"
    load_or_create(path)
    # Tests run as root, which reads a mode-000 file anyway: open() is made to refuse
    # the way it does for an ordinary user.
    real_open = os.open

    def refuse(name: object, *args: Any, **kwargs: Any) -> int:
        if name == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("storage.keys.os.open", refuse)
    with pytest.raises(StationKeyError, match=f"cannot read station key {path}: permission "
                       "denied; run evidock as the user"):
        load_or_create(path)


def test_load_never_creates_a_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "station.key"
    with pytest.raises(StationKeyError, match="does not exist"):
        load(path)
    assert not path.parent.exists()


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "0", "87600.5", "1e400"])
def test_the_storage_window_must_be_finite_positive_and_at_most_ten_years(
        tmp_path: Path, value: str) -> None:
    conf = tmp_path / "evidock.toml"
    conf.write_text(f"deadline_hours = {value}\n")
    with pytest.raises(ConfigError, match="deadline_hours"):
        load_settings(conf, {})
    with pytest.raises(ConfigError, match="deadline_hours"):
        load_settings(None, {"EVIDOCK_DEADLINE_HOURS": value})


def test_the_storage_window_may_be_ten_years() -> None:
    assert load_settings(None, {"EVIDOCK_DEADLINE_HOURS": "87600"}).deadline_hours == 87600


def test_list_settings_from_the_environment_are_json_lists() -> None:
    with_colon = r"^(?P<date>\d{8})_(?P<time>\d{6}):(?P<device>\w+)\.MP4$"
    env = {"EVIDOCK_FILE_PATTERNS": json.dumps([DEFAULT_PATTERN, with_colon]),
           "EVIDOCK_TRUSTED_KEYS": '["/etc/evidock/a:b.pem"]'}
    s = load_settings(None, env)
    assert s.file_patterns == [DEFAULT_PATTERN, with_colon]
    assert s.trusted_keys == [Path("/etc/evidock/a:b.pem")]
    # the default pattern round-trips through the environment unchanged
    assert load_settings(None, {"EVIDOCK_FILE_PATTERNS": json.dumps(
        load_settings(None, {}).file_patterns)}).file_patterns == [DEFAULT_PATTERN]


@pytest.mark.parametrize(("raw", "message"), [
    (r"^(?P<date>\d{8})_(?P<time>\d{6})$:^x$", "must be a JSON list"),
    ('"^(?P<date>x)(?P<time>y)$"', "must be a JSON list.*not str"),
    ('{"a": 1}', "must be a JSON list.*not dict"),
    ('["(unclosed"]', "does not compile"),
    ("[]", "at least one pattern"),
])
def test_a_list_setting_that_is_not_a_json_list_is_refused(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, {"EVIDOCK_FILE_PATTERNS": raw})
