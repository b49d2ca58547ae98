"""Errors reading from a recorder or its volume."""

from __future__ import annotations

from storage.errors import EvidockError, UsageError


class SourceError(EvidockError):
    """A file on the recorder could not be read as it was listed."""

    kind = "unreadable_source"
    # raised by finish(): what was read is kept (in quarantine), it may exist nowhere else
    keeps_copy = True
    action: str | None = None  # what was done, if not the usual (ingest/filing.py)


class SourceVanished(SourceError):
    kind = "source_vanished"


class SourceChanged(SourceError):
    kind = "source_changed"


class VolumeError(UsageError):
    """The volume named cannot be used (missing, not a folder, unreadable)."""


class RecorderError(EvidockError):
    """Talking to a recorder failed."""


class LinkLost(RecorderError):
    """The byte link to the recorder failed (unplugged, port gone): no later command can work."""
