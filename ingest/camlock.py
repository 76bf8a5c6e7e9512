"""One offload per camera at a time, across bays and processes.

The same camera docked in two bays (or docked while someone runs `evidock ingest` on
it) would be read by two offloads at once, each inserting the same recordings: the
second one failed on the catalog's unique key. An exclusive ``flock`` per camera serial,
taken before the session opens and held until it closes, refuses the second offload
with ``E_CAMERA_BUSY`` before it reads anything; the kernel drops the lock when its
holder dies, so a killed offload never leaves the camera locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from integrity.digest import blake3_hex
from integrity.errors import CameraBusy


@contextmanager
def camera_lock(directory: Path, serial: str) -> Iterator[None]:
    """Hold the camera ``serial``'s offload lock, or raise CameraBusy at once."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The serial comes from the camera: hashed, it can name no other path.
    path = directory / f"{blake3_hex(serial.encode('utf-8', 'surrogateescape'))[:32]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CameraBusy(f"camera {serial} is already being offloaded (another bay or "
                             "ingest); nothing was read or wiped", serial=serial) from None
        yield
    finally:
        os.close(fd)
