"""The report machinery at the desk: the detached signature's checks (every kind of
tampering is its own finding), the PDF's CJK text, and the custody report of an export
request. Pages are rendered with poppler-utils; set EVT_REPORT_PAGES=DIR to keep the
PNGs and look at them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import StepClock, offloaded_home

from archive.audit.format import SignedHead
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.canonical import canonical_bytes, parse_json_object
from integrity.findings import Finding
from integrity.keys import KeyPair, sign
from integrity.reportsign import report_findings, sign_report, statement, verify_report_file
from records.reportdesk import ReportDesk

HEAD_TIME = "2026-12-01T01:00:00Z"


def _head(kp: KeyPair) -> dict[str, object]:
    head = SignedHead(size=7, root="ab" * 32, time=datetime(2026, 12, 1, 1, tzinfo=UTC),
                      station_id="st-1", key_id=kp.key_id, signature="")
    return {**head.to_dict(), "signature": sign(kp, head.signed_bytes()).hex()}


def _signed(kp: KeyPair, pdf: bytes = b"%PDF-1.4 report") -> tuple[bytes, dict[str, object]]:
    stmt = statement(pdf, report="coverage", subjects=["case:c1"], made_at=HEAD_TIME,
                     made_by="user:legal", station_id="st-1", audit_head=_head(kp))
    return sign_report(stmt, kp), stmt


def _codes(findings: list[Finding]) -> list[str]:
    return sorted(str(f.code) for f in findings)


def test_the_signature_holds_and_each_tampering_is_named() -> None:
    kp, other = KeyPair.generate(), KeyPair.generate()
    pdf = b"%PDF-1.4 report"
    sig, _ = _signed(kp, pdf)
    trusted = {kp.key_id: kp.public}
    assert report_findings(pdf, sig, trusted=trusted) == []
    assert _codes(report_findings(pdf, sig)) == ["W_KEY_UNTRUSTED"]
    flipped = bytearray(pdf)
    flipped[3] ^= 1
    assert _codes(report_findings(bytes(flipped), sig, trusted=trusted)) == [
        "E_DIGEST_MISMATCH", "E_DIGEST_MISMATCH"]
    assert _codes(report_findings(pdf + b"x", sig, trusted=trusted)) == [
        "E_DIGEST_MISMATCH"] * 3
    assert _codes(report_findings(pdf, sig, trusted={other.key_id: other.public})) == [
        "E_KEY_MISMATCH"]
    doc = parse_json_object(sig)
    doc["statement"]["made_by"] = "user:someone-else"  # edited claim, digests intact
    assert _codes(report_findings(pdf, canonical_bytes(doc), trusted=trusted)) == [
        "E_SIGNATURE_INVALID"]
    # a statement re-signed by another key that carries it: holds only against itself
    resigned = sign_report(parse_json_object(sig)["statement"], other)
    assert _codes(report_findings(pdf, resigned, trusted=trusted)) == ["E_KEY_MISMATCH"]
    assert _codes(report_findings(pdf, resigned)) == ["E_KEY_UNKNOWN", "W_KEY_UNTRUSTED"]
    for broken in (b"not json", b"{}", canonical_bytes({**doc, "alg": "rsa"})):
        assert _codes(report_findings(pdf, broken, trusted=trusted)) == ["E_REPORT_INVALID"]


def test_a_forged_audit_head_in_the_statement_is_a_finding() -> None:
    kp = KeyPair.generate()
    pdf = b"%PDF-1.4 report"
    head = {**_head(kp), "size": 8}  # says the log was longer than the head signed
    stmt = statement(pdf, report="custody", subjects=[], made_at=HEAD_TIME,
                     made_by="user:legal", station_id="st-1", audit_head=head)
    findings = report_findings(pdf, sign_report(stmt, kp), trusted={kp.key_id: kp.public})
    assert [(str(f.code), f.details) for f in findings] == [
        ("E_SIGNATURE_INVALID", {"size": 8})]


def test_a_linked_or_missing_report_file_is_refused(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    pdf = b"%PDF-1.4 report"
    sig, _ = _signed(kp, pdf)
    (tmp_path / "r.pdf").write_bytes(pdf)
    (tmp_path / "r.pdf.sig.json").write_bytes(sig)
    stmt, findings = verify_report_file(tmp_path / "r.pdf", trusted={kp.key_id: kp.public})
    assert findings == [] and stmt is not None and stmt["made_by"] == "user:legal"
    (tmp_path / "link.pdf").symlink_to(tmp_path / "r.pdf")
    (tmp_path / "link.pdf.sig.json").write_bytes(sig)
    assert _codes(verify_report_file(tmp_path / "link.pdf")[1]) == ["E_REPORT_INVALID"]
    (tmp_path / "r.pdf.sig.json").unlink()
    assert _codes(verify_report_file(tmp_path / "r.pdf")[1]) == ["E_REPORT_INVALID"]


# ---------------------------------------------------------------------- at the desk


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree,
        ) -> Iterator[Services]:
    home = offloaded_home(tmp_path_factory.mktemp("reports") / "home", camera_template.root)
    services = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                                    clock=StepClock(datetime(2026, 12, 1, 1, tzinfo=UTC)))
    try:
        yield services
    finally:
        services.close()


def _desk(svc: Services) -> ReportDesk:
    station = svc.settings.station
    return ReportDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(), keys=svc.keys,
                      coverage=svc.settings.coverage, station_id=station.id,
                      zone=station.local_zone, clock=svc.clock)


def _pages(pdf: bytes, tmp: Path, name: str) -> str:
    """The PDF's text (poppler); its pages as PNGs, kept in $EVT_REPORT_PAGES if set."""
    path = tmp / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(path), str(tmp / name)], check=True)
    pngs = sorted(tmp.glob(f"{name}-*.png"))
    assert pngs and all(p.stat().st_size > 5_000 for p in pngs)
    keep = os.environ.get("EVT_REPORT_PAGES")
    if keep:
        for png in pngs:
            shutil.copy(png, Path(keep) / png.name)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_custody_of_an_export_request_names_the_request_and_its_approval(
        svc: Services, tmp_path: Path) -> None:
    number = "邵城管罚〔2019〕第401号"
    clerk, gate = svc.gate().by_name("clerk"), svc.gate()
    video = next(r.id for r in svc.catalog.recordings() if r.kind == "video")
    svc.cases().create(clerk, number=number, case_type="行政处罚", unit="城西中队")
    svc.cases().link(clerk, number, video, stage="现场检查", reason="现场执法")
    request = svc.exports().request(gate.by_name("inspector"), recording=video,
                                    purpose="行政复议", recipient="复议机关")
    svc.exports().approve(gate.by_name("legal"), request.id, reason="同意提供")
    report = _desk(svc).custody(gate.by_name("inspector"), export=request.id)
    text = _pages(report.pdf, tmp_path, "custody-export")
    for needle in (f"export request {request.id}", "证据保管链报告", "export.request",
                   "export.approve", "行政复议", "user:legal", "现场执法", "+08:00"):
        assert needle in text, needle
    assert report.statement["subjects"][0] == f"export-request:{request.id}"
    assert report_findings(report.pdf, report.signature,
                           trusted={k.key_id: k for k in svc.keys.keyring().keys}) == []


def test_coverage_pdf_prints_stages_and_reviews_in_chinese(svc: Services, tmp_path: Path,
                                                          ) -> None:
    from records.reviews import ReviewDesk

    number = "邵城管罚〔2019〕第402号"
    gate = svc.gate()
    svc.cases().create(gate.by_name("clerk"), number=number, case_type="行政处罚",
                       unit="城东中队")
    ReviewDesk(catalog=svc.catalog, gate=gate, audit=svc.audit(), clock=svc.clock).decide(
        gate.by_name("legal"), number, decision="不同意", reason="听证环节无录像")
    report = _desk(svc).coverage(gate.by_name("legal"), number)
    text = _pages(report.pdf, tmp_path, "coverage")
    for needle in (number, "执法音像记录覆盖报告", "缺失 missing", "不完整 INCOMPLETE",
                   "不同意", "听证环节无录像", "审计树头", "城东中队"):
        assert needle in text, needle
    assert _desk(svc).coverage(gate.by_name("legal"), number).pdf != report.pdf  # new head
