"""Staging: the one way bytes are made ready for the content store.

A writer gets a private, locked staging directory (:meth:`ContentStore.stage`). Bytes go
in by :meth:`Stager.copy` (hashed with BLAKE3 + SHA-256 while written, every write's
count checked, fsynced) and become linkable only through :meth:`Stager.verify`, which
drops the file's pages and re-reads it from the disk: only then is there a
:class:`Staged`, the sole thing :meth:`ContentStore.link` accepts. The re-read hashes
BLAKE3 alone: SHA-256 was taken once, over the same buffers as BLAKE3 while copying, so
an equal size and BLAKE3 prove the disk holds the bytes both digests describe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from archive.reread import Followed, Follower, read_into
from integrity.digest import CHUNK_SIZE, Digests, Readable, copy_and_hash, hash_stream
from integrity.errors import DigestMismatch, DiskFull, StoreError

_FATAL = {errno.ENOSPC: DiskFull, errno.EDQUOT: DiskFull}
#: Called with a staged file after its fsync, before its re-read (test seam, see store).
BeforeReread = Callable[[Path], None]
#: Whether the catalog vouches for an existing blob of this BLAKE3 (see ContentStore.link).
Vouched = Callable[[str], bool]


def never_vouched(b3: str) -> bool:
    return False


class Linker(Protocol):
    """The store side of staging (:class:`archive.store.ContentStore`)."""

    def link(self, staged: Staged, *, vouched: Vouched = never_vouched) -> bool: ...


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_error(exc: OSError, what: str) -> StoreError:
    """Map an OSError on the store side to the fatal error an offload stops on."""
    cls = _FATAL.get(exc.errno or 0, StoreError)
    return cls(f"{what}: {exc.strerror or exc}", errno=exc.errno, path=exc.filename)


def reread_file(path: Path, *, evict: bool, chunk_size: int = CHUNK_SIZE,
                sha256: bool = True) -> Digests:
    """Hash a file as the disk holds it: drop its cached pages first when ``evict``.

    ``sha256=False``: BLAKE3 only (compare with ``check_against(..., sha256=False)``).
    """
    with open(path, "rb", buffering=0) as fh:
        if evict:
            # Pages are clean after fsync, so DONTNEED really drops them and the
            # read below comes from the device, not from what we just wrote.
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return hash_stream(fh, chunk_size=chunk_size, sha256=sha256)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``[offset, offset+length)`` of ``fd`` to disk now.

    On Linux, POSIX_FADV_DONTNEED starts asynchronous writeback of dirty pages in the
    range (and drops those already clean); it never waits and never loses data. Without
    it a big copy only dirties the page cache (below vm.dirty_background_ratio nothing
    is written) and the whole write happens inside the final fsync, with the CPU idle.
    """
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


WRITEBACK_EVERY = 8 << 20


class StagingWriter:
    """Writes a staging file, starting writeback every ``every`` bytes so that the disk
    writes overlap the copy and the fsync that ends it has little left to do.

    ``direct``: write straight from the caller's buffers to the disk (``O_DIRECT``), not
    through the page cache, while the file's offset and each write stay block-aligned
    (copy_and_hash's buffers are page-aligned); the last, partial block and anything a
    direct write refuses go through the page cache. No page cache is filled by the copy:
    one memory copy less per byte, and on a guest whose fresh pages fault on the host that
    copy was the largest single cost of 8 offloads at once (perf, issue 14). The fsync and
    the re-read from the disk that prove the bytes are unchanged.

    Writes all of ``data`` or raises: a short write is retried for the rest, a write
    that takes nothing is an error, never silently dropped bytes.
    """

    def __init__(self, fd: int, *, every: int = WRITEBACK_EVERY, direct: bool = False,
                 on_written: Callable[[int], None] | None = None) -> None:
        self._fd, self._every, self._on_written = fd, every, on_written
        self._written = self._kicked = 0
        self.direct = direct and _set_direct(fd, True)

    def write(self, data: memoryview) -> int:
        try:
            done = 0
            while done < len(data):
                n = self._write(data[done:], self._written + done)
                if n <= 0:
                    raise OSError(errno.EIO, "write took no bytes")
                done += n
            self._written += done
            if self._every and self._written - self._kicked >= self._every:
                start_writeback(self._fd, self._kicked, self._written - self._kicked)
                self._kicked = self._written
            if self._on_written is not None:
                self._on_written(self._written)
        except OSError as exc:
            raise store_error(exc, "cannot write to the store") from exc
        return done

    def _write(self, data: memoryview, offset: int) -> int:
        if self.direct and (offset % DIRECT_ALIGN or len(data) % DIRECT_ALIGN):
            self._through_cache()  # the tail, or a short read's misaligned rest
        try:
            return os.write(self._fd, data)
        except OSError as exc:
            if not self.direct or exc.errno != errno.EINVAL:
                raise
        self._through_cache()  # a buffer or a device a direct write does not take
        return os.write(self._fd, data)

    def _through_cache(self) -> None:
        _set_direct(self._fd, False)
        self.direct = False


#: Offset and length of a direct write are multiples of this (the largest logical block
#: size of the disks a station uses; 512-byte disks accept it too).
DIRECT_ALIGN = 4096


def _set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False if the filesystem refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        if on:
            return False
        raise
    return True


#: What a verified staged file looked like: (dev, ino, size, mtime_ns, ctime_ns).
_Seal = tuple[int, int, int, int, int]
_ISSUED = object()  # only this module makes a Staged


def _seal_of(st: os.stat_result) -> _Seal:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Written:
    """A staging file copied and fsynced but not yet read back: it cannot be linked.

    ``followed``: what a :class:`~archive.reread.Follower` read back from the disk during
    the copy; valid only while the file still has ``seal`` (nothing wrote to it since).
    """

    path: Path
    digests: Digests
    followed: Followed | None = None
    seal: _Seal | None = None


@dataclass(frozen=True, eq=False)
class Staged:
    """A staging file read back from the disk and proven to hold ``digests``.

    Only :meth:`Stager.verify` makes one (after the fsync and the re-read compare);
    :meth:`ContentStore.link` accepts nothing else. The file is already read-only.
    """

    path: Path
    digests: Digests
    stager: Stager = field(repr=False)
    seal: _Seal = field(repr=False)
    key: object = field(repr=False)

    def __post_init__(self) -> None:
        if self.key is not _ISSUED:
            raise TypeError("a Staged is made only by Stager.verify")

    def unchanged(self) -> bool:
        """Whether the file is still the one verified (nothing wrote to or replaced it)."""
        try:
            return _seal_of(os.lstat(self.path)) == self.seal
        except OSError:
            return False


class Stager:
    """One writer's private staging directory: copy in, verify, then link by the store."""

    def __init__(self, *, store: Linker, directory: Path,
                 before_reread: BeforeReread | None = None, direct: bool = False) -> None:
        self.store = store
        self.directory = directory
        self._before_reread = before_reread
        self._direct = direct  # StagingWriter: copies skip the page cache (where they can)
        # next() of a count is atomic: an offload copies in one thread while its
        # settling thread stores signed records through the same stager.
        self._numbers = itertools.count(1)

    def _new_file(self) -> tuple[int, Path]:
        path = self.directory / f"{next(self._numbers)}.part"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise store_error(exc, "cannot create staging file") from exc
        return fd, path

    def copy(self, reader: Readable, *, chunk_size: int = CHUNK_SIZE,
             on_chunk: Callable[[int], None] | None = None,
             follow: int | None = None,
             on_copied: Callable[[Path, Digests], None] | None = None) -> Written:
        """Copy ``reader`` to its end into a new staging file, hashing while writing.

        ``follow``: re-read the copy from the disk during the copy, this many bytes
        behind the writer (archive/reread.py), so :meth:`verify` re-reads only the rest.
        ``on_copied(path, digests)``: called once the last byte is written, before the
        fsync, for a reader of the file that may start early (the offload's media check;
        nothing it learns counts before :meth:`verify` has proven the bytes).
        Errors of the store side raise :class:`StoreError` (``DiskFull`` on ENOSPC);
        whatever ``reader`` raises passes through unchanged. Either way the partial
        file is removed: nothing half-written is left to link.
        """
        fd, path = self._new_file()
        follower = Follower(path, window=follow, chunk_size=chunk_size,
                            seam=self._before_reread) if follow else None
        try:
            # The writes wait for the disk (direct) on a thread of their own, while the
            # next chunk is read and hashed.
            digests = copy_and_hash(
                reader, StagingWriter(fd, direct=self._direct,
                                      on_written=follower.written if follower else None),
                chunk_size=chunk_size, on_chunk=on_chunk, write_behind=True)
            if on_copied is not None:
                on_copied(path, digests)
            _fsync(fd, "cannot fsync staging file")
            followed, seal = _followed(follower, fd)
        except BaseException:
            if follower is not None:
                follower.abandon()
            os.close(fd)
            _discard(path)
            raise
        try:
            os.close(fd)
        except OSError as exc:  # a deferred write error (NFS, some FUSE) shows here
            _discard(path)
            raise store_error(exc, "cannot close staging file") from exc
        return Written(path, digests, followed, seal)

    def verify(self, written: Written, *, evict: bool = True, chunk_size: int = CHUNK_SIZE,
               subject: str | None = None) -> Staged:
        """Make the file read-only, drop its pages, re-read it from the disk, compare.

        Raises :class:`DigestMismatch` (and removes the file) if the disk does not hold
        the bytes that were hashed while writing. ``evict=False`` re-reads whatever the
        page cache holds (a weaker check, for benchmarks and tmpfs).
        """
        path, want = written.path, written.digests
        self._check_mine(path)
        if self._before_reread is not None:
            self._before_reread(path)
        try:
            # What the follower read back counts only if nothing wrote to the file since.
            followed = written.followed if evict and written.seal is not None \
                and _seal_of(os.lstat(path)) == written.seal else None
            os.chmod(path, 0o444)  # read-only from here on, as it will be in the store
            got, seal = _reread(path, evict=evict, chunk_size=chunk_size, followed=followed)
        except OSError as exc:
            raise store_error(exc, f"cannot re-read staged file {path.name}") from exc
        if (got.size, got.blake3) != (want.size, want.blake3):
            _discard(path)
            raise mismatch(subject or path.name, want, got, path=path)
        return Staged(path, want, self, seal, _ISSUED)

    def put(self, reader: Readable, *, vouched: Vouched = never_vouched,
            chunk_size: int = CHUNK_SIZE) -> Digests:
        """Copy, verify and link ``reader``'s bytes; their digests."""
        staged = self.verify(self.copy(reader, chunk_size=chunk_size))
        self.store.link(staged, vouched=vouched)
        return staged.digests

    def put_file(self, path: Path, *, vouched: Vouched = never_vouched) -> Digests:
        """Store a file a tool (ffmpeg) wrote inside this staging directory, in place."""
        staged = self.stage_file(path)
        self.store.link(staged, vouched=vouched)
        return staged.digests

    def stage_file(self, path: Path) -> Staged:
        """Make a file a tool wrote inside this staging directory ready to link, in place.

        No second copy: the file is hashed where it is (what the tool wrote, from the page
        cache), fsynced, then verified like a copied one. Its writeback is started before
        the hashing, so the disk writes while the CPU hashes and the fsync has little left
        (measured: a 60-segment render's cut and proofs 1.25 → 0.97 s, fsync first).
        Linking is the caller's (a rendition links its segments only once every one of
        them is proven and ffmpeg has finished without error).
        """
        self._check_mine(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise store_error(exc, f"cannot open staged file {path.name}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"staged {path.name} is not a regular file", path=str(path))
            start_writeback(fd, 0, 0)
            with open(fd, "rb", buffering=0, closefd=False) as fh:
                digests = hash_stream(fh)
            _fsync(fd, f"cannot fsync staged file {path.name}")
        except OSError as exc:
            raise store_error(exc, f"cannot read staged file {path.name}") from exc
        finally:
            os.close(fd)
        return self.verify(Written(path, digests))

    def _check_mine(self, path: Path) -> None:
        # Only files of this writer's own directory: never link a file from elsewhere.
        if not path.resolve().is_relative_to(self.directory.resolve()):
            raise StoreError(f"{path} is not in this writer's staging directory",
                             path=str(path), staging=str(self.directory))


def mismatch(subject: str, want: Digests, got: Digests, **data: object) -> DigestMismatch:
    return DigestMismatch(
        f"{subject}: read back {got.size} bytes with BLAKE3 {got.blake3[:16]}…, "
        f"wrote {want.size} bytes with BLAKE3 {want.blake3[:16]}…",
        subject=subject, expected=want.blake3, actual=got.blake3,
        expected_size=want.size, actual_size=got.size, **data)


def _reread(path: Path, *, evict: bool, chunk_size: int, followed: Followed | None = None,
            ) -> tuple[Digests, _Seal]:
    """BLAKE3 of the file as the disk holds it (only the part after ``followed``)."""
    with open(path, "rb", buffering=0, opener=_nofollow) as fh:
        fd, start = fh.fileno(), followed.done if followed else 0
        if evict:
            os.posix_fadvise(fd, start, 0, os.POSIX_FADV_DONTNEED)
        if followed is None:
            got = hash_stream(fh, chunk_size=chunk_size, sha256=False)
        else:
            hasher = followed.hasher.copy()
            read_into(fd, hasher, memoryview(bytearray(chunk_size)), start, None)
            got = Digests(size=os.fstat(fd).st_size, blake3=str(hasher.hexdigest()), sha256="")
        return got, _seal_of(os.fstat(fd))


def _followed(follower: Follower | None, fd: int) -> tuple[Followed | None, _Seal | None]:
    """After the fsync: what the follower read back, and the file as it is now."""
    if follower is None:
        return None, None
    try:
        return follower.stop(), _seal_of(os.fstat(fd))
    except OSError as exc:
        raise store_error(exc, "cannot re-read staging file") from exc


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def _fsync(fd: int, what: str) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise store_error(exc, what) from exc


def _discard(path: Path) -> None:
    # Best effort: the writer's staging directory is removed on exit, or swept later.
    with contextlib.suppress(OSError):
        path.unlink()
