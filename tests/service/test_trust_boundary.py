"""An officer cannot do alone what needs someone else, whatever they control.

The officer's account controls its own environment, a config file of its own and every
file it can write. None of it reaches the rules, which the service reads from the files
root owns; who is asking comes from the kernel. Every attempt below is refused with
exit 3 and is an audit event of the officer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidock_testing import AGENCY_TOML, offloaded_home, ok_json
from service_support import RunningService, audit_events, open_dir, serving

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree

CASE = "邵城管罚〔2019〕第001号"
# What the officer would like the rules to be: themselves an admin with every role,
# approvals by one person, no grace period.
FORGED_TOML = AGENCY_TOML.replace('os_users = ["evt-officer"]\nroles = ["officer"]',
                                  'os_users = ["evt-officer"]\nroles = ["officer", '
                                  '"legal_reviewer", "supervisor", "admin", "inspector"]')
FORGED_ENV = {
    "EVIDOCK_ACCESS__TRUST_ENV_USER": "true",
    "EVIDOCK_USER": "supervisor",
    "EVIDOCK_ACTOR": "user:supervisor",
    "EVIDOCK_RETENTION__REQUIRE_SECOND_APPROVAL": "false",
    "EVIDOCK_ACCESS__USERS": '[{name="officer", os_users=["evt-officer"], '
                             'roles=["admin", "supervisor", "legal_reviewer"]}]',
}


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[tuple[RunningService, str, str, str]]:
    """A station with a linked clip, an export request (by the inspector), a hold (by
    legal) and the officer's forged config file; yields (service, request, hold, file)."""
    home = tmp_path_factory.mktemp("trust") / "home"
    offloaded_home(home, camera_template.root)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        clerk = svc.gate().by_name("clerk")
        video = next(r.id for r in svc.catalog.recordings() if r.kind == "video")
        svc.cases().create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
        svc.cases().link(clerk, CASE, video, stage="调查取证", reason="现场检查")
    finally:
        svc.close()
    forged_dir = open_dir("evidock-forged-")
    forged = forged_dir / "mine.toml"
    forged.write_text(FORGED_TOML, encoding="utf-8")
    forged.chmod(0o666)  # the officer's own file: they may write what they like
    with serving(home) as service:
        request = ok_json(service.cli("export", "request", "--case", CASE, "--purpose",
                                      "行政复议", "--recipient", "复议机关", "--json",
                                      user="inspector"))["id"]
        hold = ok_json(service.cli("hold", "add", "--case", CASE, "--reason", "诉讼保全",
                                   "--json", user="legal"))["id"]
        yield service, str(request), str(hold), str(forged)


@pytest.mark.parametrize("label, args", [
    ("approve an export", ("export", "approve", "{request}", "--reason", "ok")),
    ("run an export", ("export", "run", "{request}", "--out", "{out}")),
    ("release a hold", ("hold", "release", "{hold}", "--reason", "done")),
    ("run retention", ("retention", "run")),
    ("approve a deletion", ("retention", "approve", "{request}")),
])
def test_the_officer_is_refused_whatever_they_control(
        station: tuple[RunningService, str, str, str], label: str,
        args: tuple[str, ...]) -> None:
    service, request, hold, forged = station
    outbox = open_dir("evidock-officer-out-")
    outbox.chmod(0o1777)  # the officer may write here: the refusal is the service's
    out = outbox / "pkg"
    argv = [a.format(request=request, hold=hold, out=out) for a in args]
    before = len(audit_events(service.home, "access.refused"))
    for extra in ([], ["--config", forged]):
        run = service.cli(*argv, *extra, "--json", user="officer", env=FORGED_ENV)
        assert run.returncode == 3, (label, run.stdout, run.stderr)
        assert json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN", label
    refused = audit_events(service.home, "access.refused")[before:]
    assert [actor for actor, _ in refused] == ["user:officer", "user:officer"], label
    assert not out.exists(), "nothing was written for a refused export"


def test_the_hold_and_the_request_are_as_they_were(
        station: tuple[RunningService, str, str, str]) -> None:
    service, request, hold, _ = station
    holds = ok_json(service.cli("hold", "list", "--json", user="legal"))["holds"]
    assert [h["id"] for h in holds if h["released_by"] is None] == [hold]
    shown = ok_json(service.cli("export", "show", request, "--json", user="inspector"))
    assert shown["status"] == "pending"


def test_the_service_config_is_not_the_officers(tmp_path: Path) -> None:
    """A config file the officer can write is refused by the service itself."""
    home = tmp_path / "home"
    config = home / "evidock.toml"
    home.mkdir(parents=True)
    config.write_text(FORGED_TOML, encoding="utf-8")
    config.chmod(0o666)
    with pytest.raises(AssertionError, match="0666"), serving(home):
        pass
