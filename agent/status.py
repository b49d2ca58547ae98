"""The daemon's status file: written atomically, read by `evidock status`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from storage.errors import EvidockError

STATUS_FILE = "status.json"


class NotRunning(EvidockError):
    pass


def write_status(run_dir: Path, data: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{STATUS_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(data, ensure_ascii=False, default=str))
    tmp.replace(run_dir / STATUS_FILE)


def read_status(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATUS_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NotRunning(f"the daemon is not running (no {path})") from exc
    except (OSError, ValueError) as exc:
        raise NotRunning(f"cannot read {path}: {exc}") from exc
    pid = int(data.get("pid", 0))
    if data.get("state") != "running" or pid <= 0 or not _alive(pid):
        raise NotRunning(f"the daemon is not running (last status from pid {pid}, "
                         f"{data.get('state')}, at {data.get('updated_at')})")
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
