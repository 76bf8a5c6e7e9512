"""How the suite is shared between xdist workers (scripts/test.sh: ``--dist loadfile``).

A worker takes a test module whole: its module-scoped set-up (a station, a center and
its stations) is built once, and its tests run in the order they are written. Plain
``--dist load`` hands out chunks of tests, so a module often ran on both workers and
built its set-up twice. Two additions to loadfile:

* modules that share a session-scoped world go to one worker (:data:`SAME_WORKER`), so
  the world is built once, not once per worker;
* the longest modules run first (:data:`LONGEST_FIRST`), so that at the end no worker
  is left alone with one of them while the other has nothing to do.
"""

from __future__ import annotations

from typing import Any

import pytest

#: module -> the module whose worker it runs on (the session fixture they share).
SAME_WORKER = {
    "tests/replica/test_center_desk_exports.py": "tests/replica/test_center_desk.py",
    "tests/service/test_gm_tamper.py": "tests/service/test_gm_profile.py",  # gm_made
}

#: Modules of 30 s or more on one worker (--durations=0, 2 workers, December 2026), the
#: longest first; re-measure when the list looks stale. Every other module follows in
#: collection order.
LONGEST_FIRST = (
    "tests/replica/test_center_export.py",
    "tests/replica/test_center_desk.py",
    "tests/replica/test_center_desk_exports.py",
    "tests/service/test_gm_profile.py",
    "tests/service/test_gm_tamper.py",
    "tests/service/test_redaction_flow.py",
    "tests/service/test_exports_api.py",
    "tests/replica/test_center_feed.py",
    "tests/web/test_desk_retention.py",
    "tests/replica/test_center_retention.py",
    "tests/service/test_witness.py",
    "tests/jobs/test_job_types.py",
    "tests/service/test_sessions.py",
    "tests/service/test_export_crash.py",
    "tests/web/test_desk_center.py",
    "tests/web/test_desk_flow.py",
    "tests/cli/test_media_cli.py",
    "tests/service/test_audit_view.py",
    "tests/replica/test_center_desk_retention.py",
    "tests/web/test_desk_audit.py",
    "tests/service/test_audit_service.py",
)


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(items: list[pytest.Item]) -> None:
    """Whole modules of :data:`LONGEST_FIRST` moved to the front, in place (a stable
    sort: every module keeps its own order)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(module_of(item.nodeid), len(rank)))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """loadfile's scheduler, with the modules of :data:`SAME_WORKER` one work unit."""
    from xdist.scheduler import LoadFileScheduling  # noqa: PLC0415 - xdist runs only

    class SharedWorldScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = module_of(nodeid)
            return SAME_WORKER.get(module, module)

    return SharedWorldScheduling(config, log)
