"""The client's side of a file transfer: its own files in, the service's bytes out.

Paths on the command line are the client's: only the client opens them, with its own
OS account's rights; the service sees bytes, never a path. Both directions stream in
pieces (constant memory) and are checked:

- a file sent is opened once, as itself (``O_NOFOLLOW``; a FIFO, device or directory
  is refused before anything is sent), under the size it had when opened; if it
  changes while it is sent, the last piece is held back and the transfer aborted, so
  the service stores nothing;
- a file received is written under a temporary name beside its destination, hashed on
  the way and compared with the digests the service announced before it gets its name
  (a hard link, which never replaces an existing file).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import blake3
import httpx

from integrity.errors import Conflict, InvalidRequest, TransferFailed
from integrity.localfile import open_regular

PIECE = 1 << 20


@dataclass(frozen=True)
class Outgoing:
    """A regular file opened for sending: its name, size and pieces."""

    name: str
    size: int
    fd: int
    path: Path

    def pieces(self) -> Iterator[bytes]:
        """The file's bytes; raises Conflict (ending the transfer) if it changed."""
        before, sent = os.fstat(self.fd), 0
        try:
            while sent < self.size:
                piece = os.read(self.fd, min(PIECE, self.size - sent))
                sent += len(piece)
                if not piece or sent == self.size:
                    self._held_still(before, sent)
                yield piece
        finally:
            os.close(self.fd)

    def _held_still(self, before: os.stat_result, sent: int) -> None:
        after = os.fstat(self.fd)
        if sent != self.size or os.read(self.fd, 1) or \
                (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise Conflict(f"{self.path} changed while it was copied; attach it again",
                           path=str(self.path))


def open_outgoing(path: Path) -> Outgoing:
    """``path`` itself, as a regular file: never through a symlink, never a FIFO."""
    fd = open_regular(path)  # the same refusals as an in-process attach
    st = os.fstat(fd)
    os.set_blocking(fd, True)
    return Outgoing(name=path.name, size=st.st_size, fd=fd, path=path)


@dataclass(frozen=True)
class Received:
    path: Path
    name: str
    size: int
    blake3: str
    sha256: str


def announced_name(response: httpx.Response, fallback: str) -> str:
    """The file name of a download (``filename*=UTF-8''…``), as a plain name."""
    disposition = response.headers.get("content-disposition", "")
    _, _, quoted = disposition.partition("filename*=UTF-8''")
    name = unquote(quoted.split(";")[0].strip()) if quoted else ""
    return name if name and "/" not in name and name not in (".", "..") else fallback


def refuse_existing(target: Path) -> None:
    if os.path.lexists(target):
        raise Conflict(f"{target} exists; nothing was written", path=str(target))


def receive(response: httpx.Response, out: Path, *, fallback_name: str) -> Received:
    """Write a download to ``out`` (a new file, or a new file named as the service
    says inside the directory ``out``), checked against the announced digests."""
    name = announced_name(response, fallback_name)
    target = out / name if out.is_dir() else out
    refuse_existing(target)
    part = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError as exc:
        raise InvalidRequest(f"cannot write in {target.parent}: {exc.strerror}",
                             path=str(target)) from None
    try:
        got = _write(fd, response, target)
        _check(response, got, target)
        os.link(part, target, follow_symlinks=False)  # never replaces a file
    except FileExistsError:
        raise Conflict(f"{target} appeared meanwhile; nothing was written",
                       path=str(target)) from None
    finally:
        os.unlink(part)
    return Received(path=target, name=name, size=got[0], blake3=got[1], sha256=got[2])


def _write(fd: int, response: httpx.Response, target: Path) -> tuple[int, str, str]:
    b3, sha, size = blake3.blake3(), hashlib.sha256(), 0
    try:
        for piece in response.iter_bytes(PIECE):
            b3.update(piece)
            sha.update(piece)
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
            size += len(piece)
        os.fsync(fd)
    except OSError as exc:
        raise InvalidRequest(f"cannot write {target}: {exc.strerror}",
                             path=str(target)) from None
    except httpx.TransportError as exc:  # the station cuts a transfer it cannot vouch for
        raise TransferFailed(f"the transfer of {target.name} was cut after {size} "
                                 f"bytes ({exc}); nothing was written",
                                 path=str(target), received=size) from None
    finally:
        os.close(fd)
    return size, b3.hexdigest(), sha.hexdigest()


def _check(response: httpx.Response, got: tuple[int, str, str], target: Path) -> None:
    size, b3, sha = got
    want_b3 = response.headers.get("x-evidock-blake3", b3)
    want_sha = response.headers.get("x-evidock-sha256", sha)
    want_size = int(response.headers.get("content-length", size))
    if (size, b3, sha) != (want_size, want_b3, want_sha):
        raise TransferFailed(f"{target.name}: the bytes received are not the ones the "
                             "station announced; nothing was written", subject=str(target),
                             expected=want_b3, actual=b3, expected_sha256=want_sha,
                             actual_sha256=sha, expected_size=want_size, actual_size=size)


__all__ = ["Outgoing", "Received", "announced_name", "open_outgoing", "receive",
           "refuse_existing"]
