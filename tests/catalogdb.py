"""Raw access to a test store's catalog, as an attacker or a broken disk would have it:
the SQLite file in home, or the PostgreSQL database the settings name. Statements use
``?`` placeholders on both."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class RawCatalog:
    def __init__(self, conn: Any, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        if self.postgres:
            statement = statement.replace("%", "%%").replace("?", "%s")
        return self.conn.execute(statement, tuple(params))


def postgres_url() -> str | None:
    url = os.environ.get("EVIDOCK_DATABASE_URL", "")
    return url if url.startswith("postgresql://") else None


@contextmanager
def raw_catalog(home: Path) -> Iterator[RawCatalog]:
    """One transaction on the catalog, committed when the block ends without error."""
    url = postgres_url()
    if url is None:
        with sqlite3.connect(home / "catalog.db") as db:
            yield RawCatalog(db, postgres=False)
        db.close()
        return
    import psycopg

    with psycopg.connect(url,
                         password=os.environ.get("EVIDOCK_DATABASE_PASSWORD")) as conn:
        yield RawCatalog(conn, postgres=True)
