"""Check one evidock recording offline, with only its public key (see docs/formats.md).

Usage: python check_record.py SHOW.json STATION.pub VAULT_FILE
  SHOW.json    output of `evidock show ID --json`
  STATION.pub  output of `evidock keys export-public`
  VAULT_FILE   the stored file (or the exported copy)
Exit 0 when the signature and the file are good, 1 otherwise.
"""
import base64
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_public_key

row = json.loads(Path(sys.argv[1]).read_text())                      # evidock show ID --json
key = load_pem_public_key(Path(sys.argv[2]).read_bytes())  # evidock keys export-public

def utc(text):
    return datetime.fromisoformat(text).astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")

record = {
    "format": row["record_format"], "station": row["station"],
    "agency": row["agency"], "session": row["session"], "device": row["device"],
    "officer": row["officer"], "source_path": row["source_path"], "size": row["size"],
    "sha256": row["sha256"], "vault_path": row["vault_path"],
    "recording_start": utc(row["start"]), "recording_end": utc(row["end"]),
    "ingested_at": utc(row["ingested_at"]), "deadline": utc(row["deadline"]),
}
if record["format"] == "evidock-ingest-record/2":  # with the recorder's own times
    record.update(clock_offset_s=row["clock_offset_s"],
                  recorder_start=utc(row["recorder_start"]),
                  recorder_end=utc(row["recorder_end"]))
message = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
key.verify(base64.b64decode(row["signature"]), message.encode("ascii"))  # raises if wrong
digest = hashlib.sha256(Path(sys.argv[3]).read_bytes()).hexdigest()
if digest != row["sha256"]:
    sys.exit(f"signature good, but the file differs: {digest}")
print("signature good; file matches")
