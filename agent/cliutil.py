"""What every command of the CLI shares: settings from the context, output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from agent.settings import Settings, load_settings

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@dataclass
class State:
    config: Path | None


def settings_of(ctx: typer.Context) -> Settings:
    state: State = ctx.ensure_object(State)
    return load_settings(state.config)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def say(line: str) -> None:
    out.print(line, highlight=False, markup=False)


def finish(failed: bool) -> NoReturn:
    raise typer.Exit(1 if failed else 0)
