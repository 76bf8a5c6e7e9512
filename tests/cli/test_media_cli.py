"""`evidock keys | ingest | process | export | verify` as a user runs them: exit codes,
JSON shapes, key rotation, and verification of a package on a clean machine. Exports go
through an approved request (a case numbered the Chinese way, end to end)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import ok_json, run_evidock, write_agency_config
from sqlmodel import Session, select

from archive.catalog.models import Rendition
from archive.keystore import StationKeys
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.keys import PublicKey
from integrity.package import verify_package

CASE = "邵城管罚〔2019〕第001号"


evidock = run_evidock


@dataclass
class Station:
    home: Path
    init: list[dict[str, Any]]
    show: dict[str, Any]
    pem: bytes
    pem_path: Path
    ingest: dict[str, Any]
    requested: dict[str, Any]
    approved: dict[str, Any]
    export: dict[str, Any]
    package: Path
    video_id: str


def _services(home: Path) -> Services:
    return Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))


def _link_case(home: Path, recording_id: str) -> None:
    """Case CASE with the first two seconds of the recording linked (as a clerk)."""
    svc = _services(home)
    try:
        clerk = svc.gate().by_name("clerk")
        svc.cases().create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
        svc.cases().link(clerk, CASE, recording_id, stage="调查取证", reason="现场检查",
                         start_us=0, end_us=2_000_000)
    finally:
        svc.close()


def as_user(user: str) -> dict[str, str]:
    return {"EVIDOCK_USER": user}


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree) -> Station:
    """A station that made its key, ingested the template camera (read only: no wipe),
    linked the first two seconds of a clip to case CASE and exported them: requested by
    the inspector, approved by the legal reviewer, run by the inspector."""
    root = tmp_path_factory.mktemp("station")
    home = root / "home"
    write_agency_config(home)
    init = [ok_json(evidock(home, "keys", "init", "--json")) for _ in range(2)]
    show = ok_json(evidock(home, "keys", "show", "--json"))
    run = evidock(home, "keys", "export-public")
    assert run.returncode == 0, run.stderr
    pem = run.stdout.encode()
    pem_path = root / "station.pem"
    pem_path.write_bytes(pem)
    ingest = ok_json(evidock(home, "ingest", str(camera_template.root), "--device", "ZFY0001",
                             "--json"))
    video_id = next(r["recording_id"] for r in ingest["renditions"]
                    if r["path"].endswith(".MP4"))
    _link_case(home, video_id)
    requested = ok_json(evidock(home, "export", "request", "--case", CASE, "--purpose",
                                "行政复议", "--recipient", "复议机关", "--json",
                                env=as_user("inspector")))
    approved = ok_json(evidock(home, "export", "approve", requested["id"], "--json",
                               env=as_user("legal")))
    out = root / "out"
    export = ok_json(evidock(home, "export", "run", requested["id"], "--out", str(out),
                             "--json", env=as_user("inspector")))
    return Station(home, init, show, pem, pem_path, ingest, requested, approved, export,
                   out / f"01-{video_id}", video_id)


def test_keys_init_is_idempotent_and_the_key_is_published(station: Station) -> None:
    first, second = station.init
    assert first["created"] is True and second["created"] is False
    assert first["key_id"] == second["key_id"]
    assert set(first) == {"key_id", "created", "private_key"}
    assert Path(first["private_key"]).stat().st_mode & 0o077 == 0  # private: owner only
    assert station.show == {"current": first["key_id"], "keys": [first["key_id"]]}
    assert station.pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert PublicKey.from_pem(station.pem).key_id == first["key_id"]


def test_ingest_makes_renditions(station: Station, camera_template: CameraTree) -> None:
    out = station.ingest
    assert {"session", "files", "summary", "renditions"} <= set(out)
    files = {f["recording_id"]: f for f in out["files"]}
    assert len(files) == len(camera_template.files) == len(out["renditions"])
    by_kind: dict[str, set[tuple[str, str]]] = {}
    for r in out["renditions"]:
        assert set(r) == {"recording_id", "path", "status", "code", "reason", "merkle_root",
                          "status_at_ingest"}
        assert r["recording_id"] in files and r["status_at_ingest"] == "ingested"
        kind = {"MP4": "video", "WAV": "audio", "JPG": "photo", "LOG": "log"}[
            r["path"].rsplit(".", 1)[1]]
        by_kind.setdefault(kind, set()).add((r["status"], r["code"]))
        assert (r["merkle_root"] is None) == (r["status"] != "ok")
    assert by_kind == {"video": {("ok", "R_REMUX")}, "audio": {("ok", "R_AUDIO")},
                       "photo": {("none", "R_NONE")}, "log": {("none", "R_NONE")}}


def test_process_all_is_idempotent(station: Station) -> None:
    def rows() -> list[tuple[str, str]]:
        svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(station.home)}))
        try:
            with Session(svc.catalog.engine) as s:
                return sorted((r.id, r.status) for r in s.exec(select(Rendition)))
        finally:
            svc.close()

    before = rows()
    assert len(before) == len(station.ingest["renditions"])
    assert ok_json(evidock(station.home, "process", "--all", "--json")) == {"renditions": []}
    assert rows() == before


def test_export_request_approve_run_json(station: Station) -> None:
    req, approved = station.requested, station.approved
    assert (req["status"], req["case_number"], req["requested_by"]) == (
        "pending", CASE, "inspector")
    assert [(i["recording_id"], i["range_us"]) for i in req["items"]] == [
        (station.video_id, [0, 2_000_000])]
    assert (approved["id"], approved["status"], approved["approved_by"]) == (
        req["id"], "approved", "legal")
    export = station.export
    assert set(export) == {"request_id", "out", "packages"} and export["request_id"] == req["id"]
    [package] = export["packages"]
    assert set(package) == {"dir", "export_id", "recording_id", "range_us", "link_id",
                            "segments"}
    assert package["dir"] == str(station.package) and package["segments"] == ["seg00000.mp4"]
    assert package["range_us"] == [0, 2_000_000]
    doc = json.loads((station.package.parent / "request.json").read_text(encoding="utf-8"))
    assert (doc["case_number"], doc["approved_by"], doc["purpose"], doc["recipient"]) == (
        CASE, "legal", "行政复议", "复议机关")
    assert doc["packages"][0]["export_id"] == package["export_id"]


def test_export_verify(station: Station) -> None:
    out = ok_json(evidock(station.home, "verify", str(station.package), "--key",
                          str(station.pem_path), "--json"))
    assert out == {"target": str(station.package), "ok": True, "findings": []}
    run = evidock(station.home, "verify", str(station.package))  # the package's own keyring
    assert run.returncode == 0, run.stderr
    assert "W_KEY_UNTRUSTED" in run.stdout and run.stdout.rstrip().endswith("OK: verified")


def test_tampered_package_fails_with_every_finding(station: Station, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(station.package, pkg)
    seg = pkg / "data" / "segments" / "seg00000.mp4"
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    seg.write_bytes(bytes(data))
    (pkg / "data" / "extra.bin").write_bytes(b"x")
    out = ok_json(evidock(station.home, "verify", str(pkg), "--key", str(station.pem_path),
                          "--json"), code=1)
    assert out["ok"] is False and out["target"] == str(pkg)
    for f in out["findings"]:
        assert set(f) == {"code", "message", "subject", "details"}
    assert {(f["code"], f["subject"]) for f in out["findings"]} == {
        ("E_DIGEST_MISMATCH", "seg00000.mp4"), ("E_EXTRA_FILE", "extra.bin")}


def test_package_verifies_on_a_clean_machine(station: Station, tmp_path: Path) -> None:
    """Only the package, the published key, Python and the project: no station state."""
    machine = tmp_path / "clean"
    (machine / "home").mkdir(parents=True)
    (machine / "work").mkdir()
    shutil.copytree(station.package, machine / "work" / "clip")
    shutil.copy(station.pem_path, machine / "work" / "station.pem")
    nowhere = machine / "no-evidock-home"
    env = {"HOME": str(machine / "home"), "XDG_CONFIG_HOME": str(machine / "home" / ".config"),
           "XDG_DATA_HOME": str(machine / "home" / ".local" / "share"),
           "XDG_CACHE_HOME": str(machine / "home" / ".cache")}
    run = evidock(nowhere, "verify", "clip", "--key", "station.pem", "--json", env=env,
                  cwd=machine / "work")
    out = ok_json(run)
    assert out["ok"] is True and out["findings"] == []
    assert not nowhere.exists()
    assert list((machine / "home").iterdir()) == []
    assert sorted(p.name for p in (machine / "work").iterdir()) == ["clip", "station.pem"]


def test_export_errors_are_json(station: Station, tmp_path: Path) -> None:
    home = tmp_path / "home"  # a copy: the module's station keeps its records
    shutil.copytree(station.home, home)
    svc = _services(home)
    try:
        desk, gate = svc.exports(), svc.gate()
        rid = desk.request(gate.by_name("inspector"), recording=station.video_id,
                           start="0", end="1", purpose="行政诉讼", recipient="法院").id
        desk.approve(gate.by_name("supervisor"), rid)
    finally:
        svc.close()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    out = ok_json(evidock(home, "export", "run", rid, "--out", str(busy), "--json",
                          env=as_user("inspector")), code=2)
    assert set(out) == {"error"} and set(out["error"]) == {"code", "message", "details"}
    assert "empty" in out["error"]["message"] and out["error"]["details"]["path"] == str(busy)
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]
    shown = ok_json(evidock(home, "export", "show", rid, "--json", env=as_user("inspector")))
    assert shown["status"] == "approved" and shown["exports"] == []  # still unused


def test_rotation_keeps_old_signatures_verifiable(station: Station, tmp_path: Path) -> None:
    home = tmp_path / "home"  # a copy: the module's station keeps its single key
    shutil.copytree(station.home, home)
    old = station.show["current"]
    rotated = ok_json(evidock(home, "keys", "rotate", "--json"))
    assert set(rotated) == {"key_id", "keys"} and rotated["keys"] == 2
    assert rotated["key_id"] != old
    show = ok_json(evidock(home, "keys", "show", "--json"))
    assert show["current"] == rotated["key_id"] and set(show["keys"]) == {old, rotated["key_id"]}
    ring = StationKeys(directory=home / "keys").keyring()
    assert ring.current == rotated["key_id"]
    new_pem = tmp_path / "new.pem"
    new_pem.write_bytes(ring.current_key.to_pem())  # what `keys export-public` publishes

    # The package exported before the rotation: the rotated keyring still vouches for it,
    # and so does the old published key; the new key alone does not.
    assert verify_package(station.package, trusted=ring.by_id()) == []
    out = ok_json(evidock(home, "verify", str(station.package), "--key",
                          str(station.pem_path), "--json"))
    assert out["ok"] is True
    run = evidock(home, "verify", str(station.package), "--key", str(new_pem))
    assert run.returncode == 1, run.stderr
    assert "E_KEY_MISMATCH [manifest.json]" in run.stdout
    assert run.stdout.rstrip().endswith("FAILED: 1 finding(s)")
    # Stored recordings signed with the old key verify against the station keyring.
    out = ok_json(evidock(home, "verify", station.video_id, "--json"))
    assert out == {"target": station.video_id, "ok": True, "findings": []}


def test_verify_of_a_missing_package_creates_nothing(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-home"
    run = evidock(nowhere, "verify", str(tmp_path / "typo" / "clip"), "--json")
    assert run.returncode != 0
    assert not nowhere.exists()


def test_verify_with_an_unreadable_key_file_is_a_one_line_error(station: Station,
                                                                tmp_path: Path) -> None:
    run = evidock(tmp_path / "no-home", "verify", str(station.package), "--key",
                  str(tmp_path / "missing.pem"), "--json")
    assert run.returncode == 2, run.stderr
    assert json.loads(run.stdout)["error"]["code"] == "E_KEY"
