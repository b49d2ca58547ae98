"""Export recordings as a self-verifying evidence package for a court (R10, R12, R7).

The package (docs/export-format.md) holds the files, their signed ingest records,
the ledger leaves about them, a checkpoint signed after the export's own ledger
event, inclusion proofs against it, the station's public key and the written
description (text, HTML, PDF). ``evidock verify-export`` checks it without the
station.

Order, so that nothing half-made is ever mistaken for a package and the ledger
names only a package that was written: check every input and select the
recordings (a mistake here writes nothing); copy each file, hashing while
copying, and stop at the first that does not match its signed digest; write
the descriptions, then manifest.json; record the ``export`` event (with the
manifest's sha256); sign a checkpoint that covers it; write the proofs and the
checkpoint. Any failure removes what was written; a failure after the event is
recorded too (``export-abandoned``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import pdf
from agent.settings import local_zone_name
from ingest import custody, description
from ingest.dock import IngestContext
from ingest.package import (
    CHECKPOINT,
    DESCRIPTION_HTML,
    DESCRIPTION_PDF,
    DESCRIPTION_TXT,
    MANIFEST,
    PROOFS,
    PROOFS_FORMAT,
    PUBLIC_KEY,
    VKEY,
    Collection,
    LeafIndex,
    export_payload,
    json_bytes,
    leaves_about,
    manifest_object,
    recording_entry,
    records_row,
)
from storage.canonical import utc_text
from storage.checkpoint import verifier_key
from storage.durable import fsync_dir
from storage.errors import EvidockError, NotFound, UsageError, VaultError
from storage.hashing import hash_fd, hash_stream
from storage.merkle import MerkleTree, leaf_hash
from storage.models import Recording, now_utc
from storage.terms import LogFilter

log = logging.getLogger(__name__)

_ISO_TOOL = "xorriso"


class ExportError(EvidockError):
    """The export could not be made; what was written has been removed."""


@dataclass(frozen=True)
class ExportRequest:
    recording_ids: tuple[int, ...]  # empty when selecting by case
    case: str | None
    out: Path
    collector: str
    place: str
    reason: str
    approved_by: str
    iso: Path | None = None


@dataclass(frozen=True)
class ExportResult:
    package_id: str
    out: Path
    recordings: tuple[int, ...]
    files: int
    bytes: int
    manifest_sha256: str
    checkpoint_size: int
    export_seq: int
    iso: Path | None = None
    iso_sha256: str | None = None

    def lines(self) -> list[str]:
        """What `evidock export` prints."""
        out = [f"exported {len(self.recordings)} recording(s) ({self.files} file(s), "
               f"{self.bytes:,} bytes) to {self.out}",
               f"  package {self.package_id}, manifest sha256 {self.manifest_sha256}",
               f"  recorded as ledger leaf {self.export_seq}; checkpoint of "
               f"{self.checkpoint_size} leaves signed"]
        if self.iso is not None:
            out.append(f"  disc image {self.iso} (sha256 {self.iso_sha256})")
        out.append(f"  check it with: evidock verify-export {self.out} --key station.pub")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"package_id": self.package_id, "out": str(self.out),
                "recordings": list(self.recordings), "files": self.files, "bytes": self.bytes,
                "manifest_sha256": self.manifest_sha256,
                "checkpoint_size": self.checkpoint_size, "export_seq": self.export_seq,
                "iso": str(self.iso) if self.iso else None, "iso_sha256": self.iso_sha256}


# Checking the request: nothing is written before all of this passes ------------------

def check_text(option: str, value: str) -> str:
    """A description field: non-empty, one line, no control characters."""
    cleaned = value.strip()
    if not cleaned:
        raise UsageError(f"{option} is empty; the written description needs it (R10)")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in cleaned):
        raise UsageError(f"{option} contains a control character or line break; give it on "
                         "one line")
    if len(cleaned) > 2000:
        raise UsageError(f"{option} is {len(cleaned)} characters; at most 2000")
    return cleaned


def check_out(out: Path, vault_root: Path) -> None:
    """OUT must be an empty folder or not exist (its parent must), outside the vault."""
    target = out.absolute()
    if target.resolve().is_relative_to(vault_root.absolute().resolve()):
        raise UsageError(f"{out} is inside the vault; export to a folder outside it")
    if out.is_symlink():
        raise UsageError(f"{out} is a symbolic link; name the real folder")
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out} exists and is not a folder; nothing was exported")
        if any(out.iterdir()):
            raise UsageError(f"{out} is not empty; export into a new or empty folder "
                             "(nothing was written)")
    elif not target.parent.is_dir():
        raise UsageError(f"the folder {target.parent} does not exist; create it first")


def check_iso(iso: Path) -> None:
    if iso.exists() or iso.is_symlink():
        raise UsageError(f"{iso} exists; not overwriting it")
    if not iso.absolute().parent.is_dir():
        raise UsageError(f"the folder {iso.absolute().parent} does not exist")
    if shutil.which(_ISO_TOOL) is None:
        raise UsageError(f"--iso needs {_ISO_TOOL}: install it with `scripts/system-deps.sh "
                         "export`; nothing was exported")


def select(station: IngestContext, request: ExportRequest) -> list[Recording]:
    """The recordings to export, by id (in the order given) or by case (oldest first);
    a recording purged by rule (R8) has no file left to export."""
    catalog = station.catalog
    if request.case is not None:
        rows = list(catalog.recordings(LogFilter(case=request.case)))
        if not rows:
            raise NotFound(f"no recording has case number {request.case!r}; "
                           "see `evidock log --case`")
    else:
        rows, seen = [], set()
        for rec_id in request.recording_ids:
            if not 0 <= rec_id < 2**63:
                raise NotFound(f"no recording with id {rec_id}")
            if rec_id not in seen:
                seen.add(rec_id)
                rows.append(catalog.recording(rec_id))
    if purged := [r for r in rows if r.purged_at is not None]:
        raise UsageError("purged by rule (R8), their files are gone: recording(s) "
                         + ", ".join(f"{r.id} ({r.purged_at:%Y-%m-%d})" for r in purged))
    return rows


@dataclass(frozen=True)
class CopyStep:
    """One vault file to copy: several recordings may name the same bytes."""

    vault_path: str
    name: str
    sha256: str
    size: int
    recording_ids: tuple[int, ...]


def plan_copies(rows: Sequence[Recording]) -> list[CopyStep]:
    """One copy per vault file, with the digest and size every row naming it signed."""
    steps: dict[str, CopyStep] = {}
    for row in rows:
        assert row.id is not None
        known = steps.get(row.vault_path)
        if known is None:
            steps[row.vault_path] = CopyStep(row.vault_path, row.vault_path, row.sha256,
                                             row.size, (row.id,))
        elif (known.sha256, known.size) != (row.sha256, row.size):
            raise ExportError(f"recordings {known.recording_ids[0]} and {row.id} name the "
                              f"same vault file {row.vault_path} with different digests; "
                              "run `evidock verify`; nothing was exported")
        else:
            steps[row.vault_path] = CopyStep(known.vault_path, known.name, known.sha256,
                                             known.size, (*known.recording_ids, row.id))
    return list(steps.values())


# Writing ------------------------------------------------------------------------------

class _FdWriter:
    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]


class PackageWriter:
    """Writes files under the package folder (never replacing one) and can undo it all."""

    def __init__(self, root: Path):
        self.root = root
        self.made_root = False
        self.bytes = 0

    def open(self) -> None:
        self.made_root = not self.root.exists()  # else an empty folder, checked before
        self.root.mkdir(mode=0o755, exist_ok=True)

    def _create(self, name: str) -> int:
        path = self.root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600)

    def write(self, name: str, data: bytes) -> str:
        """Write one file (read-only once written); return its sha256."""
        fd = self._create(name)
        try:
            _FdWriter(fd).write(data)
            os.fsync(fd)
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        return hashlib.sha256(data).hexdigest()

    def copy(self, source: Path, name: str, block_size: int) -> tuple[str, int]:
        """Copy ``source`` to ``name``, hashing the bytes as they are read: (sha256, size)."""
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = self._create(name)
            try:
                with os.fdopen(src, "rb", buffering=0, closefd=False) as stream:
                    digest, size = hash_stream(stream, _FdWriter(fd), block_size=block_size)
                os.fsync(fd)
                os.fchmod(fd, 0o444)
            finally:
                os.close(fd)
        finally:
            os.close(src)
        self.bytes += size
        return digest, size

    def sync(self) -> None:
        """fsync every folder of the package, deepest first, then the folder holding it."""
        folders = [Path(top) for top, _dirs, _files in os.walk(self.root)]
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(folder)
        fsync_dir(self.root.absolute().parent)

    def remove(self) -> None:
        """Undo: remove everything written (and the folder, if this export made it)."""
        if self.made_root:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        for entry in list(self.root.iterdir()) if self.root.is_dir() else []:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# The export -----------------------------------------------------------------------------

def run_export(station: IngestContext, request: ExportRequest, *, timezone: str = "",
               outbox: Path | None = None) -> ExportResult:
    """Make the package; see the module docstring for the order of the steps."""
    collection_fields = {name: check_text(option, value) for name, option, value in (
        ("collector", "--collector", request.collector), ("place", "--place", request.place),
        ("reason", "--reason", request.reason),
        ("approved_by", "--approved-by", request.approved_by))}
    if (request.case is None) == (not request.recording_ids):
        raise UsageError("give the recordings to export: --recording ID (repeatable) or "
                         "--case NO, not both")
    check_out(request.out, station.vault.root)
    if request.iso is not None:
        check_iso(request.iso)
    pdf.require()
    rows = select(station, request)
    if others := sorted({row.station_id for row in rows} - {station.station_id}):
        mine = [str(row.id) for row in rows if row.station_id != station.station_id][:10]
        raise UsageError(
            f"recordings {', '.join(mine)} were stored by station {', '.join(others)}: a "
            "package carries the keys of the station that makes it, so export them at the "
            "station that stored them (each station of a site verifies all of them)")
    ids = tuple(row.id for row in rows if row.id is not None)
    steps = plan_copies(rows)
    index = _leaves_about(station, ids)
    leaves = index.found

    package_id = str(uuid.uuid4())
    created_at = now_utc()
    zone = local_zone_name(timezone)
    collection = Collection(recording_ids=ids, case=request.case, timezone=zone,
                            **collection_fields)
    writer = PackageWriter(request.out)
    logged = False
    try:
        writer.open()
        for step in steps:
            _copy(station, writer, step)
        entries = [recording_entry(row, leaves[row.id]) for row in rows if row.id is not None]
        origin = custody.origin_of(station.station_id)

        def manifest_with(documents: list[dict[str, Any]]) -> dict[str, Any]:
            return manifest_object(
                package_id=package_id, station=station.station_id, agency=station.agency,
                origin=origin, key_id=station.key.key_id, created_at=utc_text(created_at),
                collection=collection, recordings=entries,
                station_keys=index.station_leaves, documents=documents)

        # The descriptions are made from the manifest without them, then listed in it.
        documents = _write_descriptions(writer, manifest_with([]))
        manifest = manifest_with(documents)
        manifest_sha256 = writer.write(MANIFEST, json_bytes(manifest))
        public = station.key.public
        writer.write(PUBLIC_KEY, public.pem().encode("ascii"))
        writer.write(VKEY, (verifier_key(origin, public.key) + "\n").encode("ascii"))

        payload = export_payload(manifest, str(request.out.absolute()), manifest_sha256)
        station.catalog.log("export", package_id, payload)
        logged = True
        point = custody.make(station.catalog, station.key, station.station_id, outbox)
        wanted = {leaf.seq for about in leaves.values() for leaf in about}
        wanted |= {leaf.seq for leaf in index.station_leaves}
        proofs, export_seq = _proofs(station, package_id, point.size, point.root,
                                     sorted(wanted), origin)
        writer.write(PROOFS, json_bytes(proofs))
        writer.write(CHECKPOINT, point.note.encode("utf-8"))
        writer.sync()
    except BaseException as exc:
        writer.remove()
        if logged:
            _abandoned(station, package_id, exc)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write the package in {request.out}: "
                              f"{exc.strerror or exc}; nothing was exported") from exc
        raise
    log.info("exported %d recordings to %s as package %s (ledger leaf %d, checkpoint %d)",
             len(ids), request.out, package_id, export_seq, point.size)
    result = ExportResult(package_id, request.out, ids, len(steps), writer.bytes,
                          manifest_sha256, point.size, export_seq)
    if request.iso is None:
        return result
    iso_sha256 = make_iso(request.out, request.iso, package_id)
    station.catalog.log("export-image", package_id, {"iso": str(request.iso.absolute()),
                                                      "sha256": iso_sha256})
    return ExportResult(**{**result.__dict__, "iso": request.iso, "iso_sha256": iso_sha256})


def _leaves_about(station: IngestContext, ids: Sequence[int]) -> LeafIndex:
    index = leaves_about(((leaf.seq, leaf.kind, leaf.body) for leaf in station.catalog.leaves()),
                         ids, station.station_id)
    for rec_id in ids:
        first = index.found.get(rec_id, [])
        if not first or records_row(json.loads(first[0].body), rec_id) is None:
            raise ExportError(f"the ledger has no leaf recording recording {rec_id}; run "
                              "`evidock verify`; nothing was exported")
    if not index.station_leaves:
        raise ExportError(f"the ledger has no leaf registering station {station.station_id}; "
                          "run `evidock verify`; nothing was exported")
    return index


def _copy(station: IngestContext, writer: PackageWriter, step: CopyStep) -> None:
    what = f"recording {', '.join(map(str, step.recording_ids))} ({step.vault_path})"
    try:
        source = station.vault.path(step.vault_path)
    except VaultError as exc:
        raise ExportError(f"{what}: {exc}; nothing was exported") from exc
    try:
        digest, size = writer.copy(source, step.name, station.options.block_size)
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename) == source:
            missing = " (the file is missing from the vault)" if exc.errno == errno.ENOENT else ""
            raise ExportError(f"{what}: cannot read the vault copy{missing}: "
                              f"{exc.strerror or exc}; run `evidock verify`; nothing was "
                              "exported") from exc
        raise
    if (digest, size) != (step.sha256, step.size):
        raise ExportError(f"{what}: the vault copy does not match its signed record "
                          f"(signed {step.sha256}, {step.size} bytes; read {digest}, {size} "
                          "bytes); run `evidock verify`; nothing was exported")


def _write_descriptions(writer: PackageWriter, manifest: dict[str, Any]
                        ) -> list[dict[str, Any]]:
    html_text = description.html_document(manifest)
    documents = [(DESCRIPTION_TXT, description.text(manifest).encode("utf-8")),
                 (DESCRIPTION_HTML, html_text.encode("utf-8")),
                 (DESCRIPTION_PDF, pdf.html_to_pdf(html_text))]
    out = []
    for name, data in documents:
        out.append({"file": name, "size": len(data), "sha256": writer.write(name, data)})
    return out


def _proofs(station: IngestContext, package_id: str, size: int, root_hex: str,
            seqs: Sequence[int], origin: str) -> tuple[dict[str, Any], int]:
    """Inclusion proofs of the wanted leaves and of the export leaf in the checkpoint."""
    hashes: list[bytes] = []
    export: tuple[int, str] | None = None
    for leaf in station.catalog.leaves(0, size):
        computed = leaf_hash(leaf.body.encode("ascii", "replace"))
        if leaf.seq != len(hashes) or computed.hex() != leaf.leaf_hash:
            raise ExportError(f"ledger leaf {leaf.seq} does not match its hash or position; "
                              "run `evidock verify`; nothing was exported")
        hashes.append(computed)
        if leaf.kind == "export" and leaf.subject == package_id:
            export = (leaf.seq, leaf.body)
    tree = MerkleTree(hashes)
    if tree.size != size or tree.root().hex() != root_hex or export is None:
        raise ExportError("the ledger changed under the export's checkpoint; run "
                          "`evidock verify`; nothing was exported")

    def proof(seq: int) -> dict[str, Any]:
        return {"seq": seq, "leaf_hash": hashes[seq].hex(),
                "proof": [h.hex() for h in tree.inclusion_proof(seq)]}

    export_seq, export_body = export
    return {
        "format": PROOFS_FORMAT,
        "package_id": package_id,
        "checkpoint": {"origin": origin, "size": size, "root": root_hex},
        "export_leaf": {**proof(export_seq), "body": export_body},
        "leaves": [proof(seq) for seq in seqs],
    }, export_seq


def _abandoned(station: IngestContext, package_id: str, exc: BaseException) -> None:
    """Say in the ledger that the export just logged produced no package."""
    try:
        station.catalog.log("export-abandoned", package_id,
                            {"error": str(exc) or type(exc).__name__})
    except EvidockError as again:
        log.error("export %s was logged but abandoned (%s), and that could not be logged: %s",
                  package_id, exc, again)


def make_iso(folder: Path, iso: Path, package_id: str) -> str:
    """An ISO 9660 image (Rock Ridge and Joliet names, ISO level 3 for large files)."""
    volume_id = "EVIDOCK_" + package_id.replace("-", "")[:24].upper()
    tmp = iso.with_name(f".{iso.name}.partial")
    command = [_ISO_TOOL, "-as", "mkisofs", "-quiet", "-iso-level", "3", "-R", "-J",
               "-joliet-long", "-V", volume_id, "-o", str(tmp), str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=3600)
        if done.returncode != 0:
            raise ExportError(f"the package in {folder} is complete, but {_ISO_TOOL} could not "
                              f"make {iso}: {done.stderr.strip()[-400:]}")
        with tmp.open("rb") as stream:
            digest, _ = hash_fd(stream.fileno())
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.rename(iso)
        fsync_dir(iso.absolute().parent)
    except OSError as exc:
        raise ExportError(f"the package in {folder} is complete, but {iso} could not be "
                          f"written: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return digest
