"""Content credentials (C2PA) on exported clips, with the real c2pa reader and real parts.

A test CA issues the agency's C2PA leaf (emailProtection EKU); the station exports a real
clip through the real service and OS accounts with ``[exports] c2pa = true``. The clip
reads back Trusted with the test anchor, Valid (not Trusted) with another CA, Invalid
after one flipped byte; the station's own package verification still passes, and its
derivative statement covers the credentialed bytes. With C2PA off nothing is embedded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from evidock_testing import StepClock, offloaded_home, ok_json, verify_offline
from pydantic import ValidationError
from service_support import open_dir, serving
from sqlalchemy import insert, select
from sqlmodel import Session, col
from sqlmodel import select as sql_select

from archive.catalog import Recording
from archive.catalog.models import Rendition
from archive.catalog.types import table_of
from archive.timestamp_rows import MANIFEST, StampItem, StampToken
from config import load_settings
from config.access import ExportSettings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity import derivative
from integrity.errors import ConfigError, EvidockError
from records.c2pa_sign import C2paSigner, algorithm_of, load_credential, read_back
from records.package import Exporter

ROLES = """
[access.roles]
inspector = ["case.view", "recording.view", "recording.play", "export.request",
             "export.run", "export.approve", "coverage.view"]
"""
C2PA_TOML = """
[exports]
c2pa = true
c2pa_cert = "keys/c2pa/chain.pem"
c2pa_key = "keys/c2pa/leaf.key"
"""
CLIP = "data/derivative/clip.mp4"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Agency"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Agency:
    """A test CA (root.pem) and a leaf it issued: chain.pem (leaf, root) and leaf.key."""

    root: Path
    chain: Path
    key: Path


def make_agency(where: Path, *, eku: list[x509.ObjectIdentifier] | None = None,
                self_signed: bool = False) -> Agency:
    """``eku``: the leaf's extended key usages (default emailProtection; [] for none)."""
    where.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())

    def builder(subject: str, issuer: str, public: ec.EllipticCurvePublicKey
                ) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(_name(subject))
                .issuer_name(_name(issuer)).public_key(public)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False))

    ca = (builder("C2PA CA", "C2PA CA", ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), True).sign(ca_key, hashes.SHA256()))
    leaf = (builder("evidock station", "evidock station" if self_signed else "C2PA CA",
                    leaf_key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                         False, False), True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                (leaf_key if self_signed else ca_key).public_key()), False))
    wanted = [ExtendedKeyUsageOID.EMAIL_PROTECTION] if eku is None else eku
    if wanted:
        leaf = leaf.add_extension(x509.ExtendedKeyUsage(wanted), False)
    signed = leaf.sign(leaf_key if self_signed else ca_key, hashes.SHA256())
    agency = Agency(root=where / "root.pem", chain=where / "chain.pem", key=where / "leaf.key")
    agency.root.write_bytes(_pem(ca))
    agency.chain.write_bytes(_pem(signed) + (b"" if self_signed else _pem(ca)))
    agency.key.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    agency.key.chmod(0o600)
    return agency


def _video(home: Path) -> str:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        with Session(svc.catalog.engine) as s:
            video = s.exec(sql_select(Recording.id).join(
                Rendition, col(Rendition.recording_id) == col(Recording.id)).where(
                Recording.kind == "video", Rendition.status == "ok")
                .order_by(col(Recording.id))).first()
    finally:
        svc.close()
    assert video is not None
    return video


@dataclass(frozen=True)
class Exported:
    home: Path
    video: str
    agency: Agency
    package: Path
    root: Path


def _c2pa_cli(*args: str) -> tuple[int, dict[str, object]]:
    """`evidock verify-c2pa ARGS --json` as anyone runs it: no home, no service."""
    run = subprocess.run([sys.executable, "-m", "evidock", "verify-c2pa", *args, "--json"],
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                              "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, json.loads(run.stdout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> Iterator[Exported]:
    """A station with C2PA on; one approved request exported through the real service."""
    root = tmp_path_factory.mktemp("c2pa")
    home = offloaded_home(root / "home", camera_template.root, extra_toml=ROLES + C2PA_TOML)
    agency = make_agency(home / "keys" / "c2pa")
    video = _video(home)
    outbox = open_dir("evidock-c2pa-out-")
    outbox.chmod(0o1777)
    try:
        with serving(home) as svc:
            req = str(ok_json(svc.cli("export", "request", "--recording", video,
                                      "--start", "0.5", "--end", "2.5", "--purpose",
                                      "行政诉讼", "--recipient", "人民法院", "--json",
                                      user="inspector"))["id"])
            ok_json(svc.cli("export", "approve", req, "--json", user="legal"))
            ok_json(svc.cli("export", "run", req, "--out", str(outbox / "pkg"), "--json",
                            user="inspector"))
        yield Exported(home, video, agency, outbox / "pkg", root)
    finally:
        shutil.rmtree(outbox, ignore_errors=True)


def test_the_exported_clip_reads_back_trusted_from_capture_to_export(
        exported: Exported) -> None:
    report = read_back(exported.package / CLIP, anchors_pem=exported.agency.root.read_bytes())
    assert (report.state, report.failures) == ("Trusted", ())
    assert report.active_manifest is not None
    actions = next(a["data"]["actions"] for a in report.active_manifest["assertions"]
                   if a["label"].startswith("c2pa.actions"))
    names = [a["action"] for a in actions]
    assert names[0] == "c2pa.opened" and names[2:] == ["c2pa.edited", "c2pa.published"]
    assert names[1] in {"c2pa.repackaged", "c2pa.transcoded"}
    capture = actions[0]["parameters"]["org.evidock.capture"]
    assert (capture["camera"], capture["officer"]) == ("ZFY0001", "123456")
    assert capture["original"]["recording_id"] == exported.video
    assert actions[1]["parameters"]["org.evidock.rendition"]["argv"][0] == "ffmpeg"
    trim = actions[2]["parameters"]["org.evidock.trim"]
    assert (trim["start_us"], trim["end_us"]) == (500_000, 2_500_000)
    assert trim["argv"][0] == "ffmpeg" and trim["duration_us"] == 2_000_000
    export = actions[3]["parameters"]["org.evidock.export"]
    assert (export["approved_by"], export["requested_by"], export["purpose"]) == (
        "legal", "inspector", "行政诉讼")
    assert export["recipient"] == "人民法院"


def test_the_station_signature_covers_the_credentialed_clip(exported: Exported) -> None:
    code, result, run = verify_offline(exported.package)
    assert code == 0 and result["ok"], run.stdout
    doc = json.loads((exported.package / "data" / derivative.DOC).read_bytes())
    assert doc["sha256"] == hashlib.sha256((exported.package / CLIP).read_bytes()).hexdigest()


def test_the_reader_command_names_trusted_valid_and_invalid(
        exported: Exported, tmp_path: Path) -> None:
    clip = exported.package / CLIP
    code, result = _c2pa_cli(str(clip), "--anchors", str(exported.agency.root))
    assert (code, result["state"], result["ok"]) == (0, "Trusted", True)
    other = make_agency(tmp_path / "other")  # a CA the agency never used
    code, result = _c2pa_cli(str(clip), "--anchors", str(other.root))
    assert (code, result["state"]) == (1, "Valid")
    flipped = tmp_path / "clip.mp4"
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    code, result = _c2pa_cli(str(flipped), "--anchors", str(exported.agency.root))
    assert (code, result["state"]) == (1, "Invalid")
    failures = result["failures"]
    assert isinstance(failures, list)
    assert "assertion.bmffHash.mismatch" in {f["code"] for f in failures}


def test_a_flipped_byte_in_the_package_fails_both_checks(exported: Exported,
                                                         tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(exported.package, copy)
    clip = copy / CLIP
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0x01
    clip.write_bytes(bytes(data))
    assert read_back(clip, anchors_pem=exported.agency.root.read_bytes()).state == "Invalid"
    code, result, _ = verify_offline(copy)
    assert code != 0 and not result["ok"]


def _in_process_export(home: Path, out: Path, *, c2pa: bool, video: str) -> Path:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock())
    try:
        exporter = Exporter(store=svc.store, catalog=svc.catalog, keys=svc.keys,
                            clock=svc.clock, station_id=svc.settings.station.id)
        if c2pa:
            exporter.c2pa = C2paSigner(settings=svc.settings.exports, home=home,
                                       catalog=svc.catalog)
        exporter.export(video, start="0", end="1.5", out=out, actor="test")
    finally:
        svc.close()
    return out


def test_with_c2pa_off_nothing_is_embedded(exported: Exported, tmp_path: Path) -> None:
    settings = load_settings(environ={"EVIDOCK_HOME": str(exported.home)})
    off = settings.model_copy(update={"exports": settings.exports.model_copy(
        update={"c2pa": False})})
    svc = Services.from_config(off)
    try:
        assert svc.exports().exporter.c2pa is None
    finally:
        svc.close()
    out = _in_process_export(exported.home, tmp_path / "plain", c2pa=False,
                             video=exported.video)
    assert read_back(out / CLIP, anchors_pem=None).state == "Absent"
    code, result, run = verify_offline(out)
    assert code == 0 and result["ok"], run.stdout


def test_a_stored_rfc3161_token_rides_in_the_manifest(exported: Exported,
                                                      tmp_path: Path) -> None:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(exported.home)}))
    token = b"0\x03\x02\x01\x00 a token as the TSA sent it"
    try:
        _, rendition, _ = svc.catalog.rendered(exported.video)
        assert rendition is not None and rendition.manifest_blake3 is not None
        items, tokens = table_of(StampItem), table_of(StampToken)
        with svc.catalog.engine.begin() as conn:
            item = conn.execute(select(items.c.id).where(
                items.c.kind == MANIFEST,
                items.c.subject == rendition.manifest_blake3)).scalar_one()
            now = datetime.now(UTC)
            conn.execute(insert(tokens), {"item_id": item, "tsa_url": "http://tsa.test/",
                                          "token": token, "attested_at": now,
                                          "tsa_name": "test TSA", "serial": "1",
                                          "received_at": now})
    finally:
        svc.close()
    out = _in_process_export(exported.home, tmp_path / "stamped", c2pa=True,
                             video=exported.video)
    report = read_back(out / CLIP, anchors_pem=exported.agency.root.read_bytes())
    assert report.state == "Trusted" and report.active_manifest is not None
    stamp = next(a["data"] for a in report.active_manifest["assertions"]
                 if a["label"] == "org.evidock.timestamp")
    assert base64.b64decode(stamp["rfc3161_token"]) == token
    assert stamp["manifest_blake3"] == rendition.manifest_blake3


def test_a_refused_chain_stops_the_export_before_anything_is_published(
        exported: Exported, tmp_path: Path) -> None:
    home = exported.home
    bad = make_agency(tmp_path / "no-eku", eku=[])  # C2PA wants an EKU on the leaf
    settings = load_settings(environ={"EVIDOCK_HOME": str(home)}).exports.model_copy(
        update={"c2pa_cert": str(bad.chain), "c2pa_key": str(bad.key)})
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock())
    try:
        exporter = Exporter(store=svc.store, catalog=svc.catalog, keys=svc.keys,
                            clock=svc.clock, station_id=svc.settings.station.id)
        exporter.c2pa = C2paSigner(settings=settings, home=home, catalog=svc.catalog)
        with pytest.raises(EvidockError, match="C2PA signing"):
            exporter.export(exported.video, start="0", end="1", out=tmp_path / "out",
                            actor="test")
    finally:
        svc.close()
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["no-eku"], "no staging left behind"


def test_the_credential_is_checked_before_use(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="c2pa_cert"):
        ExportSettings(purposes=("court",), c2pa=True)
    agency = make_agency(tmp_path / "ok")
    settings = ExportSettings(purposes=("court",), c2pa=True, c2pa_cert="ok/chain.pem",
                              c2pa_key="ok/leaf.key")
    credential = load_credential(settings, tmp_path)
    assert credential is not None and credential.alg == "es256"
    agency.key.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        load_credential(settings, tmp_path)
    alone = make_agency(tmp_path / "alone", self_signed=True)
    alone_settings = settings.model_copy(update={"c2pa_cert": str(alone.chain),
                                                 "c2pa_key": str(alone.key)})
    with pytest.raises(ConfigError, match="self-signed"):
        load_credential(alone_settings, tmp_path)
    off = ExportSettings(purposes=("court",))
    assert load_credential(off, tmp_path) is None


def test_an_sm2_key_is_refused_by_name(tmp_path: Path) -> None:
    sm2 = tmp_path / "sm2.key"
    made = subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(sm2)],
                          capture_output=True, timeout=30, check=False)
    assert made.returncode == 0, made.stderr
    with pytest.raises(ConfigError, match="not SM2"):
        algorithm_of(sm2.read_bytes())
