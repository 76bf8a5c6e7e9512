"""Remote retention: the WORM copies keep at least as long as the retention plan says.

Every blob was uploaded with a COMPLIANCE retain-until of upload time + ``retention_days``
(:mod:`ingest.uploads`). Here the plan decides what each copy should be held for:

- a recording kept until a date (routine period, closed case) → that date;
- a recording kept indefinitely (hold, permanent mark, open case, unknown type) → ``now +
  indefinite`` (100 years by default), renewed once less than half of that is left;
- a recording whose period has ended → no wish (its copy's lock simply runs out);
- a hold in force on a recording → S3 legal hold ON on each of its blobs; a hold released
  → OFF again, but only for holds evidock itself put on (it never clears a hold it did
  not place).

A recording's blobs are its original, every segment and signed manifest of its
renditions, and its derivatives. A blob shared by several recordings gets the longest
date and any hold.
:func:`wanted_locks` is pure; :class:`RemoteRetention` applies it to the verified copies.
A retain-until is only ever moved later (:meth:`ObjectStore.raise_retention` reads the
current one first). Each change is an ``uploadevent`` row (event ``retention`` or
``legal_hold``) and an audit event (``remote.retention`` / ``remote.legal_hold``) in one
transaction. The recorded date of a copy can only be below the real one (COMPLIANCE dates
never move earlier), so a copy whose recorded date already covers the plan is skipped
without asking the store (``full=True`` asks about every copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.bindings import vouched
from archive.catalog import Catalog, Recording
from archive.catalog.models import Derivative, Rendition, Segment
from archive.replica.objectstore import LockChange, ObjectStore
from archive.replica.queue import UploadEvent, UploadItem
from integrity.codes import Code
from integrity.errors import EvidockError, UploadUnavailable
from records.casebook import believed_links, fold_links
from records.models import CaseLink
from retention.holds import fold_holds
from retention.models import Hold, HoldRelease
from retention.policy import Decision

INDEFINITE = timedelta(days=36_500)
W_REMOTE_HOLD_FOREIGN = Code.W_REMOTE_HOLD_FOREIGN
W_REMOTE_HOLD_GONE = Code.W_REMOTE_HOLD_GONE


@dataclass(frozen=True, slots=True)
class WantedLock:
    """What one blob's remote copy should carry."""

    retain_until: datetime | None  # None: no recording needs it held any longer
    renew_below: datetime | None  # extend only if the current date is earlier than this
    legal_hold: bool
    recordings: tuple[str, ...]


def _wish(decision: Decision | None, held: bool, now: datetime,
          indefinite: timedelta) -> tuple[datetime | None, datetime | None]:
    if decision is None and not held:
        return None, None
    if held or (decision is not None and decision.action == "keep"
                and decision.retain_until is None):
        return now + indefinite, now + indefinite / 2
    assert decision is not None
    if decision.action == "keep":
        return decision.retain_until, decision.retain_until
    return None, None  # delete: the period has ended, nothing to extend


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def wanted_locks(decisions: Iterable[Decision], holds_by_recording: Mapping[str, Sequence[str]],
                 blobs_by_recording: Mapping[str, Iterable[str]], now: datetime, *,
                 indefinite: timedelta = INDEFINITE) -> dict[str, WantedLock]:
    """Blob BLAKE3 → the lock its remote copy should carry. Pure; ``now`` must be aware.

    ``holds_by_recording`` names the holds in force per recording (scope already resolved
    from cases and officers). A held recording without a decision is kept indefinitely.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    by_rec = {d.recording_id: d for d in decisions}
    held = {r for r, ids in holds_by_recording.items() if ids}
    out: dict[str, WantedLock] = {}
    for rec in sorted(set(by_rec) | held):
        until, renew = _wish(by_rec.get(rec), rec in held, now, indefinite)
        for b3 in sorted(set(blobs_by_recording.get(rec, ()))):
            old = out.get(b3)
            if old is None:
                out[b3] = WantedLock(until, renew, rec in held, (rec,))
                continue
            out[b3] = WantedLock(_later(old.retain_until, until),
                                 _later(old.renew_below, renew),
                                 old.legal_hold or rec in held, (*old.recordings, rec))
    return out


# ------------------------------------------------------------------ catalog reads


def blobs_by_recording(catalog: Catalog) -> dict[str, frozenset[str]]:
    """Recording id → its original's blob plus every manifest and segment blob of its
    renditions and every derivative (as :func:`ingest.tombstones.content_of`, for all
    recordings at once)."""
    out: dict[str, set[str]] = {}
    with Session(catalog.engine) as s:
        rows = list(s.exec(select(Recording.id, Recording.blake3)))
        rows += [(r, b) for r, b in s.exec(select(Rendition.recording_id,
                                                  Rendition.manifest_blake3)) if b]
        rows += list(s.exec(select(Rendition.recording_id, Segment.blake3).join(
            Rendition, col(Rendition.id) == col(Segment.rendition_id))))
        rows += [(r, b) for r, b in s.exec(select(Derivative.recording_id,
                                                  Derivative.blake3)) if b]
    for rec_id, b3 in rows:
        out.setdefault(rec_id, set()).add(b3)
    return {rec: frozenset(b3s) for rec, b3s in out.items()}


def holds_by_recording(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """Recording id → ids of the holds in force on it (directly, through its officer, or
    through a case it is actively linked to)."""
    with Session(catalog.engine) as s:
        # A release or unlink no audit event vouches for frees nothing (see items.py).
        views = fold_holds(s.exec(select(Hold)).all(), vouched(s, s.exec(select(HoldRelease))))
        recordings = list(s.exec(select(Recording.id, Recording.officer_id)))
        links = fold_links(believed_links(s, s.exec(select(CaseLink))))
    by_officer: dict[str, list[str]] = {}
    for rec_id, officer in recordings:
        if officer:
            by_officer.setdefault(officer, []).append(rec_id)
    by_case: dict[str, set[str]] = {}
    for link in links:
        if link.active:
            by_case.setdefault(link.case_id, set()).add(link.recording_id)
    out: dict[str, set[str]] = {}
    for hold in (v for v in views if v.active):
        targets = {"recording": [hold.target], "officer": by_officer.get(hold.target, []),
                   "case": sorted(by_case.get(hold.target, ()))}.get(hold.scope, [])
        for rec_id in targets:
            out.setdefault(rec_id, set()).add(hold.id)
    return {rec: tuple(sorted(ids)) for rec, ids in out.items()}


# ------------------------------------------------------------------ applying


@dataclass
class SyncReport:
    objects: int = 0  # verified copies looked at
    unmanaged: int = 0  # verified copies no recording's plan covers (left as uploaded)
    asked: int = 0  # copies whose lock state was read from the store
    extended: int = 0
    held: int = 0
    released: int = 0
    queued_raised: int = 0  # not yet uploaded: their upload will lock them this long
    findings: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # error code that ended the run early (store unavailable)

    @property
    def ok(self) -> bool:
        return not self.stopped and not any(f["code"].startswith("E_") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "objects": self.objects, "unmanaged": self.unmanaged,
                "asked": self.asked, "extended": self.extended, "held": self.held,
                "released": self.released, "queued_raised": self.queued_raised,
                "stopped": self.stopped, "findings": list(self.findings)}


class RemoteRetention:
    """Applies wanted locks to the verified remote copies, recording every change."""

    def __init__(self, *, catalog: Catalog, objects: ObjectStore, audit: AuditLog,
                 actor: str) -> None:
        self.catalog = catalog
        self.objects = objects
        self.audit = audit
        self.actor = actor

    def sync(self, wanted: Mapping[str, WantedLock], *, now: datetime,
             full: bool = False) -> SyncReport:
        report = SyncReport()
        items, holds = self._items(), self._recorded_holds()
        for item in items:
            lock = wanted.get(item.blake3)
            if item.state != "verified":
                report.queued_raised += self._raise_queued(item, lock, now)
                continue
            report.objects += 1
            if lock is None:
                report.unmanaged += 1
                continue
            try:
                self._one(item, lock, holds.get(item.blake3, False), now, full=full, report=report)
            except UploadUnavailable as exc:
                report.stopped = exc.code
                report.findings.append(_finding(item, exc))
                break
            except EvidockError as exc:
                report.findings.append(_finding(item, exc))
        return report

    def _one(self, item: UploadItem, lock: WantedLock, recorded_hold: bool, now: datetime, *,
             full: bool, report: SyncReport) -> None:
        asked = False
        if lock.retain_until is not None and lock.renew_below is not None and (
                full or item.retain_until < lock.renew_below):
            asked = True
            change = self.objects.raise_retention(item.key, lock.retain_until,
                                                  version_id=item.version_id,
                                                  renew_below=lock.renew_below)
            report.extended += self._note(item, lock, change, now)
        if full or lock.legal_hold != recorded_hold:
            asked = True
            self._hold(item, lock, recorded_hold, now, report)
        report.asked += asked

    def _hold(self, item: UploadItem, lock: WantedLock, recorded: bool, now: datetime,
              report: SyncReport) -> None:
        if lock.legal_hold:
            change = self.objects.ensure_legal_hold(item.key, True, version_id=item.version_id)
            report.held += self._note(item, lock, change, now)
            return
        current = self.objects.legal_hold(item.key, version_id=item.version_id)
        if current == recorded:
            if current:
                self.objects.set_legal_hold(item.key, False, version_id=item.version_id)
                report.released += self._note(item, lock, LockChange(
                    item.key, item.version_id, "legal_hold", True, False), now)
            return
        code = W_REMOTE_HOLD_FOREIGN if current else W_REMOTE_HOLD_GONE
        message = ("legal hold ON that evidock did not place: left on" if current else
                   "the legal hold evidock placed is no longer on")
        report.findings.append({"blake3": item.blake3, "key": item.key, "code": code,
                                "message": message})
        if not current:  # record what the store says, so the next run does not ask again
            with self.catalog.transaction() as s:
                self._record(s, item, lock, LockChange(item.key, item.version_id,
                                                       "legal_hold", True, False), now,
                             code=code)

    def _note(self, item: UploadItem, lock: WantedLock, change: LockChange,
              now: datetime) -> int:
        """Record a change (upload event + audit event, one transaction); keep the queue
        row's date in step with the store. Returns 1 if the store was changed."""
        with self.catalog.transaction() as s:
            row = s.get(UploadItem, item.blake3)
            if change.what == "retention" and isinstance(change.after, datetime) and \
                    row is not None and change.after > row.retain_until:
                row.retain_until, row.updated_at = change.after, now
                s.add(row)
            if change.changed:
                self._record(s, item, lock, change, now)
        return int(change.changed)

    def _record(self, s: Session, item: UploadItem, lock: WantedLock, change: LockChange,
                now: datetime, *, code: str = "") -> None:
        retention = change.what == "retention"
        until = change.after if retention and isinstance(change.after, datetime) else None
        code = code or (Code.I_REMOTE_RETENTION_EXTENDED if retention
                        else Code.I_REMOTE_LEGAL_HOLD_ON if change.after
                        else Code.I_REMOTE_LEGAL_HOLD_OFF)
        s.add(UploadEvent(blake3=item.blake3, key=item.key, bucket=self.objects.bucket,
                          event=change.what, code=code, detail=_show(change.before),
                          attempt=item.attempts, size=0, sha256="",
                          version_id=change.version_id, at=now,
                          retain_until=until))
        self.audit.append(s, actor=self.actor, action=f"remote.{change.what}",
                          subjects=[item.blake3, *lock.recordings],
                          details={"key": item.key, "bucket": self.objects.bucket,
                                   "version_id": change.version_id, "code": code,
                                   "before": _show(change.before),
                                   "after": _show(change.after)}, at=now)

    def _raise_queued(self, item: UploadItem, lock: WantedLock | None, now: datetime) -> int:
        """A copy not uploaded yet: its upload will lock it at least as long as wanted."""
        if lock is None or lock.retain_until is None or item.retain_until >= lock.retain_until:
            return 0
        with self.catalog.transaction() as s:
            row = s.get(UploadItem, item.blake3)
            if row is None or row.state == "verified" or row.retain_until >= lock.retain_until:
                return 0
            row.retain_until, row.updated_at = lock.retain_until, now
            s.add(row)
        return 1

    def _items(self) -> list[UploadItem]:
        with Session(self.catalog.engine) as s:
            return list(s.exec(select(UploadItem).where(UploadItem.state != "failed")
                               .order_by(col(UploadItem.blake3))))

    def _recorded_holds(self) -> dict[str, bool]:
        """Blob → the legal-hold state evidock last set on its copy (absent: never set)."""
        with Session(self.catalog.engine) as s:
            rows = s.exec(select(UploadEvent.blake3, UploadEvent.code)
                          .where(UploadEvent.event == "legal_hold")
                          .order_by(col(UploadEvent.id))).all()
        return {b3: code == Code.I_REMOTE_LEGAL_HOLD_ON for b3, code in rows}


def _show(value: datetime | bool | None) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else ("on" if value else "off")


def _finding(item: UploadItem, exc: EvidockError) -> dict[str, Any]:
    return {"blake3": item.blake3, "key": item.key, "code": exc.code, "message": exc.message}


__all__ = ["INDEFINITE", "W_REMOTE_HOLD_FOREIGN", "W_REMOTE_HOLD_GONE", "RemoteRetention",
           "SyncReport", "WantedLock", "blobs_by_recording", "holds_by_recording", "wanted_locks"]
