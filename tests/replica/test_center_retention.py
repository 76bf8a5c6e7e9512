"""Issue 20: retention and holds decided at the center, carried out at the stations.

Real parts: a center (`evidock serve`, HTTPS with mutual TLS, SQLite catalog) and
stations (`evidock serve` each, SQLite) on 127.0.0.1, a real SeaweedFS with Object Lock
they upload to (each station under its own prefix), the real CLI as real OS accounts.
Each station offloaded a camera 400 days ago, so its footage is due for deletion now.
What is checked: a hold placed at the center while the station is stopped reaches it at
the next pull, once however often it pulls, keeps the footage (the due deletion is
cancelled with rule "hold") and puts the S3 legal hold on its copies; only a second
person at the center releases it, and the station carries the release out. With
`[center] retention = "center"` a local approval is refused, the scheduler cannot
approve at the center what they scheduled, a second person's approval lets the run
delete, a rejection cancels, and an approval of what the station's planner now keeps (a
case linked after) deletes nothing. A station's account reads only its own holds and
decisions.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from center_support import (
    center_toml,
    free_port,
    pull,
    push,
    rows,
    run_job,
    services,
    station_toml,
    upload_toml,
)
from evidock_testing import AGENCY_TOML, migrated, ok_json
from pki_support import CertAuthority
from s3server import S3Endpoint, WeedServer
from service_support import RunningService, audit_rows, serving
from sqlmodel import Session, select
from station_homes import aged_home
from storage_support import make_bucket

from archive.catalog.models import Tombstone
from archive.keystore import StationKeys
from archive.replica.queue import UploadItem
from archive.witness.center import CenterClient
from config import load_settings
from evidock.jobs import execute
from integrity.errors import CenterUnavailable
from retention.models import Hold, RetentionAction

HOLDS, DECIDES = "st-holds", "st-decides"
STATIONS = (HOLDS, DECIDES)


@dataclass
class World:
    root: Path
    ca: CertAuthority
    center_home: Path
    endpoint: S3Endpoint
    bucket: str

    def station(self, name: str) -> Path:
        return self.root / name / "home"


def _station(world: World, name: str, port: int, *, mode: str) -> None:
    center = station_toml(name, port=port, center_keyring=world.root / "center.json",
                          ca=world.ca.root.cert, cert=world.ca.issue(name))
    center += f'retention = "{mode}"\n'  # [center] is the last table station_toml wrote
    home = aged_home(world.root / name, center + upload_toml(world.endpoint, world.bucket,
                                                             name))
    keys = StationKeys(directory=home / "keys")
    keys.init()
    shutil.copy(keys.keyring_path, world.root / f"{name}.json")
    svc = services(home)
    try:
        assert execute("upload", svc).outcome == "ok"  # the center wants the blobs first
    finally:
        svc.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, weed: WeedServer) -> World:
    root = tmp_path_factory.mktemp("center-retention")
    (root / "pki").mkdir()
    ca = CertAuthority(root / "pki", "agency-ca")
    world = World(root, ca, root / "center", weed.endpoint, make_bucket(weed.endpoint))
    port = free_port()
    _station(world, HOLDS, port, mode="station")
    _station(world, DECIDES, port, mode="center")
    home = world.center_home
    home.mkdir()
    keys = StationKeys(directory=home / "keys")
    keys.init()
    shutil.copy(keys.keyring_path, root / "center.json")
    (home / "evidock.toml").write_text(AGENCY_TOML + center_toml(
        port=port, server=ca.issue("center", server=True), ca=ca.root.cert, users=STATIONS,
        stations=[(n, root / f"{n}.json", n) for n in STATIONS])
        + upload_toml(world.endpoint, world.bucket, "center"), encoding="utf-8")
    migrated(f"sqlite:///{home / 'catalog.sqlite3'}")
    return world


@pytest.fixture
def center(world: World) -> Iterator[RunningService]:
    with serving(world.center_home) as running:
        yield running


def _ids(home: Path) -> list[str]:
    svc = services(home)
    try:
        return sorted(r.id for r in svc.catalog.recordings())
    finally:
        svc.close()


def _legal_holds(home: Path, recording: str) -> list[bool]:
    """The S3 legal hold of each uploaded copy of the recording's original."""
    svc = services(home)
    try:
        b3 = svc.catalog.recording(recording).blake3
        with Session(svc.catalog.engine) as s:
            items = list(s.exec(select(UploadItem).where(UploadItem.blake3 == b3)))
        objects = svc.upload_queue().objects
        return [objects.legal_hold(i.key, version_id=i.version_id) for i in items]
    finally:
        svc.close()


def test_a_center_hold_placed_while_the_station_is_down_keeps_its_footage_until_released(
        world: World, center: RunningService) -> None:
    home = world.station(HOLDS)
    held, *others = _ids(home)
    svc = services(home)
    try:  # the scheduler scheduled every deletion; a supervisor approved the held one
        assert execute("retention_plan", svc).counts["scheduled"] == 3
        svc.retention().approve(svc.gate().by_name("supervisor"), held)
    finally:
        svc.close()
    with serving(home) as station:
        assert push(station)["events"]["waiting"] is None  # the center knows the footage
    # The station is stopped: the hold waits at the center.
    placed = ok_json(center.cli("center", "hold", "add", "--station", HOLDS, "--recording",
                                held, "--reason", "行政复议", "--json", user="supervisor"))
    assert placed["active"] and placed["placed_by"] == "supervisor"
    with serving(home) as station:
        first, again = pull(station), pull(station)
        run = ok_json(station.cli("retention", "run", "--json", user="admin"))
        local = ok_json(station.cli("hold", "release", [h for h in rows(home, Hold)][0].id,
                                    "--reason", "结案", "--json", user="legal"), 3)
    assert [(h["status"], h["center_hold"]) for h in first["holds"]] == [
        ("placed", placed["id"])]
    assert again["holds"] == [] and again["center_holds"] == 1, "pulling twice: one hold"
    [hold] = rows(home, Hold)
    assert (hold.source, hold.target, hold.placed_by) == (placed["id"], held, "supervisor")
    [outcome] = [o for o in run["outcomes"] if o["recording_id"] == held]
    assert (outcome["status"], outcome["details"]["rule"]) == ("cancelled", "hold")
    assert {o["recording_id"] for o in run["outcomes"] if o["status"] == "deleted"} == set()
    assert held not in {t.recording_id for t in rows(home, Tombstone)}
    assert local["error"]["code"] == "E_CENTER_DECIDES", "only the center releases it"
    [added] = audit_rows(home, "hold.add")
    assert added.details["center_hold"] == placed["id"]
    assert added.details["placed_by"] == "supervisor" and added.actor == "user:admin"
    # The station's remote retention puts the S3 legal hold on the held copies only.
    run_job(home, "remote_retention")
    assert _legal_holds(home, held) == [True]
    assert _legal_holds(home, others[0]) == [False]
    _released_by_a_second_person(world, center, home, hold)


def _released_by_a_second_person(world: World, center: RunningService, home: Path,
                                 hold: Hold) -> None:
    """Only a second person at the center releases the hold; the station follows."""
    assert hold.source is not None
    same = ok_json(center.cli("center", "hold", "release", hold.source, "--reason", "结案",
                              "--json", user="supervisor"), 3)
    other = ok_json(center.cli("center", "hold", "release", hold.source, "--reason", "结案",
                               "--json", user="legal"))
    with serving(home) as station:
        pulled = pull(station)
        listed = ok_json(station.cli("hold", "list", "--all", "--json", user="legal"))
    assert same["error"]["code"] == "E_SELF_APPROVAL"
    assert (other["active"], other["released_by"]) == (False, "legal")
    assert [h["status"] for h in pulled["holds"]] == ["released"]
    [view] = listed["holds"]
    assert (view["active"], view["released_by"], view["source"]) == (False, "legal",
                                                                     hold.source)
    run_job(home, "remote_retention")
    assert _legal_holds(home, hold.target) == [False], "evidock's legal hold taken off"
    refused = [e for e in audit_rows(world.center_home, "access.refused")
               if f"center-hold:{hold.source}" in e.subjects]
    assert [(e.actor, e.details["code"]) for e in refused] == [
        ("user:supervisor", "E_SELF_APPROVAL")]


def _pending(center: RunningService, user: str, *extra: str) -> dict[str, dict[str, Any]]:
    out = ok_json(center.cli("center", "retention", "pending", "--station", DECIDES,
                             "--json", *extra, user=user))
    return {d["recording_id"]: d for d in out["pending"]}


def _decide(center: RunningService, verb: str, action: int, user: str,
            code: int = 0) -> dict[str, Any]:
    out = ok_json(center.cli("center", "retention", verb, "--station", DECIDES, str(action),
                             "--reason", "复核", "--json", user=user), code)
    assert isinstance(out, dict)
    return out


def test_with_center_retention_only_a_second_person_at_the_center_approves(
        world: World, center: RunningService) -> None:
    home = world.station(DECIDES)
    gone, kept, rejected = _ids(home)
    svc = services(home)
    try:  # a person schedules this time: the center must not let them approve
        assert len(svc.retention().schedule(svc.gate().by_name("supervisor"),
                                            svc.clock()).changes) == 3
    finally:
        svc.close()
    with serving(home) as station:
        assert push(station)["events"]["waiting"] is None
        local = ok_json(station.cli("retention", "approve", gone, "--json",
                                    user="supervisor2"), 3)
        reported = pull(station)
        pending = _pending(center, "supervisor2")
        self_approval = _decide(center, "approve", pending[gone]["action_id"], "supervisor",
                                3)
        for rid in (gone, kept):
            _decide(center, "approve", pending[rid]["action_id"], "supervisor2")
        _decide(center, "reject", pending[rejected]["action_id"], "supervisor2")
        twice = _decide(center, "reject", pending[gone]["action_id"], "supervisor2", 1)
        # After the approval, the footage is linked to an open case: the planner keeps it.
        ok_json(station.cli("case", "create", "邵城管罚〔2026〕第201号", "--type", "行政处罚",
                            "--unit", "城东中队", "--json", user="clerk"))
        ok_json(station.cli("case", "link", "邵城管罚〔2026〕第201号", kept, "--stage",
                            "调查取证", "--reason", "执法记录", "--json", user="clerk"))
        decided = pull(station)
        again = pull(station)
        run = ok_json(station.cli("retention", "run", "--json", user="admin"))
        left = _pending(center, "supervisor2")
        push(station)  # the center reads from the mirrored log which deletions ended
        ended = _pending(center, "supervisor2", "--all")
    assert local["error"]["code"] == "E_CENTER_DECIDES"
    assert reported["reported"] == 3 and reported["decisions"] == []
    assert {d["scheduled_by"] for d in pending.values()} == {"supervisor"}
    assert not any(d["closed_at_station"] for d in pending.values())
    assert self_approval["error"]["code"] == "E_SELF_APPROVAL"
    assert twice["error"]["code"] == "E_CONFLICT"
    assert sorted((d["recording_id"], d["status"]) for d in decided["decisions"]) == sorted(
        [(gone, "approved"), (kept, "approved"), (rejected, "rejected")])
    assert again["decisions"] == [] and again["reported"] == 0, "recorded once"
    steps = {(a.recording_id, a.step): a for a in rows(home, RetentionAction)}
    assert steps[(gone, "approved")].actor == "supervisor2"
    assert steps[(gone, "approved")].decision in {d["center_decision"]
                                                  for d in decided["decisions"]}
    assert steps[(rejected, "cancelled")].rule == "center"
    outcomes = {o["recording_id"]: o for o in run["outcomes"]}
    assert outcomes[gone]["status"] == "deleted"
    assert (outcomes[kept]["status"], outcomes[kept]["details"]["rule"]) == (
        "cancelled", "case_open")
    assert rejected not in outcomes, "the rejected deletion was cancelled at the pull"
    [tomb] = rows(home, Tombstone)
    assert (tomb.recording_id, tomb.approvers, tomb.actor) == (gone, ["supervisor2"],
                                                                "admin")
    assert left == {}, "every reported deletion was decided"
    assert {rid: d["closed_at_station"] for rid, d in ended.items()} == {
        gone: True, kept: True, rejected: True}
    assert {rid: d["decision"]["verdict"] for rid, d in ended.items()} == {
        gone: "approved", kept: "approved", rejected: "rejected"}
    svc = services(home)
    try:
        assert svc.store.has(svc.catalog.recording(kept).blake3)
        assert svc.store.has(svc.catalog.recording(rejected).blake3)
        assert not svc.store.has(svc.catalog.recording(gone).blake3)
    finally:
        svc.close()


def test_a_station_account_reads_only_its_own_holds_and_decisions(
        world: World, center: RunningService) -> None:
    settings = load_settings(environ={"EVIDOCK_HOME": str(world.station(HOLDS))})
    client = CenterClient(settings=settings.center, home=settings.home)
    own = client.retention(HOLDS, [])
    with pytest.raises(CenterUnavailable) as err:
        client.retention(DECIDES, [])
    assert err.value.details["center_code"] == "E_FORBIDDEN"
    assert err.value.details["status"] == 403
    assert {h["station_id"] for h in own["holds"]} <= {HOLDS}
    refused = [e for e in audit_rows(world.center_home, "access.refused")
               if e.actor == f"user:{HOLDS}"]
    assert refused and refused[-1].subjects == [f"station:{DECIDES}"]



def _witness_job(home: Path) -> dict[str, Any]:
    """The scheduler's hourly `witness` job, once: push, then pull; its counts."""
    svc = services(home)
    try:
        result = execute("witness", svc)
    finally:
        svc.close()
    assert result.outcome == "ok", result
    return result.counts


def test_the_scheduler_witness_job_carries_out_center_holds_on_cases_by_number(
        world: World, center: RunningService) -> None:
    home = world.station(DECIDES)
    number = "邵城管罚〔2026〕第301号"  # no footage linked: the other tests' items stay due
    with serving(home) as station:
        case_id = ok_json(station.cli("case", "create", number, "--type", "行政处罚",
                                      "--unit", "城东中队", "--json", user="clerk"))["id"]
    missing = ok_json(center.cli("center", "hold", "add", "--station", DECIDES, "--case",
                                 number, "--reason", "信访调查", "--json", user="legal"), 1)
    on_officer = ok_json(center.cli("center", "hold", "add", "--station", DECIDES,
                                    "--officer", "999999", "--reason", "信访调查", "--json",
                                    user="legal"))
    first = _witness_job(home)  # pushes the case's event, places the officer's hold
    on_case = ok_json(center.cli("center", "hold", "add", "--station", DECIDES, "--case",
                                 number, "--reason", "信访调查", "--json", user="legal"))
    second = _witness_job(home)
    assert missing["error"]["code"] == "E_NOT_FOUND", "the center holds only what it knows"
    assert first["retention"]["holds"] == second["retention"]["holds"] == ["placed"]
    assert (on_case["target"], on_case["label"]) == (case_id, number)
    held = {h.source: h for h in rows(home, Hold)}
    assert (held[on_officer["id"]].scope, held[on_officer["id"]].target) == (
        "officer", "999999")
    assert (held[on_case["id"]].scope, held[on_case["id"]].target,
            held[on_case["id"]].placed_by) == ("case", case_id, "legal")
    [added] = [e for e in audit_rows(home, "hold.add")
               if e.details.get("center_hold") == on_case["id"]]
    assert added.actor == "system:scheduler" and added.details["placed_by"] == "legal"
    # Every center hold, release and decision is bound to its event, and so is every
    # hold and step a station wrote for them: `audit verify` finds nothing at either.
    verified = ok_json(center.cli("audit", "verify", "--json", user="admin"))
    assert verified["ok"] is True and verified["authority_rows"] >= 2, verified
    with serving(home) as station:
        verified = ok_json(station.cli("audit", "verify", "--json", user="admin"))
    assert verified["ok"] is True, verified
