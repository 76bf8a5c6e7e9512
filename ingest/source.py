"""Safe enumeration of a camera tree.

Every directory and file is opened relative to its parent's descriptor with O_NOFOLLOW,
so a symlink (or a directory swapped for one mid-walk) can never lead outside SOURCE.
Names are kept as the exact bytes the filesystem returned. Only regular files are ever
opened for reading; FIFOs and device files are reported, never opened.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from integrity.errors import SourceGone, SourceInvalid

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: if a regular file is swapped for a FIFO between listing and opening, the
# open must not hang; fstat then shows it is not a regular file.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
# errnos that mean the medium went away rather than "this one file is odd"
GONE_ERRNOS = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESHUTDOWN, errno.ENOTCONN})


def escape_name(raw: bytes) -> str:
    """Printable, unambiguous form of a raw name: valid UTF-8 kept, the rest escaped."""
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() or ch == "\\" else ch.encode("unicode_escape")
                   .decode("ascii") for ch in text)


@dataclass(frozen=True)
class Entry:
    """One thing found under SOURCE. ``relpath`` is raw bytes, '/'-separated."""

    relpath: bytes
    kind: str  # "file" | "symlink" | "special" | "too_deep" | "unreadable"
    size: int = 0
    mtime_ns: int = 0
    dev: int = 0
    ino: int = 0

    @property
    def name(self) -> bytes:
        return self.relpath.rpartition(b"/")[2]

    @property
    def display(self) -> str:
        return escape_name(self.relpath)


@dataclass(frozen=True)
class FileIdentity:
    """What must not change between the copy and the wipe. ctime too: a rewrite that
    keeps the size and puts the mtime back (utime) still moves the ctime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class SourceTree:
    """A camera tree opened once; the root is pinned by descriptor for the whole run."""

    def __init__(self, root: Path, *, max_depth: int) -> None:
        self.root = root
        self.max_depth = max_depth
        try:
            self._root_fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise SourceInvalid(f"cannot open source {root}: {exc.strerror}",
                                path=str(root)) from exc
        st = os.fstat(self._root_fd)
        self._root_id = (st.st_dev, st.st_ino)

    def close(self) -> None:
        os.close(self._root_fd)

    def __enter__(self) -> SourceTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def still_present(self) -> bool:
        """Is SOURCE still the same directory, answering? (An unplugged camera isn't.)"""
        try:
            st = os.stat(self.root)
            os.listdir(self._root_fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._root_id

    def walk(self) -> Iterator[Entry]:
        """Depth-first, names sorted (bytewise) so runs are reproducible."""
        yield from self._walk_dir(os.dup(self._root_fd), b"", 0)

    def _walk_dir(self, dir_fd: int, prefix: bytes, depth: int) -> Iterator[Entry]:
        try:
            names = sorted(os.fsencode(n) for n in os.listdir(dir_fd))
            for name in names:
                yield from self._visit(dir_fd, prefix + name, name, depth)
        finally:
            os.close(dir_fd)

    def _visit(self, dir_fd: int, rel: bytes, name: bytes, depth: int) -> Iterator[Entry]:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            self._raise_if_gone(exc)
            yield Entry(rel, "unreadable")
            return
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            yield Entry(rel, "symlink")
        elif stat.S_ISREG(mode):
            yield Entry(rel, "file", st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
        elif stat.S_ISDIR(mode):
            if depth + 1 >= self.max_depth:
                yield Entry(rel + b"/", "too_deep")
                return
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                self._raise_if_gone(exc)
                yield Entry(rel + b"/", "unreadable")
                return
            yield from self._walk_dir(sub, rel + b"/", depth + 1)
        else:
            yield Entry(rel, "special")

    def _raise_if_gone(self, exc: OSError) -> None:
        if exc.errno in GONE_ERRNOS or not self.still_present():
            raise SourceGone(f"source {self.root} stopped answering: {exc.strerror}",
                             path=str(self.root), errno=exc.errno) from exc

    def _open_parent(self, relpath: bytes) -> tuple[int, bytes]:
        """Descriptor of the directory holding ``relpath`` (caller closes) and the name."""
        *dirs, name = relpath.split(b"/")
        fd = os.dup(self._root_fd)
        try:
            for part in dirs:
                if part in (b"", b".", b".."):
                    raise SourceInvalid("path component not allowed", relpath=relpath)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd, name

    def open_file(self, entry: Entry) -> int:
        """Open a listed regular file for reading; raise OSError if it is not one now."""
        parent, name = self._open_parent(entry.relpath)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
        finally:
            os.close(parent)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
            os.close(fd)
            raise OSError(errno.ESTALE, "file was replaced since it was listed")
        os.set_blocking(fd, True)
        return fd

    def identity_now(self, entry: Entry) -> FileIdentity | None:
        """The file's identity by name now, or None if it is gone."""
        try:
            parent, name = self._open_parent(entry.relpath)
        except OSError:
            return None
        try:
            return FileIdentity.of(os.stat(name, dir_fd=parent, follow_symlinks=False))
        except OSError:
            return None
        finally:
            os.close(parent)

    def unlink(self, entry: Entry, expected: FileIdentity) -> None:
        """Delete a file from the camera, only if it is still exactly what we copied."""
        parent, name = self._open_parent(entry.relpath)
        try:
            now = FileIdentity.of(os.stat(name, dir_fd=parent, follow_symlinks=False))
            if now != expected:
                raise OSError(errno.ESTALE, "file changed since it was verified; not wiped")
            os.unlink(name, dir_fd=parent)
            os.fsync(parent)
        finally:
            os.close(parent)
