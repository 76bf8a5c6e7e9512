"""Original camera files in a package: a photo's (or log's) own package, and the
``--originals`` copy beside a video's or audio's segments.

A photo, log or other file has no rendition: what leaves is the original blob itself,
copied from the store and hashed on the way out (it must be the catalog's bytes), with
its BLAKE3 and SHA-256 in ``clip.json`` (signed by the station) and its own index entry.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import Session, select

from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition
from archive.store import ContentStore
from integrity.digest import copy_and_hash
from integrity.errors import DigestMismatch, NotFound

DIR = "originals"  # in data/
NO_RENDITION = ("photo", "log", "other")  # kinds archived as originals only
_PLAIN = re.compile(r"^[^/\\\0]{1,200}$")


def file_name(rec: Recording) -> str:
    """The camera's own file name, unless it could not be a plain name in the package."""
    return name_for(rec.original_display, rec.id)


def name_for(display: str, recording_id: str) -> str:
    """:func:`file_name` of a camera path as shown and its recording's id."""
    name = Path(display.replace("\\", "/")).name
    if not _PLAIN.match(name) or name.startswith(".") or not name.isprintable():
        name = f"{recording_id}{Path(name).suffix if _PLAIN.match(Path(name).suffix) else ''}"
    return name


def reference(rec: Recording) -> dict[str, object]:
    """The original as a rendition manifest names it (integrity.manifest.OriginalRef)."""
    return {"recording_id": rec.id, "name": rec.original_display, "size": rec.size,
            "blake3": rec.blake3, "sha256": rec.sha256}


def copy_original(store: ContentStore, rec: Recording, data: Path) -> dict[str, object]:
    """Copy the original into ``data/originals/`` (digest-checked); its clip.json entry."""
    folder = data / DIR
    folder.mkdir(exist_ok=True)
    dest = folder / file_name(rec)
    with open(store.path_for(rec.blake3), "rb") as src, open(dest, "wb") as out:
        digests = copy_and_hash(src, out)
    if digests.blake3 != rec.blake3 or digests.sha256 != rec.sha256:
        raise DigestMismatch(f"the stored original of {rec.id} does not match the catalog; "
                             "run `evidock fixity`", expected=rec.blake3,
                             actual=digests.blake3)
    return {"file": f"{DIR}/{dest.name}", "size": rec.size, "blake3": rec.blake3,
            "sha256": rec.sha256}


def placeholder_rendition(catalog: Catalog, rec: Recording) -> Rendition:
    """The ``none`` rendition row a photo got when it was processed (an export names it)."""
    if rec.kind not in NO_RENDITION:
        raise NotFound(f"recording {rec.id} has no rendition yet; run `evidock process`",
                       recording=rec.id)
    with Session(catalog.engine) as s:
        row = s.exec(select(Rendition).where(Rendition.recording_id == rec.id,
                                             Rendition.status == "none")).first()
    if row is None:
        raise NotFound(f"recording {rec.id} ({rec.kind}) has not been processed yet; run "
                       "`evidock process`", recording=rec.id)
    return row


__all__ = ["DIR", "NO_RENDITION", "copy_original", "file_name", "name_for",
           "placeholder_rendition", "reference"]
