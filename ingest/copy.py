"""Copy a source once, hashing the same bytes on the way (SHA-256).

Hashing may run in its own thread: hashlib releases the GIL on large blocks,
so hashing one block overlaps reading and writing the next.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import Protocol

_QUEUE_BLOCKS = 4


class Reader(Protocol):
    def read(self, size: int) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...


def copy_hashing(source: Reader, sink: Writer, *, block_size: int, threaded: bool,
                 on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Copy until end of file; return (SHA-256 hex of the bytes copied, their count)."""
    sha = hashlib.sha256()
    total = 0
    if not threaded:
        while chunk := source.read(block_size):
            sha.update(chunk)
            sink.write(chunk)
            total += len(chunk)
            if on_bytes:
                on_bytes(len(chunk))
        return sha.hexdigest(), total

    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_BLOCKS)

    def hash_blocks() -> None:
        while (chunk := blocks.get()) is not None:
            sha.update(chunk)

    hasher = threading.Thread(target=hash_blocks, name="sha256", daemon=True)
    hasher.start()
    try:
        while chunk := source.read(block_size):
            blocks.put(chunk)
            sink.write(chunk)
            total += len(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    finally:
        blocks.put(None)
        hasher.join()
    return sha.hexdigest(), total
