"""Local content-addressed evidence store: ``store/<b3[:2]>/<b3[2:4]>/<b3>``.

A blob reaches its final name only complete, fsynced and verified (hard link from a
staging file: atomic and never clobbers), so a name in the store always holds exactly
the bytes its BLAKE3 names. Each writer stages in its own locked directory; leftovers of
killed writers are swept on the next open.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from integrity.digest import CHUNK_SIZE, Digests, hash_stream
from integrity.errors import DigestMismatch, DiskFull, Refused, SizeMismatch, StoreError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FATAL = {errno.ENOSPC: DiskFull, errno.EDQUOT: DiskFull}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_error(exc: OSError, what: str) -> StoreError:
    """Map an OSError on the store side to the fatal error an offload stops on."""
    cls = _FATAL.get(exc.errno or 0, StoreError)
    return cls(f"{what}: {exc.strerror}", errno=exc.errno, path=exc.filename)


class ContentStore:
    def __init__(self, *, root: Path) -> None:
        self.root = root

    def path_for(self, b3: str) -> Path:
        if not _HEX64.match(b3):
            raise ValueError(f"not a BLAKE3 hex digest: {b3!r}")
        return self.root / b3[:2] / b3[2:4] / b3

    def has(self, b3: str) -> bool:
        return self.path_for(b3).is_file()

    def ensure(self) -> None:
        try:
            (self.root / ".staging").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(exc, f"cannot create store {self.root}") from exc

    @contextmanager
    def stage(self) -> Iterator[Stager]:
        """A private, locked staging directory for one writer; removed on exit."""
        self.ensure()
        self.sweep_staging()
        path = self.root / ".staging" / uuid.uuid4().hex
        # The shared gate keeps a sweeper from taking our dir between mkdir and flock.
        with self._gate(fcntl.LOCK_SH):
            try:
                path.mkdir()
                lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise store_error(exc, f"cannot stage in {self.root}") from exc
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield Stager(store=self, directory=path)
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(lock)

    def sweep_staging(self) -> int:
        """Remove staging dirs whose writer is gone (its lock is free). Returns count."""
        with self._gate(fcntl.LOCK_EX):
            return self._sweep()

    @contextmanager
    def _gate(self, mode: int) -> Iterator[None]:
        fd = os.open(self.root / ".staging.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def _sweep(self) -> int:
        removed = 0
        for sub in (self.root / ".staging").iterdir():
            try:
                fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live writer holds it
            shutil.rmtree(sub, ignore_errors=True)
            os.close(fd)
            removed += 1
        return removed

    def commit(self, staged: Path, b3: str) -> bool:
        """Give a verified staged file its content name. False if the blob existed."""
        final = self.path_for(b3)
        try:
            os.chmod(staged, 0o444)
            self._make_dirs(final.parent)
            try:
                os.link(staged, final)
            except FileExistsError:
                return False
            fsync_dir(final.parent)
        except OSError as exc:
            raise store_error(exc, f"cannot commit blob {b3}") from exc
        return True

    def adopt(self, staged: Path, digests: Digests, *, trust_existing: bool) -> bool:
        """Commit ``staged``; if the blob already exists, keep it only if it is right.

        An existing blob the catalog does not vouch for (a run killed between link and
        catalog commit, or a planted file) is re-hashed; if its bytes do not match its
        name it is quarantined and replaced. True if our copy was linked in.
        """
        if self.commit(staged, digests.blake3):
            return True
        if trust_existing:
            return False
        try:
            digests.check_against(self.reread(digests.blake3), subject=digests.blake3)
        except (DigestMismatch, SizeMismatch):
            self.quarantine(digests.blake3)
            return self.commit(staged, digests.blake3)
        return False

    def _make_dirs(self, directory: Path) -> None:
        for d in (directory.parent, directory):
            if not d.is_dir():
                d.mkdir(exist_ok=True)
                fsync_dir(d.parent)

    def quarantine(self, b3: str) -> Path:
        """Move a blob whose bytes do not match its name out of the way (kept, not lost)."""
        qdir = self.root / ".quarantine"
        qdir.mkdir(exist_ok=True)
        target = qdir / f"{b3}.{uuid.uuid4().hex}"
        os.rename(self.path_for(b3), target)
        fsync_dir(qdir)
        fsync_dir(self.path_for(b3).parent)
        return target

    def reread(self, b3: str, *, evict: bool = True, chunk_size: int = CHUNK_SIZE) -> Digests:
        """Digests of a stored blob read back from disk."""
        return reread_file(self.path_for(b3), evict=evict, chunk_size=chunk_size)

    def remove(self, b3: str, *, in_use: Callable[[str], bool]) -> bool:
        """Unlink a blob retention has tombstoned (the tombstone is committed first).

        Only the retention executor calls this. ``in_use`` is asked right before the
        unlink; a blob something live still names is refused, never removed. False if the
        blob was already gone. The shard directory is made writable if it is not, and
        fsynced after the unlink so the removal is durable.
        """
        path = self.path_for(b3)
        if in_use(b3):
            raise Refused(f"blob {b3} is still referenced; not removed", blake3=b3)
        try:
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            return _unlink_blob(fd, path)
        except OSError as exc:
            raise store_error(exc, f"cannot remove blob {b3}") from exc
        finally:
            os.close(fd)


def _unlink_blob(dir_fd: int, path: Path) -> bool:
    try:
        st = os.lstat(path.name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"{path} is not a regular file; not removed", path=str(path))
    mode = os.fstat(dir_fd).st_mode
    if not mode & stat.S_IWUSR:
        os.chmod(dir_fd, stat.S_IMODE(mode) | stat.S_IWUSR)
    try:
        os.unlink(path.name, dir_fd=dir_fd)
    finally:
        if not mode & stat.S_IWUSR:
            os.chmod(dir_fd, stat.S_IMODE(mode))
    os.fsync(dir_fd)
    return True


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
    writes overlap the copy and the fsync that ends it has little left to do."""

    def __init__(self, fd: int, *, every: int = WRITEBACK_EVERY) -> None:
        self._fd, self._every = fd, every
        self._written = self._kicked = 0

    def write(self, data: memoryview) -> int:
        try:
            n = os.write(self._fd, data)
            self._written += n
            if self._every and self._written - self._kicked >= self._every:
                start_writeback(self._fd, self._kicked, self._written - self._kicked)
                self._kicked = self._written
        except OSError as exc:
            raise store_error(exc, "cannot write to the store") from exc
        return n


class Stager:
    """Creates staging files in one writer's private directory."""

    def __init__(self, *, store: ContentStore, directory: Path) -> None:
        self.store = store
        self.directory = directory
        self._n = 0

    def new_file(self) -> tuple[int, Path]:
        self._n += 1
        path = self.directory / f"{self._n}.part"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise store_error(exc, "cannot create staging file") from exc
        return fd, path
