"""Where a clip package's footage comes from, for :class:`records.package.Exporter`.

The package writer needs the recording's facts, the signed manifest's bytes, the
segments (each copied out and checked against the BLAKE3 the manifest signs), the
keyring that signed the manifest, and the row that records the export. A station takes
them from its own catalog and store (:class:`StoreSource`); the center from the object
store, read back and proven (:class:`records.centralexports.CentralSource`). Either way
the writer compares every copied byte with the signed digest, so a package can only
carry footage that proved out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from archive.store import ContentStore
from integrity.digest import copy_and_hash
from integrity.errors import DigestMismatch
from integrity.keys import Keyring
from records.models import Export


@dataclass(frozen=True)
class RecordingFacts:
    """What a package says about its recording (clip.json, index.html)."""

    id: str
    officer_id: str | None
    device_serial: str
    camera_start: datetime | None
    blake3: str
    sha256: str | None
    station_id: str | None = None  # the recording's station, when another service exports

    @classmethod
    def of(cls, rec: Recording) -> RecordingFacts:
        return cls(id=rec.id, officer_id=rec.officer_id, device_serial=rec.device_serial,
                   camera_start=rec.camera_start, blake3=rec.blake3, sha256=rec.sha256)


class SegmentLike(Protocol):
    """A segment as the catalog or the signed manifest names it."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def start_us(self) -> int: ...
    @property
    def end_us(self) -> int: ...
    @property
    def blake3(self) -> str: ...


class ExportRow(Protocol):
    """The row that records a package (a station's ``export``, the center's
    ``centralexport``): the writer reads these fields."""

    @property
    def id(self) -> str: ...
    @property
    def recording_id(self) -> str: ...
    @property
    def start_us(self) -> int: ...
    @property
    def end_us(self) -> int: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


class ClipSource(Protocol):
    @property
    def facts(self) -> RecordingFacts: ...
    @property
    def audio(self) -> bool: ...
    @property
    def manifest_bytes(self) -> bytes: ...  # the signed manifest, as stored
    @property
    def segments(self) -> Sequence[SegmentLike]: ...
    @property
    def keyring(self) -> Keyring: ...  # the keys that signed the manifest

    def copy_segment(self, seg: SegmentLike, dest: Path) -> None:
        """Write the segment's bytes to ``dest``; raise unless they are its BLAKE3."""

    def row(self, *, id: str, start_us: int, end_us: int, segments: list[int],
            destination: str, actor: str, purpose: str, request_id: str | None,
            created_at: datetime) -> ExportRow:
        """The row recording this package (not added to any session)."""


def copy_checked(src: Path, seg: SegmentLike, dest: Path, *, where: str) -> None:
    """Copy ``src`` to ``dest``, hashing on the way; the copy must be the segment's."""
    with open(src, "rb") as fh, open(dest, "wb") as out:
        digests = copy_and_hash(fh, out)
    if digests.blake3 != seg.blake3:
        raise DigestMismatch(f"{where} segment {seg.name} does not match its signed "
                             "digest; run `evidock fixity`", expected=seg.blake3,
                             actual=digests.blake3)


@dataclass(frozen=True)
class StoreSource:
    """A station's own recording: its catalog rows and its content store."""

    store: ContentStore
    rec: Recording
    rendition: Rendition
    segments: Sequence[Segment]
    keyring: Keyring
    manifest_bytes: bytes

    @property
    def facts(self) -> RecordingFacts:
        return RecordingFacts.of(self.rec)

    @property
    def audio(self) -> bool:
        return self.rendition.kind == "audio"

    def copy_segment(self, seg: SegmentLike, dest: Path) -> None:
        copy_checked(self.store.path_for(seg.blake3), seg, dest, where="stored")

    def row(self, *, id: str, start_us: int, end_us: int, segments: list[int],
            destination: str, actor: str, purpose: str, request_id: str | None,
            created_at: datetime) -> Export:
        return Export(id=id, recording_id=self.rec.id, rendition_id=self.rendition.id,
                      start_us=start_us, end_us=end_us, segments=segments,
                      destination=destination, actor=actor, purpose=purpose,
                      request_id=request_id, created_at=created_at)


__all__ = ["ClipSource", "ExportRow", "RecordingFacts", "SegmentLike", "StoreSource",
           "copy_checked"]
