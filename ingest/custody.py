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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.canonical import canonical_json
from storage.catalog import Catalog
from storage.checkpoint import (
    CheckpointError,
    NoteVerifier,
    add_signature,
    make_checkpoint,
    open_checkpoint,
)
from storage.durable import fsync_dir, write_atomic
from storage.errors import EvidockError, UsageError
from storage.keys import PublicKey, StationKey, load, load_or_create
from storage.merkle import MerkleTree, verify_consistency
from storage.models import Checkpoint, now_utc


class NoCheckpoint(UsageError):
    """No signed checkpoint covers what was asked."""


class OutboxError(EvidockError):
    """A signed checkpoint could not be written to the outbox."""


class LedgerInconsistent(EvidockError):
    """The ledger does not extend the last checkpoint; nothing is signed."""


def origin_of(station_id: str) -> str:
    return f"evidock/{station_id}"


def station_of(note: bytes) -> str | None:
    """The station a checkpoint note names in its first line (``evidock/<station>``)."""
    origin = note.split(b"\n", 1)[0].decode("utf-8", "replace")
    return origin.removeprefix("evidock/") if origin.startswith("evidock/") else None


def stored_tree(catalog: Catalog) -> MerkleTree:
    """The tree of the leaf hashes the catalog stores (verify recomputes them from bodies)."""
    return MerkleTree.from_concatenated(catalog.leaf_hashes())


def make(catalog: Catalog, key: StationKey, station_id: str,
         outbox: Path | None = None) -> Checkpoint:
    """Sign a checkpoint of the ledger as it is now, keep it, and write it to ``outbox``."""
    with catalog.snapshot():  # the leaves and the head as one moment of a busy site
        tree = stored_tree(catalog)
        head = catalog.head()
        latest = catalog.checkpoints()[-1:]
    if head.size != tree.size or head.root != tree.root().hex():
        raise LedgerInconsistent(f"the ledger head ({head.size} leaves) does not match its "
                                 f"{tree.size} leaves; run `evidock verify`; nothing signed")
    for earlier in latest:
        if earlier.size > tree.size or tree.root(earlier.size).hex() != earlier.root:
            raise LedgerInconsistent(
                f"the ledger no longer extends checkpoint {earlier.size} (made "
                f"{earlier.made_at:%Y-%m-%d %H:%M:%S} UTC): it was cut or rewritten; run "
                "`evidock verify`; nothing signed")
    name = origin_of(station_id)
    note = make_checkpoint(name, tree.size, tree.root(), name, key.private)
    row = Checkpoint(size=tree.size, station=station_id, root=tree.root().hex(),
                     note=note.decode("utf-8"), made_at=now_utc())
    catalog.add_checkpoint(row)
    if outbox is not None:
        try:
            write_outbox(outbox, name, row)
        except OSError as exc:
            raise OutboxError(f"checkpoint {row.size} was signed and kept in the catalog, but "
                              f"not written to the outbox {outbox}: {exc.strerror or exc}; "
                              "`evidock checkpoint` tries again") from exc
    return row


def write_outbox(outbox: Path, origin: str, row: Checkpoint) -> Path:
    """Write the note to ``outbox`` as ``<origin>-<size>.checkpoint``."""
    target = outbox / f"{origin.replace('/', '_')}-{row.size:012d}.checkpoint"
    outbox.mkdir(parents=True, exist_ok=True)
    write_atomic(target, row.note.encode("utf-8"))
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


ROTATION_FORMAT = "evidock-key-rotation/1"


def pending_key_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".new")


def rotate(catalog: Catalog, old: StationKey, station_id: str, key_file: Path) -> StationKey:
    """Replace the station key: a statement naming both keys, signed by both, is recorded
    in the ledger; then the new key takes the key file's name and the old one is kept as
    ``<key file>.retired-<old key id>`` (records it signed still check against the ledger).

    Crash-safe: the new key is made (atomically) as ``<key file>.new`` first; if the
    process stops after the ledger leaf, the next start finishes the swap
    (``finish_rotation``); if before, the old key is still the pinned one and a retry
    reuses the new key file.
    """
    pending = pending_key_file(key_file)
    new = load_or_create(pending)
    if new.key_id == old.key_id:
        raise LedgerInconsistent(f"{pending} holds the current key; remove it and retry")
    statement = canonical_json({
        "format": ROTATION_FORMAT, "station": station_id, "old_key_id": old.key_id,
        "new_key_id": new.key_id, "new_public_key": new.public.pem(), "at": now_utc()})
    catalog.rotate_key(station_id, new.key_id, new.public.pem(), {
        "statement": statement.decode("ascii"), "old_signature": old.sign(statement),
        "new_signature": new.sign(statement)})
    finish_rotation(key_file, old.key_id)
    return new


def finish_rotation(key_file: Path, old_key_id: str) -> None:
    """Move the rotated-out key aside and the new key into place; fsync the folder."""
    pending = pending_key_file(key_file)
    retired = key_file.with_name(f"{key_file.name}.retired-{old_key_id.split(':')[-1]}")
    if key_file.exists() and not retired.exists():
        os.link(key_file, retired)
    pending.replace(key_file)
    fsync_dir(key_file.parent)


def resume_rotation(key_file: Path, pinned_key_id: str) -> bool:
    """After a crash mid-rotation: finish it if the pinned key is the pending one."""
    pending = pending_key_file(key_file)
    if not pending.exists() or load(pending).key_id != pinned_key_id:
        return False
    finish_rotation(key_file, load(key_file).key_id)
    return True


class WitnessRefused(UsageError):
    """A checkpoint this station will not cosign."""


def witness(note: bytes, log_key: PublicKey, log_origin: str, own: StationKey,
            own_station: str, state_dir: Path, proof: Sequence[bytes] | None) -> bytes:
    """Cosign another station's checkpoint, if it extends the last one cosigned for it.

    The note must be signed by ``log_key`` under ``log_origin``. The last checkpoint this
    station cosigned for that origin is kept in ``state_dir``; a new one must be the
    same tree (same size and root) or a larger one proven consistent with it by
    ``proof`` (from `evidock prove --from OLD --to NEW` on the logging station). So
    a station that rolled its ledger back can never get a cosignature again.
    """
    trusted = [NoteVerifier.for_key(log_origin, log_key.key)]
    try:
        point, _ = open_checkpoint(note, trusted, origin=log_origin)
    except CheckpointError as exc:
        raise WitnessRefused(f"not a checkpoint signed by {log_origin}: {exc}") from exc
    state = state_dir / f"{log_origin.replace('/', '_')}.checkpoint"
    if state.exists():
        last, _ = open_checkpoint(state.read_bytes(), trusted, origin=log_origin)
        if point.size < last.size:
            raise WitnessRefused(f"the checkpoint has {point.size} leaves, fewer than the "
                                 f"{last.size} already cosigned: the ledger was rolled back")
        if point.size == last.size and point.root != last.root:
            raise WitnessRefused(f"the checkpoint has {point.size} leaves like the one "
                                 "already cosigned, but another root: the ledger was forked")
        if point.size > last.size and not (proof is not None and verify_consistency(
                last.size, point.size, last.root, point.root, proof)):
            raise WitnessRefused(
                f"no valid consistency proof from the {last.size} leaves already cosigned "
                f"to {point.size}: run `evidock prove --from {last.size} --to {point.size}` "
                "on the logging station and pass it with --proof")
    cosigned = add_signature(note, origin_of(own_station), own.private)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(state, cosigned)
    return cosigned
