"""Job queue settings (config section ``[jobs]``): where renditions (and later other
jobs) run.

``queue = "inline"`` (the default, and the only choice on the embedded SQLite catalog):
renditions run in the process that asks for them, as they always did. ``"postgres"``:
they become jobs in the catalog's own PostgreSQL database, run by any number of
``evidock worker`` processes on any number of machines.

Imported by config/settings.py, so it defines its own frozen base (no import cycle).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobQueueSettings(_Frozen):
    """How jobs are run, and how a dead worker's job is noticed and handed on."""

    queue: Literal["inline", "postgres"] = "inline"
    #: Jobs one worker runs at once (two cores: one ffmpeg at a time by default).
    concurrency: int = Field(1, ge=1, le=64)
    #: A live worker writes its heartbeat this often.
    heartbeat_s: float = Field(10, gt=0, le=3600)
    #: A worker whose heartbeat is older than this is dead: its running jobs are handed
    #: back to the queue (another worker takes them). At least twice the heartbeat, so a
    #: busy database does not make a live worker look dead.
    stalled_after_s: float = Field(60, gt=0, le=86400)
    #: How often each worker looks for such jobs (one worker at a time does it).
    stalled_check_s: float = Field(15, gt=0, le=3600)
    #: A worker is woken by LISTEN/NOTIFY when a job is queued; this is the fallback poll.
    poll_s: float = Field(5, gt=0, le=3600)
    #: Times a job that raised (a full store, a database outage) is tried again; a job
    #: whose worker died is handed on regardless of this.
    retries: int = Field(3, ge=0, le=100)
    #: Seconds before a failed job is tried again.
    retry_wait_s: int = Field(60, ge=0, le=86400)

    @model_validator(mode="after")
    def _stalled_after_heartbeats(self) -> JobQueueSettings:
        if self.stalled_after_s < 2 * self.heartbeat_s:
            raise ValueError(f"jobs.stalled_after_s = {self.stalled_after_s}: at least twice "
                             f"jobs.heartbeat_s ({self.heartbeat_s})")
        return self

    @property
    def queued(self) -> bool:
        """True when jobs go to the PostgreSQL queue instead of running in-process."""
        return self.queue == "postgres"


__all__ = ["JobQueueSettings"]
