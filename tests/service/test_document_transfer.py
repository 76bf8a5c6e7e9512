"""Both ends of a document transfer, in-process: the desk storing a stream a client sent
(the store's one way in: hashed while copied, re-read, refused when the disk did not
keep it or the stream is not what was announced) and the client's own file, sent only
if it held still.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import blake3
import httpx
import pytest
from evidock_testing import write_agency_config

from evidock.transfer import announced_name, open_outgoing
from evidock.wiring import Services
from integrity.errors import Conflict, DigestMismatch, Forbidden, InvalidRequest

NUMBER = "邵城管罚〔2019〕第001号"


def _flip(path: Path) -> None:
    """A disk that did not keep what it was given: one byte of the staged file flipped."""
    fd = os.open(path, os.O_RDWR)
    try:
        at = os.fstat(fd).st_size // 2
        (old,) = os.pread(fd, 1, at)
        os.pwrite(fd, bytes([old ^ 0x01]), at)
        os.fsync(fd)
    finally:
        os.close(fd)


def _stored(svc: Services) -> set[str]:
    return {p.name for p in svc.store.root.glob("??/??/*")}


def _staging(svc: Services) -> list[Path]:
    return [p for p in (svc.store.root / ".staging").rglob("*") if p.is_file()]


@pytest.fixture
def desk_services(home: Path, request: pytest.FixtureRequest) -> Services:
    write_agency_config(home)
    svc: Services = request.getfixturevalue("services")
    clerk = svc.gate().by_name("clerk")
    svc.cases().create(clerk, number=NUMBER, case_type="行政处罚", unit="城东中队")
    return svc


def test_a_received_document_flipped_on_disk_is_refused(desk_services: Services) -> None:
    svc, clerk = desk_services, desk_services.gate().by_name("clerk")
    data = b"%PDF-1.4 " + os.urandom(300 * 1024)
    svc.store.before_reread = _flip
    with pytest.raises(DigestMismatch) as caught:
        svc.cases().receive(clerk, NUMBER, io.BytesIO(data), filename="笔录.pdf",
                            size=len(data))
    assert caught.value.details["expected"] == blake3.blake3(data).hexdigest()
    assert _stored(svc) == set() and _staging(svc) == []
    svc.store.before_reread = None
    row = svc.cases().receive(clerk, NUMBER, io.BytesIO(data), filename="笔录.pdf",
                              size=len(data))
    assert row.blake3 == blake3.blake3(data).hexdigest() and row.blake3 in _stored(svc)


@pytest.mark.parametrize("announced", [999, 1001])
def test_a_stream_that_is_not_what_was_announced_stores_nothing(
        desk_services: Services, announced: int) -> None:
    svc, clerk = desk_services, desk_services.gate().by_name("clerk")
    with pytest.raises(Conflict, match="attach it again"):
        svc.cases().receive(clerk, NUMBER, io.BytesIO(os.urandom(1000)), filename="a.pdf",
                            size=announced)
    assert _stored(svc) == set() and _staging(svc) == []
    assert svc.dossier().show(clerk, NUMBER).attachments == ()


def test_the_permission_is_checked_before_a_byte_is_read(desk_services: Services) -> None:
    svc = desk_services
    stream = io.BytesIO(b"never read")
    with pytest.raises(Forbidden):
        svc.cases().receive(svc.gate().by_name("clerk2"), NUMBER, stream, filename="a.pdf",
                            size=10)
    assert stream.tell() == 0
    for name in ("", "..", "a/b.pdf", "x\0.pdf", "名" * 90):
        with pytest.raises(InvalidRequest, match="not a file name"):
            svc.cases().receive(svc.gate().by_name("clerk"), NUMBER, stream, filename=name,
                                size=10)


def test_a_file_that_changes_while_it_is_sent_is_cut_before_its_last_piece(
        tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(os.urandom(3 * 1024 * 1024))  # three pieces
    pieces = open_outgoing(path).pieces()
    first = next(pieces)
    with path.open("ab") as more:
        more.write(b"appended while sending")
    with pytest.raises(Conflict, match="changed while it was copied"):
        list(pieces)
    assert len(first) == 1024 * 1024  # only whole pieces before the last went out
    unchanged = open_outgoing(path)
    assert b"".join(unchanged.pieces()) == path.read_bytes()


@pytest.mark.parametrize(("header", "want"), [
    ("inline; filename*=UTF-8''%E7%AC%94%E5%BD%95.pdf", "笔录.pdf"),
    ("inline; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "fallback"),
    ("inline; filename*=UTF-8''..", "fallback"), ("inline", "fallback"),
])
def test_a_download_is_named_by_a_plain_file_name_only(header: str, want: str) -> None:
    response = httpx.Response(200, headers={"Content-Disposition": header})
    assert announced_name(response, "fallback") == want
