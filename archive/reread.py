"""Re-reading a staging file from the disk behind its writer, while the copy goes on.

A camera delivers 35–100 MB/s; the store's disk reads ten times faster. Re-reading the
whole copy only after its last byte makes every offload end with a pass over the file
that nothing overlaps. A :class:`Follower` does that pass during the copy instead: each
time the writer is a window past what has been re-read, the follower makes the file's
data durable (``fdatasync``), drops that range's pages and reads it back from the disk
into a running BLAKE3. At the end (:meth:`archive.staging.Stager.verify`) only the rest,
less than a window, is re-read the same way. The guarantee is the one of a re-read after
the copy: every byte is read back from the disk after it was made durable and its pages
dropped, and the BLAKE3 of all of them must equal the one taken while copying.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from integrity.digest import CHUNK_SIZE

#: Re-read this far behind the writer: large enough that the pages are written back by
#: then (direct writes leave none; the buffered writer starts writeback every 8 MiB),
#: small enough that the final re-read, after the camera's last byte, is short.
WINDOW = 8 << 20
_PAGE = mmap.PAGESIZE

#: Called with the staging file before each range is read back (the store's
#: ``before_reread`` test seam: a test flips a byte there, as a disk that did not keep it).
RangeSeam = Any


@dataclass(frozen=True)
class Followed:
    """What the follower read back during the copy: the first ``done`` bytes, hashed."""

    done: int
    hasher: Any  # blake3.blake3, continued by the final re-read


class Follower:
    """One staging file's re-read, on its own thread, ``window`` bytes behind the writer."""

    def __init__(self, path: Path, *, window: int = WINDOW, chunk_size: int = CHUNK_SIZE,
                 seam: RangeSeam = None) -> None:
        self._path, self._window, self._seam = path, max(window, _PAGE), seam
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._buf = memoryview(bytearray(chunk_size))
        self._b3 = blake3.blake3()
        self._done = self._target = 0
        self._stopping = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="reread", daemon=True)
        self._thread.start()

    def written(self, total: int) -> None:
        """The writer has written ``total`` bytes (called after each chunk).

        ``total`` must be where a write() ended: a range is dropped with DONTNEED, which
        keeps a large folio that reaches past the range whole (kernel 6.18: an 8 MiB
        write, fsync, DONTNEED of its first ~1 MiB left all of it cached), and its
        re-read would then come from memory. A write never makes a folio past its own
        end and every write but the file's last is whole pages (``ingest.chunk_size``),
        so ranges that end where writes ended are dropped whole; the last page is left
        to the final re-read, which drops everything to the end of the file."""
        whole_pages = total - total % _PAGE  # a partial page may still change
        with self._cv:
            self._target = whole_pages
            if whole_pages - self._done >= self._window:
                self._cv.notify()

    def stop(self) -> Followed:
        """After the writer's fsync: wait for the range in hand; what was read back.
        Re-raises what the follower met (an OSError reading the disk)."""
        self.abandon()
        if self._error is not None:
            raise self._error
        return Followed(self._done, self._b3)

    def abandon(self) -> None:
        """Stop the thread and close the file (again: a no-op); no result."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._stopping
                                      or self._target - self._done >= self._window)
                    if self._stopping:
                        return
                    upto = self._target
                self._reread(upto)
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop() on the writer's side
            self._error = exc

    def _reread(self, upto: int) -> None:
        os.fdatasync(self._fd)  # the range is on the disk before its pages are dropped
        if self._seam is not None:
            self._seam(self._path)
        start = self._done
        os.posix_fadvise(self._fd, start, upto - start, os.POSIX_FADV_DONTNEED)
        self._done = read_into(self._fd, self._b3, self._buf, start, upto)


def read_into(fd: int, hasher: Any, buf: memoryview, start: int, end: int | None) -> int:
    """Hash ``fd`` from ``start`` to ``end`` (None: to its end) with ``hasher``; the
    offset reached. A file shorter than ``end`` stops early: the size check catches it."""
    at = start
    while end is None or at < end:
        want = len(buf) if end is None else min(len(buf), end - at)
        n = os.preadv(fd, [buf[:want]], at)
        if n <= 0:
            break
        hasher.update(buf[:n])
        at += n
    return at
