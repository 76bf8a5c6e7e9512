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
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from integrity.errors import NotFound, TransferFailed

#: What a request id looks like (uuid hex by default); anything else names no request.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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

    def files(self, request_id: str) -> list[PackageFile]:
        """Every regular file under the request's directory, by path."""
        top = self.path(request_id)
        if not top.is_dir():
            raise NotFound(f"the station keeps no package of export request {request_id} "
                           "(run before the station service kept them, or removed)",
                           request=request_id)
        known = _bag_digests(top)
        out = []
        for path in _walk(top):
            rel = path.relative_to(top).as_posix()
            st = path.lstat()
            sha = known.get(rel) or _sha256(path)
            out.append(PackageFile(rel, st.st_size, sha))
        return out


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


__all__ = ["ExportArea", "PackageFile"]
