"""`evidock case …` and `evidock recording …` as users run them: Chinese case numbers end
to end, JSON shapes, exit codes of refusals, and the acting user.

One station (agency config + the template camera, offloaded once in-process) and one
real `evidock serve` per module; every command is the real CLI run as the user's own
OS account (``evt-<user>``) against it, so the service learns who asks from the kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from evidock_testing import offloaded_home, ok_json
from service_support import RunningService, account, open_dir, serving
from sqlmodel import Session, select

from archive.audit.log import AuditEvent
from archive.catalog import Catalog
from config import load_settings
from fixtures.camera import CameraTree

NUMBER = "邵城管罚〔2019〕第001号"


@dataclass
class Station:
    svc: RunningService
    video_id: str
    photo_id: str
    audio_id: str
    files: Path  # every account may read here; documents to attach live here

    @property
    def home(self) -> Path:
        return self.svc.home

    def run(self, *args: str, user: str = "clerk") -> subprocess.CompletedProcess[str]:
        return self.svc.cli(*args, user=user)

    def events(self, action: str) -> list[AuditEvent]:
        catalog = Catalog.open(f"sqlite:///{self.home / 'catalog.sqlite3'}")
        try:
            with Session(catalog.engine) as s:
                return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)))
        finally:
            catalog.close()


def _recording_ids(home: Path) -> dict[str, str]:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        return {r.original_display: r.id for r in catalog.recordings()}
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    home = offloaded_home(tmp_path_factory.mktemp("case-cli") / "home",
                          camera_template.root, render=False)
    ids = sorted(_recording_ids(home).items())
    files = open_dir("evidock-case-docs-")
    try:
        with serving(home) as svc:
            yield Station(svc, files=files,
                          video_id=next(r for p, r in ids if p.endswith("_0001.MP4")),
                          photo_id=next(r for p, r in ids if p.endswith(".JPG")),
                          audio_id=next(r for p, r in ids if p.endswith(".WAV")))
    finally:
        shutil.rmtree(files, ignore_errors=True)


def cli(station: Station, *args: str, user: str = "clerk2", code: int = 0) -> Any:
    """One command as ``user`` with --json; its JSON result after checking the exit."""
    return ok_json(station.run(*args, "--json", user=user), code)


def test_a_chinese_case_number_survives_create_link_show_and_list(station: Station) -> None:
    created = cli(station, "case", "create", NUMBER, "--type", "行政处罚", "--unit", "城东中队",
                  "--title", "违规占道经营", user="clerk")
    assert created["number"] == NUMBER and created["created_by"] == "clerk"
    # An absolute start: the camera named this file 16:30:00 local time (08:30:00 UTC).
    link = cli(station, "case", "link", NUMBER, station.video_id, "--stage", "立案",
               "--reason", "现场检查全过程", "--start", "2026-11-20T16:30:01+08:00",
               "--end", "0:00:02", user="clerk")
    assert (link["start_us"], link["end_us"], link["stage"]) == (1_000_000, 2_000_000, "立案")

    run = station.run("case", "show", NUMBER, "--json")
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["case"]["number"].encode() == NUMBER.encode()
    assert NUMBER.encode() in run.stdout.encode()  # not \u-escaped
    assert [x["id"] for x in shown["links"]] == [link["id"]]
    assert [r["id"] for r in shown["recordings"]] == [station.video_id]

    listed = station.run("case", "list")
    assert listed.returncode == 0, listed.stderr
    assert NUMBER in listed.stdout and "违规占道经营" in listed.stdout
    human = station.run("case", "show", NUMBER)
    assert human.returncode == 0, human.stderr
    assert "现场检查全过程" in human.stdout and station.video_id in human.stdout
    assert "1.000s" in human.stdout and "行政处罚 · 城东中队 · open" in human.stdout


def test_refusals_exit_3_and_bad_requests_exit_1(station: Station) -> None:
    refused = cli(station, "case", "create", "邵城管罚〔2019〕第009号", "--type", "行政处罚",
                  "--unit", "城东中队", user="officer", code=3)
    assert refused["error"]["code"] == "E_FORBIDDEN"
    assert any(e.actor == "user:officer" and e.details["permission"] == "case.create"
               for e in station.events("access.refused"))
    bad = station.run("case", "create", "2019-009", "--type", "行政处罚", "--unit", "城东中队")
    assert bad.returncode == 1
    assert bad.stderr.startswith("evidock: E_INVALID: ") and bad.stdout == ""
    missing = cli(station, "case", "show", "邵城管罚〔2019〕第404号", user="clerk", code=1)
    assert missing["error"]["code"] == "E_NOT_FOUND"


def test_an_unknown_os_user_is_refused_with_exit_3(station: Station) -> None:
    run = station.run("case", "list", "--json", user="evt-nobody")
    assert ok_json(run, 3)["error"]["code"] == "E_UNKNOWN_USER"


def _document(station: Station, name: str, data: bytes) -> Path:
    path = station.files / name
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def test_stage_marks_documents_close_and_reopen(station: Station) -> None:
    number, photo = "邵城管罚〔2019〕第002号", station.photo_id
    doc = _document(station, "现场检查笔录.pdf", b"%PDF-1.4 record")
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    cli(station, "case", "link", number, photo, "--stage", "现场检查", "--reason", "r")
    stage = cli(station, "case", "stage", number, "现场检查", "--start", "2026-11-20T16:00",
                "--end", "2026-11-20T17:00", "--note", "笔录第2页")
    # naive: agency local time; shown (JSON too) in the station's zone with its offset
    assert stage["start_at"] == "2026-11-20T16:00:00+08:00"
    assert stage["case"] == number
    assert cli(station, "recording", "mark", photo, "作为证据使用", "--reason", "证据")[
        "marks"] == ["作为证据使用"]
    assert cli(station, "recording", "mark", photo, "作为证据使用", "--reason", "again",
               code=1)["error"]["code"] == "E_CONFLICT"
    assert cli(station, "recording", "categorize", photo, "日常巡查", "--reason", "r")[
        "category"] == "日常巡查"
    attached = cli(station, "case", "attach", number, str(doc), "--description", "笔录")
    assert (attached["filename"], attached["size"]) == ("现场检查笔录.pdf", 15)
    assert attached["sha256"] == hashlib.sha256(b"%PDF-1.4 record").hexdigest()
    # A naive date is local time; never before the case existed nor ahead of the clock
    # (records/closing.py), so a minute from now (within the clock tolerance).
    local = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(minutes=1)).replace(
        microsecond=0, tzinfo=None)
    closed = cli(station, "case", "close", number, "--reason", "结案", "--date",
                 local.isoformat())
    # the same instant, shown in the station's zone with its offset (stored in UTC)
    assert closed["closed_at"] == local.replace(tzinfo=ZoneInfo("Asia/Shanghai")).isoformat()
    assert cli(station, "case", "reopen", number, "--reason", "复议")["status"] == "open"

    (hit,) = cli(station, "case", "find", "--unit", "城西中队", "--stage", "现场检查")[
        "recordings"]
    assert hit["recording"]["id"] == photo
    assert (hit["recording"]["marks"], hit["recording"]["category"]) == (["作为证据使用"],
                                                                         "日常巡查")
    assert [x["case"] for x in hit["links"]] == [number]
    shown = cli(station, "case", "show", number, user="officer")
    assert shown["attachments"][0]["sha256"] == attached["sha256"]
    assert [s["note"] for s in shown["stages"]] == ["笔录第2页"]
    found = station.run("case", "find", "--case", number, user="clerk2")
    assert found.returncode == 0 and photo in found.stdout and "作为证据使用" in found.stdout


def test_unlink_and_unmark(station: Station) -> None:
    number, audio = "邵城管罚〔2019〕第003号", station.audio_id
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    link = cli(station, "case", "link", number, audio, "--stage", "送达", "--reason", "r")
    assert cli(station, "case", "find", "--case", number, user="clerk")["recordings"]
    assert cli(station, "case", "list", "--unit", "城西中队", "--status", "open")[
        "cases"][-1]["number"] == number

    assert cli(station, "case", "unlink", str(link["id"]), "--reason", "错")["active"] is False
    assert cli(station, "case", "find", "--case", number)["recordings"] == []
    shown = cli(station, "recording", "show", audio)  # the history stays visible
    assert [(x["case"], x["active"], x["removed"]["reason"]) for x in shown["links"]
            if x["id"] == link["id"]] == [(number, False, "错")]
    human = station.run("recording", "show", audio, user="clerk2")
    assert human.returncode == 0 and number in human.stdout and "removed" in human.stdout
    cli(station, "recording", "mark", audio, "妨碍执法", "--reason", "r")
    # a permanent mark: requested by one person, taken off by a legal reviewer
    assert cli(station, "recording", "mark", audio, "妨碍执法", "--reason", "r",
               "--remove")["marks"] == ["妨碍执法"]
    assert cli(station, "recording", "mark", audio, "妨碍执法", "--reason", "r",
               "--remove", user="legal")["marks"] == []
    assert cli(station, "case", "find", "--since", "yesterday", code=1)["error"][
        "code"] == "E_INVALID"


def test_a_document_goes_in_and_comes_back_byte_for_byte(station: Station) -> None:
    number = "邵城管罚〔2019〕第004号"
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    data = os.urandom(3 * 1024 * 1024 + 17)  # several pieces each way
    doc = _document(station, "询问笔录 第1次.pdf", data)
    attached = cli(station, "case", "attach", number, str(doc))
    assert attached["sha256"] == hashlib.sha256(data).hexdigest()
    out = open_dir("evidock-case-out-")
    try:
        os.chown(out, pwd.getpwnam(account("officer")).pw_uid, -1)
        got = cli(station, "case", "document", number, attached["sha256"], "--out", str(out),
                  user="officer")
        saved = Path(got["path"])
        assert saved == out / "询问笔录 第1次.pdf" and saved.read_bytes() == data
        assert (got["blake3"], got["size"]) == (attached["blake3"], len(data))
        assert sorted(p.name for p in out.iterdir()) == [saved.name]  # no part file left
        again = cli(station, "case", "document", number, attached["blake3"], "--out",
                    str(saved), user="officer", code=1)
        assert again["error"]["code"] == "E_CONFLICT"  # never replaces a file
        assert saved.read_bytes() == data
    finally:
        shutil.rmtree(out, ignore_errors=True)
    (event,) = [e for e in station.events("read.case.document")
                if e.details["number"] == number]
    assert event.actor == "user:officer" and f"blob:{attached['blake3']}" in event.subjects


def test_attach_opens_only_a_regular_file_of_the_client(station: Station) -> None:
    number = "邵城管罚〔2019〕第005号"
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    target = _document(station, "真的.pdf", b"%PDF real")
    link = station.files / "link.pdf"
    link.symlink_to(target)
    fifo = station.files / "fifo.pdf"
    os.mkfifo(fifo, 0o666)
    for path, code, says in ((link, 1, "symbolic link"), (fifo, 1, "not a regular file"),
                             (station.files, 1, "not a regular file"),
                             (station.files / "absent.pdf", 1, "no file")):
        refused = cli(station, "case", "attach", number, str(path), code=code)
        assert says in refused["error"]["message"], refused
    secret = station.files / "root-only.pdf"
    secret.write_bytes(b"only root may read this")
    secret.chmod(0o600)  # the client's own rights apply, not the service's
    unreadable = station.run("case", "attach", number, str(secret), user="clerk2")
    assert unreadable.returncode == 2 and "is not readable" in unreadable.stderr
    empty = _document(station, "empty.pdf", b"")
    assert "empty" in cli(station, "case", "attach", number, str(empty), code=1)["error"][
        "message"]
    assert cli(station, "case", "show", number)["attachments"] == []


def test_a_refused_upload_is_refused_cleanly_however_large(station: Station) -> None:
    # clerk2 works for 城西中队 only: the service refuses before reading the body and
    # the client still reads the refusal (not a broken pipe) although far more than a
    # socket buffer of the file was never taken.
    number = "邵城管罚〔2019〕第006号"
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城东中队",
        user="clerk")
    big = _document(station, "大文件.bin", os.urandom(8 * 1024 * 1024))
    refused = cli(station, "case", "attach", number, str(big), code=3)
    assert refused["error"]["code"] == "E_FORBIDDEN"
    assert refused["error"]["details"]["permission"] == "case.attach"
    shown = cli(station, "case", "show", number, user="clerk")
    assert shown["attachments"] == []


def test_a_document_the_store_no_longer_holds_is_never_handed_out(station: Station) -> None:
    number = "邵城管罚〔2019〕第007号"
    cli(station, "case", "create", number, "--type", "行政检查", "--unit", "城西中队")
    data = os.urandom(1024 * 1024 + 3)
    attached = cli(station, "case", "attach", number, str(_document(station, "书证.pdf", data)))
    b3 = attached["blake3"]
    blob = load_settings(environ={"EVIDOCK_HOME": str(station.home)}).store_dir / b3[:2] \
        / b3[2:4] / b3
    fd = os.open(blob, os.O_RDWR)  # rot on the disk: same size, one bit flipped
    os.pwrite(fd, bytes([data[-1] ^ 0x01]), len(data) - 1)
    os.close(fd)
    out = open_dir("evidock-case-out-")
    try:
        os.chown(out, pwd.getpwnam(account("clerk2")).pw_uid, -1)
        cut = cli(station, "case", "document", number, b3, "--out", str(out), code=2)
        assert cut["error"]["code"] == "E_TRANSFER"
        assert "was cut" in cut["error"]["message"]
        assert list(out.iterdir()) == []  # not even a part file
    finally:
        fd = os.open(blob, os.O_RDWR)
        os.pwrite(fd, data[-1:], len(data) - 1)
        os.close(fd)
        shutil.rmtree(out, ignore_errors=True)
