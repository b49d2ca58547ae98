"""A dock's true account, from the catalog: what was stored, what was not, what was cleared.

Used wherever evidock writes about a dock that did not finish normally (an
interruption, a fault, a crash found at the next start): it states only what
the catalog shows.
"""

from __future__ import annotations

from storage.catalog import Catalog
from storage.errors import CatalogError
from storage.models import DockSession


def dock_account(catalog: Catalog, dock: DockSession) -> str:
    try:
        stored = catalog.count_recordings(dock.session_id)
        clearings = catalog.clearings(dock.session_id)
    except CatalogError as exc:
        return f"what this dock stored is unknown: the catalog cannot be read ({exc})"
    parts = [f"the catalog holds {stored} recording(s) made by this dock (stored, or kept "
             "in quarantine)"]
    if dock.files_seen:
        left = max(dock.files_seen - stored - dock.files_already_held, 0)
        parts.append(f"of the {dock.files_seen} file(s) listed on the volume, "
                     f"{dock.files_already_held} were already held and {left} were not "
                     "stored by this dock")
    else:
        parts.append("no file list of the volume was recorded")
    if not clearings:
        parts.append("evidock did not clear the recorder; files not stored are copied at the "
                     "next dock if they are still on it")
    for c in clearings:
        parts.append(f"clearing {c.id} was asked for; its outcome: {c.outcome or 'unknown'}"
                     + (f" ({c.detail})" if c.detail else ""))
    return "; ".join(parts)
