"""Rows that carry authority are believed only if the audit log vouches for them.

The attacker here has the database (root, the sqlite3 shell) but not the signed log:
an approval, a case link and a hold release written straight into the catalog. Through
the real service as the real OS accounts: `export run` refuses the forged approval and
the forged link (audited, nothing leaves), the forged release ends no hold (retention
keeps holding), and `audit verify` names each row. A row changed or deleted behind the
triggers' back is a mismatch / a missing row.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import offloaded_home, ok_json, open_services, write_agency_config
from pg_support import connect, pg_cluster
from service_support import audit_rows, open_dir, serving
from sqlmodel import Session, col, select

from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition
from archive.keystore import StationKeys
from archive.sealcheck import verify_catalog
from archive.store import ContentStore
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from records.models import CaseLink

CASE = "邵城管罚〔2019〕第077号"
NOW = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
EARLY = "2000-01-01 00:00:00.000000"
LATER = "2099-01-01 00:00:00.000000"


@dataclass
class Attack:
    home: Path
    videos: list[str]
    forged: dict[str, int] = field(default_factory=dict)  # what → row id
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    holds: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    outbox: Path = Path()


def _sql(home: Path, statement: str) -> int:
    """Run ``statement`` with the sqlite3 shell as root; the new row's id."""
    done = subprocess.run(["sqlite3", str(home / "catalog.sqlite3"),
                           f"{statement}; SELECT last_insert_rowid();"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def _prepare(home: Path, camera: Path) -> list[str]:
    offloaded_home(home, camera)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        with Session(svc.catalog.engine) as s:
            videos = list(s.exec(select(Recording.id).join(
                Rendition, col(Rendition.recording_id) == col(Recording.id)).where(
                Recording.kind == "video", Rendition.status == "ok")
                .order_by(col(Recording.id))).unique())
        clerk = svc.gate().by_name("clerk")
        svc.cases().create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
        svc.cases().link(clerk, CASE, videos[0], stage="调查取证", reason="现场检查",
                         start_us=0, end_us=2_000_000)
    finally:
        svc.close()
    assert len(videos) >= 2
    return videos


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory,
           camera_template: CameraTree) -> Iterator[Attack]:
    home = tmp_path_factory.mktemp("authority") / "home"
    st = Attack(home, _prepare(home, camera_template.root), outbox=open_dir("evidock-auth-"))
    st.outbox.chmod(0o1777)
    with serving(home) as svc:
        def cli(*args: str, user: str) -> subprocess.CompletedProcess[str]:
            return svc.cli(*args, "--json", user=user)

        req = ok_json(cli("export", "request", "--recording", st.videos[0], "--purpose",
                          "行政复议", "--recipient", "复议机关", user="inspector"))["id"]
        st.forged["approval"] = _sql(home, "INSERT INTO exportdecision (request_id, "
                                     "decision, actor, reason, valid_until, exports, at) "
                                     f"VALUES ('{req}', 'approved', 'legal', '', "
                                     f"'{LATER}', '[]', '{NOW}')")
        st.runs["approval"] = cli("export", "run", req, "--out",
                                  str(st.outbox / "approval"), user="inspector")
        st.forged["link"] = _sql(home, "INSERT INTO caselink (case_id, recording_id, action, "
                                 "stage, actor, reason, at) VALUES ("
                                 f"(SELECT id FROM casefile WHERE number = '{CASE}'), "
                                 f"'{st.videos[1]}', 'link', '调查取证', "
                                 f"'clerk', '旧数据', '{EARLY}')")
        case_req = ok_json(cli("export", "request", "--case", CASE, "--purpose", "行政复议",
                               "--recipient", "复议机关", user="inspector"))["id"]
        ok_json(cli("export", "approve", case_req, user="legal"))
        st.runs["link"] = cli("export", "run", case_req, "--out", str(st.outbox / "link"),
                              user="inspector")
        hold = ok_json(cli("hold", "add", "--recording", st.videos[0], "--reason", "诉讼",
                           user="legal"))["id"]
        st.forged["release"] = _sql(home, "INSERT INTO holdrelease (hold_id, released_by, "
                                    f"reason, at) VALUES ('{hold}', 'supervisor', '结束', "
                                    f"'{NOW}')")
        st.holds = ok_json(cli("hold", "list", "--all", user="supervisor"))["holds"]
        st.verify = ok_json(cli("audit", "verify", user="admin"), 1)
    yield st


def _findings(report: dict[str, Any]) -> dict[str, str]:
    return {f["subject"]: f["code"] for f in report["findings"]}


def test_export_run_refuses_an_approval_no_audit_event_vouches_for(attack: Attack) -> None:
    run = attack.runs["approval"]
    error = json.loads(run.stdout)["error"]
    assert (run.returncode, error["code"]) == (3, "E_NOT_APPROVED"), run.stdout
    assert f"approved decision {attack.forged['approval']} by legal" in error["message"]
    assert list(attack.outbox.iterdir()) == []  # nothing left the archive
    refused = [e for e in audit_rows(attack.home, "access.refused")
               if "no audit event vouches" in str(e.details.get("why"))]
    assert len(refused) == 2 and refused[0].actor == "user:inspector"


def test_export_run_refuses_to_carry_a_link_written_into_the_catalog(attack: Attack) -> None:
    run = attack.runs["link"]
    error = json.loads(run.stdout)["error"]
    assert (run.returncode, error["code"]) == (3, "E_NOT_APPROVED"), run.stdout
    assert f"case link {attack.forged['link']} of recording {attack.videos[1]}" \
        in error["message"]
    assert not audit_rows(attack.home, "export.run")


def test_a_forged_release_ends_no_hold(attack: Attack) -> None:
    [hold] = attack.holds
    assert (hold["active"], hold["released_by"]) == (True, None)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(attack.home)}))
    try:  # what the retention planner and executor are given
        assert [h.hold_id for h in svc.holds().active()] == [hold["id"]]
    finally:
        svc.close()


def test_forged_retention_steps_schedule_and_approve_nothing(attack: Attack) -> None:
    for step, actor in (("scheduled", "supervisor"), ("approved", "supervisor2")):
        _sql(attack.home, "INSERT INTO retentionaction (recording_id, step, rule, reason, "
             f"due_at, actor, at) VALUES ('{attack.videos[1]}', '{step}', 'default', "
             f"'伪造', '{EARLY}', '{actor}', '{NOW}')")
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(attack.home)}))
    try:  # what `retention run` would delete
        assert svc.retention().pending(datetime.now(UTC)) == []
        report = verify_catalog(svc.catalog, svc.store, keyring=svc.keys.keyring())
    finally:
        svc.close()
    forged = [f.subject for f in report.findings if f.code == "E_CATALOG_UNSIGNED"
              and str(f.subject).startswith("retentionaction:")]
    assert len(forged) == 2


def test_audit_verify_names_each_forged_row_and_nothing_else(attack: Attack) -> None:
    assert attack.verify["ok"] is False and attack.verify["authority_rows"] == 6
    assert _findings(attack.verify) == {
        f"exportdecision:{attack.forged['approval']}": "E_CATALOG_UNSIGNED",
        f"caselink:{attack.forged['link']}": "E_CATALOG_UNSIGNED",
        f"holdrelease:{attack.forged['release']}": "E_CATALOG_UNSIGNED"}


def test_a_row_changed_or_deleted_behind_the_triggers_is_named(attack: Attack) -> None:
    db = str(attack.home / "catalog.sqlite3")
    subprocess.run(["sqlite3", db, "DROP TRIGGER no_update_caselink; "
                    "UPDATE caselink SET end_us = 60000000 WHERE id = 1; "
                    "DROP TRIGGER no_delete_exportdecision; "
                    "DELETE FROM exportdecision WHERE decision = 'approved' "
                    f"AND id != {attack.forged['approval']}"], check=True)
    catalog = Catalog.open(f"sqlite:///{db}")
    try:
        with Session(catalog.engine) as s:
            approval = s.exec(select(CaseLink).where(CaseLink.id == 1)).one()
        keyring = StationKeys(directory=attack.home / "keys").keyring()
        report = verify_catalog(catalog, ContentStore(root=attack.home / "store"),
                                keyring=keyring)
    finally:
        catalog.close()
    found = _findings(report.to_dict())
    assert approval.end_us == 60_000_000
    assert found["caselink:1"] == "E_CATALOG_MISMATCH"
    missing = [k for k, v in found.items() if v == "E_CATALOG_ROW_MISSING"]
    assert len(missing) == 1 and missing[0].startswith("exportdecision:")


def test_bindings_hold_on_postgres(tmp_path: Path) -> None:
    """The same binding on PostgreSQL (timestamptz, its own JSON text): a hold placed
    through the desk verifies; a release inserted with psycopg ends nothing."""
    home = tmp_path / "home"
    write_agency_config(home)
    with pg_cluster() as new_database:
        svc = open_services(load_settings(environ={
            "EVIDOCK_HOME": str(home), "EVIDOCK_PATHS__CATALOG_URL": new_database()}))
        try:
            svc.keys.init()
            hold = svc.holds().add(svc.gate().by_name("legal"), scope="officer",
                                   target="123456", reason="诉讼")
            keyring = svc.keys.keyring()
            clean = verify_catalog(svc.catalog, svc.store, keyring=keyring)
            with connect(svc.catalog.engine.url) as conn:
                conn.execute("INSERT INTO holdrelease (hold_id, released_by, reason, at) "
                             "VALUES (%s, 'supervisor', '结束', now())", (hold.id,))
            active = [h.hold_id for h in svc.holds().active()]
            forged = verify_catalog(svc.catalog, svc.store, keyring=keyring)
        finally:
            svc.close()
    assert (clean.ok, clean.authority) == (True, 1), clean.findings
    assert active == [hold.id]
    assert [(str(f.code), str(f.subject).partition(":")[0]) for f in forged.findings] == [
        ("E_CATALOG_UNSIGNED", "holdrelease")]
