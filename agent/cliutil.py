"""What every command of the CLI shares: settings from the context, output helpers."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from agent.installed import SYSTEM_CONFIG
from agent.owner import act_as_owner
from agent.roles import Caller, authorize, caller, delegated_run
from storage.durable import write_atomic
from storage.errors import UsageError

if TYPE_CHECKING:
    from agent.settings import Settings

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@dataclass
class State:
    config: Path | None
    utc: bool = False  # --utc: times shown in UTC, not the station's zone
    caller: Caller | None = None  # who runs the command (once its settings are read)


# The zone this command shows times in: the station's once its settings are read.
_shown_zone: tzinfo = UTC


def settings_of(ctx: typer.Context) -> Settings:
    from agent.settings import load_settings  # (pydantic: not for --help)

    global _shown_zone
    state: State = ctx.ensure_object(State)
    if state.config is not None and delegated_run():
        raise UsageError("--config cannot be given through delegation: the station's own "
                         "settings apply")
    settings = load_settings(state.config)
    _shown_zone = UTC if state.utc else ZoneInfo(settings.station_zone_name)
    os.umask(int(settings.umask, 8))
    who = caller(settings.role_groups, settings.home)
    authorize(who, ctx.command_path.partition(" ")[2])
    state.caller = who
    act_as_owner(settings.home)  # root on the service's store: as the service user
    return settings


def caller_of(ctx: typer.Context) -> Caller:
    """Who runs the command (settings_of must have run)."""
    who = ctx.ensure_object(State).caller
    assert who is not None, "settings_of first"
    return who


def output_path(ctx: typer.Context, settings: Settings, path: Path) -> Path:
    """A file or folder a command writes for its caller. Through delegation it is written
    as the service user, so it may not be inside the station's own folders."""
    if caller_of(ctx).delegated:
        target = path.absolute().resolve()
        for folder in (settings.home, settings.vault_dir, settings.run_dir,
                       SYSTEM_CONFIG.parent):
            if target.is_relative_to(folder.resolve()):
                raise UsageError(f"{path} is inside the station's own folder {folder}; "
                                 "write it somewhere of yours")
    return path


def write_output(ctx: typer.Context, settings: Settings, path: Path, data: bytes) -> None:
    """Write a document for the caller (never over an existing file: checked before);
    through delegation it belongs to the service user, so it is made readable (0644)."""
    write_atomic(output_path(ctx, settings, path), data)
    if caller_of(ctx).delegated:
        path.chmod(0o644)


def when(value: datetime | str | None, missing: str = "?") -> str:
    """A time as commands show it: in the station's zone with its offset (``+08:00``), or
    in UTC (``UTC``) with --utc. ``value`` is a datetime or ISO 8601 text with an offset."""
    if value is None:
        return missing
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    try:
        local = moment.astimezone(_shown_zone)
    except OverflowError:  # beyond year 9999 in the zone: shown in UTC
        return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if _shown_zone is UTC:
        return f"{local:%Y-%m-%d %H:%M:%S} UTC"
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:5]}"


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def say(line: str) -> None:
    out.print(line, highlight=False, markup=False)


def finish(failed: bool) -> NoReturn:
    raise typer.Exit(1 if failed else 0)


def moment_of(text: str | None, settings: Settings, *, upper: bool) -> datetime | None:
    """The moment ``text`` names, in UTC; a naive one is in the recorders' zone.

    A moment that leaves datetime's range in UTC (0001-01-01 east of Greenwich,
    9999-12-31 west of it) lies before or after every recording: as a lower bound
    (``upper`` off) the far past filters nothing and the far future everything, and
    the other way round for an upper bound.
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a date or time (use 2026-11-20 or "
                         "2026-11-20T08:30)") from exc
    try:
        if moment.tzinfo is None:
            zone = settings.zone
            moment = moment.replace(tzinfo=zone) if zone else moment.astimezone()
        return moment.astimezone(UTC)
    except (OverflowError, ValueError, OSError):
        far_past = moment.year < 5000
        if far_past:
            return datetime.min.replace(tzinfo=UTC) if upper else None
        return None if upper else datetime.max.replace(tzinfo=UTC)


class JournalFormatter(logging.Formatter):
    """Prefixes each line with its syslog priority (``<3>`` error, ``<4>`` warning...),
    which journald reads from a service's stderr (SyslogLevelPrefix=, on by default)."""

    _PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                 (logging.INFO, 6))

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in self._PRIORITY if record.levelno >= level), 7)
        return f"<{priority}>" + super().format(record)


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream ($JOURNAL_STREAM names its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return stream == f"{info.st_dev}:{info.st_ino}"


def setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    fmt = "evidock: %(levelname)s: %(message)s"
    handler.setFormatter(JournalFormatter(fmt) if stderr_is_journal() else logging.Formatter(fmt))
    logging.basicConfig(handlers=[handler], level=level, force=True)
