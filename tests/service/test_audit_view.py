"""``audit.view`` guards every read of the audit log, route by route, through a real
`evidock serve` and the users' own OS accounts: a user without it (clerk, inspector,
legal reviewer, officer) is refused, an OS account that is no evidock user is refused,
each refusal is an audit event naming who asked and nothing is read; a user with it
(supervisor, admin) gets the answer and the read is itself an audit event."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from evidock_testing import write_agency_config
from service_support import RunningService, audit_events, serving

from archive.keystore import StationKeys

#: Every command that reads the log (or the store's fixity record) -> its read event.
ROUTES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "head": (("audit", "head"), "read.audit.head"),
    "proof": (("audit", "proof", "0"), "read.audit.proof"),
    "consistency": (("audit", "consistency", "0"), "read.audit.consistency"),
    "events": (("audit", "events", "--json"), "read.audit.events"),
    "verify": (("audit", "verify", "--json"), None),  # its run is the audit.verify event
    "fixity": (("fixity", "--json"), None),
}
WITHOUT = ("clerk", "inspector", "legal", "officer")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    home = tmp_path_factory.mktemp("auditview") / "home"
    write_agency_config(home)
    StationKeys(directory=home / "keys").init()  # the head is signed with it
    with serving(home) as svc:
        # Something to read: a refused delete is an event with a subject.
        assert svc.cli("delete", "rec-1", user="clerk").returncode == 3
        yield svc


def _reads(svc: RunningService) -> int:
    return sum(len(audit_events(svc.home, action)) for action in (
        "read.audit.head", "read.audit.proof", "read.audit.consistency",
        "read.audit.events", "audit.verify", "fixity.run"))


@pytest.mark.parametrize("user", WITHOUT)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_user_without_audit_view_is_refused_and_the_refusal_audited(
        service: RunningService, route: str, user: str) -> None:
    argv, _ = ROUTES[route]
    before_reads = _reads(service)
    before = len(audit_events(service.home, "access.refused"))
    run = service.cli(*argv, user=user)
    assert run.returncode == 3, (route, user, run.stdout, run.stderr)
    error = json.loads(run.stdout)["error"]
    assert error["code"] == "E_FORBIDDEN", (route, user)
    assert "events" not in run.stdout and "root_hash" not in run.stdout
    refused = audit_events(service.home, "access.refused")[before:]
    assert [(actor, details["permission"]) for actor, details in refused] == [
        (f"user:{user}", "audit.view")], (route, user)
    assert _reads(service) == before_reads, (route, user)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_an_account_that_is_no_evidock_user_is_refused_and_audited(
        service: RunningService, route: str) -> None:
    argv, _ = ROUTES[route]
    before_reads = _reads(service)
    before = len(audit_events(service.home, "access.refused"))
    run = service.cli(*argv, user="evt-nobody")
    assert run.returncode == 3, (route, run.stdout, run.stderr)
    assert json.loads(run.stdout)["error"]["code"] == "E_UNKNOWN_USER", route
    refused = audit_events(service.home, "access.refused")[before:]
    assert [actor for actor, _ in refused] == ["os:evt-nobody"], route
    assert _reads(service) == before_reads, route


@pytest.mark.parametrize("user", ["supervisor", "admin"])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_user_with_audit_view_reads_and_the_read_is_audited(
        service: RunningService, route: str, user: str) -> None:
    argv, action = ROUTES[route]
    before = _reads(service)
    run = service.cli(*argv, user=user)
    assert run.returncode == 0, (route, user, run.stdout, run.stderr)
    json.loads(run.stdout)
    assert _reads(service) == before + 1, (route, user)
    if action is not None:
        actor, _ = audit_events(service.home, action)[-1]
        assert actor == f"user:{user}"
