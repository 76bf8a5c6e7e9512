"""The last look at a camera file before it is wiped: is it still what was stored?

The copy was proven against the file as it was while copying (device, inode, size,
mtime and ctime before and after). Between that proof and the unlink the file could be
rewritten in place, same size, with its mtime put back: the ctime still moves on a
POSIX filesystem, but FAT keeps no ctime and a clock can be set back, so a file small
enough (``ingest.rehash_before_wipe_bytes``) is read again and its BLAKE3 compared.
"""

from __future__ import annotations

import os

from ingest.source import Entry, FileIdentity, SourceTree
from integrity.digest import Digests, hash_stream


class _Reader:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def readinto(self, buf: memoryview) -> int:
        return os.readv(self._fd, [buf])


def camera_doubt(tree: SourceTree, entry: Entry, *, identity: FileIdentity,
                 stored: Digests, rehash_limit: int, chunk_size: int) -> str | None:
    """Why the camera's file may no longer be the stored bytes (None: it is them)."""
    if stored.size <= rehash_limit:
        try:
            fd = tree.open_file(entry)
        except OSError as exc:
            return f"the camera file cannot be read again: {exc.strerror}"
        try:
            now = hash_stream(_Reader(fd), sha256=False, chunk_size=chunk_size)
        except OSError as exc:
            return f"the camera file cannot be read again: {exc.strerror}"
        finally:
            os.close(fd)
        if (now.size, now.blake3) != (stored.size, stored.blake3):
            return "the camera file's bytes differ from the stored copy"
    if tree.identity_now(entry) != identity:
        return "the camera file changed since it was verified"
    return None
