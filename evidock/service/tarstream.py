"""A request's packages as an uncompressed tar, generated while it is sent.

Headers are made with :mod:`tarfile` (POSIX pax, so any name survives) and file bytes
are read and sent a piece at a time: memory stays constant whatever the package size.
The archive's length is known before the first byte (the client can tell a stream that
broke off), and each file is sent exactly as listed: one whose size changed since the
listing ends the stream early instead of sending something else.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from integrity.errors import TransferFailed
from records.exportarea import PackageFile

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


@dataclass(frozen=True, slots=True)
class TarPlan:
    top: Path
    entries: tuple[tuple[PackageFile, tarfile.TarInfo], ...]
    size: int  # bytes of the whole archive


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def plan(top: Path, files: Sequence[PackageFile]) -> TarPlan:
    """The archive of ``files`` (relative to ``top``), without reading them."""
    entries = []
    size = 0
    for f in files:
        info = tarfile.TarInfo(f.path)
        info.size, info.mode, info.type = f.size, 0o644, tarfile.REGTYPE
        info.mtime = int((top / f.path).lstat().st_mtime)
        entries.append((f, info))
        size += len(_header(info)) + f.size + (-f.size % _BLOCK)
    size += 2 * _BLOCK
    size += -size % _RECORD
    return TarPlan(top, tuple(entries), size)


def chunks(tar: TarPlan) -> Iterator[bytes]:
    """The archive's bytes, ``tar.size`` of them (or fewer, if a file changed)."""
    sent = 0
    for f, info in tar.entries:
        header = _header(info)
        yield header
        yield from _file(tar.top / f.path, f.size)
        pad = -f.size % _BLOCK
        if pad:
            yield bytes(pad)
        sent += len(header) + f.size + pad
    end = 2 * _BLOCK
    yield bytes(end + (-(sent + end) % _RECORD))


def _file(path: Path, size: int) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fh.fileno()).st_size != size:
            raise TransferFailed(f"{path} changed since it was listed", path=str(path))
        left = size
        while left:
            piece = fh.read(min(CHUNK, left))
            if not piece:
                raise TransferFailed(f"{path} shrank while it was sent", path=str(path))
            left -= len(piece)
            yield piece


__all__ = ["TarPlan", "chunks", "plan"]
