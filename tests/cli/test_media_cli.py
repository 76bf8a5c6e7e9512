"""`evidock keys | ingest | process | recover | export | verify` as a user runs them:
exit codes, JSON shapes, key rotation, and verification of a package on a clean machine.
`keys init|rotate` are the operator's (this root process); the rest asks a real station
service as the agency's own OS accounts. Exports go through an approved request (a
case numbered the Chinese way, end to end)."""

from __future__ import annotations

import atexit
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import ok_json, run_evidock, without_pending, write_agency_config
from service_support import audit_events, open_copy, open_dir, serving
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


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree) -> Station:
    """A station that made its key, ingested the template camera (read only: no wipe),
    linked the first two seconds of a clip to case CASE and exported them: requested by
    the inspector, approved by the legal reviewer, run by the inspector."""
    root = tmp_path_factory.mktemp("station")
    home = root / "home"
    write_agency_config(home)
    # The key files are the operator's (this root process); the rest goes through the
    # station service as the agency's own accounts.
    init = [ok_json(evidock(home, "keys", "init", "--json")) for _ in range(2)]
    with open_copy(camera_template.root) as camera, serving(home) as svc:
        show = ok_json(svc.cli("keys", "show", "--json", user="officer"))
        run = svc.cli("keys", "export-public", user="officer")
        assert run.returncode == 0, run.stderr
        ingest = ok_json(svc.cli("ingest", str(camera), "--device", "ZFY0001", "--json",
                                 user="clerk"))
    pem = run.stdout.encode()
    pem_path = root / "station.pem"
    pem_path.write_bytes(pem)
    video_id = next(r["recording_id"] for r in ingest["renditions"]
                    if r["path"].endswith(".MP4"))
    _link_case(home, video_id)
    requested, approved, export, out = _export(home)
    return Station(home, init, show, pem, pem_path, ingest, requested, approved, export,
                   out / f"01-{video_id}", video_id)


def _outbox() -> Path:
    """A directory every test account may make its --out in (like /tmp), removed when
    the tests end."""
    outbox = open_dir("evidock-media-out-")
    outbox.chmod(0o1777)
    atexit.register(shutil.rmtree, outbox, True)
    return outbox


def _export(home: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Path]:
    """CASE exported through the station service, each step by the CLI as the OS
    account of its user: requested by the inspector, approved by the legal reviewer,
    run (and downloaded into OUT) by the inspector."""
    out = _outbox() / "out"
    with serving(home) as svc:
        requested = ok_json(svc.cli("export", "request", "--case", CASE, "--purpose",
                                    "行政复议", "--recipient", "复议机关", "--json",
                                    user="inspector"))
        approved = ok_json(svc.cli("export", "approve", requested["id"], "--json",
                                   user="legal"))
        export = ok_json(svc.cli("export", "run", requested["id"], "--out", str(out),
                                 "--json", user="inspector"))
    return requested, approved, export, out


def test_keys_init_is_idempotent_and_the_key_is_published(station: Station) -> None:
    first, second = station.init
    assert first["created"] is True and second["created"] is False
    assert first["key_id"] == second["key_id"]
    assert set(first) == {"key_id", "created", "private_key", "alg"}
    assert first["alg"] == "ed25519"  # the default profile
    assert Path(first["private_key"]).stat().st_mode & 0o077 == 0  # private: owner only
    assert station.show == {"current": first["key_id"], "keys": [first["key_id"]],
                            "profile": "default", "alg": "ed25519"}
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
    with serving(station.home) as svc:
        assert ok_json(svc.cli("process", "--all", "--json")) == {"renditions": []}
        again = ok_json(svc.cli("process", station.video_id, "--json", user="officer"))
        human = svc.cli("process", station.video_id, user="officer")
        # The clip is linked to a case of 城东中队: not for clerk2 (城西中队) to name.
        other_unit = svc.cli("process", station.video_id, "--json", user="clerk2")
        nothing = svc.cli("process", "--json")
    assert [(r["recording_id"], r["status"]) for r in again["renditions"]] == [
        (station.video_id, "ok")]
    assert human.returncode == 0 and human.stdout.startswith("ok      R_REMUX")
    assert other_unit.returncode == 3
    assert json.loads(other_unit.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert nothing.returncode == 1
    assert json.loads(nothing.stdout)["error"]["code"] == "E_NOT_FOUND"
    assert rows() == before


def test_recover_and_verify_a_stored_recording(station: Station, tmp_path: Path) -> None:
    """Salvage and stored verification run in the service; naming a recording the user
    may not see is refused (and audited), as for every other read."""
    home = tmp_path / "home"  # a copy: the module's station keeps its records
    shutil.copytree(station.home, home)
    photo = next(r["recording_id"] for r in station.ingest["renditions"]
                 if r["path"].endswith(".JPG"))
    with serving(home) as svc:
        salvaged = ok_json(svc.cli("recover", station.video_id, "--json", user="clerk"))
        no_video = ok_json(svc.cli("recover", photo, "--json", user="clerk"), code=1)
        verified = ok_json(svc.cli("verify", station.video_id, "--json", user="legal"))
        human = svc.cli("verify", station.video_id, user="officer")
        refused = {u: svc.cli("verify", station.video_id, "--json", user=u)
                   for u in ("admin", "clerk2")}
        missing = svc.cli("verify", "no-such-recording", "--json", user="legal")
    assert set(salvaged) == {"derivative_id", "status", "code", "reason", "label", "blake3"}
    assert (salvaged["status"], salvaged["code"]) == ("ok", "R_SALVAGED")
    assert (no_video["status"], no_video["code"]) == ("failed", "E_RECOVERY_EMPTY")
    assert verified == {"target": station.video_id, "ok": True, "findings": []}
    assert human.returncode == 0 and human.stdout == "OK: verified\n"
    for run in refused.values():
        assert run.returncode == 3 and json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "E_NOT_FOUND"
    reads = [(actor, d) for actor, d in audit_events(home, "read.recording.verify")]
    assert reads == [("user:legal", {"findings": 0, "failed": 0}),
                     ("user:officer", {"findings": 0, "failed": 0})]


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
    assert (out["target"], out["ok"], without_pending(out["findings"])) == (
        str(station.package), True, [])
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
    assert {(f["code"], f["subject"]) for f in without_pending(out["findings"])} == {
        ("E_DIGEST_MISMATCH", "seg00000.mp4"), ("E_EXTRA_FILE", "data/extra.bin"),
        ("E_BAG_OXUM", "bag-info.txt")}  # one payload file more than bag-info.txt says


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
    assert out["ok"] is True and without_pending(out["findings"]) == []
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
    busy = _outbox() / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with serving(home) as service:
        out = ok_json(service.cli("export", "run", rid, "--out", str(busy), "--json",
                                  user="inspector"), code=2)
        assert set(out) == {"error"} and set(out["error"]) == {"code", "message", "details"}
        assert "empty" in out["error"]["message"]
        assert out["error"]["details"]["path"] == str(busy)
        assert [p.name for p in busy.iterdir()] == ["mine.txt"]
        shown = ok_json(service.cli("export", "show", rid, "--json", user="inspector"))
    assert shown["status"] == "approved" and shown["exports"] == []  # still unused


def test_rotation_keeps_old_signatures_verifiable(station: Station, tmp_path: Path) -> None:
    home = tmp_path / "home"  # a copy: the module's station keeps its single key
    shutil.copytree(station.home, home)
    old = station.show["current"]
    rotated = ok_json(evidock(home, "keys", "rotate", "--json"))  # the operator (root)
    assert set(rotated) == {"key_id", "keys", "alg"} and rotated["keys"] == 2
    assert rotated["alg"] == "ed25519"  # the same suite as before
    assert rotated["key_id"] != old
    with serving(home) as svc:
        show = ok_json(svc.cli("keys", "show", "--json", user="legal"))
        # Stored recordings signed with the old key verify against the station keyring.
        stored = ok_json(svc.cli("verify", station.video_id, "--json", user="legal"))
    assert show["current"] == rotated["key_id"] and set(show["keys"]) == {old, rotated["key_id"]}
    ring = StationKeys(directory=home / "keys").keyring()
    assert ring.current == rotated["key_id"]
    new_pem = tmp_path / "new.pem"
    new_pem.write_bytes(ring.current_key.to_pem())  # what `keys export-public` publishes

    # The package exported before the rotation: the rotated keyring still vouches for it,
    # and so does the old published key; the new key alone does not.
    assert without_pending(verify_package(station.package, trusted=ring.by_id())) == []
    out = ok_json(evidock(home, "verify", str(station.package), "--key",
                          str(station.pem_path), "--json"))
    assert out["ok"] is True
    run = evidock(home, "verify", str(station.package), "--key", str(new_pem))
    assert run.returncode == 1, run.stderr
    # Every station signature in the package (the segments' manifest, the clip's
    # statement, the derivative's, the audit bundle's) is the old key's: each is a
    # key finding under the new key alone, and there is no other finding.
    findings = run.stdout.rstrip().splitlines()
    assert "E_KEY_MISMATCH [manifest.json]: manifest was not signed by the given key" \
        in findings
    assert any(f.startswith("E_KEY_MISMATCH [clip.json]") for f in findings)
    assert all(f.startswith(("E_KEY_MISMATCH [", "W_TIMESTAMP_PENDING [", "timestamp "))
               for f in findings[:-1])  # a token is the TSA's, not the station's
    failed = [f for f in findings[:-1] if f.startswith("E_")]
    assert findings[-1] == f"FAILED: {len(failed)} finding(s)"
    assert stored == {"target": station.video_id, "ok": True, "findings": []}


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
