"""The desk's footage search in the database (records/desk_footage.py) against the CLI's
``Dossier.find`` on the same catalog, and the stills (records/footage_thumbs.py).

A real offload of the template camera, rendered; cases of two units and labels, links,
unlinks, a relabelling and a forged unlink row (no audit event vouches for it): for every
user and filter, the pages put together are find's rows in find's order, and the hidden
count is the one find's audit event gives.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import StepClock, offloaded_home
from sqlmodel import Session, col, func, select

from archive.audit.log import AuditEvent
from archive.catalog import Recording
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden, NotFound
from records.desk_footage import find_page
from records.dossier import FindQuery
from records.footage_thumbs import Thumbnail, Thumbnails
from records.models import CaseLink

EXTRA = """
[[access.users]]
name = "secretary"
roles = ["clerk"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]

[rendition]
segment_seconds = 1
"""
USERS = ("clerk", "clerk2", "inspector", "legal", "supervisor", "secretary", "officer")
A, B, C, S = ("城东〔2026〕1号", "城西〔2026〕2号", "城东〔2026〕3号", "城东秘〔2026〕4号")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree) -> Path:
    home = tmp_path_factory.mktemp("footage") / "home"
    return offloaded_home(home, camera_template.root, extra_toml=EXTRA)


@pytest.fixture
def svc(template: Path, tmp_path: Path) -> Iterator[Services]:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    services = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                                    clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
    yield services
    services.close()


def _videos(svc: Services) -> list[Recording]:
    return sorted((r for r in svc.catalog.recordings() if r.kind == "video"),
                  key=lambda r: r.camera_start or r.ingested_at)


def _cases(svc: Services) -> list[Recording]:
    """Cases and links of every kind find has to judge; the videos, in order."""
    desk, boss = svc.cases(), svc.gate().by_name("secretary")
    v = _videos(svc)
    desk.create(boss, number=A, case_type="行政处罚", unit="城东中队")
    desk.create(boss, number=B, case_type="行政检查", unit="城西中队")
    desk.create(boss, number=C, case_type="行政处罚", unit="城东中队")
    desk.create(boss, number=S, case_type="行政检查", unit="城东中队", sensitivity="国家秘密")
    desk.link(boss, A, v[0].id, stage="现场检查", reason="r", start_us=0, end_us=1_000_000)
    desk.link(boss, B, v[1].id, stage="调查取证", reason="r")
    gone = desk.link(boss, S, v[2].id, stage="现场检查", reason="r")
    desk.unlink(boss, gone.id, reason="关联错误")  # a believed unlink: v[2] shows again
    desk.link(boss, S, v[0].id, stage="立案", reason="r")  # v[0]: hidden unless cleared
    desk.link(boss, C, v[1].id, stage="现场检查", reason="r")
    desk.relabel(boss, C, sensitivity="商业秘密", reason="涉及商业秘密")  # v[1] too
    return v


def _forge_unlink(svc: Services, recording_id: str) -> None:
    """An unlink row written into the catalog directly: no audit event vouches for it."""
    with Session(svc.catalog.engine) as s:
        link = s.exec(select(CaseLink).where(CaseLink.recording_id == recording_id,
                                             CaseLink.action == "link")
                      .order_by(col(CaseLink.id).desc())).first()
        assert link is not None
        s.add(CaseLink(case_id=link.case_id, recording_id=recording_id, action="unlink",
                       unlinks=link.id, actor="user:mallory", reason="forged",
                       at=datetime(2026, 12, 1, tzinfo=UTC)))
        s.commit()


def _last(svc: Services, action: str) -> dict[str, Any]:
    with Session(svc.catalog.engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == action)
                       .order_by(col(AuditEvent.seq).desc())).first()
    assert event is not None
    return dict(event.details)


def _queries(v: list[Recording]) -> list[dict[str, Any]]:
    start = v[1].camera_start or v[1].ingested_at
    return [{}, {"unit": "城东中队"}, {"unit": "城西中队"}, {"stage": "现场检查"},
            {"case": A}, {"officer": "123456"}, {"device": "ZFY0001"},
            {"since": start}, {"until": start}, {"since": start - timedelta(days=1),
                                                 "until": start + timedelta(seconds=1)},
            {"stage": "现场检查", "unit": "城西中队"}]


def test_the_pages_are_finds_rows_and_hidden_count_for_every_user(svc: Services) -> None:
    v = _cases(svc)
    _forge_unlink(svc, v[0].id)  # must not un-hide the secret recording
    dossier, gate = svc.dossier(), svc.gate()
    checked = 0
    for name in USERS:
        actor = gate.by_name(name)
        for query in _queries(v):
            try:
                expected = [f.to_json() for f in dossier.find(actor, **query)]
            except (Forbidden, NotFound):
                with pytest.raises((Forbidden, NotFound)):
                    find_page(svc.catalog, gate, actor, FindQuery(**query))
                continue
            hidden = _last(svc, "read.case.find")["hidden"]
            got: list[dict[str, Any]] = []
            offset = 0
            while True:  # pages of 2 put together
                page = find_page(svc.catalog, gate, actor, FindQuery(**query),
                                 offset=offset, limit=2)
                got += [f.to_json() for f in page.found]
                assert (page.shown, page.hidden) == (len(expected), hidden), (name, query)
                offset += 2
                if not page.more:
                    break
            assert got == expected, (name, query)
            details = _last(svc, "read.case.find")
            assert details["hidden"] == hidden and details["offset"] == offset - 2
            checked += 1
    assert checked > 40
    clerk = gate.by_name("clerk")  # 个人隐私 only: v[0] (国家秘密) and v[1] (商业秘密) hidden
    page = find_page(svc.catalog, gate, clerk, FindQuery())
    assert {f.recording.id for f in page.found}.isdisjoint({v[0].id, v[1].id})
    assert page.hidden == 2
    secretary = find_page(svc.catalog, gate, gate.by_name("secretary"), FindQuery())
    assert secretary.hidden == 0 and v[0].id in {f.recording.id for f in secretary.found}


def test_a_still_is_made_once_even_when_asked_at_once_and_only_for_viewers(
        svc: Services) -> None:
    v = _cases(svc)
    thumbs = Thumbnails(catalog=svc.catalog, store=svc.store, gate=svc.gate())
    clerk = svc.gate().by_name("clerk")
    results: list[Any] = []

    def ask() -> None:
        results.append(thumbs.still(clerk, v[2].id))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.blake3 for r in results}) == 1 and sum(r.made for r in results) == 1
    assert results[0].path.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    with Session(svc.catalog.engine) as s:
        assert s.exec(select(func.count()).select_from(Thumbnail)).one() == 1
    details = _last(svc, "read.recording.thumbnail")
    assert details["made"] is False and details["size"] == results[0].size
    with pytest.raises(Forbidden):  # 国家秘密: refused (and audited) like its page
        thumbs.still(clerk, v[0].id)
    with pytest.raises(NotFound):
        thumbs.still(clerk, "no-such-recording")
    with Session(svc.catalog.engine) as s:
        assert s.exec(select(func.count()).select_from(Thumbnail)).one() == 1
