"""审计: who saw, linked, exported, or tried and was refused what; the signed tree head
and, per event, its inclusion proof.

The same desk as ``/api/v1/audit/*`` (:class:`records.auditdesk.AuditDesk`): the gate
asks for ``audit.view`` (others get the refusal page), events naming a case or
recording the reader may not see are shown as their number only, and every read is
itself an audit event. The list is newest first, one page from the database
(:mod:`records.desk_audit`, keyset on ``seq``).
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from evidock.web.base import PAGE_SIZE, Desk, DeskCall, render
from integrity.errors import InvalidRequest
from records import desk_audit
from records.auditdesk import AuditDesk
from records.permissions import P

router = APIRouter(include_in_schema=False)
FIELDS = ("actor", "action", "subject", "since", "until", "refusals")


def audit_desk(call: DeskCall) -> AuditDesk:
    svc = call.svc
    return AuditDesk(gate=svc.gate(), audit=svc.audit(), store=svc.store, keys=svc.keys,
                     clock=svc.clock)


def _local(text: str, zone: tzinfo, name: str) -> datetime | None:
    """A ``datetime-local`` field (the station's wall clock) as an aware time."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name}: not a date and time", field=name, value=text) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _actor(text: str) -> str | None:
    """People type a user name; the log names users ``user:NAME`` (Actor.audit_name)."""
    if not text:
        return None
    return text if ":" in text else f"user:{text}"


def parse_filter(call: DeskCall, args: dict[str, str], before: int | None,
                 ) -> desk_audit.EventFilter:
    return desk_audit.EventFilter(
        actor=_actor(args["actor"]), action=args["action"] or None,
        subject=args["subject"] or None, since=_local(args["since"], call.zone, "since"),
        until=_local(args["until"], call.zone, "until"), refusals=bool(args["refusals"]),
        before=before, limit=PAGE_SIZE)


def _args(call: DeskCall) -> dict[str, str]:
    params = call.request.query_params
    return {k: params.get(k, "").strip()[:500] for k in FIELDS}


def _before(call: DeskCall) -> int | None:
    text = call.request.query_params.get("before", "")
    return int(text) if text.isdigit() else None


def shown_value(value: Any) -> str:
    """A detail's value as a person reads it (JSON for lists and objects)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def head_facts(call: DeskCall, desk: AuditDesk) -> dict[str, Any]:
    """The current signed head (the API's ``GET /audit/head``) and whether it verifies."""
    head = desk.head(call.actor)
    findings = desk_audit.check_head(head, desk_audit.keyring_of(desk))
    return {**head, "findings": findings, "verified": not findings}


@router.get("/audit", response_class=HTMLResponse)
def audit_page(call: Desk) -> HTMLResponse:
    desk = audit_desk(call)
    # The refusal page before anything else, for whoever lacks audit.view.
    desk.gate.require(call.actor, P.AUDIT_VIEW, subjects=["audit-log"])
    args = _args(call)
    problem = ""
    try:
        flt = parse_filter(call, args, _before(call))
    except InvalidRequest as exc:  # the form again, saying what was not understood
        problem = call._("A filter was not understood: %(what)s", what=str(exc))
        page = desk_audit.DeskEventPage(events=(), older=None, hidden=0)
    else:
        page = desk_audit.events(desk, call.actor, flt)
    head = head_facts(call, desk)
    kept = {k: v for k, v in args.items() if v}
    older = (f"?{urlencode({**kept, 'before': page.older})}" if page.older is not None
             else "")
    return render(call, "audit/events.html", args=args, page=page, head=head,
                  problem=problem, older=older, first=bool(_before(call)),
                  newest=f"?{urlencode(kept)}" if kept else "?", shown=shown_value,
                  subject_link=lambda s: "?" + urlencode({"subject": s}))


@router.get("/audit/{seq}/proof", response_class=HTMLResponse)
def proof_page(seq: int, call: Desk) -> HTMLResponse:
    desk = audit_desk(call)
    # A head covering every event now (signed if the log grew), so the proof below is
    # against a signed head, as `evidock audit head` then `audit proof` would give.
    head = head_facts(call, desk)
    doc = desk.proof(call.actor, seq)  # a missing or hidden event: its error
    keyring = desk_audit.keyring_of(desk)
    findings = desk_audit.check_proof_doc(doc, keyring)
    signed = doc.get("head") is not None
    return render(call, "audit/proof.html", seq=seq, doc=doc, head=head,
                  findings=findings, signed=signed, verified=signed and not findings,
                  event=doc["event"], shown=shown_value)


__all__ = ["router"]
