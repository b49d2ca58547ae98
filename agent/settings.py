"""One typed settings object, loaded once from a TOML file and EVIDOCK_* variables.

Precedence (last wins): built-in defaults, the TOML file, environment variables.
The file is ``--config``, else ``$EVIDOCK_CONFIG``, else ``/etc/evidock/evidock.toml``
when it exists. A missing default file is fine; a missing named file is an error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.installed import SYSTEM_CONFIG
from agent.owner import no_access
from agent.roles import DEFAULT_GROUPS
from ingest.naming import never_matches, time_groups
from ingest.rules import MIN_RETENTION_DAYS
from storage.errors import ConfigError

# The naming most recorders use: <prefix>_<device>_<officer>_<YYYYMMDD>_<HHMMSS>[_IMP].<ext>
DEFAULT_PATTERN = (
    r"^(?P<prefix>[A-Za-z0-9]+)_(?P<device>[A-Za-z0-9]+)_(?P<officer>[A-Za-z0-9]+)_"
    r"(?P<date>\d{8})_(?P<time>\d{6})(?:_(?P<important>IMP))?\.(?P<ext>[A-Za-z0-9]+)$"
)


def default_home() -> Path:
    """The data folder: $EVIDOCK_HOME, else $XDG_DATA_HOME/evidock, else ~/.local/share/evidock."""
    if home := os.environ.get("EVIDOCK_HOME"):
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "evidock"


def check_patterns(value: list[str]) -> list[str]:
    """Each pattern compiles, declares its time (ingest/naming.py) and can match a name."""
    for pattern in value:
        try:
            groups = re.compile(pattern).groupindex
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
        if time_groups(list(groups)) is None:
            raise ValueError(f"pattern {pattern!r} needs named groups 'date' and 'time', or "
                             "'year', 'month', 'day', 'hour', 'minute' (and 'second')")
        if why := never_matches(pattern):
            raise ValueError(f"pattern {pattern!r} can never match a recorder's file name: "
                             f"{why}")
    return value


class RecorderModel(BaseModel):
    """A recorder model the daemon recognises by its USB ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    usb_vendor: str = Field(pattern=r"^[0-9a-f]{4}$", description="USB vendor id, hex")
    usb_product: str = Field(pattern=r"^[0-9a-f]{4}$", description="USB product id, hex")
    transport: Literal["storage", "serial"] = Field(
        default="storage", description="'storage': mass storage only; 'serial': a command "
        "port (docs/recorder-protocol.md) and then mass storage")
    file_patterns: list[str] = Field(default_factory=list, description="default: global")
    password: str = Field(default="", description="for the command port")
    set_clock: bool = True
    baudrate: int = 115200
    clear_after_ingest: bool | None = Field(
        default=None, description="clear it (CLR) once every file is verified; default: the "
        "global setting; only for 'serial' models")

    @field_validator("file_patterns")
    @classmethod
    def _compilable(cls, value: list[str]) -> list[str]:
        return check_patterns(value)


class DropFolder(BaseModel):
    """A folder where other recorders (CCTV, interview rooms, audio pens) leave files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    device: str
    officer: str | None = None


# Simulated recorders announce themselves with these ids (devices/simbus.py).
SIMULATED_MODELS = [
    RecorderModel(name="evidock-sim-serial", usb_vendor="1209", usb_product="e5d1",
                  transport="serial", password="000000"),  # noqa: S106 (simulator)
    RecorderModel(name="evidock-sim-storage", usb_vendor="1209", usb_product="e5d2",
                  clear_after_ingest=False),
]


class Settings(BaseModel):
    """Everything evidock can be told. Paths left empty derive from ``home``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home, description="data folder")
    station_id: str = Field(
        default_factory=lambda: socket.gethostname() or "station",
        description="identifies this docking station in every record",
    )
    agency: str = Field(default="Unnamed agency", description="执法机构名称, R6")
    database_url: str = Field(
        default="", description="the catalog: empty = SQLite in home; postgresql://user@host:"
        "port/database for a site catalog (the password from database_password_file)")
    database_password_file: Path | None = Field(
        default=None, description="file whose first line is the catalog database's password")
    database_password: SecretStr = Field(
        default=SecretStr(""), description="the password itself (EVIDOCK_DATABASE_PASSWORD); "
        "prefer database_password_file; never printed")
    offline_docking: bool = Field(
        default=True, description="when the site catalog cannot be reached, dock into the "
        "station's offline store (<home>/offline/) and replay it into the site later; off: "
        "such a dock does not start")
    shared_vault: bool = Field(
        default=False, description="the vault root is shared by the stations of a site: one "
        "files/ tree, each station's work folders under stations/<station_id>/")
    vault_root: Path | None = Field(default=None, description="write-once file store")
    key_path: Path | None = Field(default=None, description="Ed25519 station key (PEM)")
    trusted_keys: list[Path] = Field(
        default_factory=list, description="public keys of other stations (PEM), for verify"
    )
    checkpoint_outbox: Path | None = Field(
        default=None, description="folder (another machine, removable media) that receives "
        "every signed ledger checkpoint; empty = kept in the catalog only")
    notify_command: list[str] = Field(
        default_factory=list, description="program and arguments run at once for each new "
        "storage fault or violation (R3), given the explanation as JSON on stdin; empty = none")
    notify_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, allow_inf_nan=False,
        description="how long the notify command may run before it is stopped")
    deadline_hours: float = Field(
        default=24.0, gt=0, le=87600, allow_inf_nan=False,
        description="R2 storage window: finite, more than 0, at most 87600 (10 years)")
    gap_tolerance_s: float = Field(
        default=2.0, ge=0, le=3600, allow_inf_nan=False,
        description="R4: a pause between clips up to this long is a segment boundary")
    gap_max_s: float = Field(
        default=300.0, gt=0, le=86400, allow_inf_nan=False,
        description="R4: a pause longer than this is a separate recording, not an interruption")
    ready_min_free_pct: float = Field(
        default=10.0, ge=0, le=100, allow_inf_nan=False,
        description="R13: a recorder asked after its dock with less free storage (percent) "
        "is not ready for a shift: an explanation; 0 = not checked")
    ready_min_battery_pct: float = Field(
        default=0.0, ge=0, le=100, allow_inf_nan=False,
        description="R13: ... or less battery (percent); 0 = not checked (right after a "
        "shift a battery is low and only starts charging)")
    continuous_categories: list[str] = Field(
        default_factory=list, description="R5: categories (as `annotate --category` gives "
        "them) recorded without a break: a gap touching one is a violation")
    timezone: str = Field(default="", description="zone of recorder clocks; empty = local")
    file_patterns: list[str] = Field(
        default_factory=lambda: [DEFAULT_PATTERN],
        description="regexes with named groups device, officer, date, time, important",
    )
    retention_days: dict[str, float] = Field(
        default_factory=lambda: {"default": 183.0, "case": 10958.0},
        description="R8: days a recording is kept after its end, by class: 'default', "
        "'case' (in a case: 30 years), or a category; the longest that applies wins; none "
        "under 183 (six months)")
    role_groups: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_GROUPS),
        description="R12: the OS group of each role (officer, custodian, supervisor, admin)")
    access_approval_required: bool = Field(
        default=True, description="R12: viewing, exporting or tagging another officer's "
        "recordings needs --approval and --approved-by (registered in the access log)")
    umask: str = Field(
        default="0077", pattern=r"^0?[0-7]{3}$",
        description="file mode creation mask for what evidock writes (octal): 0077 keeps "
        "a store private to its owner; an installed station uses 0027 (its group reads)")
    block_size_kib: int = Field(default=1024, ge=4, le=65536)
    fsync_every_mib: int = Field(default=64, ge=1)
    verify_reread: bool = Field(default=True, description="re-read each stored copy")
    hash_thread: bool = Field(default=True, description="hash and write in threads beside reading")
    models: list[RecorderModel] = Field(default_factory=lambda: list(SIMULATED_MODELS))
    workers: int = Field(default=2, ge=1, le=64, description="recorders ingested at once")
    drop_folders: list[DropFolder] = Field(default_factory=list)
    drop_settle_s: float = Field(
        default=10.0, gt=0, le=86400, allow_inf_nan=False,
        description="a drop-folder file not closed by its writer counts "
        "as complete after this long unchanged (for file systems without inotify)")
    clear_after_ingest: bool = Field(
        default=False, description="clear a recorder once all its files are verified")
    mounter: Literal["auto", "udisks2", "mount", "fusefat"] = "auto"
    runtime_dir: Path | None = Field(default=None, description="status file, mount points")
    simbus_dir: Path | None = Field(default=None, description="watch simulated recorders here")
    storage_wait_s: float = Field(default=20.0, gt=0, le=3600, allow_inf_nan=False,
                                  description="for the volume after MSC")
    dock_unknown_recorders: bool = Field(
        default=True, description="dock a USB volume of no configured model whose files look "
        "like a recorder's (a DCIM-style folder with names matching file_patterns)")
    implausible_future_hours: float = Field(
        default=24.0, gt=0, le=87600, allow_inf_nan=False,
        description="a recording time further ahead of the station than this is explained")
    implausible_past_days: float = Field(
        default=3650.0, gt=0, le=36500, allow_inf_nan=False,
        description="a recording time further back than this is explained")

    @field_validator("station_id", "agency")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _catalog_url(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if value and (scheme not in _CATALOG_SCHEMES or "://" not in value):
            raise ValueError("must be empty (SQLite in home), sqlite:///<path> or "
                             "postgresql://<user>@<host>:<port>/<database>")
        if urllib.parse.urlsplit(value).password is not None:
            raise ValueError("must not hold a password (it would be shown and logged): put it "
                             "in database_password_file or EVIDOCK_DATABASE_PASSWORD")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("role_groups")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        if set(value) != set(DEFAULT_GROUPS):
            raise ValueError(f"needs exactly the roles {', '.join(DEFAULT_GROUPS)}")
        return value

    @field_validator("retention_days")
    @classmethod
    def _six_months(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a 'default' class")
        for name, days in value.items():
            if not math.isfinite(days) or days < MIN_RETENTION_DAYS:
                raise ValueError(f"class {name!r}: {days:g} days; R8 keeps footage at least "
                                 f"{MIN_RETENTION_DAYS} days (six months)")
        return value

    @field_validator("file_patterns")
    @classmethod
    def _compilable(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one pattern is needed")
        return check_patterns(value)

    # Derived paths -----------------------------------------------------------

    def unfilled(self) -> list[str]:
        """Of the station's identity (agency, station_id, timezone), what no settings file
        or variable gave: the daemon does not start without them."""
        return [name for name in ("agency", "station_id", "timezone")
                if name not in self.model_fields_set or not str(getattr(self, name)).strip()]

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    def catalog_password(self) -> str | None:
        """The database password: EVIDOCK_DATABASE_PASSWORD, else the first line of
        database_password_file, else None (SQLite, or a server that needs none)."""
        if secret := self.database_password.get_secret_value():
            return secret
        if self.database_password_file is None:
            return None
        try:
            text = self.database_password_file.read_text(encoding="utf-8")
        except PermissionError as exc:
            raise ConfigError(f"cannot read the database password: "
                              f"{no_access(self.database_password_file)}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the database password from "
                              f"{self.database_password_file}: {exc}") from exc
        if self.database_password_file.stat().st_mode & 0o004:
            log.warning("the database password file %s is readable by every account; make "
                        "it 0640 (root and the service's group)", self.database_password_file)
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise ConfigError(f"the database password file {self.database_password_file} "
                              "is empty")
        return lines[0]

    @property
    def vault_dir(self) -> Path:
        return self.vault_root or self.home / "vault"

    @property
    def key_file(self) -> Path:
        return self.key_path or self.home / "keys" / "station.key"

    @property
    def run_dir(self) -> Path:
        if self.runtime_dir:
            return self.runtime_dir
        systemd = os.environ.get("RUNTIME_DIRECTORY")  # set by RuntimeDirectory=
        return Path(systemd.split(":")[0]) if systemd else self.home / "run"

    @model_validator(mode="after")
    def _clearable(self) -> Settings:
        for m in self.models:
            if m.transport == "storage" and self.clears(m):
                raise ValueError(
                    f"model {m.name!r}: clearing goes through the command port (CLR), which a "
                    "'storage' recorder has not; set clear_after_ingest = false for it")
        if self.gap_max_s <= self.gap_tolerance_s:
            raise ValueError(f"gap_max_s ({self.gap_max_s:g}) must be more than "
                             f"gap_tolerance_s ({self.gap_tolerance_s:g})")
        return self

    def clears(self, model: RecorderModel | None) -> bool:
        """Whether recorders of this model are cleared after a fully verified dock."""
        if model is None or model.clear_after_ingest is None:
            return self.clear_after_ingest and model is not None
        return model.clear_after_ingest

    def model_named(self, name: str) -> RecorderModel | None:
        return next((m for m in self.models if m.name == name), None)

    @property
    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    @property
    def station_zone_name(self) -> str:
        """The zone commands show times in (``local_zone_name``; UTC if it is unknown)."""
        name = local_zone_name(self.timezone)
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return "UTC"  # e.g. TZ=CST-8, a POSIX rule and not a zone name
        return name


log = logging.getLogger(__name__)

_CATALOG_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")
_ENV_PREFIX = "EVIDOCK_"
_ENV_SKIP = {"EVIDOCK_CONFIG", "EVIDOCK_HOME"}  # handled separately


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(_ENV_PREFIX) or name in _ENV_SKIP:
            continue
        key = name[len(_ENV_PREFIX) :].lower()
        if key not in fields:
            raise ConfigError(f"unknown setting in environment: {name}")
        kind = get_origin(fields[key].annotation)
        values[key] = _json(name, raw, kind) if kind in (list, dict) else raw
    return values


_JSON_EXAMPLE: dict[type, str] = {list: '["first", "second"]',
                                  dict: '{"default": 183, "case": 10958}'}


def _json(name: str, raw: str, kind: type) -> Any:
    """A list or table setting from the environment: JSON, since any separator (':'
    included) can occur inside a pattern or a path."""
    what = "list" if kind is list else "object"
    example = f"e.g. {name}='{_JSON_EXAMPLE[kind]}'"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a JSON {what}, {example} (backslashes doubled): "
                          f"{exc}") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be a JSON {what}, {example}, not "
                          f"{type(value).__name__}")
    return value


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The settings file to read, or None when only defaults apply."""
    if explicit is not None:
        return explicit
    if named := environ.get("EVIDOCK_CONFIG"):
        return Path(named)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def load_settings(
    explicit: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the settings once; raise ConfigError with every problem named."""
    env = os.environ if environ is None else environ
    path = config_path(explicit, env)
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"settings file {path} does not exist") from exc
        except PermissionError as exc:
            raise ConfigError(f"cannot read the settings: {no_access(path)}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc
    if home := env.get("EVIDOCK_HOME"):
        values["home"] = home
    values.update(_from_env(env))
    try:
        return Settings(**values)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from exc


def local_zone_name(configured: str) -> str:
    """The zone the description shows times in: the setting, else the system's, else UTC."""
    if configured:
        return configured
    if zone := os.environ.get("TZ", "").lstrip(":"):
        return zone
    try:
        target = str(Path("/etc/localtime").readlink())
    except OSError:
        return "UTC"
    _, found, zone = target.partition("zoneinfo/")
    return zone if found and zone else "UTC"
