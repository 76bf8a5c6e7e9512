"""One run of an approved export request: the approval is spent before any byte leaves.

1. **consume**: one write transaction re-reads the status and appends ``running``
   (audited ``export.start``; ``export.resume`` for a run a dead one left ``running``).
   From here on the approval is spent: no second run can start.
2. **stage**: every package (and a case's ``request.json``) is assembled and synced in
   ``.<out>.staging`` beside ``out``. Nothing is outside staging yet.
3. **record**: one transaction commits the ``export`` rows, the ``used`` decision and
   ``export.run``.
4. **publish**: staging is renamed to ``out`` (durable).

A failure before 3 removes staging and appends ``released`` (the approval given back,
audited): nothing left. A crash before 3 leaves ``running`` and staging: the next run of
the request by someone allowed to run it, holding its run lock (the station service),
resumes it; or it is discarded. A crash between 3 and 4 leaves a used request whose
complete package is in staging: :func:`finish` publishes it (the download does). So a
crash leaves a recorded export or nothing, and one approval yields one package.
Hook points (tests): ``export_started``, ``export_staged``, ``export_recorded``,
``export_published``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from archive.audit.log import AuditLog
from archive.bindings import bind
from archive.catalog import Catalog
from integrity import casebag
from integrity.errors import Conflict, EvidockError, SelfApproval
from records.casebook import Casebook
from records.casepackage import write_case_record
from records.exportbook import (
    STATION,
    ExportItem,
    Ledger,
    Package,
    RequestView,
    load_requests,
)
from records.models import Export
from records.package import Exporter, StagedPackage, publish, sync_tree
from records.permissions import Actor, Gate, P
from records.redactpackage import ApprovedRedaction, stage_redacted


def staging_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.staging")


def finish(out: Path) -> bool:
    """Publish the package of a request recorded as used whose rename never happened
    (the run died between steps 3 and 4); True if it did. Call only for a used request,
    holding its run lock."""
    staged = staging_of(out)
    if out.exists() or not staged.is_dir():
        return False
    publish(staged, out)
    return True


def remove_partial(out: Path) -> None:
    """``out`` and whatever a run that never finished left beside it (its own area)."""
    for path in (out, staging_of(out), *out.parent.glob(f".{out.name}.partial-*")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvidockError(f"{out} exists and is not an empty directory", path=str(out))


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"


def _dir_name(view: RequestView, n: int, recording_id: str) -> str:
    """A package's directory in ``out`` ('.': a recording request's package is ``out``)."""
    return "." if view.case_id is None else f"{n:02d}-{recording_id}"


def provenance(view: RequestView, actor: Actor) -> dict[str, object]:
    """What every package of an approved request records about it (signed in clip.json),
    the request's items included: a package dropped from a case export is missed."""
    approval = view.approval
    assert approval is not None
    items = [{**item.to_json(), "dir": _dir_name(view, n, item.recording_id)}
             for n, item in enumerate(view.items, 1)]
    return {"request_id": view.id, "case_id": view.case_id, "case_number": view.case_number,
            "purpose": view.purpose, "recipient": view.recipient,
            "requested_by": view.requested_by, "requested_at": _iso(view.at),
            "reason": view.reason, "approved_by": approval.actor,
            "approved_at": _iso(approval.at), "valid_until": _iso(approval.valid_until),
            "exported_by": actor.name, "skipped": list(view.skipped), "items": items,
            "exact": view.exact, "originals": view.originals,
            # A case export's case/ bag (its documents, links, index): missed if removed.
            "case_record": casebag.NAME if view.case_id is not None else None,
            **({"station_id": view.station_id} if view.station_id else {})}


def decide(*, catalog: Catalog, audit: AuditLog, gate: Gate, ledger: Ledger,
           view: RequestView, actor: Actor, decision: str, reason: str, valid_h: float,
           subjects: list[str], now: datetime) -> None:
    """Approve or reject a pending request: never its requester's own (two-person
    rule, refusal audited); the decision row and its event in one transaction."""
    if actor.name == view.requested_by:
        gate.refuse(actor, P.EXPORT_APPROVE, subjects,
                    f"{actor.name} made this request; another person must decide it",
                    error=SelfApproval)
    valid_until = now + timedelta(hours=valid_h) if decision == "approved" else None
    with catalog.transaction() as s:
        status = load_requests(s, now=now, ids=[view.id], ledger=ledger)[0].status
        if status != "pending":
            raise Conflict(f"export request {view.id} is {status}; only a pending "
                           "request can be decided", request=view.id, status=status)
        row = ledger.decided(request_id=view.id, decision=decision, actor=actor.name,
                             reason=reason, valid_until=valid_until, at=now)
        verb = "approve" if decision == "approved" else "reject"
        bind(s, audit, row, actor=actor.audit_name, action=f"{ledger.action}.{verb}",
             subjects=subjects, details={"reason": reason,
                                         "valid_until": _iso(valid_until),
                                         "requested_by": view.requested_by}, at=now)


@dataclass(frozen=True, kw_only=True)
class ExportRun:
    catalog: Catalog
    audit: AuditLog
    exporter: Exporter
    clock: Callable[[], datetime]
    reached: Callable[[str], None]
    actor: Actor
    view: RequestView
    subjects: list[str]
    out: Path
    book: Casebook
    redacted: ApprovedRedaction | None = None  # a 信息公开 export: only this derivative
    ledger: Ledger = STATION  # the center keeps its own (records.centralexports)

    def run(self, *, resume: bool) -> list[Package]:
        self._consume(resume=resume)
        try:
            self.reached("export_started")
            staged = self._stage()
            self.reached("export_staged")
            self._record(staged)
        except BaseException as exc:
            self._release(exc)
            raise
        self.reached("export_recorded")  # recorded, still in staging: finish() publishes
        publish(staging_of(self.out), self.out)
        self.reached("export_published")
        return [p for p, _ in staged]

    def _consume(self, *, resume: bool) -> None:
        now = self.clock()
        expected = "running" if resume else "approved"
        with self.catalog.transaction() as s:
            status = self._status(s, now)
            if status != expected:  # another run took it meanwhile
                raise Conflict(f"export request {self.view.id} is {status} now",
                               request=self.view.id, status=status)
            bind(s, self.audit, self.ledger.decided(request_id=self.view.id,
                                                    decision="running",
                                                    actor=self.actor.name, at=now),
                 actor=self.actor.audit_name,
                              action=f"{self.ledger.action}."
                                     f"{'resume' if resume else 'start'}",
                              subjects=self.subjects,
                              details={"items": [i.to_json() for i in self.view.items],
                                       "approved_by": getattr(self.view.approval, "actor",
                                                              None)}, at=now)

    def _stage(self) -> list[tuple[Package, StagedPackage]]:
        staging, view = staging_of(self.out), self.view
        shutil.rmtree(staging, ignore_errors=True)  # ours alone: this run holds the request
        if view.case_id is not None:
            staging.mkdir(parents=True)
        vouched = provenance(view, self.actor)
        staged: list[tuple[Package, StagedPackage]] = []
        for n, item in enumerate(view.items, 1):
            name = _dir_name(view, n, item.recording_id)
            at, dest = (staging, self.out) if name == "." else (staging / name, self.out / name)
            if self.redacted is not None:
                staged.append(self._stage_redacted(item, at, dest, vouched))
                continue
            made = self.exporter.stage(item.recording_id, start_us=item.start_us,
                                       end_us=item.end_us, at=at, destination=dest,
                                       actor=self.actor.audit_name, purpose=view.purpose,
                                       request_id=view.id, exact=view.exact,
                                       with_originals=view.originals,
                                       provenance={**vouched, "link_id": item.link_id})
            staged.append((Package(dest, made.export.id, item, made.segments), made))
        if view.case_id is not None:
            write_case_record(at=staging / casebag.NAME, book=self.book,
                              store=self.exporter.store, keys=self.exporter.keys,
                              case_id=view.case_id, packages=[(p, m.path) for p, m in staged],
                              provenance=vouched, zone=self.exporter.zone,
                              station_id=self.exporter.station_id, now=self.clock())
            (staging / "request.json").write_bytes(_json({**vouched, "packages": [
                {**p.to_json(), "dir": p.path.name} for p, _ in staged]}))
            sync_tree(staging)
        return staged

    def _stage_redacted(self, item: ExportItem, at: Path, dest: Path,
                        vouched: dict[str, object]) -> tuple[Package, StagedPackage]:
        approved, ex = self.redacted, self.exporter
        assert approved is not None
        export = Export(id=ex.new_id(), recording_id=approved.recording_id,
                        rendition_id=approved.rendition_id, start_us=approved.start_us,
                        end_us=approved.end_us, segments=[], destination=str(dest),
                        actor=self.actor.audit_name, purpose=self.view.purpose,
                        request_id=self.view.id, created_at=self.clock())
        made = stage_redacted(store=ex.store, keys=ex.keys, approved=approved, export=export,
                              at=at, provenance={**vouched, "redaction_id": approved.id},
                              station_id=ex.station_id)
        return Package(dest, export.id, item, ()), made

    def _record(self, staged: Sequence[tuple[Package, StagedPackage]]) -> None:
        now = self.clock()
        exports = [p.export_id for p, _ in staged]
        with self.catalog.transaction() as s:
            status = self._status(s, now)
            if status != "running":  # discarded meanwhile
                raise Conflict(f"export request {self.view.id} is {status} now",
                               request=self.view.id, status=status)
            for _, made in staged:
                s.add(made.export)
            bind(s, self.audit, self.ledger.decided(request_id=self.view.id,
                                                    decision="used", actor=self.actor.name,
                                                    exports=exports, at=now),
                 actor=self.actor.audit_name, action=f"{self.ledger.action}.run",
                              subjects=[*self.subjects, *sorted(
                                  {f"recording:{p.item.recording_id}" for p, _ in staged})],
                              details={"purpose": self.view.purpose,
                                       "recipient": self.view.recipient,
                                       "out": str(self.out), "exports": exports,
                                       "approved_by": getattr(self.view.approval, "actor",
                                                              None)}, at=now)

    def _status(self, s: Any, now: datetime) -> str:
        return load_requests(s, now=now, ids=[self.view.id], ledger=self.ledger)[0].status

    def _release(self, error: BaseException) -> None:
        """Nothing left staging: remove it and give the approval back (audited). If the
        catalog cannot take that either, the request stays ``running``: resumable."""
        shutil.rmtree(staging_of(self.out), ignore_errors=True)
        code = error.code if isinstance(error, EvidockError) else type(error).__name__
        now = self.clock()
        # Any failure here (a busy or broken catalog) must not hide the original error.
        with contextlib.suppress(Exception), self.catalog.transaction() as s:
            if self._status(s, now) != "running":
                return
            bind(s, self.audit, self.ledger.decided(request_id=self.view.id,
                                                    decision="released",
                                                    actor=self.actor.name, reason=code,
                                                    at=now),
                 actor=self.actor.audit_name, action=f"{self.ledger.action}.released",
                              subjects=self.subjects, details={"error": code}, at=now)


__all__ = ["ExportRun", "check_out", "decide", "finish", "provenance", "remove_partial",
           "staging_of"]
