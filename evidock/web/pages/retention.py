"""Holds and retention: legal holds by case, recording or officer (list, place, release
by another person), and the pending deletions with their rule and grace date (schedule,
approve by a second person).

Every step calls the desk the API calls (``routes/holds.py``, ``routes/retention.py``):
:class:`retention.holds.HoldDesk` and :class:`retention.executor.RetentionExecutor`,
with the station's clock as "now". They check the permissions, refuse a self-release or
a self-approval (``E_SELF_APPROVAL``) and audit; a refusal is shown on this page with
its code, so the user sees why nothing happened.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from evidock.service.errors import status_of
from evidock.web.base import PAGE_SIZE, PREFIX, Desk, DeskCall, local_time, redirect, render
from integrity.errors import EvidockError, SelfApproval
from records.permissions import P
from retention.desk_retention import holds_page, pending_page
from retention.holds import SCOPES

router = APIRouter(include_in_schema=False)

#: What a hold's scope and a deletion's rule read as (English msgids; zh tested).
SCOPE_WORDS = {"case": "Case", "recording": "Recording", "officer": "Officer"}
RULE_WORDS = {"base": "Base retention period", "category": "Category retention period",
              "case_closed": "Retention after the case closed"}
#: The message shown after a successful post (``?done=``).
DONE = {"placed": "The hold was placed.", "released": "The hold was released.",
        "scheduled": "Due deletions were scheduled.", "approved": "The deletion was approved."}
HOME = f"{PREFIX}/retention"
#: The planner's reasons for a deletion (retention/policy.py), so they read in the
#: user's language; anything else is shown as the service wrote it.
_END = r"; period ended (?P<end>.+)$"
REASONS = (
    (re.compile(r"^unclassified footage is kept (?P<days>\d+) days from (?P<start>.+?)" + _END),
     "Unclassified footage is kept %(days)s days from %(start)s; the period ended %(end)s."),
    (re.compile(r"^category '(?P<category>.+)' is kept (?P<days>\d+) days from "
                r"(?P<start>.+?)" + _END),
     "Category %(category)s is kept %(days)s days from %(start)s; the period ended %(end)s."),
    (re.compile(r"^linked case (?P<case>.+) \((?P<type>.+)\) closed (?P<closed>.+?), kept "
                r"(?P<days>\d+) days after closing" + _END),
     "Linked case %(case)s (%(type)s) closed %(closed)s and is kept %(days)s days after "
     "closing; the period ended %(end)s."),
)


@router.get("/retention", response_class=HTMLResponse)
def retention(call: Desk, released: str = "", done: str = "", p: int = 0,
              h: int = 0) -> HTMLResponse:
    """``p``: the page of pending deletions, ``h``: of holds."""
    flash = call._(DONE[done]) if done in DONE else ""
    return _page(call, show_all=released == "1", flash=flash, number=p, holds_at=h)


@router.post("/retention/holds", response_class=HTMLResponse)
def place_hold(call: Desk) -> Response:
    scope, target, reason = (form_field(call, k) for k in ("scope", "target", "reason"))
    form = {"scope": scope, "target": target, "reason": reason}
    invalid = ""
    if scope not in SCOPES:
        invalid = call._("Choose what the hold is on: a case, a recording or an officer.")
    elif not target:
        invalid = call._("Enter the case number, recording id or police number to hold.")
    elif not reason:
        invalid = call._("A hold needs a reason.")
    if invalid:  # re-shown with what was typed
        return _page(call, form=form, status=400, invalid=invalid)
    try:
        call.svc.holds().add(call.actor, scope=scope, target=target, reason=reason)
    except EvidockError as exc:
        return _page(call, form=form, problem=refusal(call, exc, "hold"), status=status_of(exc))
    return redirect(f"{HOME}?done=placed")


@router.post("/retention/holds/release", response_class=HTMLResponse)
def release_hold(call: Desk) -> Response:
    hold, reason = form_field(call, "hold"), form_field(call, "reason")
    if not reason:
        return _page(call, status=400, releasing=hold,
                     invalid=call._("Releasing a hold needs a reason."))
    try:
        call.svc.holds().release(call.actor, hold, reason=reason)
    except EvidockError as exc:
        return _page(call, problem=refusal(call, exc, "hold"), status=status_of(exc))
    return redirect(f"{HOME}?done=released")


@router.post("/retention/schedule", response_class=HTMLResponse)
def schedule(call: Desk) -> Response:
    try:
        call.svc.retention().schedule(call.actor, call.svc.clock())
    except EvidockError as exc:
        return _page(call, problem=refusal(call, exc, "deletion"), status=status_of(exc))
    return redirect(f"{HOME}?done=scheduled#pending")


@router.post("/retention/approve", response_class=HTMLResponse)
def approve(call: Desk) -> Response:
    try:
        call.svc.retention().approve(call.actor, form_field(call, "recording"))
    except EvidockError as exc:
        return _page(call, problem=refusal(call, exc, "deletion"), status=status_of(exc))
    return redirect(f"{HOME}?done=approved#pending")


def form_field(call: DeskCall, name: str) -> str:
    value = call.form.get(name)
    return value.strip() if isinstance(value, str) else ""


def refusal(call: DeskCall, exc: EvidockError, what: str) -> dict[str, Any]:
    """A refusal as people read it: the rule in their language, the service's words."""
    if isinstance(exc, SelfApproval):
        rule = (call._("The person who placed a hold cannot release it; another person must.")
                if what == "hold" else
                call._("Whoever scheduled a deletion cannot approve it; another person must."))
    else:
        title = call._(exc.code)
        rule = title if title != exc.code else call._("The request was not carried out")
    return {"code": exc.code, "rule": rule, "message": str(exc),
            "audit_seq": exc.details.get("audit_seq")}


def _page(call: DeskCall, *, show_all: bool = False, flash: str = "", status: int = 200,
          number: int = 0, holds_at: int = 0,
          form: dict[str, str] | None = None, problem: dict[str, Any] | None = None,
          invalid: str = "", releasing: str = "") -> HTMLResponse:
    actor = call.actor
    # HoldDesk.listing's answer a page at a time (retention/desk_retention): it refuses
    # (and audits) anyone without a hold or retention permission, counts what it hides.
    held = holds_page(call.svc.catalog, call.svc.gate(), actor, active_only=not show_all,
                      offset=max(holds_at, 0) * PAGE_SIZE, limit=PAGE_SIZE)
    pending: list[dict[str, Any]] | None = None
    now, total = call.svc.clock(), 0
    if actor.may(P.RETENTION_PLAN):  # one page from the database (retention/desk_retention)
        found = pending_page(call.svc.catalog, call.svc.gate(), actor, now,
                             offset=max(number, 0) * PAGE_SIZE, limit=PAGE_SIZE)
        pending = [_pending(call, v.to_json(now)) for v in found.views]
        total = found.total
    return render(
        call, "retention/retention.html", status=status,
        holds=[_hold(call, h.to_json()) for h in held.views], hidden=held.hidden,
        held=held.shown, holds_at=max(holds_at, 0), show_all=show_all,
        hold_pages=max((held.shown + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        pending=pending, total=total, number=max(number, 0),
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        scopes=[(s, call._(SCOPE_WORDS[s])) for s in SCOPES],
        form=form or {"scope": "recording", "target": "", "reason": ""},
        may_place=actor.may(P.HOLD_PLACE), may_release=actor.may(P.HOLD_RELEASE),
        may_schedule=actor.may(P.RETENTION_PLAN), may_approve=actor.may(P.RETENTION_APPROVE),
        flash=flash, problem=problem, invalid=invalid, releasing=releasing,
        grace_days=call.svc.settings.retention.grace_days,
        second=call.svc.settings.retention.require_second_approval)


def _hold(call: DeskCall, h: dict[str, Any]) -> dict[str, Any]:
    return {**h, "scope_word": call._(SCOPE_WORDS.get(str(h["scope"]), str(h["scope"])))}


def _pending(call: DeskCall, p: dict[str, Any]) -> dict[str, Any]:
    rule = str(p["rule"])
    return {**p, "rule_word": call._(RULE_WORDS[rule]) if rule in RULE_WORDS else rule,
            "reason_words": reason_words(call, str(p["reason"]))}


def reason_words(call: DeskCall, reason: str) -> str:
    for pattern, message in REASONS:
        found = pattern.match(reason)
        if found:
            return call._(message, **{k: _local(call, v) for k, v in found.groupdict().items()})
    return reason


def _local(call: DeskCall, value: str) -> str:
    """The planner writes its dates in UTC; people read the station's clock."""
    try:
        when = datetime.strptime(value, "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC)
    except ValueError:
        return value
    return local_time(when, call.zone, seconds=False)


__all__ = ["DONE", "RULE_WORDS", "SCOPE_WORDS", "form_field", "reason_words", "refusal",
           "router"]
