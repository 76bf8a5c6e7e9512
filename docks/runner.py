"""What the dock needs from the rest of evidock, as a Protocol the composition root fills.

``docks`` may not import ``evidock``: ``evidock.cmd_dock`` satisfies this with
``Services.offloader().run`` and ``Services.renderer()``.
"""

from __future__ import annotations

from typing import Protocol

from ingest.outcome import OffloadReport, OffloadRequest
from ingest.progress import Progress
from integrity.codes import Code
from integrity.errors import SourceGone


class Pipeline(Protocol):
    def offload(self, request: OffloadRequest, progress: Progress, *,
                clock_drift_s: float | None = None) -> OffloadReport:
        """Run one verified offload (ingest.offload.Offloader.run) and record the drift.

        The battery read at dock travels in ``request.battery_percent``."""

    def process(self, report: OffloadReport) -> int:
        """Make renditions for the report's new recordings; return how many failed."""


class DockStopping(SourceGone):
    """Raised between files when the daemon stops or the camera was undocked.

    It derives from SourceGone so the Offloader closes the session as ``interrupted``:
    the file in flight was finished and recorded, nothing further is read or wiped, and
    the next dock resumes (already stored files come back as duplicates).
    """

    code = Code.E_DOCK_STOPPING
