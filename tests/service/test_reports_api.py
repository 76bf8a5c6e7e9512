"""Review decisions and the two signed report PDFs, through the real station service.

Every command runs as the user's own OS account (`evt-<name>`) against a real `evidock
serve` on a station that offloaded and rendered the template camera. The PDFs are read
back with poppler-utils (`pdftotext`, `pdftoppm`) and checked offline with
`evidock verify-report` and the station's public key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import offloaded_home
from service_support import RunningService, audit_rows, open_dir, serving
from sqlmodel import Session, select

from archive.audit.log import AuditEvent
from archive.catalog import Catalog
from archive.catalog.models import Rendition
from archive.keystore import StationKeys
from fixtures.camera import CameraTree
from records.permissions import DEFAULT_ROLES, P

OPEN = "邵城管检〔2019〕第201号"  # 城西中队, no label: the video is linked here
PRIVATE = "邵城管检〔2019〕第202号"  # 城东中队, 个人隐私: the video was linked, then not
# The clerk role may also review and make custody reports here: so that a clerk's own
# case reaches the clerk rule (with the default roles it is refused earlier, for lack
# of case.review), and so that clerk2 (城西中队 only, no clearance) is a custody reader
# who may not see PRIVATE.
_CLERK = sorted({*DEFAULT_ROLES["clerk"], P.CASE_REVIEW, P.REPORT_CUSTODY})
ROLES = "\n[access.roles]\nclerk = [" + ", ".join(f'"{p.value}"' for p in _CLERK) + "]\n"


@dataclass
class Station:
    svc: RunningService
    home: Path
    video: str
    pem: Path
    outbox: Path

    def cli(self, *args: str, user: str) -> subprocess.CompletedProcess[str]:
        return self.svc.cli(*args, user=user)

    def ok(self, *args: str, user: str) -> Any:
        run = self.cli(*args, "--json", user=user)
        assert run.returncode == 0, run.stdout + run.stderr
        return json.loads(run.stdout)

    def events(self, action: str) -> list[AuditEvent]:
        return audit_rows(self.home, action)


def _video(home: Path) -> str:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        return next(r.id for r in sorted(catalog.recordings(), key=lambda r: r.original_display)
                    if r.original_display.endswith("_0001.MP4"))
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    root = tmp_path_factory.mktemp("reports")
    home = offloaded_home(root / "home", camera_template.root, extra_toml=ROLES)
    pem = root / "station.pem"
    pem.write_bytes(StationKeys(directory=home / "keys").keyring().current_key.to_pem())
    outbox = open_dir("evidock-reports-")
    outbox.chmod(0o1777)  # like /tmp: each account makes and keeps its own entries
    try:
        with serving(home) as svc:
            st = Station(svc, home, _video(home), pem, outbox)
            for args in (("create", OPEN, "--type", "行政检查", "--unit", "城西中队"),
                         ("create", PRIVATE, "--type", "行政检查", "--unit", "城东中队",
                          "--sensitivity", "个人隐私"),
                         ("link", OPEN, st.video, "--stage", "现场检查", "--reason", "现场"),
                         ("link", PRIVATE, st.video, "--stage", "现场检查",
                          "--reason", "误关联隐私案件")):
                st.ok("case", *args, user="clerk")
            shown = st.ok("case", "show", PRIVATE, user="clerk")
            st.ok("case", "unlink", str(shown["links"][0]["id"]), "--reason", "关联错误",
                  user="clerk")
            yield st
    finally:
        shutil.rmtree(outbox, ignore_errors=True)


def _text(pdf: Path, mode: str = "-layout") -> str:
    run = subprocess.run(["pdftotext", mode, str(pdf), "-"], capture_output=True,
                         text=True, check=True)
    return run.stdout


def _flat(pdf: Path) -> str:
    """In drawing order, without whitespace: digests wrap inside their table cells."""
    return "".join(_text(pdf, "-raw").split())


def _verify(st: Station, pdf: Path, *, key: bool = True) -> tuple[int, dict[str, Any]]:
    argv = [sys.executable, "-m", "evidock", "verify-report", str(pdf), "--json"]
    run = subprocess.run([*argv, *(["--key", str(st.pem)] if key else [])],
                         capture_output=True, text=True, cwd="/")
    return run.returncode, json.loads(run.stdout)


# ---------------------------------------------------------------------- reviews


def test_a_reviewer_decides_and_the_case_shows_every_decision(station: Station) -> None:
    first = station.ok("review", "decide", OPEN, "--decision", "暂不同意",
                       "--reason", "缺少告知环节的录像", user="legal")
    second = station.ok("review", "decide", OPEN, "--decision", "同意",
                        "--reason", "已补充", user="legal")
    assert first["review"]["decision"] == "暂不同意" and second["review"]["by"] == "legal"
    assert second["review"]["at"].endswith("+08:00")  # the station's zone, with its offset
    listed = station.ok("review", "list", OPEN, user="inspector")
    assert [r["decision"] for r in listed["reviews"]][-2:] == ["暂不同意", "同意"]
    assert listed["current"]["decision"] == "同意"
    shown = station.ok("case", "show", OPEN, user="clerk2")
    assert [(r["decision"], r["reason"]) for r in shown["reviews"]][-2:] == [
        ("暂不同意", "缺少告知环节的录像"), ("同意", "已补充")]
    human = station.cli("case", "show", OPEN, user="clerk2")
    assert "review decisions" in human.stdout and "已补充" in human.stdout
    listing = station.cli("review", "list", OPEN, user="inspector")
    assert listing.returncode == 0 and "in force: 同意 (legal)" in listing.stdout
    events = station.events("case.review")
    assert [(e.actor, e.details["decision"]) for e in events][-2:] == [
        ("user:legal", "暂不同意"), ("user:legal", "同意")]
    assert second["review"]["audit_seq"] == events[-1].seq  # the row names its event


def test_the_cases_own_clerk_is_refused_and_it_is_audited(station: Station) -> None:
    before = len(station.events("access.refused"))
    run = station.cli("review", "decide", OPEN, "--decision", "同意", "--reason", "我审我",
                      "--json", user="clerk")
    assert run.returncode == 3, run.stdout + run.stderr
    assert json.loads(run.stdout)["error"]["code"] == "E_SELF_APPROVAL"
    refused = station.events("access.refused")[before:]
    assert [(e.actor, e.details["permission"], e.details["code"]) for e in refused] == [
        ("user:clerk", "case.review", "E_SELF_APPROVAL")]
    # clerk2 holds the same role but did no clerk work on OPEN: may review it
    assert station.ok("review", "decide", OPEN, "--decision", "不同意", "--reason", "复核",
                      user="clerk2")["review"]["by"] == "clerk2"
    for user, code in (("officer", "E_FORBIDDEN"), ("inspector", "E_FORBIDDEN")):
        no = station.cli("review", "decide", OPEN, "--decision", "同意", "--reason", "x",
                         "--json", user=user)
        assert (no.returncode, json.loads(no.stdout)["error"]["code"]) == (3, code)
    bad = station.cli("review", "decide", OPEN, "--decision", "可以", "--reason", "x",
                      "--json", user="legal")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["code"] == "E_INVALID"


# ---------------------------------------------------------------------- coverage PDF


def test_the_coverage_report_pdf_is_signed_and_verifies_offline(station: Station) -> None:
    pdf = station.outbox / "coverage-201.pdf"
    made = station.ok("coverage", "--case", OPEN, "--pdf", str(pdf), user="legal")
    sig = Path(made["signature"])
    assert sig == pdf.with_name(pdf.name + ".sig.json") and sig.is_file()
    # the table as `coverage` shows it (exit 1: stages are missing; that is the finding)
    report = json.loads(station.cli("coverage", "--case", OPEN, "--json", user="legal").stdout)
    text = _text(pdf)
    head = made["audit_head"]
    for needle in (OPEN, "执法音像记录覆盖报告", "法制审核决定", "暂不同意", "缺少告知环节的录像",
                   "城西中队", "审计树头", f"size {head['size']}", head["key_id"],
                   *(s["stage"] for s in report["cases"][0]["stages"])):
        assert needle in text, needle
    assert head["root"] in _flat(pdf)
    read = station.events("read.report.coverage")[-1]
    assert read.actor == "user:legal" and read.details["sha256"] == made["sha256"]

    code, checked = _verify(station, pdf)
    assert (code, checked["ok"], checked["findings"]) == (0, True, [])
    assert checked["statement"]["audit_head"] == head
    # Without --key it holds only against the key the signature file carries: a warning.
    code, checked = _verify(station, pdf, key=False)
    assert code == 0 and [f["code"] for f in checked["findings"]] == ["W_KEY_UNTRUSTED"]

    png = station.outbox / "coverage-page"
    subprocess.run(["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "1", str(pdf), str(png)],
                   check=True)
    assert png.with_name("coverage-page-1.png").stat().st_size > 10_000


def test_a_flipped_byte_in_the_pdf_is_a_finding(station: Station) -> None:
    pdf = station.outbox / "coverage-flip.pdf"
    said = station.cli("coverage", "--case", OPEN, "--pdf", str(pdf), user="inspector")
    assert said.returncode == 0 and "signed:" in said.stdout, said.stdout + said.stderr
    again = station.cli("coverage", "--case", OPEN, "--pdf", str(pdf), "--json",
                        user="inspector")  # never overwritten
    assert again.returncode == 1 and json.loads(again.stdout)["error"]["code"] == "E_CONFLICT"
    copy = station.outbox / "flipped.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    shutil.copy(pdf.with_name(pdf.name + ".sig.json"), copy.with_name("flipped.pdf.sig.json"))
    code, checked = _verify(station, copy)
    assert code == 1 and not checked["ok"]
    assert {(f["code"], f["details"]["field"]) for f in checked["findings"]} == {
        ("E_DIGEST_MISMATCH", "sha256"), ("E_DIGEST_MISMATCH", "blake3")}
    shutil.copy(pdf, station.outbox / "nosig.pdf")
    code, checked = _verify(station, station.outbox / "nosig.pdf")
    assert code == 1 and [f["code"] for f in checked["findings"]] == ["E_REPORT_INVALID"]


def test_coverage_pdf_refused_to_whoever_may_not_see_the_case(station: Station) -> None:
    pdf = station.outbox / "coverage-202-officer.pdf"
    run = station.cli("coverage", "--case", PRIVATE, "--pdf", str(pdf), "--json",
                      user="officer")
    assert run.returncode == 3 and json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert not pdf.exists() and not pdf.with_name(pdf.name + ".sig.json").exists()
    assert station.events("access.refused")[-1].actor == "user:officer"


# ---------------------------------------------------------------------- custody PDF


def test_the_custody_report_lists_the_chain_and_is_signed(station: Station) -> None:
    pdf = station.outbox / "custody-inspector.pdf"
    made = station.ok("report", "custody", station.video, "--out", str(pdf),
                      user="inspector")
    text = _text(pdf)
    flat = _flat(pdf)
    catalog = Catalog.open(f"sqlite:///{station.home / 'catalog.sqlite3'}")
    try:
        rec = catalog.recording(station.video)
        with Session(catalog.engine) as s:
            roots = [r.merkle_root for r in s.exec(select(Rendition).where(
                Rendition.recording_id == station.video)) if r.merkle_root]
    finally:
        catalog.close()
    assert roots
    for needle in (rec.blake3, rec.sha256, station.video, *roots, made["audit_head"]["root"]):
        assert needle in flat, needle
    for needle in ("证据保管链报告", "ZFY0001", "123456", "现场检查", OPEN, PRIVATE,
                   "误关联隐私案件", "case.link", "case.unlink", "未记录"):
        assert needle in text, needle
    code, checked = _verify(station, pdf)
    assert (code, checked["findings"]) == (0, [])
    read = station.events("read.report.custody")[-1]
    assert read.actor == "user:inspector" and f"recording:{station.video}" in read.subjects


def test_custody_gives_no_line_of_a_case_the_reader_may_not_see(station: Station) -> None:
    pdf = station.outbox / "custody-clerk2.pdf"
    station.ok("report", "custody", station.video, "--out", str(pdf), user="clerk2")
    text = _text(pdf)
    assert OPEN in text and "现场检查" in text
    for secret in (PRIVATE, "误关联隐私案件", "关联错误", "城东中队"):
        assert secret not in text, secret
    assert "records you may not see are not shown" in text
    by_case = station.outbox / "custody-case-clerk2.pdf"
    run = station.cli("report", "custody", "--case", PRIVATE, "--out", str(by_case),
                      "--json", user="clerk2")
    assert run.returncode == 3 and json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert not by_case.exists()
    officer = station.cli("report", "custody", station.video, "--out",
                          str(station.outbox / "o.pdf"), "--json", user="officer")
    assert officer.returncode == 3, officer.stdout
    assert station.events("access.refused")[-1].details["permission"] == "report.custody"
