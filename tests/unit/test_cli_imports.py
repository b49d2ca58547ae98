"""The CLI starts without the catalog's libraries (issue 11).

SQLAlchemy and SQLModel (with storage.models, storage.catalog and what is built on
them) take half a second to import; `evidock --help`, `status` and the settings
commands never open the catalog. The commands that do import those modules in
their bodies; an import at the top of a module cli.py loads brings all of it back
at every start, which these tests catch. Each runs in a fresh interpreter: this
one has long loaded everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVIDOCK = str(Path(sys.executable).with_name("evidock"))

CHECK = ('import cli, sys; print(sorted(m for m in sys.modules if m.split(".")[0] in '
         '("sqlalchemy","sqlmodel","alembic","psycopg")))')


def test_importing_the_cli_loads_no_database_library() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", (
        "importing cli loads " + done.stdout.strip() + "; find which module of evidock "
        "imports it at the top (python -X importtime -c 'import cli') and import it in "
        "the function that uses it")


def test_the_program_gives_its_help() -> None:
    """--help builds every command, so typer reads every command's signature: a type
    named in one (an option's Enum, typer.Context) must be importable at the top of its
    module, not only under TYPE_CHECKING."""
    done = subprocess.run([EVIDOCK, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Docking-station ingest" in done.stdout
