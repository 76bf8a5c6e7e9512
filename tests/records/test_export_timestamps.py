"""RFC 3161 tokens travel in export packages (data/timestamps.json) and `evidock verify`
checks them offline (integrity/timestampcheck.py), with a real TSA on 127.0.0.1
(``openssl ts`` behind http.server, tests/tsa_support.py) and a real offloaded, rendered
station exporting a real case.

The manifests are stamped by the station's Stamper (driven directly: no sleeps); the
audit head the bundle is proven against is signed for the export, and stamped during it.
Each tampering is a named finding; a station without a TSA exports "pending" entries.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import REPO, offloaded_home, verify_offline
from station_homes import export_case, first_video, rebag

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.codes import Code
from integrity.timestampcheck import HEAD_FILE, MANIFEST_FILE, NAME
from tests.tsa_support import TestTsa, TsaAuthority, serving_tsa


@dataclass(frozen=True)
class Pki:
    tsa: TestTsa
    root_pem: Path
    stranger_pem: Path  # another CA's root: not the TSA's


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("tsa-export")
    ca, other = TsaAuthority(where, "agency-root"), TsaAuthority(where, "other-root")
    return Pki(tsa=TestTsa(where, ca.issue_tsa("tsa1"), name="good"), root_pem=ca.root.cert,
               stranger_pem=other.root.cert)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree) -> Path:
    return offloaded_home(tmp_path_factory.mktemp("ts-template") / "home",
                          camera_template.root)


def _station(template: Path, where: Path, pki: Pki, url: str | None) -> Services:
    home = where / "home"
    shutil.copytree(template, home)
    if url is not None:
        shutil.copy(pki.root_pem, home / "tsa-root.pem")
        with (home / "evidock.toml").open("a", encoding="utf-8") as f:
            f.write(f'\n[timestamps]\ntsa_urls = ["{url}"]\ntsa_roots = ["tsa-root.pem"]\n'
                    "timeout_s = 5\n")
    return Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))


@dataclass(frozen=True)
class Made:
    package: Path
    key_pem: Path  # the station's published key
    doc: dict[str, Any]  # data/timestamps.json, parsed


def _made(svc: Services, where: Path) -> Made:
    try:
        package = export_case(svc, where / "out", first_video(svc))
        public = svc.keys.keyring().current_key
    finally:
        svc.close()
    (where / "station.pem").write_bytes(public.to_pem())
    return Made(package, where / "station.pem",
                json.loads((package / "data" / NAME).read_bytes()))


@pytest.fixture(scope="module")
def stamped(tmp_path_factory: pytest.TempPathFactory, template: Path, pki: Pki) -> Made:
    """A station with a TSA: its manifests stamped by the Stamper, then a case export
    (whose fresh audit head the exporter has stamped)."""
    where = tmp_path_factory.mktemp("stamped")
    with serving_tsa(pki.tsa) as url:
        svc = _station(template, where, pki, url)
        report = svc.stamper().run()
        assert report.count("stamped") >= 1 and report.pending == 0, report
        return _made(svc, where)


def _verify(made: Made, package: Path, *roots: Path) -> tuple[int, Any]:
    args = [a for r in roots for a in ("--tsa-root", str(r))]
    code, doc, _run = verify_offline(package, "--key", str(made.key_pem), *args)
    return code, doc


def _codes(doc: Any) -> set[tuple[str, str]]:
    return {(f["code"], f["subject"]) for f in doc["findings"]}


def _rebagged(made: Made, where: Path, change: Any) -> Path:
    """A copy of the package with ``change(data_dir)`` applied and the bag redone, as a
    forger would (so the findings are the tokens', not the bag's digests)."""
    copy = where / "pkg"
    shutil.copytree(made.package, copy)
    change(copy / "data")
    rebag(copy)
    return copy


def test_the_package_carries_both_tokens_named_in_the_signed_clip(stamped: Made) -> None:
    clip = json.loads((stamped.package / "data" / "clip.json").read_bytes())
    assert clip["timestamps"] == NAME
    entries = {e["file"]: e for e in stamped.doc["entries"]}
    assert set(entries) == {MANIFEST_FILE, HEAD_FILE}
    for e in entries.values():
        assert e["state"] == "stamped" and e["tsa_url"].startswith("http://127.0.0.1")
        assert base64.b64decode(e["token"])  # DER, checked below by the verifier
    bag = (stamped.package / "manifest-sha256.txt").read_text()
    assert f"data/{NAME}" in bag


def test_verifies_with_the_tsa_root_and_shows_attested_beside_claimed(
        stamped: Made, pki: Pki) -> None:
    code, doc = _verify(stamped, stamped.package, pki.root_pem)
    assert code == 0 and doc["ok"] and doc["findings"] == [], doc["findings"]
    times = {t["file"]: t for t in doc["timestamps"]}
    assert set(times) == {MANIFEST_FILE, HEAD_FILE}
    for t in times.values():
        attested = datetime.fromisoformat(t["attested_at"])
        claimed = datetime.fromisoformat(t["claimed_at"])
        assert t["difference_us"] == (attested - claimed) // timedelta(microseconds=1)
        assert "tsa1" in t["tsa"] and t["ok"] is True


def test_human_output_prints_the_times_and_their_difference(stamped: Made, pki: Pki) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDOCK_")}
    run = subprocess.run([sys.executable, "-m", "evidock", "verify", str(stamped.package),
                          "--key", str(stamped.key_pem), "--tsa-root", str(pki.root_pem)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("timestamp ")]
    assert len(lines) == 2 and all(" attested " in ln and " claimed " in ln
                                   and " s)" in ln for ln in lines), run.stdout
    assert run.stdout.rstrip().endswith("OK: verified")


def test_without_a_root_each_token_is_a_warning_and_still_holds(stamped: Made) -> None:
    code, doc = _verify(stamped, stamped.package)
    assert code == 0 and doc["ok"]
    assert _codes(doc) == {(Code.W_TIMESTAMP_UNTRUSTED, f"{NAME}#{MANIFEST_FILE}"),
                           (Code.W_TIMESTAMP_UNTRUSTED, f"{NAME}#{HEAD_FILE}")}


def test_a_wrong_tsa_root_is_named(stamped: Made, pki: Pki) -> None:
    code, doc = _verify(stamped, stamped.package, pki.stranger_pem)
    assert code == 1 and not doc["ok"]
    assert _codes(doc) == {(Code.E_TIMESTAMP_UNTRUSTED, f"{NAME}#{MANIFEST_FILE}"),
                           (Code.E_TIMESTAMP_UNTRUSTED, f"{NAME}#{HEAD_FILE}")}


def test_a_tampered_manifest_no_longer_matches_its_token(stamped: Made, pki: Pki,
                                                         tmp_path: Path) -> None:
    def change(data: Path) -> None:
        raw = (data / "manifest.json").read_bytes()
        (data / "manifest.json").write_bytes(raw.replace(b'"created_at":"2', b'"created_at":"1'))
    code, doc = _verify(stamped, _rebagged(stamped, tmp_path, change), pki.root_pem)
    assert code == 1
    assert (Code.E_TIMESTAMP_IMPRINT, f"{NAME}#{MANIFEST_FILE}") in _codes(doc)
    assert (Code.E_SIGNATURE_INVALID, "manifest.json") in _codes(doc)
    assert not any(s == f"{NAME}#{HEAD_FILE}" for _c, s in _codes(doc))


def test_a_token_for_another_digest_is_named(stamped: Made, pki: Pki, tmp_path: Path) -> None:
    def change(data: Path) -> None:  # the head's token given as the manifest's
        doc = json.loads((data / NAME).read_bytes())
        by = {e["file"]: e for e in doc["entries"]}
        by[MANIFEST_FILE]["token"] = by[HEAD_FILE]["token"]
        (data / NAME).write_text(json.dumps(doc))
    code, doc = _verify(stamped, _rebagged(stamped, tmp_path, change), pki.root_pem)
    assert code == 1
    assert _codes(doc) == {(Code.E_TIMESTAMP_IMPRINT, f"{NAME}#{MANIFEST_FILE}")}


def test_a_changed_token_a_removed_entry_and_a_removed_file_are_named(
        stamped: Made, pki: Pki, tmp_path: Path) -> None:
    def corrupt(data: Path) -> None:
        doc = json.loads((data / NAME).read_bytes())
        token = bytearray(base64.b64decode(doc["entries"][0]["token"]))
        token[-5] ^= 0x01  # inside the TSA's signature
        doc["entries"][0]["token"] = base64.b64encode(bytes(token)).decode()
        del doc["entries"][1]
        (data / NAME).write_text(json.dumps(doc))
    code, doc = _verify(stamped, _rebagged(stamped, tmp_path / "a", corrupt), pki.root_pem)
    codes = {c for c, _s in _codes(doc)}
    assert code == 1 and Code.E_TIMESTAMP_MISSING in codes
    assert codes & {Code.E_TIMESTAMP_INVALID, Code.E_TIMESTAMP_UNTRUSTED}, codes
    code, doc = _verify(stamped, _rebagged(stamped, tmp_path / "b",
                                           lambda d: (d / NAME).unlink()), pki.root_pem)
    assert code == 1 and (Code.E_MISSING_FILE, f"data/{NAME}") in _codes(doc), doc


def test_a_station_without_a_tsa_exports_pending_entries(template: Path, pki: Pki,
                                                         tmp_path: Path) -> None:
    made = _made(_station(template, tmp_path, pki, None), tmp_path)
    assert {e["state"] for e in made.doc["entries"]} == {"pending"}
    assert all("token" not in e for e in made.doc["entries"])
    code, doc = _verify(made, made.package, pki.root_pem)
    assert code == 0 and doc["ok"]
    assert _codes(doc) == {(Code.W_TIMESTAMP_PENDING, f"{NAME}#{MANIFEST_FILE}"),
                           (Code.W_TIMESTAMP_PENDING, f"{NAME}#{HEAD_FILE}")}


def test_a_tsa_down_at_export_time_leaves_the_head_pending(template: Path, pki: Pki,
                                                          tmp_path: Path) -> None:
    with serving_tsa(pki.tsa) as url:
        svc = _station(template, tmp_path, pki, url)
        assert svc.stamper().run().pending == 0
    made = _made(svc, tmp_path)  # the TSA is gone: the export still completes
    states = {e["file"]: e["state"] for e in made.doc["entries"]}
    assert states == {MANIFEST_FILE: "stamped", HEAD_FILE: "pending"}
    code, doc = _verify(made, made.package, pki.root_pem)
    assert code == 0
    assert _codes(doc) == {(Code.W_TIMESTAMP_PENDING, f"{NAME}#{HEAD_FILE}")}
