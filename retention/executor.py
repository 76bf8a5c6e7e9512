"""The retention executor: plan, schedule, approve and run deletions, never silently.

1. ``plan``: the planner's decisions for every live recording (a dry run, audited read).
2. ``schedule``: each DELETE gets a ``scheduled`` step due after ``grace_days``; a
   scheduled item that the plan now keeps (hold, link, mark since) is ``cancelled``.
3. ``approve``: a second person (never whoever scheduled it) approves each deletion
   (required when ``require_second_approval``).
   Two people, always: a deletion runs only when at least two distinct people stand
   behind it among whoever scheduled, approved and runs it (:meth:`PendingView.people`).
   The scheduler's ``system:scheduler`` is nobody, and one user counts once whatever
   roles they hold, so one supervisor-admin cannot approve what the scheduler scheduled
   and then run it: that item waits (``I_RETENTION_AWAITING_SECOND_PERSON``) and the
   runner's refusal is an ``access.refused`` event.
4. ``run``: for each due (and approved) deletion, the item is planned again from fresh
   catalog data (before hashing and again inside the write transaction) and cancelled
   unless still DELETE; every blob to remove is re-hashed from disk and must match the
   catalog, or the item stops and is reported. A blob is removed only when nothing live
   names it (another recording, a rendition, a derivative, a case attachment). The
   ``Tombstone``, the ``executed`` step and the audit event commit together BEFORE any
   file is unlinked: no deletion is ever unrecorded, and blobs a crash left behind are
   removed by the next run (``swept``).
5. Remote copies: the tombstone also lists the verified remote (WORM) copies of the
   removed blobs (``{"key", "version_id"}``). After the local unlink each is deleted with
   :meth:`~ingest.objectstore.ObjectStore.delete_expired`: only that version, only once
   its COMPLIANCE lock has run out and no legal hold is on. A copy still locked or held
   is kept, and so is every copy while the store is unreachable; each outcome is an
   upload event (``deleted`` or ``delete_deferred``, with the reason) and one
   ``retention.remote_delete`` audit event lists them. Every later (non-dry) run retries
   the copies of tombstoned blobs not yet deleted whose recorded lock has run out,
   recording an outcome again only when it changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.bindings import bind, vouched
from archive.catalog import Blob, Catalog
from archive.catalog.models import Tombstone
from archive.replica.objectstore import ObjectStore
from archive.replica.queue import UploadItem
from archive.store import ContentStore
from archive.tombstones import tombstoned_blobs
from config.retention import RetentionSettings
from integrity.errors import CenterDecides, Conflict, InvalidRequest, NotFound, SelfApproval
from records.permissions import Actor, Gate, P
from records.persons import is_person
from retention.actions import (
    E_RETENTION_UNVERIFIED,
    I_RETENTION_AWAITING_APPROVAL,
    I_RETENTION_AWAITING_SECOND_PERSON,
    I_RETENTION_CANCELLED,
    I_RETENTION_DELETED,
    I_RETENTION_NOT_DUE,
    I_RETENTION_RACED,
    I_RETENTION_WOULD_DELETE,
    VERBS,
    Change,
    Outcome,
    PendingView,
    PlanReport,
    RunReport,
    ScheduleReport,
    fold_actions,
)
from retention.content import recording_content, still_named
from retention.holds import HoldDesk
from retention.items import ItemSource
from retention.models import RetentionAction
from retention.policy import Decision, plan, summarize
from retention.remote_copies import (
    I_REMOTE_DELETED,
    W_REMOTE_DELETE_DEFERRED,
    RemoteCopies,
    RemoteResult,
    copies_of,
    last_remote,
    undeleted,
)

#: A real run refuses a ``now`` further ahead of the clock than this: a future "now"
#: would delete before the period ends.
CLOCK_SKEW = timedelta(minutes=5)


def _nothing(_recording_id: str) -> None:
    return None


class RetentionExecutor:
    """``before_tombstone(recording_id)`` is called inside the deletion transaction
    between the re-plan and the tombstone (tests make another connection write there)."""

    def __init__(self, *, catalog: Catalog, store: ContentStore, audit: AuditLog, gate: Gate,
                 rules: RetentionSettings, clock: Callable[[], datetime],
                 objects: ObjectStore | None = None,
                 before_tombstone: Callable[[str], None] = _nothing,
                 center_decides: bool = False) -> None:
        self.catalog, self.store, self.audit, self.gate = catalog, store, audit, gate
        # [center] retention = "center": approvals come only from the center
        # (retention/center_sync.py records them); every deletion waits for one.
        self.center_decides = center_decides
        self.rules, self.clock, self.objects = rules, clock, objects
        self.before_tombstone = before_tombstone
        self.items = ItemSource(catalog=catalog)
        self.holds = HoldDesk(catalog=catalog, gate=gate, audit=audit, clock=clock)
        self.remote = RemoteCopies(catalog=catalog, audit=audit, objects=objects)

    # ------------------------------------------------------------------ planning

    def decide(self, now: datetime, recording_ids: Collection[str] | None = None, *,
               session: Session | None = None) -> tuple[Decision, ...]:
        """The planner's decisions from the catalog as it is now, read through
        ``session`` when given (no permission check)."""
        if session is None:
            with Session(self.catalog.engine) as own:
                return self.decide(now, recording_ids, session=own)
        items = self.items.items(recording_ids=recording_ids, session=session)
        return plan(items, rules=self.rules, holds=self.holds.active(session), now=now)

    def plan(self, actor: Actor, now: datetime) -> PlanReport:
        """Dry run: what the rules decide for every live recording at ``now``."""
        self.gate.require(actor, P.RETENTION_PLAN, subjects=["retention"])
        decisions = self.decide(now)
        summary = summarize(decisions)
        self.gate.read(actor, "retention.plan",
                       [f"recording:{d.recording_id}" for d in decisions
                        if d.action == "delete"], {"now": now.isoformat(), **summary})
        return PlanReport(now, decisions, summary)

    def schedule(self, actor: Actor, now: datetime) -> ScheduleReport:
        """Schedule every DELETE not yet scheduled; cancel scheduled ones now kept."""
        self.gate.require(actor, P.RETENTION_PLAN, subjects=["retention"])
        decisions = self.decide(now)
        due_at = now + timedelta(days=self.rules.grace_days)
        changes: list[Change] = []
        with self.catalog.transaction() as s:
            self.audit.lock(s)  # no other step lands between reading and writing
            pending = fold_actions(vouched(s, s.exec(select(RetentionAction)).all()))
            for d in decisions:
                current = pending.get(d.recording_id)
                if d.action == "delete" and current is None:
                    change = Change(d.recording_id, "scheduled", d.rule, d.reason, due_at)
                elif d.action == "keep" and current is not None:
                    change = Change(d.recording_id, "cancelled", d.rule, d.reason,
                                    current.due_at)
                else:
                    continue
                self._step(s, actor, change, now)
                changes.append(change)
            still = len(pending) + sum(1 if c.step == "scheduled" else -1 for c in changes)
        return ScheduleReport(now, tuple(changes), still)

    def _step(self, s: Session, actor: Actor, change: Change, now: datetime,
              details: dict[str, Any] | None = None) -> None:
        row = RetentionAction(recording_id=change.recording_id, step=change.step,
                              rule=change.rule, reason=change.reason, due_at=change.due_at,
                              actor=actor.name, at=now)
        bind(s, self.audit, row, actor=actor.audit_name,
             action=f"retention.{VERBS[change.step]}",
                          subjects=[f"recording:{change.recording_id}"],
                          details={"rule": change.rule, "reason": change.reason,
                                   "due_at": change.due_at.isoformat(), **(details or {})},
                          at=now)

    # ------------------------------------------------------------------ pending, approval

    def pending(self, now: datetime, *, actor: Actor | None = None) -> list[PendingView]:
        """Scheduled deletions not cancelled or executed, by due date (an audited read
        when ``actor`` is given)."""
        if actor is not None:
            self.gate.require(actor, P.RETENTION_PLAN, subjects=["retention"])
        with Session(self.catalog.engine) as s:
            views = sorted(fold_actions(vouched(s, s.exec(select(RetentionAction)).all()))
                           .values(),
                           key=lambda v: (v.due_at, v.recording_id))
        if actor is not None:
            self.gate.read(actor, "retention.pending",
                           [f"recording:{v.recording_id}" for v in views],
                           {"now": now.isoformat()})
        return views

    def _open(self, s: Session, recording_id: str) -> PendingView | None:
        rows = s.exec(select(RetentionAction)
                      .where(RetentionAction.recording_id == recording_id)).all()
        # A step no audit event vouches for (written into the catalog) counts for nothing.
        return fold_actions(vouched(s, rows)).get(recording_id)

    def approve(self, actor: Actor, recording_id: str) -> PendingView:
        """Approve a scheduled deletion; the user who scheduled it may not."""
        subjects = [f"recording:{recording_id}"]
        self.gate.require(actor, P.RETENTION_APPROVE, subjects=subjects)
        if self.center_decides:
            self.gate.refuse(actor, P.RETENTION_APPROVE, subjects,
                             "this station's deletions are approved at its center "
                             "([center] retention = \"center\")", error=CenterDecides)
        with Session(self.catalog.engine) as s:
            view = self._open(s, recording_id)
        if view is None:
            raise NotFound(f"no deletion of {recording_id} is scheduled",
                           recording=recording_id)
        if view.scheduled_by == actor.name or not is_person(actor.name):
            self.gate.refuse(actor, P.RETENTION_APPROVE, subjects,
                             f"{actor.name} scheduled this deletion or is no person; "
                             "another user approves it", error=SelfApproval)
        if actor.name in view.approvals:
            raise Conflict(f"{actor.name} already approved deleting {recording_id}",
                           recording=recording_id)
        now = self.clock()
        with self.catalog.transaction() as s:
            self.audit.lock(s)
            current = self._open(s, recording_id)
            if current is None or current.action_id != view.action_id:
                raise Conflict(f"the deletion of {recording_id} changed meanwhile",
                               recording=recording_id)
            self._step(s, actor, Change(recording_id, "approved", view.rule, view.reason,
                                        view.due_at), now,
                       {"scheduled_by": view.scheduled_by, "action": view.action_id})
            after = self._open(s, recording_id)
        assert after is not None
        return after

    # ------------------------------------------------------------------ running

    def run(self, actor: Actor, now: datetime, *, dry_run: bool = False) -> RunReport:
        """Execute the due, approved deletions (``dry_run``: only report what would be)."""
        self.gate.require(actor, P.RETENTION_PLAN if dry_run else P.RETENTION_RUN,
                          subjects=["retention"])
        if not dry_run and now > self.clock() + CLOCK_SKEW:
            raise InvalidRequest(f"refusing to run at {now.isoformat()}: later than the "
                                 "clock; only a dry run may look ahead", now=now)
        outcomes: list[Outcome] = []
        for view in self.pending(now):
            waiting = self._waiting(view, now, actor)
            outcomes.append(waiting or self._one(actor, view, now, dry_run=dry_run))
        alone = [o.recording_id for o in outcomes
                 if o.code == I_RETENTION_AWAITING_SECOND_PERSON]
        if alone and not dry_run:
            self._refuse_alone(actor, alone, now)
        handled = {b for o in outcomes if o.status == "deleted" for b in o.removed}
        swept = () if dry_run else self._sweep(actor, now, handled=handled)
        report = RunReport(now, dry_run, tuple(outcomes), swept)
        self._record_run(actor, report)
        return report

    def _waiting(self, view: PendingView, now: datetime, runner: Actor) -> Outcome | None:
        if not view.due(now):
            return Outcome(view.recording_id, "waiting", I_RETENTION_NOT_DUE,
                           f"grace period ends {view.due_at.isoformat()}")
        if self.center_decides and not view.center_approvals:
            # Approvals given here before the center decided count for nothing now.
            return Outcome(view.recording_id, "waiting", I_RETENTION_AWAITING_APPROVAL,
                           "the center has not approved this deletion")
        if self.rules.require_second_approval and not view.approved:
            return Outcome(view.recording_id, "waiting", I_RETENTION_AWAITING_APPROVAL,
                           "a second person has not approved this deletion")
        return _alone(view, runner)

    def _refuse_alone(self, actor: Actor, recording_ids: Sequence[str],
                      now: datetime) -> None:
        """The runner's refusal for the deletions only they stand behind (audited, not
        raised: the run goes on with the others)."""
        why = (f"{actor.name} would be the only person behind these deletions (a system "
               "actor is nobody; one user counts once); another person approves or runs them")
        self.audit.record(actor=actor.audit_name, action="access.refused",
                          subjects=[f"recording:{r}" for r in recording_ids],
                          details={"permission": P.RETENTION_RUN.value, "why": why,
                                   "code": SelfApproval.code}, at=now)

    def _replan(self, recording_id: str, now: datetime, s: Session | None = None,
                ) -> Decision | None:
        found = self.decide(now, [recording_id], session=s)
        return found[0] if found else None

    def _one(self, actor: Actor, view: PendingView, now: datetime, *, dry_run: bool,
             ) -> Outcome:
        decision = self._replan(view.recording_id, now)
        if decision is None or decision.action != "delete":
            return self._cancel(actor, view, decision, now, dry_run=dry_run)
        removable, kept = self._split(view.recording_id)
        problems = self._verify(removable)
        if problems:
            return self._blocked(actor, view, problems, now, dry_run=dry_run)
        if dry_run:
            return Outcome(view.recording_id, "would_delete", I_RETENTION_WOULD_DELETE,
                           decision.reason, tuple(removable), tuple(kept))
        return self._execute(actor, view, removable, now)

    def _cancel(self, actor: Actor, view: PendingView, decision: Decision | None,
                now: datetime, *, dry_run: bool, s: Session | None = None) -> Outcome:
        rule = decision.rule if decision else "gone"
        reason = decision.reason if decision else "the recording is no longer live"
        outcome = Outcome(view.recording_id, "cancelled", I_RETENTION_CANCELLED,
                          f"no longer due for deletion: {reason}", details={"rule": rule})
        if dry_run:
            return outcome
        change = Change(view.recording_id, "cancelled", rule, reason, view.due_at)
        if s is not None:
            self._step(s, actor, change, now, {"at_run": True})
            return outcome
        with self.catalog.transaction() as tx:
            self.audit.lock(tx)
            current = self._open(tx, view.recording_id)
            if current is None or current.action_id != view.action_id:
                return _raced(view)
            self._step(tx, actor, change, now, {"at_run": True})
        return outcome

    # ------------------------------------------------------------------ content

    def _split(self, recording_id: str, s: Session | None = None,
               ) -> tuple[list[str], list[str]]:
        """The recording's blobs: those only it names (removable), and those kept."""
        if s is None:
            with Session(self.catalog.engine) as fresh:
                return self._split(recording_id, fresh)
        blobs = [b for b, _ in recording_content(s, recording_id)]
        shared = still_named(s, blobs, exclude=recording_id)
        return [b for b in blobs if b not in shared], [b for b in blobs if b in shared]

    def _in_use(self, b3: str) -> bool:
        with Session(self.catalog.engine) as s:
            return bool(still_named(s, [b3]))

    def _verify(self, blobs: Sequence[str]) -> list[dict[str, Any]]:
        """Every blob re-hashed from disk against its catalog row; the problems found."""
        problems: list[dict[str, Any]] = []
        for b3 in blobs:
            row = self.catalog.blob(b3)
            try:
                got = self.store.reread(b3)
            except FileNotFoundError:
                problems.append({"blake3": b3, "problem": "missing"})
                continue
            except OSError as exc:
                problems.append({"blake3": b3, "problem": "unreadable", "error": exc.strerror})
                continue
            if row is None or (got.blake3, got.sha256, got.size) != (b3, row.sha256, row.size):
                problems.append({"blake3": b3, "problem": "altered", "actual_blake3": got.blake3,
                                 "actual_sha256": got.sha256, "actual_size": got.size,
                                 "expected_size": row.size if row else None})
        return problems

    def _blocked(self, actor: Actor, view: PendingView, problems: list[dict[str, Any]],
                 now: datetime, *, dry_run: bool) -> Outcome:
        what = ", ".join(f"{p['blake3'][:16]} {p['problem']}" for p in problems)
        outcome = Outcome(view.recording_id, "blocked", E_RETENTION_UNVERIFIED,
                          f"not deleted: stored content does not match the catalog ({what})",
                          details={"problems": problems})
        if not dry_run:
            self.audit.record(actor=actor.audit_name, action="retention.blocked",
                              subjects=[f"recording:{view.recording_id}"],
                              details={"code": E_RETENTION_UNVERIFIED, "problems": problems},
                              at=now)
        return outcome

    # ------------------------------------------------------------------ executing

    def _execute(self, actor: Actor, view: PendingView, verified: list[str],
                 now: datetime) -> Outcome:
        rid = view.recording_id
        with self.catalog.transaction() as s:
            # The lock every audited write holds when it commits (a hold, link, mark or
            # case event commits with its audit event): taken before reading, no such
            # write commits between this re-plan and the tombstone (PostgreSQL too).
            self.audit.lock(s)
            current = self._open(s, rid)
            if current is None or current.action_id != view.action_id:
                return _raced(view)
            alone = _alone(current, actor)  # again, as the rows are now
            if alone is not None:
                return alone
            decision = self._replan(rid, now, s)  # again, in the deletion transaction
            if decision is None or decision.action != "delete":
                return self._cancel(actor, view, decision, now, dry_run=False, s=s)
            removable, kept = self._split(rid, s)
            removable = [b for b in removable if b in verified]
            copies = copies_of(s, removable)
            self.before_tombstone(rid)
            tomb = self._tombstone(s, actor, current, decision, removable=removable,
                                   copies=copies, now=now)
            self._step(s, actor, Change(rid, "executed", decision.rule, decision.reason,
                                        view.due_at), now,
                       {"tombstone": tomb.id, "blobs": removable, "kept": kept,
                        "approvers": tomb.approvers, "remote": tomb.remote,
                        "people": list(current.people(actor.name))})
        removed = [b for b in removable if self.store.remove(b, in_use=self._in_use)]
        remote = self.remote.delete(actor, copies, now, subjects=[f"recording:{rid}"])
        return Outcome(rid, "deleted", I_RETENTION_DELETED, decision.reason,
                       tuple(removable), tuple(kept),
                       {"rule": decision.rule, "already_absent": sorted(
                           set(removable) - set(removed)), "remote": remote})

    def _tombstone(self, s: Session, actor: Actor, view: PendingView, decision: Decision, *,
                   removable: list[str], copies: Sequence[UploadItem],
                   now: datetime) -> Tombstone:
        digests: dict[str, Any] = {}
        for b3, role in recording_content(s, view.recording_id):
            row = s.get(Blob, b3)
            digests[b3] = {"role": role, "sha256": row.sha256 if row else None,
                           "size": row.size if row else None, "removed": b3 in removable}
        remote = [{"key": c.key, "version_id": c.version_id} for c in copies]
        tomb = Tombstone(recording_id=view.recording_id, blobs=removable,
                         remote=remote, digests=digests,
                         rule=decision.rule, reason=decision.reason,
                         approvers=list(view.approvals), actor=actor.name, at=now)
        s.add(tomb)
        s.flush()  # its id goes into the audit event
        return tomb

    def _sweep(self, actor: Actor, now: datetime, *,
               handled: Collection[str] = ()) -> tuple[str, ...]:
        """Remove tombstoned blobs still present (a run killed after its commit), then
        retry deleting the remote copies of tombstoned blobs not yet deleted whose
        recorded lock has run out (except those of ``handled``: asked in this run)."""
        with Session(self.catalog.engine) as s:
            named = tombstoned_blobs(s)
            gone = named - still_named(s, named)
            left = sorted(b for b in gone if self.store.has(b))
            copies = undeleted(s, gone - set(handled), now) if self.objects else []
            known = last_remote(s, [c.blake3 for c in copies])
        swept = tuple(b for b in left if self.store.remove(b, in_use=self._in_use))
        if swept:
            self.audit.record(actor=actor.audit_name, action="retention.sweep",
                              subjects=[f"blob:{b}" for b in swept],
                              details={"removed": len(swept)}, at=now)
        self.remote.delete(actor, copies, now, subjects=[], known=known)
        return swept

    def _record_run(self, actor: Actor, report: RunReport) -> None:
        details = {"now": report.now.isoformat(), "dry_run": report.dry_run,
                   **report.to_dict()["counts"], "swept": len(report.swept)}
        subjects = [f"recording:{o.recording_id}" for o in report.outcomes
                    if o.status != "waiting"]
        if report.dry_run:
            self.gate.read(actor, "retention.run", subjects, details)
        else:
            self.audit.record(actor=actor.audit_name, action="retention.run",
                              subjects=subjects, details=details, at=report.now)


def _alone(view: PendingView, runner: Actor) -> Outcome | None:
    """Waiting, unless two distinct people stand behind the deletion with its runner."""
    who = view.people(runner.name)
    if len(who) >= 2:
        return None
    return Outcome(view.recording_id, "waiting", I_RETENTION_AWAITING_SECOND_PERSON,
                   f"only {' and '.join(who) or 'nobody'} would stand behind this deletion "
                   f"(scheduled by {view.scheduled_by}); a second person approves or runs it",
                   details={"people": list(who)})


def _raced(view: PendingView) -> Outcome:
    return Outcome(view.recording_id, "raced", I_RETENTION_RACED,
                   "another run or approval changed this deletion meanwhile; left as is")


__all__ = ["CLOCK_SKEW", "I_REMOTE_DELETED", "W_REMOTE_DELETE_DEFERRED", "RemoteResult",
           "RetentionExecutor"]
