"""Local content-addressed evidence store: ``store/<b3[:2]>/<b3[2:4]>/<b3>``.

Every byte enters through staging (:mod:`archive.staging`): copied while hashed,
fsynced, re-read from the disk and compared, and only then hard-linked (read-only, never
clobbering) under its BLAKE3 name, the directory fsynced. So a name in the store always
holds exactly the bytes its BLAKE3 names. Each writer stages in its own locked
directory; leftovers of killed writers are swept on the next open. The one replacement
of a name, :meth:`ContentStore.restore` (a repair), also takes only a verified staged
copy, and only over an entry whose bytes are not its name's, which it keeps in
quarantine.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from archive.staging import (
    WRITEBACK_EVERY,
    BeforeReread,
    Staged,
    Stager,
    StagingWriter,
    Vouched,
    Written,
    fsync_dir,
    mismatch,
    never_vouched,
    reread_file,
    start_writeback,
    store_error,
)
from integrity.digest import CHUNK_SIZE, Digests, Readable
from integrity.errors import Refused

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

__all__ = ["WRITEBACK_EVERY", "ContentStore", "Restored", "Staged", "Stager",
           "StagingWriter", "Written", "fsync_dir", "reread_file", "start_writeback",
           "store_error"]


@dataclass(frozen=True, kw_only=True)
class Restored:
    """What :meth:`ContentStore.restore` found at the blob's name and did.

    ``found``: ``missing``, ``damaged`` (other bytes, not a regular file, unreadable) or
    ``intact`` (already the staged bytes: nothing changed). ``quarantined``: where the
    damaged entry now is (None unless ``damaged``).
    """

    found: str
    quarantined: Path | None = None

    @property
    def placed(self) -> bool:
        return self.found != "intact"


class ContentStore:
    def __init__(self, *, root: Path, before_reread: BeforeReread | None = None,
                 direct_writes: bool = False) -> None:
        """``before_reread`` is a test seam at the disk boundary, None in production:
        it is called with every staged file after its fsync and before its re-read, so
        a test can flip a byte there, as a disk that did not keep what it was given.
        ``direct_writes``: staged copies bypass the page cache (archive/staging.py;
        the station's ``ingest.direct_writes``)."""
        self.root = root
        self.before_reread = before_reread
        self.direct_writes = direct_writes

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
            yield Stager(store=self, directory=path, before_reread=self.before_reread,
                         direct=self.direct_writes)
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

    def put(self, reader: Readable, *, vouched: Vouched = never_vouched,
            chunk_size: int = CHUNK_SIZE) -> Digests:
        """Store ``reader``'s bytes (read to the end) in one call; their digests."""
        with self.stage() as stager:
            return stager.put(reader, vouched=vouched, chunk_size=chunk_size)

    def link(self, staged: Staged, *, vouched: Vouched = never_vouched) -> bool:
        """Give a verified staged file its content name. True if our copy was linked.

        If the name is taken, ``vouched(b3)`` is asked whether the catalog stands for
        that blob; one it does not (a run killed between link and catalog commit, or a
        planted file) is re-read, and if its bytes do not match its name it is
        quarantined and replaced.
        """
        if not isinstance(staged, Staged) or staged.stager.store is not self:
            raise TypeError("link takes a Staged made by this store's Stager.verify")
        b3 = staged.digests.blake3
        if not staged.unchanged():
            self._recheck(staged)
        final = self.path_for(b3)
        if self._link_new(staged.path, final):
            return True
        if vouched(b3):
            return False
        try:
            if not _holds(final, staged.digests):
                self.quarantine(b3)
                return self._link_new(staged.path, final)
            fsync_dir(final.parent)  # it may be a killed run's link, not yet durable
        except OSError as exc:
            raise store_error(exc, f"cannot check existing blob {b3}") from exc
        return False

    def _recheck(self, staged: Staged) -> None:
        """The staged file was touched after its verify: link it only if still right."""
        try:
            got = reread_file(staged.path, evict=True, sha256=False)
        except OSError as exc:
            raise store_error(exc, f"cannot re-read staged file {staged.path.name}") from exc
        want = staged.digests
        if (got.size, got.blake3) != (want.size, want.blake3):
            staged.path.unlink(missing_ok=True)
            raise mismatch(staged.path.name, want, got, path=staged.path)

    def _link_new(self, staged: Path, final: Path) -> bool:
        """Hard link (atomic, never clobbers) and fsync the directory; False if taken."""
        try:
            self._make_dirs(final.parent)
            try:
                os.link(staged, final, follow_symlinks=False)
            except FileExistsError:
                return False
            fsync_dir(final.parent)
        except OSError as exc:
            raise store_error(exc, f"cannot link blob {final.name}") from exc
        return True

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

    def restore(self, staged: Staged, *, at: datetime) -> Restored:
        """Put a verified staged copy in place of a missing or damaged blob (a repair).

        The one deliberate replacement of a blob, and only of one whose bytes are not
        its name's: the damaged entry is first hard-linked into ``.quarantine`` as
        ``<b3>.<time>`` (kept, not destroyed: it may be evidence of tampering), then the
        staged file is renamed over the name, so the name never stands empty; each
        directory is fsynced. Repairs of one store are serialised by a lock on the
        quarantine directory.
        """
        if not isinstance(staged, Staged) or staged.stager.store is not self:
            raise TypeError("restore takes a Staged made by this store's Stager.verify")
        if not staged.unchanged():
            self._recheck(staged)
        b3 = staged.digests.blake3
        final = self.path_for(b3)
        try:
            with self._quarantine_locked() as qdir:
                return self._restore_locked(staged, final, qdir, at)
        except OSError as exc:
            raise store_error(exc, f"cannot restore blob {b3}") from exc

    @contextmanager
    def _quarantine_locked(self) -> Iterator[Path]:
        qdir = self.root / ".quarantine"
        try:
            qdir.mkdir()
            fsync_dir(self.root)  # the quarantine must outlive a crash, like its entries
        except FileExistsError:
            pass
        fd = os.open(qdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield qdir
        finally:
            os.close(fd)

    def _restore_locked(self, staged: Staged, final: Path, qdir: Path,
                        at: datetime) -> Restored:
        try:
            st = os.lstat(final)
        except FileNotFoundError:
            if self._link_new(staged.path, final):
                return Restored(found="missing")
            st = os.lstat(final)  # linked meanwhile by a writer outside the lock
        if stat.S_ISREG(st.st_mode) and _holds_readable(final, staged.digests):
            return Restored(found="intact")
        target = _free_name(qdir, f"{final.name}.{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}")
        if stat.S_ISDIR(st.st_mode):  # a directory cannot be linked or renamed over
            os.rename(final, target)
            fsync_dir(qdir)
            self._link_new(staged.path, final)
        else:
            os.link(final, target, follow_symlinks=False)
            fsync_dir(qdir)
            os.rename(staged.path, final)  # atomic: the name holds old or new bytes
            fsync_dir(final.parent)
        return Restored(found="damaged", quarantined=target)

    def reread(self, b3: str, *, evict: bool = True, chunk_size: int = CHUNK_SIZE,
               sha256: bool = True) -> Digests:
        """Digests of a stored blob read back from disk (``sha256=False``: BLAKE3 only)."""
        return reread_file(self.path_for(b3), evict=evict, chunk_size=chunk_size,
                           sha256=sha256)

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


def _holds(final: Path, want: Digests) -> bool:
    """Whether the file at a blob's name is a regular file holding exactly ``want``."""
    if not stat.S_ISREG(os.lstat(final).st_mode):
        return False
    got = reread_file(final, evict=True, sha256=False)
    return (got.size, got.blake3) == (want.size, want.blake3)


def _holds_readable(final: Path, want: Digests) -> bool:
    """:func:`_holds`, with a blob that cannot be read counted as not holding."""
    try:
        return _holds(final, want)
    except OSError:
        return False


def _free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or with ``.1``, ``.2``, … if taken (never overwrite)."""
    target, n = directory / name, 0
    while os.path.lexists(target):
        n += 1
        target = directory / f"{name}.{n}"
    return target


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
