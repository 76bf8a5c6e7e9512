"""Repair: a blob fixity finds missing or damaged is restored from its WORM copy.

Only from a copy the upload queue verified (an ``uploadevent`` row ``verified`` in the
configured bucket; its recorded key and version id are what is read back), and only once
the downloaded bytes are proven the catalog's: size, BLAKE3 (the blob's name) and
SHA-256 (the catalog row), re-read from the disk (:mod:`archive.replica.download`, the
store's own staging). Then :meth:`archive.store.ContentStore.restore` moves the damaged
entry aside into the store's quarantine (kept: it may itself be evidence of tampering)
and renames the proven copy over the name. A blob that turns out intact is left alone;
one with no verified upload is ``E_REPAIR_UNAVAILABLE``; a download that is not the
catalog's bytes is ``E_REPAIR_MISMATCH`` and nothing is placed: the damaged blob stays
where it was and the next fixity still reports it.

Every repair asked for is one audit event of the actor: ``fixity.repaired``,
``fixity.repair_failed`` or ``fixity.repair_not_needed``. The blobs restored are then
checked again by a fixity run of their own (mode ``blobs``, SHA-256 too), which writes
their new ``fixitycheck`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.fixity import Fixity, FixityPlan, FixityReport
from archive.replica.download import Wanted
from archive.replica.objectstore import ObjectStore
from archive.replica.queue import UploadEvent
from archive.store import ContentStore
from archive.tombstones import live_references, tombstoned_blobs
from integrity.codes import Code
from integrity.errors import EvidockError, NotFound, RepairMismatch, RepairUnavailable

#: Fixity findings a repair can answer (a stray or a catalog finding it cannot).
REPAIRABLE = frozenset({Code.E_FIXITY_MISSING, Code.E_FIXITY_ALTERED,
                        Code.E_FIXITY_UNREADABLE})
KEPT = ("the damaged copy is kept unchanged in quarantine: it may itself be evidence "
        "of tampering")


@dataclass(frozen=True, kw_only=True)
class RepairOutcome:
    """One blob asked for: its code (``I_REPAIR_*`` or the error's) and what was done."""

    blake3: str
    code: str
    message: str
    sha256: str | None = None
    bytes: int | None = None
    found: str | None = None  # the local blob: missing | damaged | intact
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    quarantined: str | None = None  # relative to the store root
    audit_seq: int | None = None

    @property
    def restored(self) -> bool:
        return self.code == Code.I_REPAIR_RESTORED

    @property
    def failed(self) -> bool:
        return self.code.startswith("E_")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class RepairReport:
    items: tuple[RepairOutcome, ...]
    recheck: FixityReport | None = None  # the fixity run over the blobs restored

    @property
    def ok(self) -> bool:
        return not any(i.failed for i in self.items) and (
            self.recheck is None or not self.recheck.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "restored": sum(i.restored for i in self.items),
                "failed": sum(i.failed for i in self.items),
                "items": [i.to_dict() for i in self.items],
                "recheck": self.recheck.to_dict() if self.recheck else None}


class Repairer:
    def __init__(self, *, catalog: Catalog, store: ContentStore, objects: ObjectStore,
                 audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self.catalog, self.store, self.objects = catalog, store, objects
        self.audit, self.clock = audit, clock

    def repair(self, blobs: Sequence[str], *, actor: str) -> RepairReport:
        """Repair each blob (once, in the order given); then re-check those restored."""
        items = tuple(self._recorded(self._one(b3), actor) for b3 in dict.fromkeys(blobs))
        restored = tuple(i.blake3 for i in items if i.restored)
        recheck = None
        if restored:
            fixity = Fixity(catalog=self.catalog, store=self.store, audit=self.audit,
                            clock=self.clock)
            recheck = fixity.run(FixityPlan("blobs", blobs=restored, sha256=True),
                                 actor=actor)
        return RepairReport(items=items, recheck=recheck)

    def _one(self, b3: str) -> RepairOutcome:
        blob = self.catalog.blob(b3)
        if blob is None:
            return _failed(b3, NotFound(f"no blob {b3} in the catalog", blake3=b3))
        want = Wanted(blake3=blob.blake3, sha256=blob.sha256, size=blob.size)
        try:
            return self.restore(want)
        except EvidockError as exc:  # this blob's failure; the others are still tried
            return _failed(b3, exc, want=want, found=self._found(want))

    def restore(self, want: Wanted) -> RepairOutcome:
        """Restore one blob or raise (``E_REPAIR_*``, the store's or the object store's
        errors); nothing is placed unless the download is proven."""
        b3 = want.blake3
        if self._removed(b3):
            raise RepairUnavailable(f"blob {b3} was removed by retention (a tombstone "
                                    "names it); not restored", blake3=b3)
        same = RepairOutcome(blake3=b3, sha256=want.sha256, bytes=want.size,
                             code=Code.I_REPAIR_NOT_NEEDED, found="intact",
                             message="the blob holds its catalogued bytes")
        if self._found(want) == "intact":
            return same
        upload = self._verified_upload(want)
        same = replace(same, bucket=upload.bucket, key=upload.key,
                       version_id=upload.version_id)
        try:
            with self.store.stage() as stager:
                staged = self.objects.download(want, stager, key=upload.key,
                                               version_id=upload.version_id)
                done = self.store.restore(staged, at=self.clock())
        except EvidockError as exc:  # the failure event names the copy it tried
            for name in ("bucket", "key", "version_id"):
                exc.details.setdefault(name, getattr(same, name))
            raise
        if not done.placed:  # restored meanwhile by another repair
            return same
        kept = str(done.quarantined.relative_to(self.store.root)) \
            if done.quarantined else None
        return replace(same, code=Code.I_REPAIR_RESTORED, found=done.found,
                       quarantined=kept,
                       message=f"restored from {upload.bucket}/{upload.key} (version "
                               f"{upload.version_id or '-'})"
                               + (f"; {KEPT}: {kept}" if kept else ""))

    def _found(self, want: Wanted) -> str:
        """The local blob as the disk holds it: intact, missing or damaged."""
        try:
            got = self.store.reread(want.blake3, sha256=False)
        except FileNotFoundError:
            return "missing"
        except OSError:
            return "damaged"
        return "intact" if (got.size, got.blake3) == (want.size, want.blake3) else "damaged"

    def _removed(self, b3: str) -> bool:
        with Session(self.catalog.engine) as s:
            gone = tombstoned_blobs(s)
            return b3 in gone and not live_references(s, {b3})

    def _verified_upload(self, want: Wanted) -> UploadEvent:
        """The latest verified upload of the blob to the configured bucket."""
        b3 = want.blake3
        with Session(self.catalog.engine) as s:
            events = list(s.exec(select(UploadEvent).where(
                UploadEvent.blake3 == b3, UploadEvent.event == "verified")
                .order_by(col(UploadEvent.id).desc())))
        here = [e for e in events if e.bucket == self.objects.bucket]
        if not here:
            elsewhere = sorted({e.bucket for e in events})
            raise RepairUnavailable(
                f"blob {b3} has no verified upload to bucket {self.objects.bucket}"
                + (f" (only to {', '.join(elsewhere)})" if elsewhere else "")
                + "; nothing to restore it from", blake3=b3, bucket=self.objects.bucket)
        latest = here[0]
        if latest.sha256 and latest.sha256 != want.sha256:
            raise RepairMismatch(f"blob {b3}: its upload was verified with another SHA-256 "
                                 "than the catalog's; not restored", blake3=b3,
                                 key=latest.key, version_id=latest.version_id)
        return latest

    def _recorded(self, outcome: RepairOutcome, actor: str) -> RepairOutcome:
        """The outcome as an audit event of ``actor``; its sequence number added."""
        action = {Code.I_REPAIR_RESTORED: "fixity.repaired",
                  Code.I_REPAIR_NOT_NEEDED: "fixity.repair_not_needed"}.get(
                      Code(outcome.code), "fixity.repair_failed")
        details = {k: v for k, v in outcome.to_dict().items() if k != "audit_seq"}
        if outcome.restored and outcome.quarantined:
            details["note"] = KEPT
        elif outcome.failed:
            details["note"] = "nothing placed: the local blob is as it was"
        event = self.audit.record(actor=actor, action=action, subjects=[outcome.blake3],
                                  details=details, at=self.clock())
        return replace(outcome, audit_seq=event.seq)


def _failed(b3: str, exc: EvidockError, *, want: Wanted | None = None,
            found: str | None = None) -> RepairOutcome:
    data = exc.details
    return RepairOutcome(
        blake3=b3, code=str(exc.code), message=exc.message, found=found,
        sha256=want.sha256 if want else None, bytes=want.size if want else None,
        bucket=_str(data.get("bucket")), key=_str(data.get("key")),
        version_id=_str(data.get("version_id")))


def _str(value: object) -> str | None:
    return None if value is None else str(value)


__all__ = ["REPAIRABLE", "RepairOutcome", "RepairReport", "Repairer"]
