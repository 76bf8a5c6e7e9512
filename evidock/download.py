"""The client's side of a package download: all of it, checked, or nothing.

The service lists every file of a request's packages with its size and SHA-256, then
sends them as one uncompressed tar. The client takes nothing on trust from the stream:
only regular files (and directories) it listed, under safe relative names, each once,
at most the listed bytes in all; every file is hashed while written and compared with
the listing, and every listed file must arrive. It all lands in a temp directory next
to the destination, renamed into place only when complete, so a broken or altered
download leaves nothing at the destination.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx

from integrity.errors import EvidockError, TransferFailed
from records.exportarea import PackageFile

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
#: Bounds on what a listing may announce (a package has a few hundred files).
MAX_FILES = 100_000
MAX_NAME = 1024
#: Header bytes allowed per entry beyond its data (a pax header for a long name).
_PER_ENTRY = 8 * tarfile.BLOCKSIZE
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def safe_name(name: str) -> str:
    """A relative POSIX path with no empty, ``.`` or ``..`` part (else TransferFailed)."""
    parts = name.split("/")
    if (not name or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME
            or "\x00" in name or name.startswith("/")
            or any(p in ("", ".", "..") for p in parts)):
        raise TransferFailed(f"unsafe name in the download: {name!r}", name=name)
    return name


def listing(raw: object) -> list[PackageFile]:
    """The service's ``files`` list, checked before anything is written by it."""
    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        raise TransferFailed("the service's file listing is malformed or too long")
    files: dict[str, PackageFile] = {}
    for item in raw:
        ok = isinstance(item, Mapping) and isinstance(item.get("path"), str) and \
            type(item.get("size")) is int and isinstance(item.get("sha256"), str)
        if not ok or item["size"] < 0 or not _SHA256.match(item["sha256"]):
            raise TransferFailed(f"bad entry in the service's file listing: {item!r}")
        path = safe_name(item["path"])
        if path in files:
            raise TransferFailed(f"{path} is listed twice", name=path)
        files[path] = PackageFile(path, item["size"], item["sha256"])
    return list(files.values())


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvidockError(f"{out} exists and is not an empty directory", path=str(out))


@contextmanager
def landing(out: Path) -> Iterator[Path]:
    """A new directory beside ``out`` to download into: renamed to ``out`` when the
    block succeeds, removed otherwise. ``out`` must be absent or an empty directory."""
    check_out(out)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(mode=0o755)
    except OSError as exc:
        raise EvidockError(f"cannot write beside {out}: {exc.strerror}",
                           path=str(out)) from None
    try:
        yield tmp
        if not tmp.is_dir():  # the block removed it: nothing to land (a queued run)
            return
        try:
            os.rename(tmp, out)  # replaces an empty directory, never a full one
        except OSError as exc:
            raise EvidockError(f"{out} exists and is not an empty directory "
                               f"({exc.strerror})", path=str(out)) from None
        _fsync_dir(out.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def receive(pieces: Iterable[bytes], dest: Path, files: Sequence[PackageFile]) -> None:
    """Write the tar in ``pieces`` under ``dest`` (new, empty), checked against
    ``files``; raises TransferFailed on anything else."""
    wanted = {f.path: f for f in files}
    budget = (sum(f.size + (-f.size % tarfile.BLOCKSIZE) for f in files)
              + (len(files) + 1) * _PER_ENTRY + tarfile.RECORDSIZE)
    got: set[str] = set()
    try:
        with tarfile.open(fileobj=_Budgeted(pieces, budget), mode="r|") as tar:
            for member in tar:
                _member(tar, member, dest, wanted, got)
    except tarfile.TarError as exc:
        raise TransferFailed(f"the download is not a complete archive: {exc}") from None
    missing = sorted(set(wanted) - got)
    if missing:
        raise TransferFailed(f"the download ended without {len(missing)} listed file(s), "
                             f"first {missing[0]}", missing=missing[:20])
    _fsync_dirs(dest)


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path,
            wanted: Mapping[str, PackageFile], got: set[str]) -> None:
    name = safe_name(member.name)
    try:
        if member.isdir():
            (dest / name).mkdir(parents=True, exist_ok=True)
            return
        expected = wanted.get(name)
        if not member.isreg() or expected is None or name in got:
            raise TransferFailed(f"{name}: not a file the service listed (or sent twice, or "
                                 "a link or device)", name=name)
        if member.size != expected.size:
            raise TransferFailed(f"{name}: {member.size} bytes sent, {expected.size} listed",
                                 name=name, expected=expected.size, actual=member.size)
        src = tar.extractfile(member)
        assert src is not None  # a regular member always has data
        _write(src, dest / name, expected)
    except OSError as exc:
        raise EvidockError(f"cannot write {dest / name}: {exc.strerror}",
                           path=str(dest / name)) from None
    got.add(name)


def _write(src: IO[bytes], path: Path, expected: PackageFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    digest, size = hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as out:
        while piece := src.read(CHUNK):
            size += len(piece)
            digest.update(piece)
            out.write(piece)
        out.flush()
        os.fsync(out.fileno())
    if size != expected.size:
        raise TransferFailed(f"{expected.path}: {size} bytes received, {expected.size} "
                             "listed", name=expected.path, expected=expected.size,
                             actual=size)
    if digest.hexdigest() != expected.sha256:
        raise TransferFailed(f"{expected.path}: SHA-256 differs from the service's listing",
                             name=expected.path, expected=expected.sha256,
                             actual=digest.hexdigest())


class _Budgeted(io.RawIOBase):
    """A readable stream over the response's pieces (short reads, as tarfile's stream
    mode allows) that refuses more than ``budget`` bytes in all (a stream larger than
    announced is refused, not stored) and turns a broken connection into
    TransferFailed."""

    def __init__(self, pieces: Iterable[bytes], budget: int) -> None:
        super().__init__()
        self._pieces, self._left = iter(pieces), budget
        self._piece, self._at = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if self._at >= len(self._piece):
            self._piece, self._at = self._next(), 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._piece) - self._at)
        view[:n] = self._piece[self._at:self._at + n]
        self._at += n
        return n

    def _next(self) -> bytes:
        try:
            piece = next((p for p in self._pieces if p), b"")  # b"": the end
        except httpx.HTTPError as exc:
            raise TransferFailed(f"the download broke off: {exc}") from None
        self._left -= len(piece)
        if self._left < 0:
            raise TransferFailed("the download is larger than the files listed")
        return piece


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dirs(top: Path) -> None:
    for dirpath, _dirs, _files in os.walk(top):
        _fsync_dir(Path(dirpath))


__all__ = ["check_out", "landing", "listing", "receive", "safe_name"]
