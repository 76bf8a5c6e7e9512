"""Sealing: the signed records of recordings and dock sessions, written into the store.

What a recording is (id, camera, officer, camera start, ingest time, digests, size,
session, flags) and what a dock session was (camera, files, outcomes) are signed with
the station key (:mod:`integrity.records`) and stored as blobs through the one way in
(staging, verify, link). Each seal is a ``seal`` row in the same transaction as the
audit event that names its digest (``ingest.file`` for a recording,
``dock.session.seal`` for a session), so the log vouches for the seal and the seal for
the row. :mod:`archive.sealcheck` compares them.

A session is sealed, with a signed audit head inside, before its first wipe and when it
ends: if the catalog's newest rows are then lost (its WAL deleted), the store still says
what was ingested and how long the log was.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.format import HeadSigner, SignedHead, iso
from archive.audit.log import AuditLog
from archive.audit.rows import Appended
from archive.catalog import Blob, Catalog, DockSession, Recording, SessionFile
from archive.catalog.models import Seal
from archive.keystore import StationKeys
from archive.store import ContentStore, Stager
from integrity import records
from integrity.errors import AuditError, CatalogError, EvidockError
from integrity.keys import KeyPair

#: An ``also`` of :class:`archive.catalog.Catalog` (adds rows to its transaction).
Also = Callable[[Session], object]
STAGES = ("ingest", "before_wipe", "end")


def _t(at: datetime | None) -> str | None:
    return None if at is None else iso(at)


def recording_body(rec: Recording) -> dict[str, Any]:
    """What the station asserts a recording is (the row's fields, JSON-safe)."""
    return {"id": rec.id, "session_id": rec.session_id, "device_serial": rec.device_serial,
            "officer_id": rec.officer_id, "original_path": bytes(rec.original_path).hex(),
            "original_display": rec.original_display, "kind": rec.kind, "size": rec.size,
            "blake3": rec.blake3, "sha256": rec.sha256,
            "camera_start": _t(rec.camera_start),
            "source_mtime_ns": str(rec.source_mtime_ns),  # beyond JSON's exact integers
            "ingested_at": _t(rec.ingested_at), "status": rec.status,
            "flags": list(rec.flags), "reason": rec.reason}


def file_body(f: SessionFile) -> dict[str, Any]:
    return {"relpath": bytes(f.relpath).hex(), "display": f.display, "status": f.status,
            "code": f.code, "reason": f.reason, "size": f.size, "blake3": f.blake3,
            "sha256": f.sha256, "recording_id": f.recording_id, "at": _t(f.at)}


def session_fields(dock: DockSession) -> dict[str, Any]:
    """The dock session row's own fields (no floats: the drift in microseconds)."""
    drift = None if dock.clock_drift_s is None else round(dock.clock_drift_s * 1_000_000)
    return {"id": dock.id, "station_id": dock.station_id,
            "device_serial": dock.device_serial, "officer_id": dock.officer_id,
            "camera_model": dock.camera_model, "source": dock.source, "bay": dock.bay,
            "wipe_requested": bool(dock.wipe_requested),
            "started_at": _t(dock.started_at), "clock_drift_us": drift,
            "ended_at": _t(dock.ended_at), "outcome": dock.outcome,
            "error_code": dock.error_code,
            # Only when read: records sealed before the battery was kept stay verifiable.
            **({"battery_percent": dock.battery_percent}
               if dock.battery_percent is not None else {})}


def session_body(dock: DockSession, files: list[SessionFile], *, stage: str,
                 head: SignedHead | None) -> dict[str, Any]:
    return {**session_fields(dock), "stage": stage,
            "files": [file_body(f) for f in files],
            "audit_head": head.to_dict() if head is not None else None}


@dataclass(frozen=True)
class Sealed:
    """A signed record stored in the store, not yet named by the catalog."""

    kind: str
    subject: str
    stage: str
    blob: Blob


class Sealer:
    def __init__(self, *, catalog: Catalog, store: ContentStore, keys: StationKeys,
                 station_id: str, clock: Callable[[], datetime]) -> None:
        self.catalog, self.store, self.keys = catalog, store, keys
        self.station_id, self.clock = station_id, clock
        self._key: KeyPair | None = None
        self._sealed_before_wipe: set[str] = set()

    def key(self) -> KeyPair:
        """The station key (`evidock init` makes it; made here for a station without)."""
        if self._key is None:
            self._key = self.keys.init()[0]
        return self._key

    def _store(self, kind: str, subject: str, stage: str, body: dict[str, Any],
               stager: Stager | None) -> Sealed:
        data = records.seal(kind, body, self.key())
        reader = io.BytesIO(data)
        if stager is not None:
            digests = stager.put(reader, vouched=self._vouched)
        else:
            digests = self.store.put(reader, vouched=self._vouched)
        return Sealed(kind, subject, stage, Blob(blake3=digests.blake3, sha256=digests.sha256,
                                                 size=digests.size, stored_at=self.clock()))

    def _vouched(self, b3: str) -> bool:
        return self.catalog.blob(b3) is not None

    def recording(self, rec: Recording, stager: Stager | None = None) -> Sealed:
        """Sign and store ``rec``'s record; name it in the ingest's transaction with
        :meth:`attach` (its blob's digest goes into the ``ingest.file`` event)."""
        return self._store("recording", rec.id, "ingest", recording_body(rec), stager)

    @staticmethod
    def attach(sealed: Sealed | None, also: Also) -> Also:
        """``also`` (which appends the audit event naming the seal), then the seal's blob
        and ``seal`` rows, in the same transaction."""
        def run(s: Session) -> object:
            appended = also(s)
            if sealed is None:
                return appended
            if not isinstance(appended, Appended):
                raise AuditError("a seal must be named by the audit event appended with it")
            if s.get(Blob, sealed.blob.blake3) is None:
                s.add(sealed.blob)
            s.add(Seal(blake3=sealed.blob.blake3, kind=sealed.kind, subject=sealed.subject,
                       stage=sealed.stage, audit_seq=appended.seq,
                       at=sealed.blob.stored_at))
            return appended
        return run

    def before_wipe(self, session_id: str) -> None:
        """Seal the session (with a signed audit head) once, before its first wipe."""
        if session_id not in self._sealed_before_wipe:
            self.session(session_id, stage="before_wipe")
            self._sealed_before_wipe.add(session_id)

    def end(self, session_id: str) -> Sealed | None:
        """Seal the session as it ended. A failure here (store full, key unreadable)
        does not undo the offload: the session stays unsealed, which verification
        reports (E_CATALOG_UNSIGNED)."""
        try:
            return self.session(session_id, stage="end")
        except EvidockError:
            return None

    def session(self, session_id: str, *, stage: str) -> Sealed:
        """Sign a head over the log, then seal the session as the catalog has it now."""
        audit = AuditLog(catalog=self.catalog,
                         signer=HeadSigner(keys=self.keys, station_id=self.station_id))
        self.key()
        head = audit.sign_head(at=self.clock())
        with Session(self.catalog.engine) as s:
            dock = s.get(DockSession, session_id)
            files = list(s.exec(select(SessionFile).where(
                SessionFile.session_id == session_id).order_by(col(SessionFile.id))))
        if dock is None:
            raise CatalogError(f"no dock session {session_id}", session=session_id)
        sealed = self._store("session", session_id, stage,
                             session_body(dock, files, stage=stage, head=head), None)
        at = self.clock()
        with self.catalog.transaction() as s:
            self.attach(sealed, lambda t: audit.append(
                t, actor=f"station:{self.station_id}", action="dock.session.seal",
                subjects=[session_id, sealed.blob.blake3],
                details={"record": sealed.blob.blake3, "stage": stage,
                         "files": len(files), "head_size": head.size}, at=at))(s)
        return sealed


__all__ = ["STAGES", "Sealed", "Sealer", "file_body", "recording_body", "session_body",
           "session_fields"]
