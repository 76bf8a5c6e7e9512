"""The scheduler's job ids: plain data, so the CLI can name them without pydantic."""

from __future__ import annotations

#: The job ids, in the order `evidock scheduler jobs` lists them. Each has a field
#: ``<job>_every_s`` in :class:`config.scheduler.SchedulerSettings`.
JOB_IDS: tuple[str, ...] = ("retention_plan", "remote_retention", "fixity", "upload",
                            "overdue", "audit_head", "renditions", "timestamps", "witness",
                            "remote_fixity")

__all__ = ["JOB_IDS"]
