"""A catalog that lies is caught (issue 19, item 6).

Whoever can write the catalog file (root with sqlite3, dropping triggers where needed)
changes a recording's officer, camera, camera start or ingest time, inserts a recording
on an existing blob, edits a dock session or a file outcome, or loses the WAL after a
wiping offload. Each is a named finding of `verify REC`, `audit verify` and
`fixity --all`, because what each row is was signed by the station at ingest and kept
in the store (archive/seals.py), and the log names each signed record.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from evidock_testing import REPO, StepClock, migrated_home

from archive.catalog import Catalog, Recording
from archive.fixity import Fixity, FixityPlan
from archive.sealcheck import SealCheck, verify_catalog
from archive.seals import recording_body
from archive.verify_stored import StoredVerifier
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from ingest.outcome import OffloadRequest
from integrity.findings import Finding

DEVICE = "ZFY0001"


@pytest.fixture(scope="module")
def offloaded(tmp_path_factory: pytest.TempPathFactory,
              camera_template: CameraTree) -> tuple[Path, datetime]:
    """A station after one wiping offload (as a dock does it), made once: its home and
    the last reading of its clock. Tests change only copies (see ``ingested``)."""
    root = tmp_path_factory.mktemp("catalog-lies")
    camera = root / "camera"
    shutil.copytree(camera_template.root, camera, symlinks=True)
    home = migrated_home(root / "home")
    clock = StepClock()
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=clock)
    try:
        report = svc.offloader().run(OffloadRequest(
            source=camera, device_serial=DEVICE, officer_id="123456",
            wipe_after_verify=True))
    finally:
        svc.close()
    assert report.outcome in ("completed", "findings"), report.error
    assert any(f.wiped for f in report.files), "a wiping offload"
    return home, clock.now


@pytest.fixture
def ingested(offloaded: tuple[Path, datetime], tmp_path: Path) -> Iterator[Services]:
    """This test's own copy of that station, its services open, their clock going on
    from where the offload's stopped."""
    template, now = offloaded
    home = tmp_path / "home"
    shutil.copytree(template, home)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(now))
    yield svc
    svc.close()


def _catalog_path(svc: Services) -> Path:
    return svc.settings.home / "catalog.sqlite3"


def _as_root(svc: Services, *sql: str) -> None:
    """What anyone who can write the catalog file does, outside evidock."""
    db = sqlite3.connect(_catalog_path(svc), isolation_level=None)
    try:
        for stmt in sql:
            db.execute(stmt)
    finally:
        db.close()


def _codes(findings: list[Finding] | tuple[Finding, ...]) -> set[str]:
    return {str(f.code) for f in findings}


def _all_three(svc: Services, rec_id: str | None = None) -> dict[str, list[Finding]]:
    """The findings of `verify REC` (when given), `audit verify`, `fixity --all`."""
    keyring = svc.keys.keyring()
    out = {"audit": list(verify_catalog(svc.catalog, svc.store, keyring=keyring).findings),
           "fixity": list(Fixity(catalog=svc.catalog, store=svc.store, audit=svc.audit(),
                                 clock=svc.clock).run(FixityPlan("all"), actor="t").findings)}
    if rec_id is not None:
        out["verify"] = StoredVerifier(store=svc.store, catalog=svc.catalog,
                                       keys=svc.keys).verify(rec_id)
    return out


def _mismatch(findings: list[Finding], field: str) -> Finding:
    hits = [f for f in findings if f.code == "E_CATALOG_MISMATCH"
            and f.details.get("field") == field]
    assert hits, (field, [str(f) for f in findings])
    return hits[0]


def test_an_honest_catalog_has_no_findings(ingested: Services) -> None:
    found = _all_three(ingested, ingested.catalog.recordings()[0].id)
    assert found == {"audit": [], "fixity": [], "verify": []}
    check = SealCheck(catalog=ingested.catalog, store=ingested.store,
                      keyring=ingested.keys.keyring()).everything()
    assert check.recordings == len(ingested.catalog.recordings()) > 0
    assert check.sessions == 1 and len(check.heads) == 2, "sealed before the wipe and at end"


def test_the_station_key_exists_from_init_so_the_first_offload_is_signed(
        tmp_path: Path, camera: Path) -> None:
    home = tmp_path / "station"
    run = subprocess.run([sys.executable, "-m", "evidock", "init", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env=dict(os.environ, EVIDOCK_HOME=str(home),
                                  EVIDOCK_SERVICE__ACCOUNT="root"))
    assert run.returncode == 0, run.stderr
    assert (home / "keys" / "station.key").is_file() and (home / "keys" / "keyring.json")
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock())
    try:
        svc.offloader().run(OffloadRequest(source=camera, device_serial=DEVICE,
                                           wipe_after_verify=True))
        assert svc.audit().heads(), "a signed head before the first wipe"
        assert not _all_three(svc)["audit"]
    finally:
        svc.close()


@pytest.mark.parametrize(("field", "sql_value", "shown"), [
    ("officer_id", "'999999'", "999999"),
    ("device_serial", "'ZFY0666'", "ZFY0666"),
    ("camera_start", "'2026-01-01 00:00:00.000000'", "2026-01-01T00:00:00.000000Z"),
    # Backdated: retention would find it long overdue.
    ("ingested_at", "'2019-01-01 00:00:00.000000'", "2019-01-01T00:00:00.000000Z"),
])
def test_a_recording_field_edited_in_the_database_is_named(
        ingested: Services, field: str, sql_value: str, shown: str) -> None:
    rec = ingested.catalog.recordings()[0]
    signed = recording_body(rec)
    assert signed[field] not in (None, shown)
    _as_root(ingested, "DROP TRIGGER no_update_recording",
             f"UPDATE recording SET {field} = {sql_value} WHERE id = '{rec.id}'")
    found = _all_three(ingested, rec.id)
    for name, findings in found.items():
        hit = _mismatch(findings, field)
        assert hit.subject == f"recording:{rec.id}", name
        assert hit.details["catalog"] == shown, name
        assert hit.details["signed"] == signed[field], name


def test_a_recording_inserted_on_an_existing_blob_is_unsigned(ingested: Services) -> None:
    rec = ingested.catalog.recordings()[0]
    _as_root(ingested, "INSERT INTO recording (id, session_id, device_serial, officer_id, "
             "original_path, original_display, kind, size, blake3, sha256, camera_start, "
             "source_mtime_ns, ingested_at, status, flags, reason) SELECT 'forged', "
             "session_id, device_serial, '999999', X'666F72676564', 'forged', kind, size, "
             "blake3, sha256, camera_start, source_mtime_ns, ingested_at, status, flags, "
             f"reason FROM recording WHERE id = '{rec.id}'")
    found = _all_three(ingested, "forged")
    for name, findings in found.items():
        assert [f.subject for f in findings if f.code == "E_CATALOG_UNSIGNED"] == [
            "recording:forged"], (name, [str(f) for f in findings])
        assert not [f for f in findings if f.subject == f"recording:{rec.id}"], name


def test_a_forged_seal_row_pointing_at_another_record_is_named(ingested: Services) -> None:
    first, second = ingested.catalog.recordings()[:2]
    _as_root(ingested, "DROP TRIGGER no_update_seal",
             f"UPDATE seal SET subject = '{second.id}' WHERE subject = '{first.id}'")
    verify = _all_three(ingested, second.id)["verify"]
    assert {"E_CATALOG_MISMATCH", "E_CATALOG_UNSIGNED"} <= _codes(verify), verify
    assert _all_three(ingested, first.id)["verify"][0].code == "E_CATALOG_UNSIGNED"


def test_dock_session_and_file_outcomes_are_guarded_then_checked(ingested: Services) -> None:
    with pytest.raises(sqlite3.DatabaseError, match="docksession"):
        _as_root(ingested, "UPDATE docksession SET officer_id = '999999'")
    with pytest.raises(sqlite3.DatabaseError, match="docksession"):
        _as_root(ingested, "UPDATE docksession SET outcome = 'completed'")
    with pytest.raises(sqlite3.DatabaseError, match="docksession"):
        _as_root(ingested, "DELETE FROM docksession")
    with pytest.raises(sqlite3.DatabaseError, match="sessionfile is append-only"):
        _as_root(ingested, "UPDATE sessionfile SET status = 'skipped'")
    with pytest.raises(sqlite3.DatabaseError, match="sessionfile is append-only"):
        _as_root(ingested, "DELETE FROM sessionfile")
    # Past the triggers (dropped, as root can): the signed session record names it.
    _as_root(ingested, "DROP TRIGGER keep_docksession", "DROP TRIGGER no_update_sessionfile",
             "UPDATE docksession SET officer_id = '999999', outcome = 'interrupted'",
             "UPDATE sessionfile SET status = 'skipped' WHERE id = (SELECT min(id) FROM "
             "sessionfile)")
    for name in ("audit", "fixity"):
        findings = _all_three(ingested)[name]
        assert _mismatch(findings, "officer_id").details["catalog"] == "999999"
        assert _mismatch(findings, "outcome").details["catalog"] == "interrupted"
        hit = _mismatch(findings, "files[0].status")
        assert (hit.details["catalog"], hit.subject.startswith("session:")) == (
            "skipped", True)


_WIPING_OFFLOAD = textwrap.dedent("""
    import os, sys
    from config import load_settings
    from evidock.wiring import Services
    from ingest.outcome import OffloadRequest
    svc = Services.from_config(load_settings())
    report = svc.offloader().run(OffloadRequest(source=sys.argv[1], device_serial="ZFY0001",
                                                wipe_after_verify=True))
    print(sum(f.wiped for f in report.files), flush=True)
    os._exit(0)  # the catalog's connections die with the WAL not checkpointed
""")


def test_losing_the_wal_after_a_wiping_offload_is_reported(
        ingested: Services, tmp_path: Path, camera_template: object) -> None:
    from fixtures.camera import CameraTree, build_camera

    assert isinstance(camera_template, CameraTree)
    second = build_camera(tmp_path / "cam2", scheme="A", serial=DEVICE, officer="123456",
                          start=camera_template.files[0].start.replace(year=2025))
    before = {r.id for r in ingested.catalog.recordings()}
    ingested.catalog.close()  # checkpoints: the first offload is in the main file
    home = ingested.settings.home
    run = subprocess.run([sys.executable, "-c", _WIPING_OFFLOAD, str(second.root)],
                         capture_output=True, text=True, timeout=300, cwd=REPO,
                         env=dict(os.environ, EVIDOCK_HOME=str(home)))
    assert run.returncode == 0, run.stderr
    wiped = int(run.stdout.split()[-1])
    assert wiped >= 4
    wal = home / "catalog.sqlite3-wal"
    assert wal.stat().st_size > 0
    wal.unlink()
    (home / "catalog.sqlite3-shm").unlink(missing_ok=True)
    svc = Services.from_config(ingested.settings, clock=StepClock())
    try:
        assert {r.id for r in svc.catalog.recordings()} == before, "the rows are gone"
        found = _all_three(svc)
    finally:
        svc.close()
    for name in ("audit", "fixity"):
        lost = [f for f in found[name] if f.code == "E_CATALOG_ROW_MISSING"]
        recordings = {f.subject for f in lost if f.subject.startswith("recording:")}
        assert len(recordings) >= wiped, (name, [str(f) for f in found[name]])
        assert any(f.subject.startswith("session:") for f in lost), name
        assert all(f.details["signed"]["device_serial"] == DEVICE for f in lost), name
    truncated = [f for f in found["audit"] if f.code == "E_AUDIT_TRUNCATED"]
    assert truncated and all(f.subject.startswith("sealed:session:") for f in truncated)


def test_a_record_deleted_from_the_store_is_named(ingested: Services) -> None:
    rec: Recording = ingested.catalog.recordings()[0]
    (b3,) = [row[0] for row in sqlite3.connect(_catalog_path(ingested)).execute(
        "SELECT blake3 FROM seal WHERE subject = ?", (rec.id,))]
    path = ingested.store.path_for(b3)
    path.unlink()
    verify = _all_three(ingested, rec.id)["verify"]
    assert [(f.code, f.subject) for f in verify] == [("E_MISSING_FILE", f"recording:{rec.id}")]


def test_catalog_stays_openable(ingested: Services) -> None:
    Catalog.open(ingested.settings.catalog_url).close()


def test_through_the_service_the_lie_is_a_finding_for_the_people_who_check(
        ingested: Services) -> None:
    """Root edits the catalog file; `evidock verify REC` (legal) and `evidock audit
    verify` (supervisor), asked of the real service as their own OS accounts, name it."""
    from evidock_testing import write_agency_config
    from service_support import serving

    rec = ingested.catalog.recordings()[0]
    home = ingested.settings.home
    ingested.close()
    write_agency_config(home)
    _as_root(ingested, "DROP TRIGGER no_update_recording",
             f"UPDATE recording SET officer_id = '999999' WHERE id = '{rec.id}'")
    with serving(home) as svc:
        verify = svc.cli("verify", rec.id, "--json", user="legal")
        audit = svc.cli("audit", "verify", "--json", user="supervisor")
    for run in (verify, audit):
        assert run.returncode == 1, (run.stdout, run.stderr)
        [hit] = [f for f in json.loads(run.stdout)["findings"]
                 if f["code"] == "E_CATALOG_MISMATCH"]
        assert (hit["subject"], hit["details"]["field"], hit["details"]["catalog"],
                hit["details"]["signed"]) == (f"recording:{rec.id}", "officer_id", "999999",
                                              "123456")
