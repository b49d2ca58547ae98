"""Roles from the operating system (R12): who runs a command, and what they may do.

On an installed station the store belongs to the service user, and people use
it through **delegation**: `evidock` run by a member of a role group re-runs
itself as the service user with ``sudo`` (a sudoers rule allows exactly
``/usr/local/bin/evidock`` and nothing else, scripts/install.sh), and the
delegated run takes the caller from ``SUDO_USER`` and their roles from their
groups: ``evidock-officer``, ``evidock-custodian``, ``evidock-supervisor``,
``evidock-admin`` (setting ``role_groups``). Each command needs a role (below);
an admin may do everything. Root and the service user acting directly are the
machine's administrators and have every role; so does everyone where none of the
role groups exists (a development machine: roles are not enforced there).
"""

from __future__ import annotations

import grp
import os
import pwd
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from agent.installed import INSTALLED_COMMAND
from storage.errors import UsageError

SUDO = Path("/usr/bin/sudo")


class Role(StrEnum):
    OFFICER = "officer"
    CUSTODIAN = "custodian"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


DEFAULT_GROUPS = {role.value: f"evidock-{role.value}" for role in Role}

_ALL = frozenset(Role)
_READ = frozenset({Role.OFFICER, Role.CUSTODIAN, Role.SUPERVISOR})  # (admins: always)
#: The roles that may run each command (by its path without "evidock"); admins may run
#: every command. A command not listed needs the admin role.
NEEDS: dict[str, frozenset[Role]] = {
    "status": _READ, "log": _READ, "show": _READ, "config show": _READ,
    "explain list": _READ, "explain show": _READ, "explain print": _READ,
    "explain complete": _READ, "explain correct": _READ, "explanations": _READ,
    "officer list": _READ, "device list": _READ, "device show": _READ,
    "duty list": _READ, "duty declare": frozenset({Role.CUSTODIAN, Role.SUPERVISOR}),
    **{f"device {c}": frozenset({Role.CUSTODIAN}) for c in (
        "register", "assign", "retire", "maintain", "out-of-service", "in-service",
        "check-out", "check-in")},
    "officer add": frozenset({Role.CUSTODIAN}),
    "overdue": frozenset({Role.CUSTODIAN, Role.SUPERVISOR}),
    **{c: frozenset({Role.SUPERVISOR}) for c in (
        "verify", "prove", "export", "verify-package", "report", "annotate", "case close",
        "case file", "case list", "hold add", "hold release", "hold list", "access log")},
}


@dataclass(frozen=True)
class Caller:
    login: str  # the OS account that asked
    roles: frozenset[Role]
    delegated: bool  # run as the service user for ``login`` (sudo)

    def may(self, command: str) -> bool:
        return Role.ADMIN in self.roles or bool(NEEDS.get(command, frozenset()) & self.roles)

    @property
    def sees_all(self) -> bool:
        """Whether every officer's recordings are theirs to see (else only their own)."""
        return bool(self.roles & {Role.SUPERVISOR, Role.ADMIN, Role.CUSTODIAN})


def caller(groups: Mapping[str, str], home: Path) -> Caller:
    """Who runs this command, with what roles (``groups``: role -> group name; ``home``:
    the store, whose owner acting directly has every role)."""
    uid = os.getuid()
    delegated = delegated_run()
    login = os.environ.get("SUDO_USER", "") if delegated else _name(uid)
    if uid == 0 or not _any_group(groups) or (not delegated and _owner(home) == uid):
        return Caller(login, _ALL, delegated)  # the machine's administrators; no roles here
    mine = _groups_of(login)
    return Caller(login, frozenset(Role(r) for r, g in groups.items() if g in mine), delegated)


def delegated_run() -> bool:
    """Whether this process runs for another user through sudo (as the service user)."""
    uid = os.getuid()
    asked = os.environ.get("SUDO_USER") if uid != 0 else None
    return bool(asked) and asked != _name(uid)


def authorize(who: Caller, command: str) -> None:
    if not who.may(command):
        needed = sorted(NEEDS.get(command, frozenset()) | {Role.ADMIN})
        raise UsageError(
            f"`evidock {command}` needs the role {' or '.join(needed)}; {who.login} has "
            + (", ".join(sorted(who.roles)) or "none")
            + " (roles are the groups evidock-officer, -custodian, -supervisor, -admin)")


def delegate(argv: list[str], config: Path) -> None:
    """Re-run this command as the service user if this user cannot read the station's
    settings but is in a role group (never returns then); otherwise do nothing."""
    if os.getuid() == 0 or not SUDO.exists() or _readable(config):
        return
    try:
        service_group = grp.getgrgid(config.parent.stat().st_gid).gr_name
        pwd.getpwnam(service_group)  # the service user has its group's name
    except (OSError, KeyError):
        return
    if not _groups_of(_name(os.getuid())) & set(DEFAULT_GROUPS.values()):
        return
    sys.stdout.flush()
    os.execv(str(SUDO), [str(SUDO), "-n", "-u", service_group, "--",  # noqa: S606 (fixed)
                         INSTALLED_COMMAND, *argv[1:]])


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except FileNotFoundError:
        return True  # no installed settings: nothing to delegate to
    except OSError:
        return False


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _groups_of(login: str) -> set[str]:
    try:
        account = pwd.getpwnam(login)
    except KeyError:
        return set()
    names = set()
    for gid in os.getgrouplist(login, account.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue  # a group id with no name: no role
    return names


def _any_group(groups: Mapping[str, str]) -> bool:
    """Whether any role group exists here (where none does, roles are not enforced)."""
    for name in groups.values():
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return True
    return False


def _owner(home: Path) -> int | None:
    try:
        return home.stat().st_uid
    except OSError:
        return None
