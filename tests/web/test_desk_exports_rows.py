"""The desk's paginated export lists (records/desk_exports.py) give the same requests as
`export list` (ExportDesk.list) on the same data, for every user: units, labels (also
a label raised after the request), unlinked footage, statuses, the user's own; and a
person who may both request and approve is refused their own approval on the page.
On SQLite and on a real PostgreSQL (the catalog of an agency's center)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from desk_support import (
    ARCHIVIST,
    CLIPS,
    PASSWORDS,
    SECRET_CASE,
    SECRET_TITLE,
    SERVICE,
    offload_and_render,
    password_hash,
)
from evidock_testing import StepClock, station_on
from sqlmodel import Session

from evidock.service.app import build_app
from evidock.wiring import Services
from fixtures.camera import build_camera
from integrity.errors import Forbidden
from records import desk_exports
from records.credentials import CredentialBook
from records.desk_exports import DeskExports
from records.exportbook import STATUSES, RequestView
from records.permissions import DEFAULT_ROLES, Actor, P

#: supervisors may also request exports here, so one can try to approve their own.
ROLES = "[access.roles]\nsupervisor = [{}]\n".format(", ".join(
    sorted(f'"{p.value}"' for p in DEFAULT_ROLES["supervisor"] | {P.EXPORT_REQUEST})))
USERS = ("clerk", "clerk2", "inspector", "legal", "supervisor", "supervisor2", "archivist",
         "officer")


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime]:
    """The desk station's camera (desk_support.CLIPS), made once: an offload only reads it."""
    start = datetime.now(UTC) - timedelta(days=2)
    tree = build_camera(tmp_path_factory.mktemp("rows-camera") / "camera", start=start,
                        clips=CLIPS, audio=False, photo=False)
    return tree.root, start


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def station(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            camera: tuple[Path, datetime]) -> Iterator[tuple[Services, tuple[str, ...]]]:
    """The desk station on SQLite or on a throwaway PostgreSQL cluster, then requests."""
    source, start = camera
    home = tmp_path_factory.mktemp(f"rows-{request.param}") / "home"
    with station_on(request.param, home, extra=ARCHIVIST + SERVICE + ROLES,
                    start=start + timedelta(hours=3)) as svc:
        videos = _desk_station(svc, source)
        clock = svc.clock
        assert isinstance(clock, StepClock)
        clock.now = datetime.now(UTC) - timedelta(hours=1)
        _requests(svc, videos)
        yield svc, videos


def _desk_station(svc: Services, source: Path) -> tuple[str, ...]:
    """What desk_support.build_desk_home makes, on these services (whatever their
    catalog): the camera offloaded and rendered, the 国家秘密 case linked to the second
    recording, and every user's password as `admin passwd` stores it (in process: the
    CLI would start a Python per user). Returns the rendered videos, camera order."""
    videos = offload_and_render(svc, source)
    boss, cases = svc.gate().by_name("archivist"), svc.cases()
    cases.create(boss, number=SECRET_CASE, case_type="行政检查", unit="城东中队",
                 title=SECRET_TITLE, sensitivity="国家秘密")
    cases.link(boss, SECRET_CASE, videos[1], stage="现场检查", reason="秘密案件取证")
    book = CredentialBook(catalog=svc.catalog, audit=svc.audit(), clock=svc.clock)
    for user, password in PASSWORDS.items():
        book.set(user, password_hash(password), actor="os:evidock")
    return tuple(videos)


def _requests(svc: Services, videos: tuple[str, ...]) -> None:
    """Requests of every kind the lists must sort out."""
    gate, cases, exports = svc.gate(), svc.cases(), svc.exports()
    clerk, boss, legal = gate.by_name("clerk"), gate.by_name("archivist"), gate.by_name("legal")
    made = {}
    for number, unit, label in (("东甲〔2026〕1号", "城东中队", "none"),
                                ("东丙〔2026〕3号", "城东中队", "个人隐私"),
                                ("东丁〔2026〕4号", "城东中队", "none"),
                                ("西乙〔2026〕2号", "城西中队", "none"),
                                ("西戊〔2026〕5号", "城西中队", "none")):
        # archivist: 城东中队 only (so before the footage is linked to 城西中队 too)
        who = boss if unit == "城东中队" else clerk
        cases.create(who, number=number, case_type="行政检查", unit=unit, sensitivity=label)
        link = cases.link(who, number, videos[0], stage="现场检查", reason="取证",
                          start_us=1_000_000, end_us=5_000_000)
        made[number] = exports.request(who, case=number, purpose="行政诉讼", recipient="法院")
        if number.startswith("西戊"):  # unlinked: the request still names its case
            cases.unlink(clerk, link.id, reason="关联错误")
        if number.startswith("东丁"):  # a link removed no longer hides the footage
            cases.create(boss, number="东己〔2026〕6号", case_type="行政检查", unit=unit,
                         sensitivity="国家秘密")
            wrong = cases.link(boss, "东己〔2026〕6号", videos[0], stage="现场检查",
                               reason="误关联")
            cases.unlink(boss, wrong.id, reason="关联错误")
    for n in range(6):  # recording requests (ranges), some decided
        who = clerk if n % 2 else gate.by_name("inspector")
        view = exports.request(who, recording=videos[0], start=str(n), end=str(n + 2),
                               purpose="行政复议", recipient=f"复议机关{n}")
        if n % 3 == 1:
            exports.approve(legal, view.id, reason="同意")
        elif n % 3 == 2:
            exports.reject(legal, view.id, reason="不同意")
    # The secret case, and the recording linked to it, requested by the one cleared.
    exports.request(boss, case=SECRET_CASE, purpose="刑事诉讼", recipient="检察院")
    exports.request(boss, recording=videos[1], purpose="刑事诉讼", recipient="检察院")
    exports.approve(legal, made["东甲〔2026〕1号"].id, reason="同意")
    # A label raised after the request hides it from those not cleared for it.
    cases.relabel(boss, "东丁〔2026〕4号", sensitivity="商业秘密", reason="涉及商业秘密")
    # Approvals end: those given so far expire; one given now is still valid.
    clock = svc.clock
    assert isinstance(clock, StepClock)
    clock.now += timedelta(hours=svc.settings.exports.approval_valid_h + 1)
    exports.approve(legal, made["西乙〔2026〕2号"].id, reason="同意")


def _all_pages(desk: DeskExports, actor: Actor, *, view: str,
               status: str | None = None) -> list[str]:
    """Every page of 3 (so a list spans pages), in order."""
    ids: list[str] = []
    offset = 0
    while True:
        page = desk.page(actor, view=view, status=status, offset=offset, limit=3)
        assert page.dropped == 0  # the SQL alone applies the rule
        ids += [v.id for v in page.requests]
        if not page.more:
            return ids
        offset += 3


@pytest.mark.parametrize("user", USERS)
def test_pages_hold_what_export_list_shows(station: tuple[Services, tuple[str, ...]],
                                           user: str) -> None:
    svc, _videos = station
    actor = svc.gate().by_name(user)
    desk = DeskExports(catalog=svc.catalog, gate=svc.gate())
    listed = svc.exports().list(actor)
    assert _all_pages(desk, actor, view="all") == [v.id for v in reversed(listed)]
    for status in STATUSES:
        want = [v.id for v in reversed(listed) if v.status == status]
        assert _all_pages(desk, actor, view="all", status=status) == want, status
    mine = [v.id for v in reversed(listed) if v.requested_by == user]
    assert _all_pages(desk, actor, view="mine") == mine
    if actor.may(P.EXPORT_APPROVE):
        queue = [v.id for v in listed if v.status == "pending"]
        assert _all_pages(desk, actor, view="queue") == queue
    else:
        with pytest.raises(Forbidden):
            desk.page(actor, view="queue")


def test_the_data_covers_each_rule(station: tuple[Services, tuple[str, ...]]) -> None:
    """The comparison above means something: users see different requests."""
    svc, _videos = station
    counts = {u: len(svc.exports().list(svc.gate().by_name(u))) for u in
              ("clerk2", "inspector", "supervisor", "archivist")}
    assert len(set(counts.values())) > 2, counts
    statuses = {v.status for v in svc.exports().list(svc.gate().by_name("supervisor"))}
    assert {"pending", "approved", "rejected", "expired"} <= statuses


def test_a_page_is_audited_like_the_list(station: tuple[Services, tuple[str, ...]]) -> None:
    svc, _videos = station
    actor = svc.gate().by_name("legal")
    page = DeskExports(catalog=svc.catalog, gate=svc.gate()).page(actor, view="queue")
    log = svc.audit()
    event = log.event(log.size() - 1)
    assert event is not None and event.action == "read.export.list"
    assert event.actor == "user:legal"
    assert event.subjects == [f"export-request:{v.id}" for v in page.requests]


def _form_token(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html
    return found[1]


def test_own_approval_is_refused_on_the_page(station: tuple[Services, tuple[str, ...]],
                                             ) -> None:
    """E_SELF_APPROVAL (the service's rule, not the page's) is shown in Chinese with its
    audit event; the request stays pending."""
    svc, videos = station
    with warnings.catch_warnings():  # this starlette deprecates TestClient over httpx
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient  # noqa: PLC0415
    with TestClient(build_app(services=svc), base_url="http://127.0.0.1") as web:
        login = web.get("/desk/login")
        done = web.post("/desk/login", data={
            "user": "supervisor", "password": PASSWORDS["supervisor"], "next": "/desk/",
            "login_token": _form_token(login.text, "login_token")})
        assert done.status_code == 200 and "/desk/login" not in str(done.url)
        form = web.get("/desk/exports/new")
        csrf = _form_token(form.text, "csrf_token")
        made = web.post("/desk/exports/new", data={
            "csrf_token": csrf, "recording": videos[0], "start": "1", "end": "3",
            "purpose": "行政复议", "recipient": "复议机关"}, follow_redirects=False)
        assert made.status_code == 303, made.text
        request_id = made.headers["location"].split("/exports/")[1].split("?")[0]
        page = web.get(f"/desk/exports/{request_id}")
        assert 'data-testid="approve-form"' in page.text  # shown: the service decides
        refused = web.post(f"/desk/exports/{request_id}/approve",
                           data={"csrf_token": csrf, "reason": "自己批准"})
        assert refused.status_code == 403
        assert "E_SELF_APPROVAL" in refused.text
        seq = re.search(r"已记入审计日志，事件号 (\d+)。", refused.text)
        assert seq, refused.text
    event = svc.audit().event(int(seq[1]))
    assert event is not None and event.action == "access.refused"
    assert event.details["code"] == "E_SELF_APPROVAL"
    assert svc.exports().show(svc.gate().by_name("legal"), request_id).status == "pending"


def test_a_page_is_read_from_one_snapshot(station: tuple[Services, tuple[str, ...]],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A request approved between the queue's query and the reading of its rows is shown
    as the query found it, pending: the page is one snapshot of the catalog (PostgreSQL's
    default, READ COMMITTED, would show it approved in the pending queue)."""
    svc, videos = station
    exports, legal = svc.exports(), svc.gate().by_name("legal")
    made = exports.request(svc.gate().by_name("inspector"), recording=videos[0], start="7",
                           end="9", purpose="行政复议", recipient="复议机关")
    real = desk_exports.load_requests

    def meanwhile(s: Session, **kwargs: Any) -> list[RequestView]:
        exports.approve(legal, made.id, reason="同意")  # another connection, committed
        return real(s, **kwargs)

    monkeypatch.setattr(desk_exports, "load_requests", meanwhile)
    page = DeskExports(catalog=svc.catalog, gate=svc.gate()).page(legal, view="queue")
    assert made.id in [v.id for v in page.requests]
    assert {v.status for v in page.requests} == {"pending"}
    assert exports.show(legal, made.id).status == "approved"
