"""A recording is as secret as the strictest case it is linked to, wherever it is
reached from; the audit log and the holds keep the labels of what they name (issue 19,
items 1 and 4).

Every attack runs the real CLI as the real OS account that must be refused, against a
real `evidock serve`. The station: a 国家秘密 case of 城东中队 (SECRET) holding video V1;
public cases of 城西中队: PUBLIC (V2 only), LEAKY (V2, and V1 by a link row put straight
into the catalog, as if an older evidock or a hand had made it) and LATER (V3, which
becomes secret after its export was approved).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import offloaded_home, ok_json
from service_support import RunningService, audit_events, audit_rows, open_dir, serving
from sqlmodel import Session, func, select
from station_homes import rendered_videos

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from records.casebook import Casebook
from records.models import CaseLink, ExportRequest

SECRET = "邵城管罚〔2019〕第900号"
PUBLIC = "邵城管罚〔2019〕第901号"
LEAKY = "邵城管罚〔2019〕第902号"
LATER = "邵城管罚〔2019〕第903号"
#: "secretary" may make and link 国家秘密 cases (set-up only, in-process); "westinsp"
#: (OS account evt-chief) is an inspector cleared for every label but only of 城西中队.
EXTRA = """
[[access.users]]
name = "secretary"
roles = ["clerk"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
[[access.users]]
name = "westinsp"
os_users = ["evt-chief"]
roles = ["inspector"]
units = ["城西中队"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
"""
EXPORT = ("--purpose", "行政复议", "--recipient", "复议机关")


@dataclass
class Station:
    svc: RunningService
    home: Path
    v1: str  # linked to SECRET (and, by a raw row, to LEAKY)
    v2: str
    v3: str
    later_request: str  # export of LATER, approved while V3 was public
    secret_hold: str
    recording_hold: str  # on V1
    public_hold: str
    outbox: Path

    def cli(self, *args: str, user: str, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        return self.svc.cli(*args, user=user, env=env)

    def refused(self, *args: str, user: str, code: str = "E_FORBIDDEN",
                exit_code: int = 3) -> dict[str, Any]:
        # `audit proof` prints only JSON, errors too, and so takes no --json
        run = self.cli(*args, *(() if args[:2] == ("audit", "proof") else ("--json",)),
                       user=user)
        assert run.returncode == exit_code, (args, user, run.stdout, run.stderr)
        error: dict[str, Any] = json.loads(run.stdout)["error"]
        assert error["code"] == code, (args, user, error)
        return error


def _prepare(home: Path, camera: Path) -> dict[str, str]:
    offloaded_home(home, camera, extra_toml=EXTRA)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        who = svc.gate().by_name
        cases, holds = svc.cases(), svc.holds()
        v1, v2, v3 = rendered_videos(svc)[:3]
        cases.create(who("secretary"), number=SECRET, case_type="行政处罚", unit="城东中队",
                     sensitivity="国家秘密")
        cases.link(who("secretary"), SECRET, v1, stage="调查取证", reason="涉密")
        for number, video in ((PUBLIC, v2), (LEAKY, v2), (LATER, v3)):
            cases.create(who("clerk2"), number=number, case_type="行政处罚", unit="城西中队")
            cases.link(who("clerk2"), number, video, stage="调查取证", reason="现场检查")
        with svc.catalog.transaction() as s:  # no desk would make this link any more
            s.add(CaseLink(case_id=Casebook(catalog=svc.catalog).case(LEAKY).id,
                           recording_id=v1, action="link", stage="调查取证", actor="clerk2",
                           reason="旧数据", at=datetime(2026, 11, 21, tzinfo=UTC)))
        exports = svc.exports()
        request = exports.request(who("inspector"), case=LATER, purpose="行政复议",
                                  recipient="复议机关")
        exports.approve(who("legal"), request.id)
        ids = {"v1": v1, "v2": v2, "v3": v3, "later_request": request.id}
        for name, scope, target in (("secret_hold", "case", SECRET),
                                    ("recording_hold", "recording", v1),
                                    ("public_hold", "case", PUBLIC)):
            ids[name] = holds.add(who("supervisor"), scope=scope, target=target,
                                  reason="诉讼").id
    finally:
        svc.close()
    return ids


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    home = tmp_path_factory.mktemp("labels") / "home"
    ids = _prepare(home, camera_template.root)
    outbox = open_dir("evidock-labels-out-")
    outbox.chmod(0o1777)
    with serving(home) as svc:
        yield Station(svc, home, outbox=outbox, **ids)


def _count(home: Path, model: type, *where: Any) -> int:
    from archive.catalog import Catalog

    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            return int(s.exec(select(func.count()).select_from(model).where(*where)).one())
    finally:
        catalog.close()


# ------------------------------------------------------------------ item 1: case link


@pytest.mark.parametrize("user", ["clerk2", "clerk"])
def test_linking_a_secret_recording_into_ones_own_public_case_is_refused(
        station: Station, user: str) -> None:
    """clerk2 (城西中队) and clerk (no 国家秘密 clearance) both may link into PUBLIC, but
    not V1: it carries SECRET's label and unit through its existing link."""
    links = _count(station.home, CaseLink)
    before = len(audit_rows(station.home, "access.refused"))
    error = station.refused("case", "link", PUBLIC, station.v1, "--stage", "调查取证",
                            "--reason", "借道", user=user)
    assert SECRET not in json.dumps(error, ensure_ascii=False)
    assert _count(station.home, CaseLink) == links
    refused = audit_rows(station.home, "access.refused")[before:]
    assert [(e.actor, f"recording:{station.v1}" in e.subjects) for e in refused] == [
        (f"user:{user}", True)]


def test_a_public_recording_is_still_linked_by_the_same_clerk(station: Station) -> None:
    made = ok_json(station.cli("case", "link", PUBLIC, station.v2, "--stage", "现场检查",
                               "--reason", "补充", "--json", user="clerk2"))
    assert made["recording_id"] == station.v2 and made["active"]


# ------------------------------------------------------------------ item 1: exports


@pytest.mark.parametrize(("user", "name"), [("inspector", "inspector"),
                                           ("evt-chief", "westinsp")])
def test_an_export_request_of_a_public_case_holding_secret_footage_is_refused(
        station: Station, user: str, name: str) -> None:
    """The uncleared inspector, and the cleared one of the other unit: LEAKY is theirs to
    see, V1 in it is not; the refusal names V1, never SECRET."""
    requests = _count(station.home, ExportRequest)
    error = station.refused("export", "request", "--case", LEAKY, *EXPORT, user=user,
                            code="E_ITEM_HIDDEN")
    assert station.v1 in error["message"] and SECRET not in error["message"]
    assert _count(station.home, ExportRequest) == requests
    actor, details = audit_events(station.home, "access.refused")[-1]
    assert (actor, details["code"]) == (f"user:{name}", "E_ITEM_HIDDEN")


def test_an_export_run_refuses_footage_that_became_secret_after_approval(
        station: Station) -> None:
    """LATER's export was approved while V3 was public; V3 is then linked to SECRET (by
    someone cleared for it). The inspector's run is refused with nothing written, and
    the approval is not spent."""
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(station.home)}))
    try:
        svc.cases().link(svc.gate().by_name("secretary"), SECRET, station.v3,
                         stage="调查取证", reason="涉密")
    finally:
        svc.close()
    out = station.outbox / "later"
    error = station.refused("export", "run", station.later_request, "--out", str(out),
                            user="inspector", code="E_ITEM_HIDDEN")
    assert station.v3 in error["message"]
    assert not out.exists()
    shown = ok_json(station.cli("export", "show", station.later_request, "--json",
                                user="inspector"))
    assert shown["status"] == "approved" and not shown["exports"]


# ------------------------------------------------------------------ item 1: reads


def test_the_public_case_shows_the_secret_footage_only_as_hidden(station: Station) -> None:
    dossier = ok_json(station.cli("case", "show", LEAKY, "--json", user="inspector"))
    assert [r["id"] for r in dossier["recordings"]] == [station.v2]
    assert dossier["hidden_recordings"] == 1
    assert {x["recording_id"]: x["hidden"] for x in dossier["links"]} == {
        station.v1: True, station.v2: False}
    found = ok_json(station.cli("case", "find", "--case", LEAKY, "--json",
                                user="inspector"))["recordings"]
    assert [f["recording"]["id"] for f in found] == [station.v2]
    _, details = audit_events(station.home, "read.case.find")[-1]
    assert (details["shown"], details["hidden"]) == (1, 1)
    station.refused("recording", "show", station.v1, user="inspector")
    station.refused("recording", "show", station.v1, user="evt-chief")


def test_a_cleared_reader_of_every_unit_sees_it(station: Station) -> None:
    dossier = ok_json(station.cli("case", "show", LEAKY, "--json", user="supervisor"))
    assert sorted(r["id"] for r in dossier["recordings"]) == sorted([station.v1,
                                                                     station.v2])
    assert dossier["hidden_recordings"] == 0


# ------------------------------------------------------------------ item 4: audit


def _secret_event(home: Path) -> int:
    return next(e.seq for e in audit_rows(home, "case.create")
                if e.details["number"] == SECRET)


@pytest.mark.parametrize("user", ["supervisor2", "admin"])
def test_audit_proof_of_a_secret_cases_event_is_refused_to_the_uncleared(
        station: Station, user: str) -> None:
    seq = _secret_event(station.home)
    before = len(audit_rows(station.home, "read.audit.proof"))
    error = station.refused("audit", "proof", str(seq), user=user)
    assert SECRET not in json.dumps(error, ensure_ascii=False)
    assert len(audit_rows(station.home, "read.audit.proof")) == before
    actor, details = audit_events(station.home, "access.refused")[-1]
    assert (actor, details["permission"]) == (f"user:{user}", "audit.view")


def test_audit_proof_is_refused_to_an_unmapped_account_and_to_a_reader_without_the_right(
        station: Station) -> None:
    seq = _secret_event(station.home)
    station.refused("audit", "proof", str(seq), user="evt-nobody", code="E_UNKNOWN_USER")
    station.refused("audit", "proof", str(seq), user="inspector")


def test_audit_proof_is_shown_to_the_cleared_and_the_read_is_audited(
        station: Station) -> None:
    seq = _secret_event(station.home)
    doc = ok_json(station.cli("audit", "proof", str(seq), user="supervisor"))
    assert doc["event"]["details"]["number"] == SECRET
    row = audit_rows(station.home, "read.audit.proof")[-1]
    assert (row.actor, row.subjects) == ("user:supervisor", [f"audit:{seq}"])


def test_audit_events_hide_what_the_reader_may_not_see_and_count_it(
        station: Station) -> None:
    run = station.cli("audit", "events", "--limit", "1000", "--json", user="supervisor2")
    page = ok_json(run)
    assert SECRET not in run.stdout and station.v1 not in run.stdout
    hidden = [e for e in page["events"] if e.get("hidden")]
    assert hidden and page["hidden"] == len(hidden)
    assert _secret_event(station.home) in {e["seq"] for e in hidden}
    assert set(hidden[0]) == {"seq", "hidden", "prev_hash", "leaf_hash"}
    _, details = audit_events(station.home, "read.audit.events")[-1]
    assert details["hidden"] == len(hidden)
    full = ok_json(station.cli("audit", "events", "--limit", "1000", "--json",
                               user="supervisor"))
    assert full["hidden"] == 0 and SECRET in json.dumps(full, ensure_ascii=False)


# ------------------------------------------------------------------ item 4: holds


def test_hold_list_leaves_out_holds_on_what_the_reader_may_not_see(
        station: Station) -> None:
    run = station.cli("hold", "list", "--json", user="legal")
    listed = ok_json(run)
    assert [h["id"] for h in listed["holds"]] == [station.public_hold]
    assert listed["hidden"] == 2
    assert SECRET not in run.stdout and station.v1 not in run.stdout
    _, details = audit_events(station.home, "read.hold.list")[-1]
    assert (details["shown"], details["hidden"]) == (1, 2)
    everything = ok_json(station.cli("hold", "list", "--json", user="supervisor"))
    assert {h["id"] for h in everything["holds"]} == {
        station.secret_hold, station.recording_hold, station.public_hold}


@pytest.mark.parametrize("hold", ["secret_hold", "recording_hold"])
def test_releasing_a_hidden_hold_is_answered_as_if_it_did_not_exist(
        station: Station, hold: str) -> None:
    hold_id = getattr(station, hold)
    before = len(audit_rows(station.home, "access.refused"))
    error = station.refused("hold", "release", hold_id, "--reason", "结案", user="legal",
                            code="E_NOT_FOUND", exit_code=1)
    missing = station.refused("hold", "release", "0" * 32, "--reason", "结案",
                              user="legal", code="E_NOT_FOUND", exit_code=1)
    assert error["message"].replace(hold_id, "X") == missing["message"].replace("0" * 32,
                                                                                "X")
    refused = audit_rows(station.home, "access.refused")[before:]
    assert [(e.actor, e.subjects[0]) for e in refused] == [("user:legal",
                                                            f"hold:{hold_id}")]
    still = ok_json(station.cli("hold", "list", "--json", user="supervisor"))["holds"]
    assert hold_id in {h["id"] for h in still if h["active"]}


def test_placing_a_hold_on_a_hidden_recording_is_refused(station: Station) -> None:
    station.refused("hold", "add", "--recording", station.v1, "--reason", "诉讼",
                    user="legal")


# ------------------------------------------------------------------ item 4: actor


FORGED = {"EVIDOCK_ACTOR": "user:supervisor", "EVIDOCK_USER": "supervisor",
          "USER": "evt-supervisor", "LOGNAME": "evt-supervisor"}


@pytest.mark.parametrize(("args", "action"), [(("audit", "verify"), "audit.verify"),
                                              (("fixity", "--sample", "1"), "fixity.run")])
def test_the_client_environment_does_not_name_the_actor(
        station: Station, args: tuple[str, ...], action: str) -> None:
    run = station.cli(*args, "--json", user="admin", env=FORGED)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    actor, _ = audit_events(station.home, action)[-1]
    assert actor == "user:admin"
    nobody = station.cli(*args, "--json", user="evt-nobody", env=FORGED)
    assert nobody.returncode == 3, nobody.stdout + nobody.stderr
    assert json.loads(nobody.stdout)["error"]["code"] == "E_UNKNOWN_USER"
    assert audit_events(station.home, action)[-1][0] == "user:admin"
