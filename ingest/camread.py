"""Reading one camera file for the copy: its errors marked as the camera's, its reads
kept queued ahead of the copy, and the pages it has read let go behind it."""

from __future__ import annotations

import contextlib
import os

from ingest.hooks import Hooks


class SourceReadError(Exception):
    """A camera read failed (not the store): carries the OSError."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.os_error = exc


class CameraReader:
    """Reads the camera file; marks its errors so they are never blamed on the store.

    Asks for ``ahead`` bytes beyond each read: a slow camera (USB, throttled) then never
    waits idle while a chunk is hashed and written, whatever the kernel's read-ahead.
    Drops the pages it has read every ``drop_behind`` bytes (0: keeps them): a camera
    file is read once, and its pages would only push the station's own out of memory
    (a 4 GiB copy here: 10.2-11.6 s and 11.7-15.2 CPU-s keeping them, 8.3-8.9 s and
    6.7-6.9 dropping them, on a VM that hands freed memory back to its host).
    """

    def __init__(self, fd: int, hooks: Hooks, *, ahead: int = 0, drop_behind: int = 0,
                 ) -> None:
        self._fd, self._hooks, self._reads, self._ahead, self._pos = fd, hooks, 0, ahead, 0
        self._drop_behind, self._dropped = drop_behind, 0

    def readinto(self, buf: memoryview) -> int:
        self._reads += 1
        try:
            if self._reads == 2:
                self._hooks.reached("mid_copy")
            n = os.readv(self._fd, [buf])
        except OSError as exc:
            raise SourceReadError(exc) from exc
        self._pos += n
        if n and self._ahead:
            self._advise(self._pos, self._ahead, os.POSIX_FADV_WILLNEED)
        if self._drop_behind and (self._pos - self._dropped >= self._drop_behind or not n):
            self._advise(self._dropped, self._pos - self._dropped, os.POSIX_FADV_DONTNEED)
            self._dropped = self._pos
        return n

    def _advise(self, offset: int, length: int, advice: int) -> None:
        with contextlib.suppress(OSError):  # advice only; a failing read shows itself
            os.posix_fadvise(self._fd, offset, length, advice)
