"""A real PostgreSQL server for the tests: Debian's initdb and pg_ctl on a private folder.

The server listens on 127.0.0.1 (a free port) and on a Unix socket in its folder. The
superuser connects over the socket without a password; the evidock role connects over
TCP with a SCRAM password, as a station would. As root the cluster belongs to the
``postgres`` account (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PASSWORD = "evidock-test-password"
ROLE = "evidock"


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/" + name))
    if not versions:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed "
                                "(apt-get install postgresql)")
    return str(versions[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One cluster; :meth:`database` makes a fresh database for one test."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="evidock-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            pw = pwd.getpwnam(self._user)
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        self.superuser = self._user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PgServer:
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "-U", self.superuser)
        with (self.data / "pg_hba.conf").open("w") as hba:
            hba.write("local all all trust\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.folder}'\n"
                       "fsync = on\nmax_connections = 200\n")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")
        self.sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")

    def running(self) -> bool:
        return self._run(_bin("pg_ctl"), "-D", str(self.data), "status",
                         check=False).returncode == 0

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = self._run(_bin("psql"), "-h", str(self.folder), "-p", str(self.port),
                         "-U", self.superuser, "-d", database, "-v", "ON_ERROR_STOP=1",
                         "-Atc", statement)
        return done.stdout.strip()

    def database(self) -> str:
        """A new empty database owned by the evidock role; its URL without the password."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"
