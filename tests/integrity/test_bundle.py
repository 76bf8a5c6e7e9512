"""The audit bundle in every export package, checked offline (integrity/bundle.py).

A real station (real ffmpeg footage, real SQLite) exports a case; the recording was
once linked to a 国家秘密 case the requester may not see (and unlinked), so the events
of that link are in the bundle as hidden leaves. The bundle verifies with only the
station's public key; each tampering is a named finding: a changed event, a removed
event, another head, another key, and in the package a changed or removed bundle.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import offloaded_home, run_evidock, without_pending
from station_homes import SECRETARY, export_case, first_video

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.bundle import NAME, check_bundle
from integrity.keys import KeyPair, PublicKey
from integrity.package import verify_package

CASE = "邵城管罚〔2019〕第101号"
SECRET = "邵城管罚〔2019〕第901号"
EXTRA = SECRETARY


@dataclass
class Made:
    home: Path
    package: Path  # one clip package of the case export
    doc: dict[str, Any]  # its audit bundle, parsed
    keys: dict[str, PublicKey]  # the station's published key
    later_head: dict[str, Any]  # a valid head the station signed after the export
    pem: Path


def _export(svc: Services, out: Path) -> Path:
    """The video once linked to a secret case (and unlinked), then exported in CASE."""
    video = first_video(svc)
    who = svc.gate().by_name
    cases = svc.cases()
    cases.create(who("secretary"), number=SECRET, case_type="行政处罚", unit="城东中队",
                 sensitivity="国家秘密")
    link = cases.link(who("secretary"), SECRET, video, stage="调查取证", reason="涉密")
    cases.unlink(who("secretary"), link.id, reason="误关联")
    return export_case(svc, out, video, CASE)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory,
         camera_template: CameraTree) -> Iterator[Made]:
    root = tmp_path_factory.mktemp("bundle")
    home = root / "home"
    offloaded_home(home, camera_template.root, extra_toml=EXTRA)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        package = _export(svc, root / "out")
        svc.audit().record(actor="system:test", action="test.later", subjects=[], details={},
                           at=svc.clock())
        later = svc.audit().sign_head(at=svc.clock()).to_dict()
        public = svc.keys.keyring().current_key
    finally:
        svc.close()
    (root / "station.pem").write_bytes(public.to_pem())
    doc = json.loads((package / "data" / NAME).read_bytes())
    yield Made(home, package, doc, {public.key_id: public}, later, root / "station.pem")


def _codes(findings: list[Any]) -> set[str]:
    return {str(f.code) for f in findings}


def _visible(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["events"] if not e.get("hidden")]


def test_the_package_carries_the_events_of_its_item_with_hidden_leaves(made: Made) -> None:
    actions = {e["event"]["action"] for e in _visible(made.doc)}
    assert {"ingest.file", "case.link", "export.request", "export.approve",
            "export.start"} <= actions
    hidden = [e for e in made.doc["events"] if e.get("hidden")]
    assert len(hidden) == made.doc["hidden"] >= 2  # the secret case's link and unlink
    assert all(set(e) == {"seq", "hidden", "leaf_hash", "proof"} for e in hidden)
    assert SECRET not in json.dumps(made.doc, ensure_ascii=False)
    assert made.doc["requester"] == "inspector"
    assert all(e["proof"]["tree_size"] == made.doc["head"]["size"] for e in made.doc["events"])


def test_the_bundle_verifies_offline_with_the_station_key(made: Made) -> None:
    assert check_bundle(made.doc, made.keys, trusted=True) == []
    assert without_pending(verify_package(made.package, trusted=made.keys)) == []
    run = run_evidock(made.home, "audit", "verify-bundle", str(made.package.parent),
                      "--key", str(made.pem), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["ok"] is True
    shipped = run_evidock(made.home, "audit", "verify-bundle", str(made.package), "--json")
    assert shipped.returncode == 0, shipped.stdout  # the package's own keyring: a warning
    assert [f["code"] for f in json.loads(shipped.stdout)["findings"]] == ["W_KEY_UNTRUSTED"]


def _flipped(doc: dict[str, Any]) -> None:
    event = next(e for e in _visible(doc) if e["event"]["action"] == "export.approve")
    event["event"]["actor"] = event["event"]["actor"].replace("legal", "legaL")


def _removed(doc: dict[str, Any]) -> None:
    del doc["events"][len(doc["events"]) // 2]


@pytest.mark.parametrize(("tamper", "codes"), [
    (_flipped, {"E_AUDIT_EVENT_CHANGED", "E_PROOF_INVALID"}),
    (_removed, {"E_BUNDLE_INCOMPLETE"}),
])
def test_a_changed_or_removed_event_is_named(made: Made, tamper: Any, codes: set[str],
                                             ) -> None:
    doc = copy.deepcopy(made.doc)
    tamper(doc)
    assert _codes(check_bundle(doc, made.keys, trusted=True)) == codes


def test_another_head_is_named(made: Made) -> None:
    doc = copy.deepcopy(made.doc)
    doc["head"] = made.later_head  # signed by the station, but not this bundle's
    assert _codes(check_bundle(doc, made.keys, trusted=True)) == {
        "E_AUDIT_ROOT_MISMATCH", "E_PROOF_INVALID"}
    forged = copy.deepcopy(made.doc)
    forged["head"]["size"] += 1
    forged["index"]["head"]["size"] += 1
    assert {"E_SIGNATURE_INVALID", "E_PROOF_INVALID"} <= _codes(
        check_bundle(forged, made.keys, trusted=True))


def test_another_key_is_named(made: Made) -> None:
    other = KeyPair.generate().public
    findings = check_bundle(made.doc, {other.key_id: other}, trusted=True)
    assert [(str(f.code), f.subject) for f in findings] == [
        ("E_KEY_MISMATCH", f"{NAME}#head"), ("E_KEY_MISMATCH", f"{NAME}#index")]


def test_evidock_verify_names_a_changed_or_missing_bundle(made: Made, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(made.package, changed)
    path = changed / "data" / NAME
    path.write_bytes(path.read_bytes().replace(b'"user:legal"', b'"user:legaL"', 1))
    codes = _codes(verify_package(changed, trusted=made.keys))
    assert {"E_AUDIT_EVENT_CHANGED", "E_PROOF_INVALID"} <= codes
    assert "E_BAG_DIGEST_MISMATCH" in codes
    gone = tmp_path / "gone"
    shutil.copytree(made.package, gone)
    (gone / "data" / NAME).unlink()
    assert "E_MISSING_FILE" in _codes(verify_package(gone, trusted=made.keys))
