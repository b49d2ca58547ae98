"""Signed checkpoints of the ledger: made, kept, written to the outbox, and checked.

A checkpoint (C2SP tlog-checkpoint, storage/checkpoint.py) names the ledger's size
and root under the station's origin ``evidock/<station id>`` and is signed with
the station key under the same name. The station never signs a checkpoint that
is inconsistent with its previous one: the previous root must be the root of the
first leaves of today's ledger. Each checkpoint is kept in the catalog and, when
``checkpoint_outbox`` is set, written to that folder (another machine, removable
media), so that rolling the ledger back is caught by anyone holding a later one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.catalog import Catalog
from storage.checkpoint import CheckpointError, NoteVerifier, make_checkpoint, open_checkpoint
from storage.errors import EvidockError, UsageError
from storage.keys import PublicKey, StationKey
from storage.merkle import MerkleTree
from storage.models import Checkpoint, now_utc


class NoCheckpoint(UsageError):
    """No signed checkpoint covers what was asked."""


class LedgerInconsistent(EvidockError):
    """The ledger does not extend the last checkpoint; nothing is signed."""


def origin_of(station_id: str) -> str:
    return f"evidock/{station_id}"


def stored_tree(catalog: Catalog) -> MerkleTree:
    """The tree of the leaf hashes the catalog stores (verify recomputes them from bodies)."""
    return MerkleTree(bytes.fromhex(leaf.leaf_hash) for leaf in catalog.leaves())


def make(catalog: Catalog, key: StationKey, station_id: str,
         outbox: Path | None = None) -> Checkpoint:
    """Sign a checkpoint of the ledger as it is now, keep it, and write it to ``outbox``."""
    tree = stored_tree(catalog)
    head = catalog.head()
    if head.size != tree.size or head.root != tree.root().hex():
        raise LedgerInconsistent(f"the ledger head ({head.size} leaves) does not match its "
                                 f"{tree.size} leaves; run `evidock verify`; nothing signed")
    for earlier in catalog.checkpoints()[-1:]:
        if earlier.size > tree.size or tree.root(earlier.size).hex() != earlier.root:
            raise LedgerInconsistent(
                f"the ledger no longer extends checkpoint {earlier.size} (made "
                f"{earlier.made_at:%Y-%m-%d %H:%M:%S} UTC): it was cut or rewritten; run "
                "`evidock verify`; nothing signed")
    name = origin_of(station_id)
    note = make_checkpoint(name, tree.size, tree.root(), name, key.private)
    row = Checkpoint(size=tree.size, root=tree.root().hex(), note=note.decode("utf-8"),
                     made_at=now_utc())
    catalog.add_checkpoint(row)
    if outbox is not None:
        write_outbox(outbox, name, row)
    return row


def write_outbox(outbox: Path, origin: str, row: Checkpoint) -> Path:
    """Write the note to ``outbox`` atomically (temporary file, fsync, rename, fsync dir)."""
    target = outbox / f"{origin.replace('/', '_')}-{row.size:012d}.checkpoint"
    outbox.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=outbox)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(row.note.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return target


def verifiers(station_id: str, keys: Iterable[PublicKey]) -> list[NoteVerifier]:
    name = origin_of(station_id)
    return [NoteVerifier.for_key(name, key.key) for key in keys]


@dataclass(frozen=True)
class Finding:
    subject: str
    detail: str


def check(note: bytes, tree: MerkleTree, trusted: Sequence[NoteVerifier],
          origin: str, subject: str) -> Finding | None:
    """One signed checkpoint against the ledger's tree; None when it holds."""
    try:
        point, _ = open_checkpoint(note, trusted, origin=origin)
    except CheckpointError as exc:
        return Finding(subject, f"not a valid checkpoint of this station: {exc}")
    if point.size > tree.size:
        return Finding(subject, f"signed for {point.size} leaves, the ledger has only "
                                f"{tree.size}: the ledger was cut short")
    if tree.root(point.size) != point.root:
        return Finding(subject, f"the ledger's first {point.size} leaves no longer have the "
                                "signed root: the ledger was rewritten")
    return None


def latest(catalog: Catalog) -> Checkpoint:
    points = catalog.checkpoints()
    if not points:
        raise NoCheckpoint("the ledger has no checkpoint yet; run `evidock checkpoint`")
    return points[-1]


def recording_leaf(catalog: Catalog, recording_id: int) -> int:
    """The seq of the leaf that recorded this recording."""
    for leaf in catalog.leaves_about("recording", str(recording_id)):
        return leaf.seq
    raise NoCheckpoint(f"no ledger leaf records recording {recording_id}")


def inclusion(catalog: Catalog, seq: int) -> dict[str, object]:
    """Leaf ``seq``, and its inclusion proof against the latest signed checkpoint."""
    point = latest(catalog)
    if seq >= point.size:
        raise NoCheckpoint(f"leaf {seq} is newer than the latest checkpoint ({point.size} "
                           "leaves); run `evidock checkpoint` first")
    tree = stored_tree(catalog)
    (leaf,) = catalog.leaves(seq, seq + 1)
    return {"leaf_index": seq, "leaf": leaf.body, "leaf_hash": leaf.leaf_hash,
            "tree_size": point.size, "root": point.root,
            "proof": [h.hex() for h in tree.inclusion_proof(seq, point.size)],
            "checkpoint": point.note}


def consistency(catalog: Catalog, old_size: int, new_size: int | None) -> dict[str, object]:
    """The consistency proof from ``old_size`` leaves to a signed checkpoint's size."""
    points = {p.size: p for p in catalog.checkpoints()}
    point = latest(catalog) if new_size is None else points.get(new_size)
    if point is None:
        raise NoCheckpoint(f"no checkpoint of size {new_size}; sizes: "
                           f"{', '.join(map(str, sorted(points))) or 'none'}")
    if not 0 <= old_size <= point.size:
        raise NoCheckpoint(f"--from must be between 0 and {point.size}")
    tree = stored_tree(catalog)
    return {"old_size": old_size, "old_root": tree.root(old_size).hex(),
            "new_size": point.size, "new_root": point.root,
            "proof": [h.hex() for h in tree.consistency_proof(old_size, point.size)],
            "checkpoint": point.note}
