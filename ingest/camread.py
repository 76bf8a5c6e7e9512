"""Reading one camera file for the copy: its errors marked as the camera's, and its
reads kept queued ahead of the copy."""

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
    """

    def __init__(self, fd: int, hooks: Hooks, *, ahead: int = 0) -> None:
        self._fd, self._hooks, self._reads, self._ahead, self._pos = fd, hooks, 0, ahead, 0

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
            with contextlib.suppress(OSError):  # advice only; a failing read shows itself
                os.posix_fadvise(self._fd, self._pos, self._ahead, os.POSIX_FADV_WILLNEED)
        return n
