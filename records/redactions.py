"""Redaction for publication (技术处理后公开): request → plan → render → view → decide.

A redaction is a new derivative of a recording range, never a change to the original or
its renditions. The requester names the range, hand-drawn boxes and audio ranges; faces
are found automatically (records/facetrack.py) as tracks the requester or a reviewer
can remove or add to, each change a new plan. The plan in force is rendered by ffmpeg
from the signed rendition segments (records/redact_render.py) into a new blob, with a
statement naming the source segments, every operation, the tool and argv, signed by
the station (integrity/redaction.py). Someone else, who watched that very file, approves
or rejects it; an approval is final. Every step is an append-only row bound to its audit
event; every refusal is audited. Plans, files, statements and signatures are blobs in
the content store, so fixity covers them.
"""

from __future__ import annotations

import builtins
import io
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import blake3
from sqlalchemy import func
from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.bindings import bind
from archive.catalog import Catalog
from archive.catalog.models import Blob
from archive.keystore import StationKeys
from archive.store import ContentStore
from archive.tombstones import tombstoned_recordings
from integrity import redaction
from integrity.digest import Digests
from integrity.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotApproved,
    NotFound,
    SelfApproval,
)
from integrity.redaction import AudioRange, Box, Fixed, Plan
from records.casebook import Casebook
from records.permissions import Actor, Gate, P
from records.redaction_model import Redaction, RedactionStep
from records.redactionbook import RedactionView, StepView, load, load_one
from records.redactsource import render_and_sign, sources_of
from records.viewing import StoredBytes

if TYPE_CHECKING:
    from records.redactpackage import ApprovedRedaction

#: A hand box: the region and the recording times [start_us, end_us) it covers.
HandBox = tuple[Box, int, int]


class RedactionDesk:
    """Requests, plans, renders, viewings and decisions of redactions; all audited."""

    def __init__(self, *, catalog: Catalog, store: ContentStore, keys: StationKeys,
                 gate: Gate, audit: AuditLog, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.catalog, self.store, self.keys = catalog, store, keys
        self.gate, self.audit, self.clock, self.new_id = gate, audit, clock, new_id
        self.book = Casebook(catalog=catalog)

    # ------------------------------------------------------------------ access

    def _require(self, actor: Actor, permission: P, recording_id: str,
                 subjects: Sequence[str]) -> None:
        """The permission and the unit and label of every case the recording is linked
        to (a recording hidden from the actor is refused, audited, and named by id only)."""
        cases = self.book.sensitivity_of_recordings([recording_id])[recording_id]
        for p in dict.fromkeys((P.RECORDING_VIEW, permission)):
            self.gate.require(actor, p, subjects=subjects)
            for case in cases:
                self.gate.require(actor, p, subjects=[*subjects, f"case:{case.id}"],
                                  unit=case.unit, sensitivity=case.sensitivity)

    @staticmethod
    def _part(actor: Actor) -> P:
        """Reviewers act as reviewers; everyone else as a requester."""
        return P.REDACTION_REVIEW if actor.may(P.REDACTION_REVIEW) else P.REDACTION_REQUEST

    @staticmethod
    def _subjects(view: RedactionView) -> list[str]:
        return [f"redaction:{view.id}", f"recording:{view.recording_id}"]

    def _open(self, actor: Actor, redaction_id: str, permission: P | None = None,
              *, alive: bool = True) -> RedactionView:
        """The redaction, once the actor may see it; ``alive``: refused (audited) when
        retention has deleted it with its recording (its blobs are gone)."""
        view = load_one(self.catalog, redaction_id)
        self._require(actor, permission or self._part(actor), view.recording_id,
                      self._subjects(view))
        if alive and view.deleted:
            self._refuse(actor, view, permission or self._part(actor), _gone(view))
        return view

    def _refuse(self, actor: Actor, view: RedactionView, permission: P, why: str,
                error: type[Conflict] | type[NotApproved] = Conflict) -> NoReturn:
        subjects = self._subjects(view)
        event = self.audit.record(actor=actor.audit_name, action="access.refused",
                                  subjects=subjects,
                                  details={"permission": permission.value, "why": why,
                                           "code": error.code, "status": view.status},
                                  at=self.clock())
        raise error(f"refused: {why} (audit event {event.seq})", redaction=view.id,
                    status=view.status, audit_seq=event.seq)

    def _not_deleted(self, actor: Actor, recording: str, subjects: Sequence[str]) -> None:
        """Refused (audited): a request of a recording retention has deleted."""
        with Session(self.catalog.engine) as s:
            if not tombstoned_recordings(s, [recording]):
                return
        why = f"recording {recording} was deleted by retention: nothing is left to redact"
        event = self.audit.record(actor=actor.audit_name, action="access.refused",
                                  subjects=list(subjects),
                                  details={"permission": P.REDACTION_REQUEST.value,
                                           "why": why, "code": Conflict.code},
                                  at=self.clock())
        raise Conflict(f"refused: {why} (audit event {event.seq})", recording=recording,
                       audit_seq=event.seq)

    def _changeable(self, actor: Actor, view: RedactionView, what: str) -> None:
        """Only the requester or a reviewer changes a redaction, and never once approved."""
        if actor.name != view.requested_by and not actor.may(P.REDACTION_REVIEW):
            self.gate.refuse(actor, P.REDACTION_REVIEW, self._subjects(view),
                             f"{actor.name} neither requested redaction {view.id} nor "
                             f"reviews redactions, so may not {what} it")
        if view.status == "approved":
            self._refuse(actor, view, self._part(actor),
                         f"redaction {view.id} is approved; it is never changed after "
                         "approval (request a new one)")

    # ------------------------------------------------------------------ blobs

    def _put(self, data: bytes) -> Digests:
        return self.store.put(io.BytesIO(data), vouched=self._vouched)

    def _vouched(self, b3: str) -> bool:
        return self.catalog.blob(b3) is not None

    def _plan(self, view: RedactionView, step: StepView | None = None) -> Plan:
        """The plan in force (or of ``step``), checked against its recorded BLAKE3."""
        step = step or view.plan_step
        if step is None or step.plan_blake3 is None:
            raise NotFound(f"redaction {view.id} has no plan", redaction=view.id)
        raw = self.store.path_for(step.plan_blake3).read_bytes()
        if blake3.blake3(raw).hexdigest() != step.plan_blake3:
            raise Conflict(f"the stored plan of redaction {view.id} is not the one "
                           "recorded; run `evidock fixity`", blake3=step.plan_blake3)
        return redaction.plan_from_dict(json.loads(raw))

    def _write(self, actor: Actor, step: RedactionStep, blobs: Sequence[Digests],
               subjects: Sequence[str], details: dict[str, Any], *,
               head: Redaction | None = None, based_on: RedactionView | None = None) -> None:
        """Append ``step`` (and its blobs' rows) with its audit event; ``based_on``: the
        view the step was decided on, which must still be the newest (two reviewers at
        once: the second is refused, not recorded beside the first)."""
        now, redaction_id = step.at, step.redaction_id
        with self.catalog.transaction() as s:
            if based_on is not None:
                self.audit.lock(s)  # every step commits with its event: none slips in
                newest = s.exec(select(func.max(RedactionStep.id)).where(
                    RedactionStep.redaction_id == redaction_id)).one()
                if newest != max((st.id for st in based_on.steps), default=None):
                    raise Conflict(f"redaction {redaction_id} changed meanwhile (another "
                                   "step was recorded): look at it again",
                                   redaction=redaction_id)
            for d in {d.blake3: d for d in blobs}.values():
                if s.get(Blob, d.blake3) is None:
                    s.add(Blob(blake3=d.blake3, sha256=d.sha256, size=d.size, stored_at=now))
            if head is not None:
                bind(s, self.audit, head, actor=actor.audit_name,
                     action="redaction.request", subjects=subjects,
                     details={"recording": head.recording_id, "reason": head.reason,
                              "range_us": [head.start_us, head.end_us],
                              "label": redaction.LABEL}, at=now)
            bind(s, self.audit, step, actor=actor.audit_name,
                 action=f"redaction.{step.kind}", subjects=subjects,
                 details={"redaction": redaction_id, **details}, at=now)

    def _add_plan(self, actor: Actor, view_id: str, plan: Plan, subjects: Sequence[str],
                  reason: str, *, head: Redaction | None = None,
                  based_on: RedactionView | None = None) -> None:
        data = plan.to_bytes()
        digests = self._put(data)
        step = RedactionStep(redaction_id=view_id, kind="plan", actor=actor.name,
                             at=self.clock(), plan_blake3=digests.blake3, reason=reason)
        self._write(actor, step, [digests], subjects,
                    {"plan_blake3": digests.blake3, "tracks": len(plan.tracks),
                     "boxes": len(plan.boxes), "audio": len(plan.audio),
                     "style": plan.style, "why": reason}, head=head, based_on=based_on)

    # ------------------------------------------------------------------ reading

    def show(self, actor: Actor, redaction_id: str) -> tuple[RedactionView, Plan | None]:
        view = self._open(actor, redaction_id, alive=False)
        plan = self._plan(view) if view.plan_step is not None and not view.deleted else None
        self.gate.read(actor, "redaction.show", self._subjects(view), {"status": view.status})
        return view, plan

    def list(self, actor: Actor, *, status: str | None = None) -> builtins.list[RedactionView]:
        """The redactions of recordings the actor may see (others do not exist for them)."""
        permission = self._part(actor)
        self.gate.require(actor, permission)
        views = load(self.catalog)
        linked = self.book.sensitivity_of_recordings({v.recording_id for v in views})
        shown = [v for v in views if actor.may(P.RECORDING_VIEW)
                 and actor.sees_every(linked[v.recording_id])
                 and (status is None or v.status == status)]
        self.gate.read(actor, "redaction.list", [f"redaction:{v.id}" for v in shown],
                       {"status": status})
        return shown

    def approved_output(self, redaction_id: str) -> tuple[str, str, str, Plan]:
        """(rendered file, redaction.json, redaction.sig.json) BLAKE3s and the plan of an
        approved redaction, for a 信息公开 export (whose desk checks the actor); raises
        NotApproved unless the latest render was approved."""
        view = load_one(self.catalog, redaction_id)
        if view.deleted:
            raise Conflict(_gone(view), redaction=view.id, tombstone=view.tombstone)
        render = view.render_step
        if view.status != "approved" or render is None or render.output_blake3 is None \
                or render.statement_blake3 is None or render.signature_blake3 is None:
            raise NotApproved(f"redaction {view.id} is {view.status}: only an approved "
                              "redacted derivative may be published", redaction=view.id,
                              status=view.status)
        return (render.output_blake3, render.statement_blake3, render.signature_blake3,
                self._plan(view))

    def approved(self, redaction_id: str) -> ApprovedRedaction:
        """What :mod:`records.redactpackage` packages: the approved render and who
        approved it (NotApproved otherwise; the export desk checks the actor)."""
        from records.redactpackage import ApprovedRedaction

        out_b3, doc_b3, sig_b3, _plan = self.approved_output(redaction_id)
        view = load_one(self.catalog, redaction_id)
        decision = next(s for s in reversed(view.steps) if s.kind == "approve")
        return ApprovedRedaction(id=view.id, recording_id=view.recording_id,
                                 rendition_id=view.rendition_id, start_us=view.start_us,
                                 end_us=view.end_us, output_blake3=out_b3,
                                 statement_blake3=doc_b3, signature_blake3=sig_b3,
                                 approved_by=decision.actor, approved_at=decision.at)

    # ------------------------------------------------------------------ writing

    def request(self, actor: Actor, recording: str, *, start_us: int, end_us: int,
                reason: str, style: str = "blur", faces: bool = True,
                boxes: Sequence[HandBox] = (), audio: Sequence[AudioRange] = (),
                ) -> RedactionView:
        """A new redaction of [start_us, end_us) with hand boxes and audio ranges; with
        ``faces``, a second plan adds the tracks the face detector found."""
        if not reason.strip():
            raise InvalidRequest("a redaction needs a reason (--reason)")
        rid = self.new_id()
        subjects = [f"redaction:{rid}", f"recording:{recording}"]
        self.catalog.rendered(recording)  # NotFound before anything is checked
        self._require(actor, P.REDACTION_REQUEST, recording, subjects)
        self._not_deleted(actor, recording, subjects)
        src = sources_of(self.catalog, self.store, keyring=self.keys.keyring(),
                         recording_id=recording, rendition_id=None, start_us=start_us,
                         end_us=end_us)
        from records import redact_render  # numpy and ffmpeg: only when rendering

        width, height, _fps = redact_render.probe_frame(src.paths)
        plan = Plan(recording, start_us, end_us, width, height, style,
                    boxes=tuple(Fixed(f"box-{i}", b, s, e)
                                for i, (b, s, e) in enumerate(boxes, 1)),
                    audio=tuple(audio))
        head = Redaction(id=rid, recording_id=recording, rendition_id=src.rendition.id,
                         start_us=start_us, end_us=end_us, reason=reason.strip(),
                         requested_by=actor.name, created_at=self.clock())
        found = None
        if faces:  # before anything is stored: a detector failure leaves nothing behind
            from records import facetrack  # onnxruntime: only when detecting

            found = facetrack.detect(plan, src.paths, first_start_us=src.first_start_us)
            found.to_bytes()  # a plan that cannot be stored fails here, not halfway
        self._add_plan(actor, rid, plan, subjects, "requested", head=head)
        if found is not None:
            self._add_plan(actor, rid, found, subjects,
                           f"faces found automatically: {len(found.tracks)} track(s)")
        return load_one(self.catalog, rid)

    def edit(self, actor: Actor, redaction_id: str, *, add_boxes: Sequence[HandBox] = (),
             remove: Sequence[str] = (), audio: Sequence[AudioRange] = (),
             style: str | None = None) -> RedactionView:
        """A new plan: the one in force less ``remove``, plus boxes and audio ranges."""
        view = self._open(actor, redaction_id)
        self._changeable(actor, view, "edit")
        plan = self._plan(view).without(remove)
        # never reuse an id: "box-1" names one region through the whole history
        taken = {i for st in view.steps if st.kind == "plan" for i in self._plan(view, st).ids()}
        fresh = (f"box-{n}" for n in range(1, 10**6) if f"box-{n}" not in taken)
        new = Plan(plan.recording_id, plan.start_us, plan.end_us, plan.width, plan.height,
                   style or plan.style, plan.tracks,
                   plan.boxes + tuple(Fixed(next(fresh), b, s, e) for b, s, e in add_boxes),
                   plan.audio + tuple(audio), plan.detector)
        if new.to_bytes() == plan.to_bytes() and not remove:
            raise InvalidRequest("the edit changes nothing: give --box, --remove, --mute, "
                                 "--tone or --style", redaction=view.id)
        self._add_plan(actor, view.id, new, self._subjects(view),
                       f"edited by {actor.name}" + (f"; removed {', '.join(remove)}"
                                                    if remove else ""), based_on=view)
        return load_one(self.catalog, view.id)

    def render(self, actor: Actor, redaction_id: str) -> RedactionView:
        """Render the plan in force into a new blob with its signed statement."""
        view = self.check_render(actor, redaction_id)
        plan = self._plan(view)
        src = sources_of(self.catalog, self.store, keyring=self.keys.keyring(),
                         recording_id=view.recording_id, rendition_id=view.rendition_id,
                         start_us=view.start_us, end_us=view.end_us)
        made = render_and_sign(self.store, self._vouched, plan=plan, view=view, src=src,
                               keypair=self.keys.load(), now=self.clock())
        step = RedactionStep(redaction_id=view.id, kind="render", actor=actor.name,
                             at=self.clock(), plan_blake3=view.plan_step.plan_blake3
                             if view.plan_step else None,
                             output_blake3=made.output.blake3,
                             statement_blake3=made.statement.blake3,
                             signature_blake3=made.signature.blake3)
        self._write(actor, step, [made.output, made.statement, made.signature],
                    self._subjects(view), {**made.details, "label": redaction.LABEL},
                    based_on=view)
        return load_one(self.catalog, view.id)

    def check_render(self, actor: Actor, redaction_id: str) -> RedactionView:
        """Who may render it, and only an unrendered plan (refusals audited); asked
        before a ``redaction`` job is queued for a worker, and by :meth:`render`."""
        view = self._open(actor, redaction_id)
        self._changeable(actor, view, "render")
        if view.render_step is not None:
            self._refuse(actor, view, self._part(actor), f"the plan in force of redaction "
                         f"{view.id} is rendered already ({view.render_step.output_blake3})")
        return view

    def view(self, actor: Actor, redaction_id: str) -> StoredBytes:
        """The rendered file of the plan in force, to stream; the viewing is a step (and
        an audit event) naming the file before a byte leaves."""
        view = self._open(actor, redaction_id)
        render = view.render_step
        if render is None or render.output_blake3 is None:
            raise Conflict(f"redaction {view.id} is {view.status}: the plan in force is not "
                           "rendered yet (`evidock redaction render`)", redaction=view.id)
        blob = self.catalog.blob(render.output_blake3)
        if blob is None:
            raise NotFound(f"the rendered file of redaction {view.id} is not in the "
                           "catalog", blake3=render.output_blake3)
        step = RedactionStep(redaction_id=view.id, kind="view", actor=actor.name,
                             at=self.clock(), plan_blake3=render.plan_blake3,
                             output_blake3=render.output_blake3)
        self._write(actor, step, [], self._subjects(view),
                    {"output_blake3": render.output_blake3, "size": blob.size})
        return StoredBytes(blake3=blob.blake3, size=blob.size, sha256=blob.sha256,
                           name=f"redaction-{view.id}.mp4",
                           path=self.store.path_for(blob.blake3))

    def approve(self, actor: Actor, redaction_id: str, *, reason: str) -> RedactionView:
        return self._decide(actor, redaction_id, "approve", reason)

    def reject(self, actor: Actor, redaction_id: str, *, reason: str) -> RedactionView:
        return self._decide(actor, redaction_id, "reject", reason)

    def _decide(self, actor: Actor, redaction_id: str, kind: str,
                reason: str) -> RedactionView:
        if not reason.strip():
            raise InvalidRequest(f"a reason is required to {kind} (--reason)")
        view = self._open(actor, redaction_id)  # hidden: refused before anything is said
        authors = {view.requested_by} | {s.actor for s in view.steps if s.kind == "plan"}
        if kind == "approve" and actor.name in authors:
            self.gate.refuse(actor, P.REDACTION_REVIEW, self._subjects(view),
                             f"{actor.name} requested or edited redaction {view.id} and "
                             "may not approve it: a second person must", error=SelfApproval)
        self._require(actor, P.REDACTION_REVIEW, view.recording_id, self._subjects(view))
        render = view.render_step
        self._may_decide(actor, view, kind)
        assert render is not None
        step = RedactionStep(redaction_id=view.id, kind=kind, actor=actor.name,
                             at=self.clock(), plan_blake3=render.plan_blake3,
                             output_blake3=render.output_blake3,
                             statement_blake3=render.statement_blake3,
                             signature_blake3=render.signature_blake3,
                             reason=reason.strip())
        self._write(actor, step, [], self._subjects(view),
                    {"output_blake3": render.output_blake3, "reason": reason.strip()},
                    based_on=view)
        return load_one(self.catalog, view.id)

    def _may_decide(self, actor: Actor, view: RedactionView, kind: str) -> None:
        """Refused (audited): a decided or unrendered redaction; approval by a reviewer
        who has not watched the latest render."""
        render = view.render_step
        if view.status in ("approved", "rejected"):
            self._refuse(actor, view, P.REDACTION_REVIEW, f"redaction {view.id} is "
                         f"{view.status} already; a rejected one needs a new plan first")
        if render is None:
            self._refuse(actor, view, P.REDACTION_REVIEW, f"the plan in force of "
                         f"redaction {view.id} is not rendered: nothing to {kind}")
        watched = any(s.kind == "view" and s.actor == actor.name and s.id > render.id
                      and s.output_blake3 == render.output_blake3 for s in view.steps)
        if kind == "approve" and not watched:
            self.gate.refuse(actor, P.REDACTION_REVIEW, self._subjects(view),
                             f"{actor.name} has not watched the rendered file "
                             f"{render.output_blake3} of redaction {view.id}; "
                             "`evidock redaction view` it first", error=Forbidden)


def _gone(view: RedactionView) -> str:
    return (f"redaction {view.id} was deleted by retention with recording "
            f"{view.recording_id} (tombstone {view.tombstone}): its redacted file, plans "
            "and statements are gone")


__all__ = ["HandBox", "RedactionDesk"]
