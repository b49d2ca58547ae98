"""Who a command runs as, on a store that belongs to the service user.

Root running evidock against a store owned by another account (the installed
station's ``evidock`` user) acts as that account, so nothing it writes is left
owned by root for the daemon to trip over. A user who may not read the store is
told which role groups would let them, never shown a traceback.
"""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

log = logging.getLogger(__name__)


def act_as_owner(home: Path) -> str | None:
    """As root, become the owner of ``home`` if it exists and is not root's; returns the
    account now acted as, or None if nothing changed. Files opened before are not
    affected, so call this before anything of the store is opened."""
    if os.geteuid() != 0:
        return None
    try:
        info = home.stat()
    except FileNotFoundError:
        return None
    if info.st_uid == 0:
        return None
    try:
        account = pwd.getpwuid(info.st_uid)
        name, gid = account.pw_name, account.pw_gid
        os.initgroups(name, gid)
    except KeyError:  # an owner with no account: its ids, and no other groups
        name, gid = str(info.st_uid), info.st_gid
        os.setgroups([])
    os.setgid(gid)
    os.setuid(info.st_uid)
    log.info("acting as %s, the owner of %s (run as root)", name, home)
    return name


def no_access(path: Path | str | None, doing: str = "read") -> str:
    """Why this user cannot ``doing`` ``path``, and what would let them."""
    user = pwd.getpwuid(os.getuid()).pw_name if _has_account() else str(os.getuid())
    return (f"permission denied: user {user} may not {doing} {path}; on an installed "
            "station, ask an admin to add you to the role group you need (evidock-officer, "
            f"evidock-custodian, evidock-supervisor or evidock-admin; as root: adduser {user} "
            "GROUP, then log in again): evidock then runs as the station's service user for "
            "you; or run evidock as root (it then acts as the store's owner)")


def _has_account() -> bool:
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        return False
    return True
