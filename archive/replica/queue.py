"""The durable upload queue: every blob of the local store, to the WORM object store.

Two catalog tables:

- ``uploaditem`` is the queue, one row per blob. Its scheduling fields (state, attempts,
  next_attempt_at, last error, the multipart upload id and acknowledged parts) are
  updated in place: a queue row is not evidence, it only says what is left to do and how
  to resume it. States: ``queued`` → ``uploading`` (claimed by a run; the claim is a
  lease: a run that dies leaves the row to be resumed once ``next_attempt_at`` passes) →
  ``verified`` or, after a retryable failure, ``queued`` again with a later
  ``next_attempt_at``; ``failed`` when trying again cannot help (access denied, no
  Object Lock, local blob damaged, checksum mismatch on ``checksum_attempts`` tries);
  ``withdrawn`` when retention removed the blob (a ``Tombstone`` names it) before it was
  uploaded: it is never uploaded, and a blob retention removed is never queued at all.
- ``uploadevent`` is the history, append-only (UPDATE/DELETE refused by the triggers
  the schema migrations put on it): every verification with the remote
  version, checksum, ETag and retain-until date, every failed attempt with its code, every
  withdrawal (and, written by the retention executor, every deletion of a remote copy).

Retries back off exponentially with jitter, bounded by ``cap_s``; the kind of error
decides (see :mod:`ingest.upload_s3`). An outage leaves everything queued and never
touches the local store. Time is passed in (``now``); nothing here reads the clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, func
from sqlmodel import Field, Session, SQLModel, col, select

from archive.catalog import Blob, Catalog
from archive.catalog.types import APPEND_ONLY, JSONText, utc_field
from archive.replica.objectstore import ObjectStore
from archive.replica.s3 import BlobRef, MultipartState, PartRecord, Uploaded
from archive.store import ContentStore
from archive.tombstones import live_references, tombstoned_blobs
from integrity.codes import Code
from integrity.errors import (
    DigestMismatch,
    EvidockError,
    Refused,
    SizeMismatch,
    UploadChecksumError,
    UploadError,
)

#: What one upload attempt may end with (anything else is not the item's fault).
_ATTEMPT_ERRORS = (UploadError, DigestMismatch, SizeMismatch, Refused)
STATES = ("queued", "uploading", "verified", "failed", "withdrawn")
I_UPLOAD_WITHDRAWN = Code.I_UPLOAD_WITHDRAWN



class UploadItem(SQLModel, table=True):
    """The queue row of one blob (mutable scheduling state; not evidence)."""

    blake3: str = Field(primary_key=True, foreign_key="blob.blake3")
    key: str
    state: str = Field(default="queued", index=True)
    attempts: int = 0
    checksum_failures: int = 0
    next_attempt_at: datetime = utc_field()
    retain_until: datetime = utc_field()
    last_error: str | None = None
    last_error_detail: str = ""
    upload_id: str | None = None
    part_size: int | None = None
    parts: list[dict[str, Any]] = Field(default_factory=list,
                                        sa_column=Column(JSONText(), nullable=False))
    remote_checksum: str | None = None
    version_id: str | None = None
    verified_at: datetime | None = utc_field(nullable=True)
    enqueued_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class UploadEvent(SQLModel, table=True):
    """One outcome of one upload attempt (append-only history)."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    blake3: str = Field(index=True)
    key: str
    bucket: str
    event: str  # verified | retry | failed | requeued | withdrawn | deleted | delete_deferred
    code: str  # I_UPLOAD_VERIFIED, I_UPLOAD_REUSED, or the error code
    detail: str = ""
    attempt: int
    size: int
    sha256: str
    remote_checksum: str | None = None
    checksum_type: str | None = None
    version_id: str | None = None
    etag: str | None = None
    upload_id: str | None = None
    parts: int | None = None
    retain_until: datetime | None = utc_field(nullable=True)
    at: datetime = utc_field()


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff after attempt n: ``min(cap, base·2^(n-1))``, the upper half jittered."""

    base_s: float = 30.0
    cap_s: float = 6 * 3600.0
    checksum_attempts: int = 3
    lease_s: float = 3600.0

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))
        return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


@dataclass(frozen=True)
class ItemOutcome:
    blake3: str
    state: str
    code: str
    attempts: int
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class RunReport:
    items: tuple[ItemOutcome, ...] = ()

    def count(self, state: str) -> int:
        return sum(1 for i in self.items if i.state == state)

    def to_dict(self) -> dict[str, Any]:
        return {"processed": len(self.items),
                **{s: self.count(s) for s in ("verified", "queued", "failed")},
                "items": [{"blake3": i.blake3, "state": i.state, "code": i.code,
                           "attempts": i.attempts,
                           "next_attempt_at": i.next_attempt_at.isoformat()
                           if i.next_attempt_at else None} for i in self.items]}


@dataclass(frozen=True)
class UploadStatus:
    counts: dict[str, int]
    due_now: int
    bytes_pending: int
    next_attempt_at: datetime | None
    failed: tuple[tuple[str, str, str], ...] = field(default=())  # (blake3, code, detail)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "due_now": self.due_now,
                "bytes_pending": self.bytes_pending,
                "next_attempt_at": self.next_attempt_at.isoformat()
                if self.next_attempt_at else None,
                "failed": [{"blake3": b, "code": c, "detail": d} for b, c, d in self.failed]}


#: Called in the same transaction as each UploadEvent (e.g. to append an audit event).
OnEvent = Callable[[Session, UploadEvent], object]
#: Called after a multipart state was persisted (progress, test hooks).
OnState = Callable[[str, MultipartState], None]


class UploadQueue:
    def __init__(self, *, catalog: Catalog, store: ContentStore, objects: ObjectStore,
                 policy: RetryPolicy = RetryPolicy(), rng: random.Random | None = None,
                 on_event: OnEvent | None = None, on_state: OnState | None = None) -> None:
        self.catalog = catalog
        self.store = store
        self.objects = objects
        self.policy = policy
        self.rng = rng or random.Random()
        self.on_event = on_event
        self.on_state = on_state

    # -- enqueueing --------------------------------------------------------------------

    def enqueue_missing(self, *, now: datetime, retain_until: datetime) -> int:
        """Queue every blob that has no queue row yet; returns how many were added.

        Blobs already queued, verified or failed keep their row (a failed one is
        retried only by :meth:`requeue_failed`, after someone fixed the cause). Blobs
        retention removed (named in a tombstone) are never queued.
        """
        with self.catalog.transaction() as s:
            missing = set(s.exec(select(Blob.blake3).where(
                ~col(Blob.blake3).in_(select(UploadItem.blake3)))).all())
            removed = self._removed(s)
            missing -= removed
            for b3 in sorted(missing):
                s.add(self._new_item(b3, now, retain_until))
            self._revive(s, removed, now)
        return len(missing)

    def _revive(self, s: Session, removed: set[str], now: datetime) -> None:
        """Withdrawn items whose bytes are live again (re-ingested) are queued again."""
        for item in s.exec(select(UploadItem).where(UploadItem.state == "withdrawn")):
            if item.blake3 not in removed:
                item.state, item.next_attempt_at, item.updated_at = "queued", now, now
                s.add(item)

    def enqueue(self, b3: str, *, now: datetime, retain_until: datetime) -> bool:
        """Queue one blob; False if it already has a row. A blob retention removed is
        refused (``E_REFUSED``)."""
        with self.catalog.transaction() as s:
            if s.get(UploadItem, b3) is not None:
                return False
            if s.get(Blob, b3) is None:
                raise UploadError(f"no blob {b3} in the catalog", blake3=b3)
            if b3 in self._removed(s):
                raise Refused(f"blob {b3} was removed by retention; not uploading it",
                              blake3=b3)
            s.add(self._new_item(b3, now, retain_until))
        return True

    def _new_item(self, b3: str, now: datetime, retain_until: datetime) -> UploadItem:
        return UploadItem(blake3=b3, key=self.objects.key_for(b3), next_attempt_at=now,
                          retain_until=retain_until, enqueued_at=now, updated_at=now)

    def _removed(self, s: Session) -> set[str]:
        """Blobs a retention tombstone names and no live recording names again (the same
        bytes ingested anew are evidence again): never (again) queued or uploaded."""
        gone = tombstoned_blobs(s)
        return gone - live_references(s, gone) if gone else gone

    def requeue_failed(self, *, now: datetime) -> int:
        """Give every failed item a fresh start (its history stays)."""
        with self.catalog.transaction() as s:
            items = s.exec(select(UploadItem).where(UploadItem.state == "failed")).all()
            for item in items:
                item.state, item.next_attempt_at, item.updated_at = "queued", now, now
                item.attempts = item.checksum_failures = 0
                s.add(item)
                self._event(s, item, now, event="requeued", code=item.last_error or "")
        return len(items)

    # -- running -----------------------------------------------------------------------

    def run_due(self, *, now: datetime, limit: int = 100, only: str | None = None,
                ) -> RunReport:
        """Attempt every item due at ``now`` (at most ``limit``; ``only``: that blob's
        item, as a queued job asks); one attempt each."""
        claimed = self._claim(now, limit, only)
        if not claimed:
            return RunReport()
        try:
            self.objects.ensure_worm()
        except UploadError as exc:
            if not exc.retryable:
                self._release(claimed, now)
                raise
            return RunReport(tuple(self._failed_attempt(i, exc, now) for i in claimed))
        return RunReport(tuple(self._attempt(item, now) for item in claimed))

    def _claim(self, now: datetime, limit: int, only: str | None) -> list[UploadItem]:
        """Take due items under a lease, so that a concurrent run leaves them alone;
        items whose blob retention removed are withdrawn instead."""
        lease_until = now + timedelta(seconds=self.policy.lease_s)
        due = select(UploadItem).where(col(UploadItem.state).in_(("queued", "uploading")),
                                       col(UploadItem.next_attempt_at) <= now)
        if only is not None:
            due = due.where(UploadItem.blake3 == only)
        with self.catalog.transaction() as s:
            items = list(s.exec(due.order_by(col(UploadItem.next_attempt_at)).limit(limit)))
            items = self._withdraw_removed(s, items, now)
            for item in items:
                item.state, item.next_attempt_at, item.updated_at = "uploading", lease_until, now
                item.attempts += 1
                s.add(item)
        return items

    def _withdraw_removed(self, s: Session, items: list[UploadItem],
                          now: datetime) -> list[UploadItem]:
        """Mark items whose blob retention removed ``withdrawn`` (never retried, an event
        says why); return the others."""
        removed = self._removed(s) if items else set()
        for item in (i for i in items if i.blake3 in removed):
            item.state, item.next_attempt_at, item.updated_at = "withdrawn", now, now
            s.add(item)
            self._event(s, item, now, event="withdrawn", code=I_UPLOAD_WITHDRAWN,
                        detail="retention removed this blob (a tombstone names it): "
                               "not uploaded")
        return [i for i in items if i.blake3 not in removed]

    def _release(self, items: list[UploadItem], now: datetime) -> None:
        with self.catalog.transaction() as s:
            for item in items:
                row = s.get(UploadItem, item.blake3)
                if row is not None:
                    row.state, row.next_attempt_at, row.attempts = "queued", now, item.attempts - 1
                    s.add(row)

    def _attempt(self, item: UploadItem, now: datetime) -> ItemOutcome:
        blob = self.catalog.blob(item.blake3)
        if blob is None:
            return self._failed_attempt(item, UploadError(f"no blob {item.blake3}"), now)
        ref = BlobRef(blake3=blob.blake3, sha256=blob.sha256, size=blob.size,
                      path=self.store.path_for(blob.blake3))
        resume = None
        if item.upload_id and item.part_size:
            resume = MultipartState(upload_id=item.upload_id, part_size=item.part_size,
                                    parts=tuple(PartRecord.from_json(p) for p in item.parts))
        try:
            done = self.objects.upload(ref, retain_until=item.retain_until, resume=resume,
                                       on_state=lambda st: self._save_state(item, st, now))
        except _ATTEMPT_ERRORS as exc:  # a CatalogError propagates: the lease keeps the row
            return self._failed_attempt(item, exc, now, size=blob.size, sha256=blob.sha256)
        return self._verified(item, done, now, sha256=blob.sha256)

    def _save_state(self, item: UploadItem, state: MultipartState, now: datetime) -> None:
        with self.catalog.transaction() as s:
            row = s.get(UploadItem, item.blake3)
            if row is not None:
                row.upload_id, row.part_size = state.upload_id, state.part_size
                row.parts, row.updated_at = state.parts_json(), now
                s.add(row)
        if self.on_state is not None:
            self.on_state(item.blake3, state)

    def _verified(self, item: UploadItem, done: Uploaded, now: datetime, *,
                  sha256: str) -> ItemOutcome:
        with self.catalog.transaction() as s:
            row = s.get(UploadItem, item.blake3)
            assert row is not None
            row.state, row.verified_at, row.updated_at = "verified", now, now
            row.remote_checksum, row.version_id = done.checksum, done.version_id
            row.last_error, row.last_error_detail = None, ""
            row.retain_until = max(row.retain_until, done.retain_until)
            s.add(row)
            self._event(s, row, now, event="verified",
                        code=Code.I_UPLOAD_REUSED if done.reused else Code.I_UPLOAD_VERIFIED,
                        size=done.size, sha256=sha256, remote_checksum=done.checksum,
                        checksum_type=done.checksum_type, version_id=done.version_id,
                        etag=done.etag, upload_id=done.upload_id, parts=done.parts,
                        retain_until=done.retain_until)
        return ItemOutcome(item.blake3, "verified", Code.I_UPLOAD_VERIFIED, row.attempts)

    def _failed_attempt(self, item: UploadItem, exc: EvidockError, now: datetime, *,
                        size: int = 0, sha256: str = "") -> ItemOutcome:
        with self.catalog.transaction() as s:
            row = s.get(UploadItem, item.blake3)
            assert row is not None
            retry = self._schedule(row, exc, now)
            s.add(row)
            self._event(s, row, now, event="retry" if retry else "failed", code=exc.code,
                        detail=exc.message[:500], size=size, sha256=sha256)
        return ItemOutcome(row.blake3, row.state, exc.code, row.attempts,
                           row.next_attempt_at if retry else None)

    def _schedule(self, row: UploadItem, exc: EvidockError, now: datetime) -> bool:
        """Set the row's next state after a failed attempt; True if it will be retried."""
        row.last_error, row.last_error_detail = exc.code, exc.message[:500]
        row.updated_at = now
        retry = bool(getattr(exc, "retryable", False))
        if isinstance(exc, UploadChecksumError):
            row.checksum_failures += 1
            retry = row.checksum_failures < self.policy.checksum_attempts
        if retry:
            row.state = "queued"
            row.next_attempt_at = now + self.policy.delay(row.attempts, self.rng)
        else:
            row.state = "failed"
            row.next_attempt_at = now
        return retry

    def _event(self, s: Session, row: UploadItem, now: datetime, **fields: Any) -> None:
        fields.setdefault("size", 0)
        fields.setdefault("sha256", "")
        event = UploadEvent(blake3=row.blake3, key=row.key, bucket=self.objects.bucket,
                            attempt=row.attempts, at=now, **fields)
        s.add(event)
        if self.on_event is not None:
            self.on_event(s, event)

    # -- reading -----------------------------------------------------------------------

    def item(self, b3: str) -> UploadItem | None:
        with Session(self.catalog.engine) as s:
            return s.get(UploadItem, b3)

    def events(self, b3: str | None = None) -> list[UploadEvent]:
        with Session(self.catalog.engine) as s:
            query = select(UploadEvent)
            if b3 is not None:
                query = query.where(UploadEvent.blake3 == b3)
            return list(s.exec(query.order_by(col(UploadEvent.id))))

    def status(self, *, now: datetime) -> UploadStatus:
        """Counts by state, what is due, bytes still to upload, failures with codes."""
        with Session(self.catalog.engine) as s:
            counts = {state: 0 for state in STATES}
            for state, n in s.exec(select(UploadItem.state, func.count())
                                   .group_by(UploadItem.state)).all():
                counts[state] = n
            unqueued = set(s.exec(select(Blob.blake3).where(
                ~col(Blob.blake3).in_(select(UploadItem.blake3)))))
            counts["not_queued"] = len(unqueued - self._removed(s))
            open_states = col(UploadItem.state).in_(("queued", "uploading"))
            due = s.exec(select(func.count()).select_from(UploadItem).where(
                open_states, col(UploadItem.next_attempt_at) <= now)).one()
            pending = s.exec(select(func.coalesce(func.sum(Blob.size), 0))
                             .join(UploadItem, col(UploadItem.blake3) == col(Blob.blake3))
                             .where(col(UploadItem.state).not_in(("verified",
                                                                  "withdrawn")))).one()
            nxt = s.exec(select(func.min(UploadItem.next_attempt_at)).where(open_states)).one()
            failed = s.exec(select(UploadItem.blake3, UploadItem.last_error,
                                   UploadItem.last_error_detail)
                            .where(UploadItem.state == "failed").limit(50)).all()
        return UploadStatus(
            counts=counts, due_now=int(due), bytes_pending=int(pending),
            next_attempt_at=nxt,
            failed=tuple((b, c or "", d) for b, c, d in failed))
