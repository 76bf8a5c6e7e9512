"""Scheduler settings (config section ``[scheduler]``): one interval per job, 0 = disabled.

Imported by config/settings.py, so it defines its own frozen base instead of importing
``_Frozen`` from there (that would be an import cycle).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.jobs import JOB_IDS  # each has a field ``<job>_every_s`` below

#: A job runs at most this often (seconds); longer than a day needs no finer control.
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 366 * 86400


def _every(default: int) -> Any:
    return Field(default, ge=0, le=MAX_INTERVAL_S)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchedulerSettings(_Frozen):
    """Periodic jobs of ``evidock scheduler run``. An interval of 0 disables a job."""

    retention_plan_every_s: int = _every(86400)
    remote_retention_every_s: int = _every(86400)
    fixity_every_s: int = _every(3600)
    upload_every_s: int = _every(900)
    overdue_every_s: int = _every(3600)
    audit_head_every_s: int = _every(3600)
    renditions_every_s: int = _every(900)
    #: Send queued manifests and tree heads to the TSAs (config ``[timestamps]``).
    timestamps_every_s: int = _every(600)
    #: Have the audit log witnessed by the center (config ``[center]``; skipped without).
    witness_every_s: int = _every(3600)
    #: At a center: check a sample of the stations' blobs in the object store.
    remote_fixity_every_s: int = _every(86400)
    #: After downtime a missed job runs once (coalesced) if its latest missed time is at
    #: most this old; keep it at least the longest interval so every job catches up.
    misfire_grace_s: int = Field(86400, ge=1, le=MAX_INTERVAL_S)
    #: Blobs re-hashed per fixity run (never-proven, then least recently proven first).
    fixity_sample: int = Field(50, ge=1, le=1_000_000)
    #: Recordings rendered per renditions run (and per dock session's catch-up): those
    #: no attempt was ever made for, e.g. after a kill mid-rendition.
    rendition_limit: int = Field(20, ge=1, le=100_000)
    #: Blobs attempted per upload run.
    upload_limit: int = Field(1000, ge=1, le=1_000_000)
    #: Remote COMPLIANCE retain-until for footage kept indefinitely (permanent marks,
    #: holds, open cases): now + this, renewed once less than half of it is left. Never
    #: shortened: a shorter window lets a later-closed case's copy expire sooner, but
    #: only if the scheduler keeps running.
    remote_indefinite_days: int = Field(36_500, ge=184, le=36_600)
    #: Table of the persistent job store in the catalog database.
    table: str = Field("scheduler_jobs", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @model_validator(mode="after")
    def _intervals(self) -> SchedulerSettings:
        for job in JOB_IDS:
            every = self.interval_s(job)
            if 0 < every < MIN_INTERVAL_S:
                raise ValueError(f"scheduler.{job}_every_s = {every}: 0 (disabled) or at "
                                 f"least {MIN_INTERVAL_S} seconds")
        return self

    def interval_s(self, job: str) -> int:
        """The configured interval of ``job`` (0: disabled)."""
        if job not in JOB_IDS:
            raise KeyError(job)
        return int(getattr(self, f"{job}_every_s"))

    def enabled(self) -> dict[str, int]:
        """Job id → interval for every enabled job, in JOB_IDS order."""
        return {job: self.interval_s(job) for job in JOB_IDS if self.interval_s(job) > 0}


__all__ = ["JOB_IDS", "MIN_INTERVAL_S", "SchedulerSettings"]
