"""Deleting the remote (WORM) copies of blobs a retention run removed.

After the local unlink each copy is deleted with
:meth:`~archive.replica.objectstore.ObjectStore.delete_expired`: only that version, only
once its COMPLIANCE lock has run out and no legal hold is on. A copy still locked or
held is kept, and so is every copy while the store is unreachable; each outcome is an
upload event (``deleted`` or ``delete_deferred``, with the reason) and one
``retention.remote_delete`` audit event lists them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.replica.objectstore import ObjectStore, RemoteDeletion
from archive.replica.queue import UploadEvent, UploadItem
from integrity.codes import Code
from integrity.errors import EvidockError, UploadUnavailable
from records.permissions import Actor

#: Upload-event codes of remote deletions (a failed call records its error code).
I_REMOTE_DELETED = Code.I_REMOTE_DELETED
W_REMOTE_DELETE_DEFERRED = Code.W_REMOTE_DELETE_DEFERRED
#: Remote copies, identified as in the upload events: (blob, version id).
CopyId = tuple[str, str | None]


@dataclass(frozen=True)
class RemoteResult:
    """What became of one remote copy when the executor asked for its deletion."""

    blake3: str
    deletion: RemoteDeletion
    code: str

    @property
    def event(self) -> str:
        return "deleted" if self.deletion.deleted else "delete_deferred"

    def to_json(self) -> dict[str, Any]:
        d = self.deletion
        return {"blake3": self.blake3, "key": d.key, "version_id": d.version_id,
                "deleted": d.deleted, "reason": d.reason, "code": self.code,
                "retain_until": d.retain_until.isoformat() if d.retain_until else None}


class RemoteCopies:
    """Asks the object store (None: not configured) to delete copies, and records it."""

    def __init__(self, *, catalog: Catalog, audit: AuditLog,
                 objects: ObjectStore | None) -> None:
        self.catalog, self.audit, self.objects = catalog, audit, objects

    def delete(self, actor: Actor, copies: Sequence[UploadItem], now: datetime, *,
               subjects: Sequence[str], known: Mapping[CopyId, str] | None = None,
               ) -> list[dict[str, Any]]:
        """Delete the copies whose lock has run out, keep the others; record each outcome
        (one upload event each, one audit event) unless ``known`` (copy → the reason
        last recorded) already says the same. Returns every outcome."""
        if not copies:
            return []
        if self.objects is None:
            return [_deferred(c, "object storage is not configured ([upload] enabled = "
                                 "false)", W_REMOTE_DELETE_DEFERRED).to_json() for c in copies]
        results = self._ask_store(self.objects, copies, now)
        fresh = [r for r in results if r.deletion.deleted or (known or {}).get(
            (r.blake3, r.deletion.version_id)) != r.deletion.reason]
        if fresh:
            self._record_remote(actor, self.objects.bucket, fresh, now, subjects)
        return [r.to_json() for r in results]

    @staticmethod
    def _ask_store(objects: ObjectStore, copies: Sequence[UploadItem],
                   now: datetime) -> list[RemoteResult]:
        """``delete_expired`` for each copy; once the store is unreachable, the rest are
        deferred without asking."""
        results: list[RemoteResult] = []
        down: UploadUnavailable | None = None
        for item in copies:
            if down is not None:
                results.append(_deferred(item, f"not tried: the store is unavailable "
                                               f"({down.code})", down.code))
                continue
            try:
                done = objects.delete_expired(item.key, version_id=item.version_id, now=now)
            except UploadUnavailable as exc:
                down = exc
                results.append(_deferred(item, exc.message, exc.code))
            except EvidockError as exc:
                results.append(_deferred(item, exc.message, exc.code))
            else:
                results.append(RemoteResult(item.blake3, done, I_REMOTE_DELETED if
                                            done.deleted else W_REMOTE_DELETE_DEFERRED))
        return results

    def _record_remote(self, actor: Actor, bucket: str, results: Sequence[RemoteResult],
                       now: datetime, subjects: Sequence[str]) -> None:
        """Upload events and one audit event, one transaction; a later retain-until the
        store reported goes into the queue row (no need to ask before that date)."""
        with self.catalog.transaction() as s:
            for r in results:
                d, row = r.deletion, s.get(UploadItem, r.blake3)
                if row is not None and d.retain_until is not None \
                        and d.retain_until > row.retain_until:
                    row.retain_until, row.updated_at = d.retain_until, now
                    s.add(row)
                s.add(UploadEvent(blake3=r.blake3, key=d.key, bucket=bucket, event=r.event,
                                  code=r.code, detail=d.reason[:500],
                                  attempt=row.attempts if row else 0, size=0, sha256="",
                                  version_id=d.version_id, retain_until=d.retain_until,
                                  at=now))
            deleted = sum(r.deletion.deleted for r in results)
            self.audit.append(s, actor=actor.audit_name, action="retention.remote_delete",
                              subjects=[*subjects, *(f"blob:{r.blake3}" for r in results)],
                              details={"bucket": bucket, "deleted": deleted,
                                       "kept": len(results) - deleted,
                                       "outcomes": [r.to_json() for r in results]}, at=now)


def copies_of(s: Session, blobs: Collection[str]) -> list[UploadItem]:
    """The verified remote copies (upload queue rows) of ``blobs``, in their order."""
    wanted = list(dict.fromkeys(blobs))
    if not wanted:
        return []
    rows = {i.blake3: i for i in s.exec(select(UploadItem).where(
        col(UploadItem.blake3).in_(wanted), UploadItem.state == "verified"))}
    return [rows[b] for b in wanted if b in rows]


def undeleted(s: Session, blobs: Collection[str], now: datetime) -> list[UploadItem]:
    """Verified copies of ``blobs`` with no ``deleted`` event whose recorded lock has run
    out by ``now``. The recorded date is never later than the store's (COMPLIANCE dates
    only move later), so a copy it still locks is not asked about."""
    wanted = sorted(blobs)
    if not wanted:
        return []
    deleted = set(s.exec(select(UploadEvent.blake3, UploadEvent.version_id).where(
        UploadEvent.event == "deleted", col(UploadEvent.blake3).in_(wanted))))
    return [c for c in copies_of(s, wanted)
            if (c.blake3, c.version_id) not in deleted and c.retain_until <= now]


def last_remote(s: Session, blobs: Collection[str]) -> dict[CopyId, str]:
    """Copy → the reason of the last remote-deletion outcome recorded for it."""
    if not blobs:
        return {}
    rows = s.exec(select(UploadEvent.blake3, UploadEvent.version_id, UploadEvent.detail)
                  .where(col(UploadEvent.event).in_(("deleted", "delete_deferred")),
                         col(UploadEvent.blake3).in_(sorted(set(blobs))))
                  .order_by(col(UploadEvent.id)))
    return {(b, v): detail for b, v, detail in rows}


def _deferred(item: UploadItem, reason: str, code: str) -> RemoteResult:
    return RemoteResult(item.blake3, RemoteDeletion(item.key, item.version_id, False, reason),
                        code)


__all__ = ["I_REMOTE_DELETED", "W_REMOTE_DELETE_DEFERRED", "CopyId", "RemoteCopies",
           "RemoteResult", "copies_of", "last_remote", "undeleted"]
