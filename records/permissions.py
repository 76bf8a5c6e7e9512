"""Who may do what: users, roles, permissions, units and sensitivity — in one place.

The CLI and (later) the HTTP layer both ask :class:`Gate`; neither decides by itself.
Every read it is told about and every refusal is an audit event with the actor, and a
refusal is committed to the log before the error reaches the user.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn, Protocol

from archive.audit.log import AuditLog
from config.access import SENSITIVITIES, AccessSettings, UserEntry
from integrity.errors import Forbidden, UnknownUser


class P(StrEnum):
    """Permissions, one per action."""

    CASE_CREATE = "case.create"
    CASE_VIEW = "case.view"  # list, show, find
    CASE_LINK = "case.link"  # link, unlink, stage times
    CASE_ATTACH = "case.attach"
    CASE_CLOSE = "case.close"  # close, reopen, relabel sensitivity
    CASE_REVIEW = "case.review"  # 法制审核 decisions on a case (records/reviews.py)
    RECORDING_VIEW = "recording.view"
    RECORDING_PLAY = "recording.play"
    RECORDING_MARK = "recording.mark"  # evidence marks, retention category
    # confirm taking a permanent mark off, which another person requested (records/marks.py)
    RECORDING_UNMARK = "recording.unmark"
    EXPORT_REQUEST = "export.request"
    EXPORT_APPROVE = "export.approve"
    EXPORT_RUN = "export.run"  # write the package of an approved request
    COVERAGE_VIEW = "coverage.view"
    # mark a checklist stage (not) applicable to a case, with a reason (records/applicability.py)
    COVERAGE_STAGE = "coverage.stage"
    # the chain-of-custody report of footage one may see (records/custody.py)
    REPORT_CUSTODY = "report.custody"
    STATS_VIEW = "stats.view"  # statistics (统计分析): counts over what one may see
    HOLD_PLACE = "hold.place"
    HOLD_RELEASE = "hold.release"
    RETENTION_PLAN = "retention.plan"
    RETENTION_APPROVE = "retention.approve"
    RETENTION_RUN = "retention.run"
    AUDIT_VIEW = "audit.view"
    # restore a damaged or missing blob from its verified WORM copy (archive/replica/repair.py)
    FIXITY_REPAIR = "fixity.repair"
    INGEST_RUN = "ingest.run"  # offload a camera at the station, renditions, salvage
    UPLOAD_RUN = "upload.run"  # WORM copies: queue status, upload runs, remote retention
    PARTY_VIEW = "party.view"  # parties (当事人) of cases one sees; find cases by party
    PARTY_EDIT = "party.edit"  # add, correct, remove a party (records/parties.py)
    EQUIPMENT_VIEW = "equipment.view"  # cameras, holders, docking; the ratio report
    EQUIPMENT_ASSIGN = "equipment.assign"  # assign a camera to an officer from a date
    # a redacted derivative for publication (技术处理后公开): request, edit, render it
    REDACTION_REQUEST = "redaction.request"
    # watch a redaction and approve or reject it as a second person (records/redactions.py)
    REDACTION_REVIEW = "redaction.review"
    # at a center: hand in a station's signed tree head to be witnessed (records/witnessdesk.py)
    WITNESS_SUBMIT = "witness.submit"
    # at a station: push its tree head to the center and keep the countersignature
    WITNESS_PUSH = "witness.push"


_READ = (P.CASE_VIEW, P.RECORDING_VIEW, P.RECORDING_PLAY)
DEFAULT_ROLES: Mapping[str, frozenset[P]] = {
    "officer": frozenset({*_READ, P.EXPORT_REQUEST, P.INGEST_RUN}),
    # coverage of the cases of their units (a clerk's units bound every case they see)
    "clerk": frozenset({*_READ, P.CASE_CREATE, P.CASE_LINK, P.CASE_ATTACH, P.CASE_CLOSE,
                        P.RECORDING_MARK, P.EXPORT_REQUEST, P.INGEST_RUN, P.COVERAGE_VIEW,
                        P.COVERAGE_STAGE, P.PARTY_VIEW, P.PARTY_EDIT,
                        P.REDACTION_REQUEST}),
    "inspector": frozenset({*_READ, P.EXPORT_REQUEST, P.EXPORT_RUN, P.COVERAGE_VIEW,
                            P.STATS_VIEW, P.REPORT_CUSTODY, P.PARTY_VIEW,
                            P.EQUIPMENT_VIEW, P.REDACTION_REQUEST}),
    "legal_reviewer": frozenset({*_READ, P.EXPORT_APPROVE, P.COVERAGE_VIEW, P.COVERAGE_STAGE,
                                 P.STATS_VIEW,
                                 P.HOLD_PLACE, P.HOLD_RELEASE, P.RECORDING_MARK,
                                 P.RECORDING_UNMARK, P.CASE_REVIEW, P.REPORT_CUSTODY,
                                 P.PARTY_VIEW, P.REDACTION_REVIEW}),
    "supervisor": frozenset({*_READ, P.EXPORT_APPROVE, P.COVERAGE_VIEW, P.STATS_VIEW,
                             P.HOLD_PLACE, P.HOLD_RELEASE, P.RETENTION_PLAN, P.RETENTION_APPROVE,
                             P.AUDIT_VIEW, P.REPORT_CUSTODY, P.PARTY_VIEW,
                             P.EQUIPMENT_VIEW, P.EQUIPMENT_ASSIGN, P.REDACTION_REVIEW}),
    # Runs the system; sees no footage unless also given a reading role.
    "admin": frozenset({P.RETENTION_PLAN, P.RETENTION_RUN, P.AUDIT_VIEW, P.COVERAGE_VIEW,
                        P.STATS_VIEW, P.UPLOAD_RUN, P.FIXITY_REPAIR, P.EQUIPMENT_VIEW,
                        P.EQUIPMENT_ASSIGN, P.WITNESS_PUSH}),
    # Another station's account at a center: it hands in heads and reads the last one
    # witnessed for it, nothing else.
    "station": frozenset({P.WITNESS_SUBMIT}),
}


class Labelled(Protocol):
    """Anything with a unit and a sensitivity label (a case)."""

    @property
    def unit(self) -> str: ...

    @property
    def sensitivity(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    display: str
    roles: tuple[str, ...]
    permissions: frozenset[P]
    units: frozenset[str]  # empty: every unit
    clearances: frozenset[str]

    @property
    def audit_name(self) -> str:
        # User names cannot contain ":" (config pattern), so "system:…" is only ever a
        # built-in actor such as the scheduler.
        return self.name if self.name.startswith("system:") else f"user:{self.name}"

    def may(self, permission: P) -> bool:
        return permission in self.permissions

    def sees(self, *, unit: str | None, sensitivity: str) -> bool:
        """Unit and clearance only (the permission is checked separately)."""
        if unit is not None and self.units and unit not in self.units:
            return False
        return sensitivity == "none" or sensitivity in self.clearances

    def sees_every(self, labelled: Iterable[Labelled]) -> bool:
        """The unit and label of every one of ``labelled`` (a recording's linked cases,
        the records an audit event names): one hidden is enough to hide the whole."""
        return all(self.sees(unit=x.unit, sensitivity=x.sensitivity) for x in labelled)


def _actor(user: UserEntry, roles: Mapping[str, Iterable[str]]) -> Actor:
    perms: set[P] = set()
    for role in user.roles:
        perms.update(P(p) for p in roles.get(role, DEFAULT_ROLES[role]))
    return Actor(name=user.name, display=user.display or user.name, roles=user.roles,
                 permissions=frozenset(perms), units=frozenset(user.units),
                 clearances=frozenset(user.clearances))


def os_account() -> str:
    """The account of the effective uid (not $LOGNAME/$USER, which anyone can set)."""
    return pwd.getpwuid(os.geteuid()).pw_name


def strictest(labels: Iterable[str]) -> str:
    """The most restricted of some sensitivity labels ("none" when there are none)."""
    ranked = [SENSITIVITIES.index(x) for x in labels if x in SENSITIVITIES]
    return SENSITIVITIES[max(ranked)] if ranked else "none"


class Gate:
    """Identifies the user and decides; audits reads and refusals."""

    def __init__(self, *, access: AccessSettings, audit: AuditLog,
                 clock: Callable[[], datetime]) -> None:
        for role, names in access.roles.items():
            for name in names:
                P(name)  # unknown permission names fail here, at start-up
            del role
        self.access, self.audit, self.clock = access, audit, clock

    def identify(self, *, account: str) -> Actor:
        """The evidock user an OS account maps to (``[[access.users]] os_users``).

        The account comes from the kernel (the station socket's peer credentials) or
        from the process's own effective uid (:func:`os_account`), never from anything
        a client can set.
        """
        for user in self.access.users:
            if account in user.os_users:
                return _actor(user, self._roles())
        self.unknown(account)

    def by_name(self, name: str) -> Actor:
        """The evidock user of a verified login (a session the service issued)."""
        for user in self.access.users:
            if user.name == name:
                return _actor(user, self._roles())
        self.unknown(f"user:{name}")

    def _roles(self) -> dict[str, tuple[str, ...]]:
        return {str(k): tuple(v) for k, v in self.access.roles.items()}

    def unknown(self, account: str) -> NoReturn:
        """Record the refusal of someone who is no evidock user, then raise."""
        event = self.audit.record(actor=f"os:{account}", action="access.refused",
                                  subjects=[], details={"code": UnknownUser.code},
                                  at=self.clock())
        raise UnknownUser(f"OS account {account!r} is not an evidock user; an admin adds it "
                          "to [[access.users]] (os_users) in the config", account=account,
                          audit_seq=event.seq)

    def require(self, actor: Actor, permission: P, *, subjects: Sequence[str] = (),
                unit: str | None = None, sensitivity: str = "none") -> None:
        """Pass, or record the refusal and raise :class:`Forbidden`."""
        if not actor.may(permission):
            self.refuse(actor, permission, subjects,
                        f"{actor.name} ({', '.join(actor.roles)}) lacks {permission.value}")
        if not actor.sees(unit=unit, sensitivity=sensitivity):
            self.refuse(actor, permission, subjects,
                        f"{actor.name} may not see this record (unit {unit or '-'}, "
                        f"sensitivity {sensitivity})")

    def refuse(self, actor: Actor, permission: P, subjects: Sequence[str],
               why: str, *, error: type[Forbidden] = Forbidden) -> None:
        event = self.audit.record(actor=actor.audit_name, action="access.refused",
                                  subjects=list(subjects),
                                  details={"permission": permission.value, "why": why,
                                           "code": error.code},
                                  at=self.clock())
        raise error(f"refused: {why} (audit event {event.seq})", actor=actor.name,
                    permission=permission.value, subjects=list(subjects),
                    audit_seq=event.seq)

    def read(self, actor: Actor, action: str, subjects: Sequence[str],
             details: Mapping[str, Any] | None = None) -> None:
        """Record a read (list, view, play, export) of records as one audit event."""
        self.audit.record(actor=actor.audit_name, action=f"read.{action}",
                          subjects=list(subjects), details=dict(details or {}),
                          at=self.clock())


__all__ = ["DEFAULT_ROLES", "P", "Actor", "Gate", "Labelled", "os_account", "strictest"]
