"""`[center] retention = "center"` at a station, in-process (the services over a real
aged station, SQLite): local approvals are refused, and approvals given here before the
switch count for nothing; only an approval recorded from a center decision lets a run
delete. The exchange with a real center is tested in tests/replica/test_center_retention.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select
from station_homes import aged_home

from archive.bindings import bind
from archive.catalog.models import Tombstone
from config import load_settings
from evidock.jobs import SYSTEM_ACTOR
from evidock.wiring import Services
from integrity.errors import CenterDecides
from retention.actions import I_RETENTION_AWAITING_APPROVAL, I_RETENTION_DELETED
from retention.executor import RetentionExecutor
from retention.models import RetentionAction


def _center_decides(svc: Services) -> RetentionExecutor:
    return RetentionExecutor(catalog=svc.catalog, store=svc.store, audit=svc.audit(),
                             gate=svc.gate(), rules=svc.settings.retention, clock=svc.clock,
                             center_decides=True)


def _from_center(svc: Services, recording: str, approver: str, decision: str) -> None:
    """The approved step a pull writes for a center decision (retention/center_sync.py)."""
    view = next(v for v in svc.retention().pending(svc.clock()) if v.recording_id == recording)
    now = svc.clock()
    with svc.catalog.transaction() as s:
        svc.audit().lock(s)
        bind(s, svc.audit(), RetentionAction(
            recording_id=recording, step="approved", rule=view.rule, reason=view.reason,
            due_at=view.due_at, actor=approver, at=now, decision=decision),
             actor="system:scheduler", action="retention.approve",
             subjects=[f"recording:{recording}"],
             details={"source": "center", "center_decision": decision}, at=now)


def test_only_center_approvals_count_when_the_center_decides(tmp_path: Path) -> None:
    home = aged_home(tmp_path)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        local = svc.retention()
        local.schedule(SYSTEM_ACTOR, svc.clock())
        first, *rest = sorted(r.id for r in svc.catalog.recordings())
        for rid in (first, *rest):  # approved here, before the switch
            local.approve(svc.gate().by_name("supervisor"), rid)
        ex = _center_decides(svc)
        with pytest.raises(CenterDecides):
            ex.approve(svc.gate().by_name("supervisor2"), first)
        waiting = ex.run(svc.gate().by_name("admin"), svc.clock())
        _from_center(svc, first, "supervisor2", "d" * 32)
        ran = ex.run(svc.gate().by_name("admin"), svc.clock())
        with Session(svc.catalog.engine) as s:
            tombs = list(s.exec(select(Tombstone)))
    finally:
        svc.close()
    assert {(o.status, o.code) for o in waiting.outcomes} == {
        ("waiting", I_RETENTION_AWAITING_APPROVAL)}
    assert [(o.recording_id, o.code) for o in ran.outcomes if o.status == "deleted"] == [
        (first, I_RETENTION_DELETED)]
    assert {o.code for o in ran.outcomes if o.recording_id in rest} == {
        I_RETENTION_AWAITING_APPROVAL}
    assert [(t.recording_id, t.approvers) for t in tombs] == [
        (first, ["supervisor", "supervisor2"])]
