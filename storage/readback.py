"""Reading a copy back from the disk while it is still being written.

A writer tells its ReadBack each time a range of the file became durable (fdatasync):
a thread of the ReadBack's own drops that range's cached pages and reads them back from
the disk, hashing them in file order, while the writer goes on with later ranges. When the
writer has fsynced the whole file it asks for the result: the rest is read back (to the
end of the file, whatever the writer thinks it wrote) and the digest and byte count of
everything read back are returned. A copy counts as stored only if they equal what was
read from the recorder, so the guarantee is the one of reading the whole file back after
it was sealed: every byte was read from the disk after it was durable.

Pages: the kernel drops only whole pages, and the page holding the end of a durable
range may still take bytes of the next one (written, not yet durable). So a durable range
is read back only to its last page boundary; the rest of that page is read with the next
range, once that one is durable too.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading

PAGE = os.sysconf("SC_PAGE_SIZE")
_BLOCK = 1 << 20
_WHOLE = -1  # "read to the end of the file": the writer has sealed it


class ReadBack:
    """Reads back the file open as ``fd`` (read-only; closed by result() or cancel())."""

    def __init__(self, fd: int):
        self._fd = fd
        self._sha = hashlib.sha256()
        self._done = 0  # bytes read back so far, in file order
        self._error: OSError | None = None
        self._stop = False
        self._ends: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._buf = bytearray(_BLOCK)

    def durable(self, upto: int) -> None:
        """The file's first ``upto`` bytes are durable: read them back meanwhile."""
        end = upto - upto % PAGE
        if end <= self._done:
            return
        if self._thread is None:  # started by the first durable range: a small file has
            # none before it is sealed, and a thread would cost more than it saves
            self._thread = threading.Thread(target=self._run, name="read-back", daemon=True)
            self._thread.start()
        self._ends.put(end)

    def result(self) -> tuple[str, int]:
        """SHA-256 hex and size of the whole file as read back from the disk (call once it
        is sealed). OSError if it could not be read."""
        try:
            if self._thread is not None:
                self._ends.put(None)
                self._thread.join()
            self._read_to(_WHOLE)
            if self._error is not None:
                raise self._error
            return self._sha.hexdigest(), self._done
        finally:
            self._close()

    def cancel(self) -> None:
        """Stop reading back (the copy is being discarded)."""
        self._stop = True
        if self._thread is not None:
            self._ends.put(None)
            self._thread.join()
        self._close()

    def _run(self) -> None:
        while (end := self._ends.get()) is not None:
            self._read_to(end)

    def _read_to(self, end: int) -> None:
        if self._error is not None or self._stop:
            return
        view = memoryview(self._buf)
        start = self._done  # a page boundary: only the last range may end inside a page
        try:
            # The range is durable, so its cached pages are clean: drop them and read
            # back what the disk holds.
            os.posix_fadvise(self._fd, start, 0 if end == _WHOLE else end - start,
                             os.POSIX_FADV_DONTNEED)
            while (end == _WHOLE or self._done < end) and not self._stop:
                want = len(view) if end == _WHOLE else min(len(view), end - self._done)
                n = os.preadv(self._fd, [view[:want]], self._done)
                if n == 0:
                    break  # shorter than the writer wrote: the size will tell
                self._sha.update(view[:n])
                self._done += n
        except OSError as exc:
            self._error = exc

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
