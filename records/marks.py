"""Taking a permanent mark off a recording takes two people, one of them a legal reviewer.

A permanent mark (``retention.permanent_marks``: 作为证据使用, 妨碍执法, …) keeps footage
for good, so taking one off can let it be deleted. Whoever may mark a recording
(``recording.mark``) may *request* it: a :class:`RecordingMark` row of kind ``unmark``,
which :func:`records.dossier.fold_marks` ignores (the mark stays on). The mark comes off
only when a *different* person (``records.persons``) who holds ``recording.unmark`` (the
legal reviewer's permission) confirms it with the same command: the ``remove`` row names
the confirmer, its audit event the requester. The request, the removal and every refusal
(the requester confirming, someone without ``recording.unmark``) are audit events.
A request stays open until the mark comes off or is put on again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.bindings import bind
from archive.catalog import Catalog
from integrity.errors import Conflict, SelfApproval
from records.dossier import MarkState, believed_marks, fold_marks, load_marks
from records.models import RecordingMark
from records.permissions import Actor, Gate, P
from records.persons import is_person

#: ``RecordingMark.kind`` of a request to take a permanent mark off.
UNMARK = "unmark"


def open_request(rows: Iterable[RecordingMark], value: str) -> RecordingMark | None:
    """The request to take ``value`` off that is still open: the latest one made since
    the mark was last put on or taken off (rows folded in id order)."""
    found: RecordingMark | None = None
    for row in sorted(rows, key=lambda r: r.id or 0):
        if row.value != value:
            continue
        if row.kind == "mark":
            found = None  # put on or taken off: earlier requests are spent
        elif row.kind == UNMARK:
            found = row
    return found


@dataclass(frozen=True)
class Unmarking:
    """Where taking a permanent mark off stands after a call: requested, or removed."""

    state: MarkState
    mark: str
    status: str  # requested | removed
    requested_by: str
    confirmed_by: str | None = None

    @property
    def marks(self) -> frozenset[str]:
        return self.state.marks

    def to_json(self) -> dict[str, object]:
        return {**self.state.to_json(), "removal": {
            "mark": self.mark, "status": self.status, "requested_by": self.requested_by,
            "confirmed_by": self.confirmed_by}}


class PermanentMarks:
    """Requests and confirmations of taking permanent marks off (the desk has checked
    that ``actor`` may mark and see the recording, and that a reason is given)."""

    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.audit, self.clock = catalog, gate, audit, clock

    def _rows(self, s: Session, recording_id: str) -> Sequence[RecordingMark]:
        return believed_marks(s, s.exec(select(RecordingMark)
                                        .where(RecordingMark.recording_id == recording_id)))

    def _pending(self, s: Session, recording_id: str, value: str) -> RecordingMark | None:
        """The open request to take ``value`` off (Conflict: the mark is not on)."""
        rows = self._rows(s, recording_id)
        marks, _ = fold_marks(rows)
        if value not in marks:
            raise Conflict(f"recording {recording_id} does not have mark {value!r}",
                           recording=recording_id, mark=value)
        return open_request(rows, value)

    def remove(self, actor: Actor, recording_id: str, value: str,
               reason: str) -> Unmarking:
        """Request taking ``value`` off, or confirm another person's request."""
        with Session(self.catalog.engine) as s:
            pending = self._pending(s, recording_id, value)
        if pending is None:
            return self._request(actor, recording_id, value, reason)
        subjects = [f"recording:{recording_id}"]
        if pending.actor == actor.name or not is_person(actor.name):
            self.gate.refuse(actor, P.RECORDING_UNMARK, subjects,
                             f"{actor.name} requested taking {value!r} off; another person "
                             "who holds recording.unmark confirms it", error=SelfApproval)
        self.gate.require(actor, P.RECORDING_UNMARK, subjects=subjects)
        return self._confirm(actor, recording_id, value, reason, pending)

    def _request(self, actor: Actor, recording_id: str, value: str,
                 reason: str) -> Unmarking:
        now = self.clock()
        with self.catalog.transaction() as s:
            if self._pending(s, recording_id, value) is not None:
                raise Conflict(f"taking {value!r} off recording {recording_id} was "
                               "requested meanwhile", recording=recording_id, mark=value)
            bind(s, self.audit, RecordingMark(recording_id=recording_id, kind=UNMARK,
                                              value=value, action="request",
                                              actor=actor.name, reason=reason, at=now),
                 actor=actor.audit_name, action="recording.mark.remove_request",
                              subjects=[f"recording:{recording_id}"],
                              details={"mark": value, "reason": reason}, at=now)
        state = load_marks(self.catalog, [recording_id])[recording_id]
        return Unmarking(state, value, "requested", actor.name)

    def _confirm(self, actor: Actor, recording_id: str, value: str, reason: str,
                 pending: RecordingMark) -> Unmarking:
        now = self.clock()
        with self.catalog.transaction() as s:
            current = self._pending(s, recording_id, value)
            if current is None or current.id != pending.id:
                raise Conflict(f"the request to take {value!r} off recording {recording_id} "
                               "changed meanwhile", recording=recording_id, mark=value)
            bind(s, self.audit, RecordingMark(recording_id=recording_id, kind="mark",
                                              value=value, action="remove",
                                              actor=actor.name, reason=reason, at=now),
                 actor=actor.audit_name, action="recording.mark.remove",
                              subjects=[f"recording:{recording_id}"],
                              details={"mark": value, "reason": reason,
                                       "requested_by": pending.actor, "request": pending.id,
                                       "request_reason": pending.reason}, at=now)
        state = load_marks(self.catalog, [recording_id])[recording_id]
        return Unmarking(state, value, "removed", pending.actor, actor.name)


__all__ = ["UNMARK", "PermanentMarks", "Unmarking", "open_request"]
