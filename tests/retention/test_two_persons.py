"""Issue 19 item 3: a deletion needs two distinct people, always.

The scheduler's automatic scheduling (``system:scheduler``) is nobody's consent, and one
user counts once whatever roles they hold: "chief" (supervisor + admin) approving what
the scheduler scheduled and then running it alone is refused (the items wait, the
refusal is audited); a second person approving or running it lets it through.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import ok_json
from service_support import audit_rows, serving
from sqlmodel import Session, select
from station_homes import aged_home, copy_home

from archive.catalog import Recording
from archive.catalog.models import Tombstone
from config import load_settings
from evidock.jobs import SYSTEM_ACTOR, execute
from evidock.wiring import Services
from integrity.errors import Forbidden, SelfApproval
from records.persons import is_person, people
from retention.actions import (
    I_RETENTION_AWAITING_SECOND_PERSON,
    I_RETENTION_DELETED,
    PendingView,
)

#: chief holds both sides: supervisor (approve) and admin (run).
CHIEF = """
[[access.users]]
name = "chief"
os_users = ["evt-chief"]
roles = ["supervisor", "admin"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return aged_home(tmp_path_factory.mktemp("two-persons"), CHIEF)


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    return copy_home(template, tmp_path)


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    yield svc
    svc.close()


def _ids(svc: Services) -> list[str]:
    return sorted(r.id for r in svc.catalog.recordings())


def _tombstones(svc: Services) -> list[Tombstone]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(Tombstone)))


def _stored(svc: Services) -> bool:
    with Session(svc.catalog.engine) as s:
        return all(svc.store.has(r.blake3) for r in s.exec(select(Recording)))


# ---------------------------------------------------------------------- the attack


def test_the_scheduler_is_nobody_so_one_chief_cannot_approve_and_run(
        home: Path, services: Services) -> None:
    ids = _ids(services)
    scheduled = execute("retention_plan", services)  # the real scheduler job
    assert scheduled.outcome == "ok" and scheduled.counts["scheduled"] == 3
    assert {v.scheduled_by for v in services.retention().pending(services.clock())} == {
        "system:scheduler"}
    services.close()

    with serving(home) as svc:
        for rid in ids:
            approved = ok_json(svc.cli("retention", "approve", rid, "--json", user="chief"))
            assert approved["approvals"] == ["chief"] and approved["people"] == ["chief"]
        alone = ok_json(svc.cli("retention", "run", "--json", user="chief"))
        after = ok_json(svc.cli("retention", "pending", "--json", user="chief"))

        assert alone["counts"]["deleted"] == 0 and alone["counts"]["waiting"] == 3
        assert {(o["code"], tuple(o["details"]["people"])) for o in alone["outcomes"]} == {
            (I_RETENTION_AWAITING_SECOND_PERSON, ("chief",))}
        assert len(after["pending"]) == 3
        [refused] = [e for e in audit_rows(home, "access.refused")
                     if e.actor == "user:chief"]
        assert refused.details["code"] == "E_SELF_APPROVAL"
        assert refused.details["permission"] == "retention.run"
        assert sorted(refused.subjects) == sorted(f"recording:{r}" for r in ids)

        ran = ok_json(svc.cli("retention", "run", "--json", user="admin"))  # a 2nd person

    assert {(o["status"], o["code"]) for o in ran["outcomes"]} == {
        ("deleted", I_RETENTION_DELETED)}
    check = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        tombs = _tombstones(check)
        assert sorted(t.recording_id for t in tombs) == ids
        assert {(t.actor, tuple(t.approvers)) for t in tombs} == {("admin", ("chief",))}
    finally:
        check.close()
    executed = audit_rows(home, "retention.execute")
    assert {tuple(e.details["people"]) for e in executed} == {("chief", "admin")}


def test_two_approvals_by_different_people_let_one_of_them_run(services: Services) -> None:
    ex, gate = services.retention(), services.gate()
    chief, other = gate.by_name("chief"), gate.by_name("supervisor2")
    now = services.clock()
    ex.schedule(SYSTEM_ACTOR, now)
    for rid in _ids(services):
        ex.approve(chief, rid)
    assert ex.run(chief, services.clock()).count("waiting") == 3
    assert _tombstones(services) == [] and _stored(services)

    for rid in _ids(services):
        assert ex.approve(other, rid).people() == ("chief", "supervisor2")
    report = ex.run(chief, services.clock())

    assert report.count("deleted") == 3


def test_one_user_never_approves_what_they_scheduled_whatever_roles(
        services: Services) -> None:
    ex, gate = services.retention(), services.gate()
    chief = gate.by_name("chief")
    ex.schedule(chief, services.clock())
    rid = _ids(services)[0]
    with pytest.raises(SelfApproval):
        ex.approve(chief, rid)
    with pytest.raises(Forbidden):
        ex.approve(SYSTEM_ACTOR, rid)  # the system approves nothing
    assert ex.run(chief, services.clock()).count("deleted") == 0

    ex.approve(gate.by_name("supervisor2"), rid)  # the second person
    report = ex.run(chief, services.clock())

    assert [o.recording_id for o in report.outcomes if o.status == "deleted"] == [rid]


def test_without_required_approval_the_scheduler_and_a_runner_are_still_one_person(
        tmp_path: Path) -> None:
    home = aged_home(tmp_path, CHIEF, "require_second_approval = false\n")
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        ex, admin = svc.retention(), svc.gate().by_name("admin")
        ex.schedule(SYSTEM_ACTOR, svc.clock())
        alone = ex.run(admin, svc.clock())
        assert {o.code for o in alone.outcomes} == {I_RETENTION_AWAITING_SECOND_PERSON}
        assert _tombstones(svc) == []

        rid = _ids(svc)[0]
        ex.approve(svc.gate().by_name("supervisor"), rid)
        report = ex.run(admin, svc.clock())
    finally:
        svc.close()
    assert [o.recording_id for o in report.outcomes if o.status == "deleted"] == [rid]


def test_people_leaves_out_system_actors_and_counts_each_user_once() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    view = PendingView(action_id=1, recording_id="r", rule="base", reason="x", due_at=at,
                       scheduled_by="system:scheduler", scheduled_at=at,
                       approvals=("chief",))
    assert view.people() == ("chief",) and view.people("chief") == ("chief",)
    assert view.people("admin") == ("chief", "admin")
    assert people(["system:x", "a", "b", "a"]) == ("a", "b")
    assert not is_person("system:scheduler") and not is_person("") and is_person("legal")
