"""Reading a directory someone else made, without being hung, flooded or led outside it.

A clip package arrives from anywhere: it may hold symbolic links (to /dev/zero, to
/etc), FIFOs (an open() for reading blocks until a writer comes), devices, a 1 GiB
sparse file where a small JSON belongs, or a million files. So the package directory is
opened once, without following a link, and everything below it is reached relative to
that descriptor one name at a time (``openat`` with ``O_NOFOLLOW``): nothing a name
says can lead outside. Every entry is classified by ``lstat`` before anything opens it;
only regular files are ever opened (``O_NONBLOCK`` too, so a FIFO swapped in after the
listing cannot block), and the opened descriptor must still be the listed inode. Every
count, depth and read is bounded. Problems are raised as :class:`Refused`, which a
verifier turns into a finding.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from integrity.codes import Code
from integrity.findings import Finding

MAX_ENTRIES = 100_000  # files and directories in one package
MAX_DEPTH = 8  # directory levels below the package (ours: data/segments)
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Refused(Exception):  # noqa: N818  (a reason, not a failure of ours)
    """Why something in the package was not read; it becomes a finding."""

    def __init__(self, code: Code, message: str, subject: str, **details: Any) -> None:
        super().__init__(message)
        self.finding = Finding(code, message, subject, details)


class Kind(StrEnum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"
    SPECIAL = "special"  # FIFO, socket, character or block device


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One name in the package as ``lstat`` saw it; ``path`` is '/'-joined, relative."""

    path: str
    kind: Kind
    size: int
    dev: int
    ino: int


def display(name: str) -> str:
    """A name fit for a report line: undecodable bytes and control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _kind(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    return Kind.LINK if stat.S_ISLNK(mode) else Kind.SPECIAL


@dataclass(frozen=True, kw_only=True)
class Inventory:
    """Everything the walk listed, by path, and what it refused to go into."""

    entries: dict[str, Entry]
    findings: tuple[Finding, ...]

    def files(self, prefix: str = "") -> list[Entry]:
        return [e for e in self.entries.values()
                if e.kind is Kind.FILE and e.path.startswith(prefix)]

    def file(self, path: str) -> Entry | None:
        entry = self.entries.get(path)
        return entry if entry is not None and entry.kind is Kind.FILE else None


class PackageDir:
    """A package directory held open by a descriptor that followed no link."""

    def __init__(self, fd: int, root: Path) -> None:
        self._fd = fd
        self.root = root

    @classmethod
    def open(cls, root: Path) -> PackageDir:
        """Open ``root`` itself without following it: a link there is refused."""
        try:
            fd = os.open(root, _O_DIR)
        except OSError as exc:
            raise _root_refusal(root, exc) from None
        return cls(fd, root)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PackageDir:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def walk(self, *, levels: int = MAX_DEPTH) -> Inventory:
        """Every entry below the root (sorted), never entering a link nor more than
        ``levels`` directories deep (0: the root's own entries only)."""
        walk = _Walk(levels)
        walk.directory(self._fd, "", 0)
        return Inventory(entries=walk.entries, findings=tuple(walk.findings))

    def subdirectory(self, entry: Entry) -> PackageDir:
        """The directory ``entry`` (listed by :meth:`walk`) as a package of its own."""
        if "/" in entry.path:
            raise ValueError(f"{entry.path} is not a direct subdirectory")
        try:
            fd = os.open(entry.path, _O_DIR, dir_fd=self._fd)
        except OSError as exc:
            raise _unreadable(entry.path, exc) from None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
            os.close(fd)
            raise Refused(Code.E_PACKAGE_UNREADABLE, "changed while it was being verified",
                          display(entry.path))
        return PackageDir(fd, self.root / entry.path)

    @contextmanager
    def opened(self, entry: Entry) -> Iterator[int]:
        """A descriptor on ``entry``, only if it is still the regular file listed."""
        fd = self._openat(entry)
        try:
            yield fd
        finally:
            os.close(fd)

    def read(self, entry: Entry, limit: int) -> bytes:
        """The whole file, refused unread when over ``limit`` (and never read past it)."""
        if entry.size > limit:
            raise Refused(Code.E_PACKAGE_LIMIT, f"{entry.size} bytes, more than the "
                          f"{limit} this file may have: not read", display(entry.path),
                          size=entry.size, limit=limit)
        chunks: list[bytes] = []
        got = 0
        with self.opened(entry) as fd:
            while got <= limit and (chunk := _read(fd, entry, min(1 << 20, limit + 1 - got))):
                chunks.append(chunk)
                got += len(chunk)
        if got > limit:  # it grew after the listing
            raise Refused(Code.E_PACKAGE_LIMIT, f"more than the {limit} bytes this file may "
                          "have: not read further", display(entry.path), limit=limit)
        return b"".join(chunks)

    def read_present(self, inventory: Inventory, limits: Mapping[str, int],
                     ) -> tuple[dict[str, bytes], list[Finding]]:
        """Each of ``limits``' paths the walk listed as a regular file, read whole within
        its limit; a refusal is a finding and leaves the path out."""
        texts: dict[str, bytes] = {}
        found: list[Finding] = []
        for path, limit in limits.items():
            entry = inventory.file(path)
            if entry is None:
                continue
            try:
                texts[path] = self.read(entry, limit)
            except Refused as refused:
                found.append(refused.finding)
        return texts, found

    def _openat(self, entry: Entry) -> int:
        *dirs, name = entry.path.split("/")
        fd = os.dup(self._fd)
        try:
            for part in dirs:
                nxt = os.open(part, _O_DIR, dir_fd=fd)
                os.close(fd)
                fd = nxt
            file_fd = os.open(name, _O_FILE, dir_fd=fd)
        except OSError as exc:
            raise _unreadable(entry.path, exc) from None
        finally:
            os.close(fd)
        st = os.fstat(file_fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
            os.close(file_fd)
            raise Refused(Code.E_PACKAGE_UNREADABLE, "changed while it was being verified: "
                          "not read", display(entry.path))
        return file_fd


def read_chunk(fd: int, entry: Entry, buffer: memoryview) -> int:
    """``readinto`` on a raw descriptor, an I/O error becoming a refusal."""
    try:
        return os.readv(fd, [buffer])
    except OSError as exc:
        raise _unreadable(entry.path, exc) from None


def _read(fd: int, entry: Entry, size: int) -> bytes:
    try:
        return os.read(fd, size)
    except OSError as exc:
        raise _unreadable(entry.path, exc) from None


def _unreadable(path: str, exc: OSError) -> Refused:
    return Refused(Code.E_PACKAGE_UNREADABLE, f"cannot read: {exc.strerror}", display(path),
                   errno=exc.errno)


def _root_refusal(root: Path, exc: OSError) -> Refused:
    try:
        mode = os.lstat(root).st_mode
    except OSError:
        return Refused(Code.E_PACKAGE_MISSING, "no such package directory", str(root))
    if stat.S_ISLNK(mode):
        return Refused(Code.E_PACKAGE_LINK, "the package directory is a symbolic link: "
                       "refused, not followed", str(root))
    if not stat.S_ISDIR(mode):
        return Refused(Code.E_PACKAGE_MISSING, "not a clip package directory", str(root))
    return Refused(Code.E_PACKAGE_UNREADABLE, f"cannot open: {exc.strerror}", str(root),
                   errno=exc.errno)


class _Walk:
    """One listing of the tree, depth-first, names sorted, bounded in count and depth."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.entries: dict[str, Entry] = {}
        self.findings: list[Finding] = []
        self.full = False

    def directory(self, fd: int, prefix: str, depth: int) -> None:
        try:
            names = sorted(os.listdir(fd))
        except OSError as exc:
            self.findings.append(_unreadable(prefix or ".", exc).finding)
            return
        for name in names:
            if len(self.entries) >= MAX_ENTRIES:
                if not self.full:
                    self.full = True
                    self.findings.append(Finding(
                        Code.E_PACKAGE_LIMIT, f"more than {MAX_ENTRIES} entries: the rest "
                        "was not listed", display(prefix.rstrip("/") or "."),
                        {"limit": MAX_ENTRIES}))
                return
            self._entry(fd, prefix + name, name, depth)

    def _entry(self, fd: int, path: str, name: str, depth: int) -> None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            self.findings.append(_unreadable(path, exc).finding)
            return
        entry = Entry(path=path, kind=_kind(st.st_mode), size=st.st_size, dev=st.st_dev,
                      ino=st.st_ino)
        self.entries[path] = entry
        if entry.kind is Kind.LINK:
            self.findings.append(Finding(Code.E_PACKAGE_LINK, "symbolic link: never "
                                         "followed", display(path)))
        elif entry.kind is Kind.SPECIAL:
            self.findings.append(Finding(Code.E_PACKAGE_SPECIAL, "not a regular file (FIFO, "
                                         "socket or device): never opened", display(path),
                                         {"mode": stat.filemode(st.st_mode)}))
        elif entry.kind is Kind.DIR:
            self._subdirectory(fd, entry, name, depth + 1)

    def _subdirectory(self, fd: int, entry: Entry, name: str, depth: int) -> None:
        if depth > self.levels:
            if self.levels < MAX_DEPTH:  # asked for the top only: not a finding
                return
            self.findings.append(Finding(Code.E_PACKAGE_LIMIT, f"nested more than {MAX_DEPTH}"
                                         " directories deep: not entered", display(entry.path),
                                         {"limit": MAX_DEPTH}))
            return
        try:
            sub = os.open(name, _O_DIR, dir_fd=fd)
        except OSError as exc:
            self.findings.append(_unreadable(entry.path, exc).finding)
            return
        try:
            st = os.fstat(sub)
            if (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
                self.findings.append(Finding(Code.E_PACKAGE_UNREADABLE, "changed while it "
                                             "was being verified", display(entry.path)))
                return
            self.directory(sub, entry.path + "/", depth)
        finally:
            os.close(sub)


def read_named_file(path: Path, limit: int, *, code: Code) -> bytes:
    """A single file a person named (``--key``): refused unread, with ``code``, when it is
    a symbolic link, not a regular file or over ``limit``. A missing or unreadable file
    raises the ``OSError``."""
    listed = os.lstat(path)  # checked before any open: a device is never opened
    _refuse_unless_regular(listed, path, code)
    try:
        fd = os.open(path, _O_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link swapped in meanwhile
            raise Refused(code, "a symbolic link: refused, not followed", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        _refuse_unless_regular(st, path, code)
        if (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino):
            raise Refused(code, "changed while being read: refused", str(path))
        if st.st_size > limit:
            raise Refused(code, f"{st.st_size} bytes, more than {limit}: refused unread",
                          str(path), size=st.st_size, limit=limit)
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise Refused(code, f"more than {limit} bytes: refused", str(path), limit=limit)
    return data


def _refuse_unless_regular(st: os.stat_result, path: Path, code: Code) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise Refused(code, "a symbolic link: refused, not followed", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise Refused(code, "not a regular file: refused unread", str(path),
                      mode=stat.filemode(st.st_mode))
