"""Where the station service keeps the packages it wrote: one directory per request.

``export run`` writes the packages of a request into ``<root>/<request id>/`` (a
package of a recording request is that directory itself; a case request holds
``NN-<recording>/`` packages and ``request.json``), and clients download them from
there. A request is run once, so its directory is written once; runs of one request
are serialised by a lock file so a second run waits and is then refused as used.

The listing gives each file's size and SHA-256 so the client can check what it
received: payload and tag files take their digest from the bag's own manifests (a
file altered on disk after it was bagged no longer matches and the client refuses
it); the files no manifest covers (tag manifests, ``request.json``) are hashed here.

Lifecycle (:meth:`ExportArea.sweep`, run by the service before each run and download):
a run stages in ``.<request id>.staging`` and renames it to ``<request id>/`` only once
the export is recorded (:mod:`records.exportrun`). A used request's package is kept
until its approval ends (``valid_until``), so it can be downloaded again until then;
then it is removed. Staging of a run that died is kept while the request is
``running`` (the next run resumes it, or it is discarded); a used request whose package
is still in staging is published; everything else (a request released, discarded,
expired, unknown, or a legacy ``.<id>.partial-*``) is removed. A request whose run lock
is held is left alone. Every removal is audited by the caller.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from integrity.errors import NotFound, TransferFailed
from records.exportrun import finish

#: What a request id looks like (uuid hex by default); anything else names no request.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: What a run leaves in the area: the package, its staging, a legacy temp directory.
_ENTRY = re.compile(r"^(?:\.(?P<staged>[A-Za-z0-9_-]{1,64})\.(?:staging|partial-.*)"
                    r"|(?P<top>[A-Za-z0-9_-]{1,64}))$")


@dataclass(frozen=True, slots=True)
class AreaState:
    """What the catalog says of a request whose files are in the area."""

    status: str  # records.exportbook.STATUSES
    keep_until: datetime | None  # the approval's end: a used request's package is kept


@dataclass(frozen=True, slots=True)
class Removed:
    request_id: str
    name: str  # the entry of the area
    why: str


@dataclass(frozen=True, slots=True)
class PackageFile:
    """One regular file of a request's directory: POSIX path relative to it."""

    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


class ExportArea:
    def __init__(self, *, root: Path) -> None:
        self.root = root

    def path(self, request_id: str) -> Path:
        if not _ID.match(request_id):
            raise NotFound(f"no export request {request_id}", request=request_id)
        return self.root / request_id

    @contextmanager
    def running(self, request_id: str) -> Iterator[Path]:
        """The request's directory, while no other run of the request is under way."""
        where = self.path(request_id)
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(locks / f"{request_id}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield where
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def _idle(self, request_id: str) -> Iterator[bool]:
        """True (and the run lock held) unless a run of the request is under way."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(locks / f"{request_id}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def sweep(self, states: Callable[[Sequence[str]], Mapping[str, AreaState]], *,
              now: datetime) -> list[Removed]:
        """Apply the lifecycle (module docstring) to every request with files here."""
        if not self.root.is_dir():
            return []
        found: dict[str, list[Path]] = {}
        for entry in sorted(self.root.iterdir()):
            match = _ENTRY.match(entry.name)
            if match:
                found.setdefault(match["staged"] or match["top"], []).append(entry)
        known = states(sorted(found))
        removed: list[Removed] = []
        for rid, entries in sorted(found.items()):
            with self._idle(rid) as idle:
                if idle:
                    removed += self._settle(rid, entries, known.get(rid), now)
        return removed

    def _settle(self, rid: str, entries: list[Path], state: AreaState | None,
                now: datetime) -> list[Removed]:
        top = self.root / rid
        if state is not None and state.status == "used" and finish(top):
            # Published: the staging became the package.
            entries = [top, *(e for e in entries if e.exists() and e != top)]
        removed = []
        for entry in entries:
            why = _why(entry == top, state, now)
            if why is None:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(Removed(rid, entry.name, why))
        return removed

    def files(self, request_id: str) -> list[PackageFile]:
        """Every regular file under the request's directory, by path."""
        top = self.path(request_id)
        if not top.is_dir():
            raise NotFound(f"the station keeps no package of export request {request_id} "
                           "(kept until its approval ends, then removed)",
                           request=request_id)
        known = _bag_digests(top)
        out = []
        for path in _walk(top):
            rel = path.relative_to(top).as_posix()
            st = path.lstat()
            sha = known.get(rel) or _sha256(path)
            out.append(PackageFile(rel, st.st_size, sha))
        return out


def _why(is_package: bool, state: AreaState | None, now: datetime) -> str | None:
    """Why an entry of the area goes (None: it stays)."""
    if state is None:
        return "no such export request"
    if is_package and state.status == "used":
        if state.keep_until is None or now < state.keep_until:
            return None
        return f"kept until its approval ended ({state.keep_until.isoformat()})"
    if not is_package and state.status == "running":
        return None  # the next run resumes it, or it is discarded
    return f"left by a run that did not finish (request {state.status})"


def _walk(top: Path) -> Iterator[Path]:
    """Regular files in path order; anything else here was not written by an export."""
    for entry in sorted(top.iterdir()):
        mode = entry.lstat().st_mode
        if stat.S_ISDIR(mode):
            yield from _walk(entry)
        elif stat.S_ISREG(mode):
            yield entry
        else:
            raise TransferFailed(f"{entry} is neither a regular file nor a directory; the "
                                 "package area was altered", path=str(entry))


def _bag_digests(top: Path) -> dict[str, str]:
    """SHA-256 of payload and tag files, from the manifests of every bag under ``top``."""
    found: dict[str, str] = {}
    for bagit in sorted(top.rglob("bagit.txt")):
        bag = bagit.parent
        prefix = "" if bag == top else bag.relative_to(top).as_posix() + "/"
        for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
            path = bag / manifest
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                digest, _, name = line.partition(" ")
                if _SHA256.match(digest) and name.strip():
                    found[prefix + name.strip()] = digest
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["AreaState", "ExportArea", "PackageFile", "Removed"]
