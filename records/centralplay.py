"""Playing a station's footage at the center: read back from the object store, verified.

The center holds no footage of its own. To play a segment it takes the recording's
newest ``ok`` rendition from its index (:class:`archive.witness.index.CentralRendition`),
reads the rendition's signed manifest back from the object store (under the station's
key prefix), checks that its bytes are the BLAKE3 the station's audit event named, that
the station's key signed it and that its Merkle root holds, and that it is a rendition of
this recording; then reads the segment the manifest names back the same way. Every read
back goes through the center's own store (:meth:`ObjectStore.download` into its staging,
re-read from the disk, BLAKE3 compared, then linked with a ``blob`` row; a newer object
version that is not the blob is passed over for the locked true one): the first play
of a segment fetches and proves it, later plays serve the proven local copy, and the
center's fixity checks it like any blob. Nothing that does not hash to its name is kept or
sent. Permissions are the station's: ``recording.play`` plus the unit and label of every
case the recording is actively linked to (refusals audited); each play is a read event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlmodel import Session

from archive.catalog import Blob, Catalog
from archive.catalog.types import table_of
from archive.replica.download import Wanted
from archive.replica.objectstore import ObjectStore
from archive.staging import Staged, Stager
from archive.store import ContentStore
from archive.witness.index import CentralCase, CentralLink, CentralRecording, CentralRendition
from integrity.errors import ManifestInvalid, NotFound, RepairMismatch
from integrity.findings import Finding
from integrity.keys import Keyring
from integrity.manifest import Manifest, load_signed, verify_signed_manifest
from records.permissions import Actor, Gate, P
from records.viewing import Span, StoredBytes

_R, _N = table_of(CentralRecording), table_of(CentralRendition)
_C, _L = table_of(CentralCase), table_of(CentralLink)
#: A signed manifest is a few KiB per hour of footage; refuse to read back more.
MAX_MANIFEST = 16 << 20


class CentralPlayer:
    def __init__(self, *, gate: Gate, catalog: Catalog, store: ContentStore,
                 objects_for: Callable[[str], ObjectStore],
                 keyring_for: Callable[[str], Keyring],
                 clock: Callable[[], datetime]) -> None:
        self.gate, self.catalog, self.store, self.clock = gate, catalog, store, clock
        self.objects_for, self.keyring_for = objects_for, keyring_for

    def play(self, actor: Actor, station: str, recording_id: str, index: int, *,
             span: Span) -> tuple[StoredBytes, int, int]:
        """Segment ``index`` of the recording's newest ok rendition, proven, with the byte
        range ``span`` chose."""
        subjects = [f"station:{station}", f"recording:{recording_id}"]
        self._require(actor, station, recording_id, subjects)
        manifest_b3 = self._manifest_name(station, recording_id)
        manifest = self._manifest(station, recording_id, manifest_b3)
        entry = next((s for s in manifest.segments if s.index == index), None)
        if entry is None:
            raise NotFound(f"the rendition of {recording_id} has no segment {index}",
                           recording=recording_id, segment=index)
        path = self._proven(station, entry.blake3, entry.size)
        first, last = span(entry.size)
        self.gate.read(actor, "center.play", [*subjects, f"blob:{entry.blake3}"],
                       {"segment": index, "size": entry.size, "range": [first, last],
                        "manifest": manifest_b3})
        return StoredBytes(blake3=entry.blake3, size=entry.size, name=entry.name,
                           path=path), first, last

    def segments(self, actor: Actor, station: str, recording_id: str) -> dict[str, Any]:
        """The segments of the recording's newest ok rendition as its signed manifest
        names them, the manifest proven as :meth:`play` proves it (the player's list)."""
        subjects = [f"station:{station}", f"recording:{recording_id}"]
        self._require(actor, station, recording_id, subjects)
        manifest_b3 = self._manifest_name(station, recording_id)
        manifest = self._manifest(station, recording_id, manifest_b3)
        self.gate.read(actor, "center.segments", [*subjects, f"blob:{manifest_b3}"],
                       {"manifest": manifest_b3, "count": len(manifest.segments)})
        return {"station_id": station, "recording_id": recording_id,
                "manifest": manifest_b3, "merkle_root": manifest.merkle_root,
                "rendition": {"kind": manifest.rendition.kind,
                              "container": manifest.rendition.container},
                "segments": [{"index": g.index, "start_us": g.start_us, "end_us": g.end_us,
                              "name": g.name, "size": g.size, "blake3": g.blake3}
                             for g in sorted(manifest.segments, key=lambda g: g.index)]}

    def _require(self, actor: Actor, station: str, recording_id: str,
                 subjects: list[str], permission: P = P.RECORDING_PLAY) -> None:
        with self.catalog.engine.connect() as conn:
            known = conn.execute(select(_R.c.recording_id).where(and_(
                _R.c.station_id == station, _R.c.recording_id == recording_id))).first()
            cases = list(conn.execute(select(_C).join(_L, and_(
                _L.c.station_id == _C.c.station_id, _L.c.case_id == _C.c.case_id)).where(
                _L.c.station_id == station, _L.c.recording_id == recording_id, _L.c.active)))
        if known is None:
            raise NotFound(f"no recording {recording_id} of station {station} at the center",
                           station=station, recording=recording_id)
        self.gate.require(actor, permission, subjects=subjects)
        for case in cases:  # as at a station: every linked case's unit and label
            self.gate.require(actor, permission,
                              subjects=[*subjects, f"case:{case.case_id}"],
                              unit=case.unit, sensitivity=case.sensitivity)

    def require(self, actor: Actor, station: str, recording_id: str, subjects: list[str],
                permission: P) -> None:
        """``permission`` and the unit and label of every case the recording is actively
        linked to at the center (refusals audited): an export's rules, as a play's."""
        self._require(actor, station, recording_id, subjects, permission)

    def visible(self, actor: Actor, station: str, recording_id: str) -> bool:
        """Whether ``actor`` sees every case the recording is actively linked to (for a
        listing: nothing is recorded)."""
        with self.catalog.engine.connect() as conn:
            cases = list(conn.execute(select(_C.c.unit, _C.c.sensitivity).join(_L, and_(
                _L.c.station_id == _C.c.station_id, _L.c.case_id == _C.c.case_id)).where(
                _L.c.station_id == station, _L.c.recording_id == recording_id, _L.c.active)))
        return all(actor.sees(unit=c.unit, sensitivity=c.sensitivity) for c in cases)

    def proven_manifest(self, station: str, recording_id: str) -> tuple[str, bytes]:
        """The BLAKE3 and bytes of the recording's newest ok rendition's signed manifest,
        read back and proven as for a play (hash, station signature, Merkle root, this
        recording's)."""
        b3 = self._manifest_name(station, recording_id)
        self._manifest(station, recording_id, b3)
        return b3, self.store.path_for(b3).read_bytes()

    def proven_segment(self, station: str, b3: str, size: int) -> Path:
        """A segment the proven manifest names, read back and proven (BLAKE3, size)."""
        return self._proven(station, b3, size)

    def _manifest_name(self, station: str, recording_id: str) -> str:
        with self.catalog.engine.connect() as conn:
            row = conn.execute(select(_N.c.manifest).where(and_(
                _N.c.station_id == station, _N.c.recording_id == recording_id,
                _N.c.status == "ok", _N.c.manifest.is_not(None))).order_by(
                _N.c.made_at.desc()).limit(1)).first()
        if row is None:
            raise NotFound(f"recording {recording_id} has no rendition at the center yet",
                           station=station, recording=recording_id)
        return str(row[0])

    def _manifest(self, station: str, recording_id: str, b3: str) -> Manifest:
        size = self._size_of(station, b3)
        data = self._proven(station, b3, size).read_bytes()
        signed = load_signed(data)
        bad: list[Finding] = verify_signed_manifest(signed, self.keyring_for(station),
                                                    subject=f"manifest:{b3}")
        if bad or signed.manifest.station_id != station or recording_id not in {
                o.recording_id for o in signed.manifest.originals}:
            raise ManifestInvalid(f"the manifest {b3} of {recording_id} does not check out "
                                  f"for station {station}", manifest=b3, station=station,
                                  findings=[f.code for f in bad])
        return signed.manifest

    def _size_of(self, station: str, b3: str) -> int:
        with Session(self.catalog.engine) as s:
            kept = s.get(Blob, b3)
        if kept is not None:
            return int(kept.size)
        objects = self.objects_for(station)
        head = objects.head(objects.key_for(b3))
        if head is None:
            raise NotFound(f"blob {b3} of station {station} is not in the object store",
                           station=station, blake3=b3)
        if head.size > MAX_MANIFEST:
            raise ManifestInvalid(f"object {b3} is too large for a manifest ({head.size})",
                                  blake3=b3, size=head.size)
        return head.size

    def _proven(self, station: str, b3: str, size: int) -> Path:
        """The local path of blob ``b3``, read back and proven first if not held yet."""
        path = self.store.path_for(b3)
        with Session(self.catalog.engine) as s:
            if s.get(Blob, b3) is not None:
                return path
        with self.store.stage() as stager:
            staged = self._download(station, Wanted(blake3=b3, sha256=None, size=size),
                                    stager)
            self.store.link(staged, vouched=self._vouched)
            sha = staged.digests.sha256
        with self.catalog.transaction() as s:
            if s.get(Blob, b3) is None:
                s.add(Blob(blake3=b3, sha256=sha, size=size, stored_at=self.clock()))
        return path

    def read_back(self, station: str, want: Wanted, stager: Stager) -> Staged:
        """Blob ``want`` of ``station`` into ``stager``, proven (size, BLAKE3, SHA-256 if
        given, re-read from the disk), an impostor version passed over; not kept."""
        return self._download(station, want, stager)

    def _download(self, station: str, want: Wanted, stager: Stager) -> Staged:
        """The newest version that is the blob. Anyone who may write to the bucket can
        add a version at a blob's key (a lock keeps the old one, not the key): such a
        version is passed over, never taken, and the locked true copy still read."""
        objects = self.objects_for(station)
        try:
            return objects.download(want, stager)
        except RepairMismatch as first:
            for version in objects.versions(objects.key_for(want.blake3))[1:]:
                try:
                    return objects.download(want, stager, version_id=version)
                except RepairMismatch:
                    continue
            raise first

    def _vouched(self, b3: str) -> bool:
        with Session(self.catalog.engine) as s:
            return s.get(Blob, b3) is not None
