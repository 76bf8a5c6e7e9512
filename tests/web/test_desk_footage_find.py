"""The desk's footage search in the database (records/desk_footage.py) against the CLI's
``Dossier.find`` on the same catalog, and the stills (records/footage_thumbs.py).

A real offload of the template camera, rendered; cases of two units and labels, links,
unlinks, a relabelling and a forged unlink row (no audit event vouches for it): for every
user and filter, the pages put together are find's rows in find's order, and the hidden
count is the one find's audit event gives. On SQLite and on a real PostgreSQL (one
throwaway cluster per module): the offload goes into a template catalog once, and each
test gets its own copy of the station (home and catalog).
"""

from __future__ import annotations

import io
import itertools
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import StepClock, migrated, offloaded_home
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, func, select
from station_homes import SECRETARY, SHORT_SEGMENTS

from archive.audit.log import AuditEvent
from archive.catalog import Blob, Catalog, Recording
from archive.catalog.db import make_engine
from archive.catalog.models import Rendition
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden, NotFound
from records import footage_thumbs
from records.desk_footage import find_page
from records.dossier import FindQuery
from records.footage_thumbs import WIDTH, Thumbnail, Thumbnails
from records.models import CaseLink

sys.path.insert(0, str(Path(__file__).parents[1] / "archive"))  # pg_support lives there

from pg_support import connect, pg_cluster  # noqa: E402

EXTRA = SECRETARY + SHORT_SEGMENTS
USERS = ("clerk", "clerk2", "inspector", "legal", "supervisor", "secretary", "officer")
A, B, C, S = ("城东〔2026〕1号", "城西〔2026〕2号", "城东〔2026〕3号", "城东秘〔2026〕4号")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> Iterator[tuple[Path, str | None]]:
    """A station home that offloaded and rendered the template camera, and its catalog's
    URL on PostgreSQL (None: the home's own SQLite file)."""
    home = tmp_path_factory.mktemp(f"footage-{request.param}") / "home"
    with pg_cluster() if request.param == "postgresql" else nullcontext() as make:
        url = None if make is None else migrated(make())
        paths = "" if url is None else f'\n[paths]\ncatalog_url = "{url}"\n'
        yield offloaded_home(home, camera_template.root, extra_toml=EXTRA + paths), url


_COPIES = itertools.count()


@pytest.fixture
def svc(template: tuple[Path, str | None], tmp_path: Path) -> Iterator[Services]:
    """A test's own copy of the station: its home, and on PostgreSQL its catalog (a new
    database made from the template's, which no connection holds any more)."""
    source, url = template
    home = tmp_path / "home"
    shutil.copytree(source, home)
    environ, database = {"EVIDOCK_HOME": str(home)}, str(home / "catalog.sqlite3")
    if url is not None:
        base = make_url(url)
        database = copy = f"{base.database}_copy{next(_COPIES)}"
        with connect(base.set(database="postgres")) as conn:
            conn.execute(f"CREATE DATABASE {copy} TEMPLATE {base.database}")
        environ["EVIDOCK_PATHS__CATALOG_URL"] = base.set(database=copy).render_as_string(
            hide_password=False)
    services = Services.from_config(load_settings(environ=environ),
                                    clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
    engine = services.catalog.engine
    assert (engine.dialect.name, engine.url.database) == (
        "sqlite" if url is None else "postgresql", database)
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
    # Each hand-out is an audit event saying whether it made the still: one of the four
    # did (in whatever order the threads reached the log).
    with Session(svc.catalog.engine) as s:
        said = [dict(e.details) for e in s.exec(select(AuditEvent).where(
            AuditEvent.action == "read.recording.thumbnail"))]
    assert sorted(d["made"] for d in said) == [False, False, False, True]
    assert {d["size"] for d in said} == {results[0].size}
    with pytest.raises(Forbidden):  # 国家秘密: refused (and audited) like its page
        thumbs.still(clerk, v[0].id)
    with pytest.raises(NotFound):
        thumbs.still(clerk, "no-such-recording")
    with Session(svc.catalog.engine) as s:
        assert s.exec(select(func.count()).select_from(Thumbnail)).one() == 1


def test_a_still_another_process_stored_first_is_served_not_an_error(
        svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (its own connections; the per-process lock cannot order it)
    stores a still while this one makes the same JPEG: this rendition's (this one then
    serves that one), or another rendition's (the blob row is shared: this rendition's
    still is still made). Writers take the write lock when they begin (SQLite: BEGIN
    IMMEDIATE; PostgreSQL: the catalog's advisory write lock), so the other process's
    transaction commits before this one's starts, never inside it."""
    v = _videos(svc)  # nothing linked: the clerk may view every recording
    clerk = svc.gate().by_name("clerk")
    thumbs = Thumbnails(catalog=svc.catalog, store=svc.store, gate=svc.gate())
    other = Catalog(engine=make_engine(svc.catalog.engine.url.render_as_string(
        hide_password=False)))
    with Session(svc.catalog.engine) as s:
        rendition = {r.recording_id: r.id for r in s.exec(
            select(Rendition).where(Rendition.status == "ok"))}
    plan: list[str] = []  # the rendition the other process stores the next JPEG for
    digests: list[Any] = []
    raced: list[str] = []

    def other_stores() -> None:
        target, d = plan.pop(), digests.pop()
        with other.transaction() as s:
            if s.get(Blob, d.blake3) is None:
                s.add(Blob(blake3=d.blake3, sha256=d.sha256, size=d.size,
                           stored_at=datetime(2026, 12, 1, tzinfo=UTC)))
            s.add(Thumbnail(recording_id=next(r for r, x in rendition.items() if x == target),
                            rendition_id=target, blake3=d.blake3, size=d.size, at_us=0,
                            width=WIDTH, made_by="user:other",
                            made_at=datetime(2026, 12, 1, tzinfo=UTC)))
        raced.append(target)

    real_grab = footage_thumbs.grab

    def grab(segment: Path, at_s: float, **kwargs: Any) -> bytes:
        jpeg = real_grab(segment, at_s, **kwargs)
        if plan:  # the other process made the same JPEG
            digests.append(svc.store.put(io.BytesIO(jpeg)))
            other_stores()
        return jpeg

    monkeypatch.setattr(footage_thumbs, "grab", grab)
    try:
        plan.append(rendition[v[0].id])  # the same rendition's still
        served = thumbs.still(clerk, v[0].id)
        assert raced == [rendition[v[0].id]] and served.made is False
        assert _last(svc, "read.recording.thumbnail")["made"] is False
        plan.append(rendition[v[2].id])  # another rendition's, with the same JPEG
        made = thumbs.still(clerk, v[1].id)
        assert raced[1:] == [rendition[v[2].id]] and made.made is True
        assert _last(svc, "read.recording.thumbnail")["made"] is True
    finally:
        other.close()
    with Session(svc.catalog.engine) as s:
        rows = {r.rendition_id: r for r in s.exec(select(Thumbnail))}
    assert set(rows) == {rendition[v[i].id] for i in range(3)}
    assert rows[rendition[v[0].id]].made_by == "user:other" and served.blake3 == rows[
        rendition[v[0].id]].blake3
    assert rows[rendition[v[1].id]].made_by == "user:clerk"
    assert rows[rendition[v[1].id]].blake3 == rows[rendition[v[2].id]].blake3 == made.blake3
