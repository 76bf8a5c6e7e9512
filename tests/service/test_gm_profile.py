"""A station of the 国密 (gm) crypto profile end to end, through the real service and the
real OS accounts: `evidock init --profile gm`, an ingest whose renditions, seals and tree
heads are signed with SM2, an export (clip package and case record) with the SM3 layer that
the offline verifier passes under the published PEM; then rotation between profiles.
Tampering with a gm package is tests/service/test_gm_tamper.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from evidock_testing import ok_json, run_evidock, tree_snapshot, verify_offline, without_pending
from gm_support import Made, export_case, inspecting, outbox, own_copy, serve
from service_support import SERVICE_ACCOUNT
from sqlmodel import Session, select

from archive.audit.log import TreeHead
from archive.catalog.models import Rendition, Seal
from integrity import gmbag, keys, records


@pytest.fixture(scope="module")
def gm(gm_made: Made) -> Made:
    """The session's gm station (tests/gm_support.py): these tests only read it or ask
    its service, which adds audit events and writes reports beside the export."""
    return gm_made


def _sm2_id(key_id: object) -> bool:
    return keys.alg_of(key_id) == keys.SM2


# --------------------------------------------------------------------------- the station


def test_init_and_keys_show_name_the_gm_profile(gm: Made) -> None:
    assert gm.init["profile"] == "gm" and _sm2_id(gm.init["key_id"])
    assert gm.show == {"current": gm.init["key_id"], "profile": "gm", "alg": "sm2",
                       "keys": [gm.init["key_id"]]}
    published = keys.PublicKey.from_pem(gm.pem.read_bytes())
    assert (published.alg, published.key_id) == ("sm2", gm.init["key_id"])


def test_renditions_are_signed_with_sm2(gm: Made) -> None:
    with inspecting(gm.home) as svc:
        with Session(svc.catalog.engine) as s:
            rows = s.exec(select(Rendition).where(Rendition.status == "ok")).all()
        assert rows, "the camera has videos and audio: some renditions are made"
        for row in rows:
            assert row.manifest_blake3 is not None and row.key_id == gm.init["key_id"]
            doc = json.loads(svc.store.path_for(row.manifest_blake3).read_bytes())
            sig = doc["signature"]
            assert (sig["alg"], sig["key_id"]) == ("sm2", gm.init["key_id"]), row.id


def test_audit_log_tree_heads_and_seals_verify_under_sm2(gm: Made) -> None:
    with serve(gm.home) as svc:
        audit = svc.cli("audit", "verify", "--json", user="admin")
        stored = ok_json(svc.cli("verify", gm.video, "--json", user="legal"))
    report = json.loads(audit.stdout)
    assert audit.returncode == 0 and report["ok"] is True, audit.stdout + audit.stderr
    assert report["heads"] >= 1 and report["findings"] == []
    assert stored == {"target": gm.video, "ok": True, "findings": []}
    with inspecting(gm.home) as svc2:
        with Session(svc2.catalog.engine) as s:
            heads = s.exec(select(TreeHead.key_id)).all()
            seals = s.exec(select(Seal)).all()
        assert heads and all(h == gm.init["key_id"] for h in heads)
        assert seals
        for seal in seals:
            raw = svc2.store.path_for(seal.blake3).read_bytes()
            parsed = records.parse(raw, seal.subject)
            assert isinstance(parsed, records.SignedRecord), parsed
            assert parsed.key_id == gm.init["key_id"]


# --------------------------------------------------------------------------- the export


def test_the_clip_package_carries_the_gm_layer_and_verifies(gm: Made) -> None:
    pkg = gm.package
    assert {p.name for p in pkg.iterdir()} >= {*gmbag.FILES, "manifest-sha256.txt"}
    assert "Evidock-Crypto-Profile: gm\n" in (pkg / "bag-info.txt").read_text()
    sig = json.loads((pkg / gmbag.SIG).read_bytes())
    assert (sig["alg"], sig["key_id"], sig["signs"]) == ("sm2", gm.init["key_id"],
                                                         "manifest-sm3.txt")
    listed = (pkg / "manifest-sm3.txt").read_text().splitlines()
    assert len(listed) == len((pkg / "manifest-sha256.txt").read_text().splitlines())
    clip_sig = json.loads((pkg / "data" / "clip.sig.json").read_bytes())
    assert clip_sig["alg"] == "sm2"
    readme = (pkg / "data" / "README.txt").read_text(encoding="utf-8")
    assert "SM2 signatures" in readme and "SM2/SM3 国密签名" in readme
    assert "manifest-sm3.txt" in readme and "Ed25519" not in readme
    code, out, _ = verify_offline(pkg, "--key", str(gm.pem))
    assert (code, out["ok"], without_pending(out["findings"])) == (0, True, [])


def test_the_case_record_carries_the_gm_layer_and_verifies(gm: Made) -> None:
    case = gm.out / "case"
    assert {p.name for p in case.iterdir()} >= set(gmbag.FILES)
    assert "Evidock-Crypto-Profile: gm\n" in (case / "bag-info.txt").read_text()
    assert json.loads((case / "data" / "case.sig.json").read_bytes())["alg"] == "sm2"
    # A case export is verified whole: its clip packages and the case record.
    code, out, _ = verify_offline(gm.out, "--key", str(gm.pem))
    assert (code, out["ok"], without_pending(out["findings"])) == (0, True, []), out


def test_the_human_report_names_the_suite(gm: Made, tmp_path: Path) -> None:
    run = run_evidock(tmp_path / "no-home", "verify", str(gm.out), "--key", str(gm.pem))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[-2:] == ["crypto profile gm: SM2 signatures (GB/T 32918), SM3 manifests "
                          "(GB/T 32905) beside SHA-256/SHA-512", "OK: verified"]
    assert "Ed25519" not in run.stdout


def test_a_signed_report_is_sm2_and_says_so(gm: Made, tmp_path: Path) -> None:
    """A custody report made by the inspector: its detached signature is SM2 under the
    published key, and its signature section names the suite (not Ed25519)."""
    pdf = gm.out.parent / "custody.pdf"
    with serve(gm.home) as svc:
        ok_json(svc.cli("report", "custody", gm.video, "--out", str(pdf), "--json",
                        user="inspector"))
    sig = json.loads(pdf.with_name(pdf.name + ".sig.json").read_bytes())
    assert (sig["alg"], sig["key_id"]) == ("sm2", gm.init["key_id"])
    verdict = ok_json(run_evidock(tmp_path / "no-home", "verify-report", str(pdf), "--key",
                                  str(gm.pem), "--json"))
    assert verdict["ok"] is True and verdict["findings"] == []
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "SM2" in text and "Ed25519" not in text


# --------------------------------------------------------------------------- profiles


def test_init_with_the_other_profile_is_refused_and_changes_nothing(gm: Made) -> None:
    before = tree_snapshot(gm.home / "keys")
    config = (gm.home / "evidock.toml").read_bytes()
    run = run_evidock(gm.home, "init", "--profile", "default", "--account", SERVICE_ACCOUNT,
                      "--json")
    assert run.returncode != 0
    error = json.loads(run.stdout)["error"]
    assert error["code"] == "E_KEY" and "sm2" in error["message"]
    assert "keys rotate --profile default" in error["message"]
    assert tree_snapshot(gm.home / "keys") == before
    assert (gm.home / "evidock.toml").read_bytes() == config
    again = ok_json(run_evidock(gm.home, "init", "--profile", "gm", "--account",
                                SERVICE_ACCOUNT, "--json"))
    assert (again["key_id"], again["profile"]) == (gm.init["key_id"], "gm")


def test_rotating_a_default_station_to_gm(default_made: Made, tmp_path: Path) -> None:
    """Old exports keep verifying with the old key; new ones are gm; a later plain
    rotation keeps SM2. (On a copy of the session's default station: it rotates keys.)"""
    with own_copy(default_made) as made:
        _rotate_and_check(made, tmp_path)


def _rotate_and_check(made: Made, tmp_path: Path) -> None:
    old = made.init["key_id"]
    assert (made.init["profile"], keys.alg_of(old)) == ("default", "ed25519")
    assert not (made.package / gmbag.SIG).exists()
    assert "Ed25519 signatures" in (made.package / "data" / "README.txt").read_text()
    assert "Evidock-Crypto-Profile: default\n" in (made.package / "bag-info.txt").read_text()
    rotated = ok_json(run_evidock(made.home, "keys", "rotate", "--profile", "gm", "--json"))
    assert rotated["alg"] == "sm2" and _sm2_id(rotated["key_id"]) and rotated["keys"] == 2
    with serve(made.home) as svc:
        show = ok_json(svc.cli("keys", "show", "--json", user="officer"))
        new_pem = svc.cli("keys", "export-public", user="officer").stdout
    assert (show["profile"], show["current"]) == ("gm", rotated["key_id"])
    (tmp_path / "new.pem").write_text(new_pem, encoding="ascii")
    out = outbox()
    try:
        export_case(made.home, out / "after")
        after = out / "after" / f"01-{made.video}"
        assert set(gmbag.FILES) <= {p.name for p in after.iterdir()}
        # Its segments' manifest was signed before the rotation (Ed25519), its statement
        # and SM3 layer after (SM2): the recipient trusts both published keys.
        both = ("--key", str(made.pem), "--key", str(tmp_path / "new.pem"))
        code, doc, _ = verify_offline(after, *both)
        assert (code, without_pending(doc["findings"])) == (0, []), doc["findings"]
        code, doc, _ = verify_offline(out / "after", *both)
        assert (code, without_pending(doc["findings"])) == (0, []), doc["findings"]
        alone = verify_offline(after, "--key", str(tmp_path / "new.pem"))[1]
        assert [(f["code"], f["subject"]) for f in without_pending(alone["findings"])] == [
            ("E_KEY_MISMATCH", "manifest.json")]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    code, doc, _ = verify_offline(made.package, "--key", str(made.pem))  # made before
    assert (code, without_pending(doc["findings"])) == (0, []), doc["findings"]
    again = ok_json(run_evidock(made.home, "keys", "rotate", "--json"))
    assert again["alg"] == "sm2" and again["keys"] == 3
