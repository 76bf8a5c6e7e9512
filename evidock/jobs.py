"""The scheduler's jobs: module-level functions the persistent job store names by text.

``evidock.jobs:run_fixity`` and its siblings take the config file path (or None) as their
only argument, build :class:`~evidock.wiring.Services` from it, run one job through
:func:`execute` and close everything again: a job carries no state between runs, so it
survives being pickled into the job store and a restart of the daemon.

:func:`execute` is the testable core: it takes wired services (with an injected clock),
runs the job body, and appends one audit event ``scheduler.<job>`` by
``system:scheduler`` with the outcome (``ok``, ``findings``, ``skipped``, ``failed``)
and the job's counts. A job never raises an evidock error to the scheduler: it is
recorded as ``failed`` with its code. Anything else is recorded and re-raised (a bug).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from archive.fixity import Fixity, FixityPlan
from archive.replica.queue import ItemOutcome
from archive.timestamps import enqueue_missing
from config import load_settings
from config.access import SENSITIVITIES
from config.scheduler import JOB_IDS
from docks.overdue import overdue
from evidock.wiring import Services
from integrity.codes import Code
from integrity.errors import EvidockError
from records.permissions import Actor, P
from retention.remote import (
    RemoteRetention,
    blobs_by_recording,
    holds_by_recording,
    wanted_locks,
)

ACTOR = "system:scheduler"
#: The scheduler acting as the system: it may plan (schedule deletions), nothing else.
#: Approving and running deletions stays with people (retention.approve / retention.run),
#: and its scheduling is nobody's consent: two other, distinct people must approve and
#: run what it scheduled (records.persons; retention.executor).
SYSTEM_ACTOR = Actor(name=ACTOR, display="scheduler", roles=("system",),
                     permissions=frozenset({P.RETENTION_PLAN}), units=frozenset(),
                     clearances=frozenset(SENSITIVITIES))
_MAX_IDS = 100  # ids listed in one audit event


@dataclass(frozen=True)
class JobContext:
    svc: Services
    now: datetime
    actor: str = ACTOR
    full: bool = False  # remote_retention: ask the store about every copy


@dataclass(frozen=True)
class JobResult:
    job: str
    outcome: str  # ok | findings | skipped | failed
    counts: dict[str, Any] = field(default_factory=dict)
    code: str | None = None
    message: str = ""
    exit_code: int = 0
    audit_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "outcome": self.outcome, "code": self.code,
                "message": self.message, "exit_code": self.exit_code,
                "audit_seq": self.audit_seq, **self.counts}


Outcome = tuple[str, dict[str, Any]]
Body = Callable[[JobContext], Outcome]


# ------------------------------------------------------------------ job bodies


def retention_plan(ctx: JobContext) -> Outcome:
    """Schedule the deletions that are due (grace period starts); never approves."""
    report = ctx.svc.retention().schedule(SYSTEM_ACTOR, ctx.now)
    counts = report.to_dict()
    return "ok", {k: v for k, v in counts.items() if type(v) is int}


def fixity(ctx: JobContext) -> Outcome:
    """Re-hash a sample of blobs, never-proven then least recently proven first."""
    svc = ctx.svc
    plan = FixityPlan("sample", random.SystemRandom().randrange(2**32),
                      sample=svc.settings.scheduler.fixity_sample)
    report = Fixity(catalog=svc.catalog, store=svc.store, audit=svc.audit(),
                    clock=svc.clock).run(plan, actor=ctx.actor)
    counts = {"run_id": report.run_id, "seed": plan.seed, "checked": report.checked,
              "bytes": report.bytes_read, "findings": len(report.findings),
              "codes": sorted({f.code for f in report.findings})}
    return ("findings" if report.findings else "ok"), counts


def upload_pass(svc: Services, *, limit: int, retry_failed: bool = False,
                ) -> tuple[int, list[ItemOutcome]]:
    """Queue every blob not yet queued, then upload what is due in batches, up to
    ``limit`` items; stops early when a batch verifies nothing (idle or store down)."""
    queue, up = svc.upload_queue(), svc.settings.upload
    now = svc.clock()
    if retry_failed:
        queue.requeue_failed(now=now)
    added = queue.enqueue_missing(now=now, retain_until=now + timedelta(days=up.retention_days))
    done: list[ItemOutcome] = []
    while len(done) < limit:
        report = queue.run_due(now=svc.clock(), limit=min(up.batch, limit - len(done)))
        done.extend(report.items)
        if report.count("verified") == 0:
            break
    return added, done


def upload(ctx: JobContext) -> Outcome:
    """Queue new blobs and upload/retry what is due (only with [upload] enabled)."""
    svc = ctx.svc
    up = svc.settings.upload
    if not up.enabled:
        return "skipped", {"reason": "upload.enabled is false"}
    if svc.job_queue is not None:  # [jobs] queue: one `upload` job per due blob
        from evidock.jobqueue.uploads import queue_uploads

        return "ok", queue_uploads(svc, limit=svc.settings.scheduler.upload_limit)
    added, done = upload_pass(svc, limit=svc.settings.scheduler.upload_limit)
    states = {s: sum(1 for i in done if i.state == s) for s in ("verified", "queued", "failed")}
    counts: dict[str, Any] = {**states, "enqueued": added, "attempted": len(done),
                              "codes": sorted({i.code for i in done if i.state != "verified"})}
    return ("ok" if states["verified"] == len(done) else "findings"), counts


def overdue_report(ctx: JobContext) -> Outcome:
    """Cameras and officers not offloaded within dock.overdue_window_h."""
    window = timedelta(hours=ctx.svc.settings.dock.overdue_window_h)
    rows = overdue(ctx.svc.catalog, now=ctx.now, window=window)
    counts: dict[str, Any] = {"window_s": int(window.total_seconds()), "overdue": len(rows)}
    for kind in ("camera", "officer"):
        counts[f"{kind}s"] = [r.id for r in rows if r.kind == kind][:_MAX_IDS]
    return ("findings" if rows else "ok"), counts


def audit_head(ctx: JobContext) -> Outcome:
    """Sign a tree head over the audit log if it grew since the last one."""
    head = ctx.svc.audit().checkpoint(at=ctx.now)
    if head is None:
        return "ok", {"signed": False}
    return "ok", {"signed": True, "size": head.size, "root": head.root}


def remote_retention(ctx: JobContext) -> Outcome:
    """Extend remote COMPLIANCE locks to the plan's dates; legal holds on and off."""
    svc = ctx.svc
    if not svc.settings.upload.enabled:
        return "skipped", {"reason": "upload.enabled is false"}
    decisions = svc.retention().plan(SYSTEM_ACTOR, ctx.now).decisions
    days = svc.settings.scheduler.remote_indefinite_days
    wanted = wanted_locks(decisions, holds_by_recording(svc.catalog),
                          blobs_by_recording(svc.catalog), ctx.now,
                          indefinite=timedelta(days=days))
    sync = RemoteRetention(catalog=svc.catalog, objects=svc.upload_queue().objects,
                           audit=svc.audit(), actor=ctx.actor)
    report = sync.sync(wanted, now=ctx.now, full=ctx.full)
    counts = report.to_dict()
    counts["findings"] = counts["findings"][:_MAX_IDS]
    return ("ok" if report.ok and not report.findings else "findings"), counts


def renditions(ctx: JobContext) -> Outcome:
    """Make the renditions never attempted (a kill mid-rendition leaves none behind), or
    queue them for the workers when a job queue is configured."""
    svc = ctx.svc
    rows = svc.renditions().catch_up(first=set(),
                                     limit=svc.settings.scheduler.rendition_limit)
    counts: dict[str, Any] = {s: sum(1 for r in rows if r.status == s)
                              for s in ("ok", "none", "failed", "queued")}
    counts["attempted"] = len(rows)
    counts["codes"] = sorted({r.code for r in rows if r.status == "failed"})
    counts["recordings"] = [r.recording_id for r in rows][:_MAX_IDS]
    return ("findings" if counts["failed"] else "ok"), counts


def timestamps(ctx: JobContext) -> Outcome:
    """Ask the TSAs for tokens for queued manifests and tree heads; failures stay queued."""
    svc = ctx.svc
    stamper = svc.stamper()  # E_CONFIG before anything if a root is unreadable
    added = enqueue_missing(svc.catalog, now=ctx.now)
    if not svc.settings.timestamps.tsa_urls:
        return "skipped", {"reason": "timestamps.tsa_urls is empty", "enqueued": added,
                           "pending": stamper.pending()}
    report = stamper.run()
    stamped = [i for i in report.items if i.state == "stamped"]
    counts: dict[str, Any] = {
        "enqueued": added, "attempted": len(report.items), "stamped": len(stamped),
        "queued": report.count("queued"), "pending": report.pending,
        "codes": report.codes(),
        "stamps": [i.to_dict() for i in stamped][:_MAX_IDS]}
    return ("findings" if report.count("queued") else "ok"), counts


#: The scheduler pushing the station's head to its center: that, and nothing else.
WITNESS_ACTOR = Actor(name=ACTOR, display="scheduler", roles=("system",),
                      permissions=frozenset({P.WITNESS_PUSH}), units=frozenset(),
                      clearances=frozenset())


def witness(ctx: JobContext) -> Outcome:
    """Send the center the audit events it lacks, have the log's head witnessed and keep
    the countersignature ("findings": events wait for blobs not uploaded yet)."""
    if not ctx.svc.settings.center.url:
        return "skipped", {"reason": "center.url is empty"}
    events = ctx.svc.feed().push(WITNESS_ACTOR)
    out = ctx.svc.witness().push(WITNESS_ACTOR)
    head = out["cosigned"]["head"]
    pulled = _pull_retention(ctx)
    return ("findings" if events["waiting"] or pulled.get("code") else "ok"), {
        "size": head["size"], "root": head["root"], "witnessed_size": out["witnessed_size"],
        "events_kept": events["kept"], "events_next": events["next_seq"],
        "waiting": events["waiting"], "retention": pulled}


def _pull_retention(ctx: JobContext) -> dict[str, Any]:
    """The center's holds and decisions carried out here (retention/center_sync.py): a
    hold placed while this station was down arrives with the next hourly push."""
    try:
        got = ctx.svc.center_sync().pull(WITNESS_ACTOR)
    except EvidockError as exc:  # the push was done; the pull waits for the next run
        return {"code": exc.code, "message": exc.message}
    return {"reported": got["reported"],
            **{k: [x["status"] for x in got[k]] for k in ("holds", "decisions")}}


#: The scheduler sweeping the object store from a center: that, and nothing else.
SWEEP_ACTOR = Actor(name=ACTOR, display="scheduler", roles=("system",),
                    permissions=frozenset({P.AUDIT_VIEW}), units=frozenset(),
                    clearances=frozenset())


def remote_fixity(ctx: JobContext) -> Outcome:
    """At a center: a sample of the stations' blobs checked in the object store."""
    st = ctx.svc.settings
    if not st.witness.stations or not st.upload.enabled:
        return "skipped", {"reason": "not a center with object storage ([[witness."
                                     "stations]], [upload])"}
    if ctx.svc.job_queue is not None:  # one job per station, for any worker to take
        jobs = [ctx.svc.job_queue.defer("remote_fixity", {
            "station_id": s.id, "sample": st.scheduler.fixity_sample}).job_id
            for s in st.witness.stations]
        return "ok", {"queued": [j for j in jobs if j is not None]}
    out = ctx.svc.remote_fixity().sweep(SWEEP_ACTOR, sample=st.scheduler.fixity_sample)
    found = out["findings"]
    return ("findings" if found else "ok"), {
        "checked": out["checked"], "findings": len(found),
        "codes": sorted({f["code"] for f in found}),
        "subjects": [f["subject"] for f in found][:_MAX_IDS]}


BODIES: Mapping[str, Body] = {
    "retention_plan": retention_plan,
    "remote_retention": remote_retention,
    "fixity": fixity,
    "upload": upload,
    "overdue": overdue_report,
    "audit_head": audit_head,
    "renditions": renditions,
    "timestamps": timestamps,
    "witness": witness,
    "remote_fixity": remote_fixity,
}
assert tuple(BODIES) == JOB_IDS, "config.scheduler.JOB_IDS and BODIES must agree"


# ------------------------------------------------------------------ running


def execute(job: str, svc: Services, *, actor: str = ACTOR, full: bool = False) -> JobResult:
    """Run one job now and audit it (``scheduler.<job>``)."""
    body = BODIES[job]
    ctx = JobContext(svc=svc, now=svc.clock(), actor=actor, full=full)
    try:
        outcome, counts = body(ctx)
        result = JobResult(job, outcome, counts, exit_code=1 if outcome == "findings" else 0)
    except EvidockError as exc:
        result = JobResult(job, "failed", code=exc.code, message=exc.message,
                           exit_code=exc.exit_code)
    except Exception as exc:
        _audit(svc, JobResult(job, "failed", code=Code.E_INTERNAL,
                              message=f"{type(exc).__name__}: {exc}"[:500]), actor)
        raise
    return _audit(svc, result, actor)


def _audit(svc: Services, result: JobResult, actor: str) -> JobResult:
    details = {"outcome": result.outcome, **result.counts}
    if result.code is not None:
        details |= {"code": result.code, "message": result.message}
    event = svc.audit().record(actor=actor, action=f"scheduler.{result.job}", subjects=[],
                               details=details, at=svc.clock())
    return JobResult(result.job, result.outcome, result.counts, result.code, result.message,
                     result.exit_code, event.seq)


def run_job(job: str, config: str | None = None) -> dict[str, Any]:
    """Build services from config, run ``job``, close. What the job store calls."""
    svc = Services.from_config(load_settings(config_file=Path(config) if config else None))
    try:
        return execute(job, svc).to_dict()
    finally:
        svc.close()


def run_retention_plan(config: str | None = None) -> dict[str, Any]:
    return run_job("retention_plan", config)


def run_remote_retention(config: str | None = None) -> dict[str, Any]:
    return run_job("remote_retention", config)


def run_fixity(config: str | None = None) -> dict[str, Any]:
    return run_job("fixity", config)


def run_upload(config: str | None = None) -> dict[str, Any]:
    return run_job("upload", config)


def run_overdue(config: str | None = None) -> dict[str, Any]:
    return run_job("overdue", config)


def run_audit_head(config: str | None = None) -> dict[str, Any]:
    return run_job("audit_head", config)


def run_renditions(config: str | None = None) -> dict[str, Any]:
    return run_job("renditions", config)


def run_timestamps(config: str | None = None) -> dict[str, Any]:
    return run_job("timestamps", config)


#: Job id → textual reference stored in the job store.
JOB_REFS: Mapping[str, str] = {job: f"evidock.jobs:run_{job}" for job in JOB_IDS}


__all__ = ["ACTOR", "BODIES", "JOB_REFS", "SYSTEM_ACTOR", "JobContext", "JobResult",
           "execute", "run_job"]


def run_witness(config: str | None = None) -> dict[str, Any]:
    return run_job("witness", config)


def run_remote_fixity(config: str | None = None) -> dict[str, Any]:
    return run_job("remote_fixity", config)
