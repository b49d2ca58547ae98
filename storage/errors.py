"""One exception tree for evidock.

Every error a user can meet derives from :class:`EvidockError`; its message
says what happened and what to do. The CLI catches it once and exits 1
(or 2 for :class:`UsageError`).
"""

from __future__ import annotations


class EvidockError(Exception):
    """Base of every error evidock raises on purpose."""


class UsageError(EvidockError):
    """The user asked for something impossible (bad option, bad config)."""


class ConfigError(UsageError):
    """The settings file or an EVIDOCK_* variable is invalid."""


class CatalogError(EvidockError):
    """The catalog database cannot be opened, migrated or written."""


class CatalogUnreachable(CatalogError):
    """The catalog's database server cannot be reached (down, refused, timed out)."""


class CatalogRefused(CatalogError, UsageError):
    """The catalog's server answered but refused the settings (password, database, role)."""


class StationKeyError(EvidockError):
    """The station key is missing, unreadable or has unsafe permissions."""


class VaultError(EvidockError):
    """A vault operation failed; ``errno`` tells why when the OS said so."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class NotFound(UsageError):
    """A record the user named does not exist."""
