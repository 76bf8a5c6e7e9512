"""Holds and retention in a real browser (zh and en): a legal reviewer places a hold on a
recording with a reason, their own release is refused (two people), a supervisor's is
carried out; the 国家秘密 recording's hold never shows to legal or clerk; pending
deletions of an aged station show their rule and grace date, the scheduler's own
approval is refused and a second supervisor's is recorded. The desk's paginated queries
answer as the executor and the hold desk do, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from desk_support import (
    PASSWORDS,
    DeskStation,
    log_in,
    release_own_hold,
    set_passwords,
    shot,
)
from evidock_testing import migrated, write_agency_config
from playwright.sync_api import expect
from service_support import serving
from sqlmodel import Session
from station_homes import SECRETARY, aged_home, first_video, rendered_videos

from config import load_settings
from evidock.web import i18n
from evidock.web.pages.retention import DONE, REASONS, RULE_WORDS, SCOPE_WORDS
from evidock.wiring import Services
from fixtures.media import ClipSpec
from records.models import CaseLink
from retention import desk_retention
from retention.desk_retention import holds_page, pending_page
from retention.models import RetentionAction

sys.path.insert(0, str(Path(__file__).parents[1] / "archive"))  # pg_support lives there

from pg_support import pg_cluster  # noqa: E402

T = {"zh": i18n.words("zh").gettext, "en": i18n.words("en").gettext}


def _retention(page: Any, station: DeskStation) -> None:
    page.goto(f"{station.url}/retention")
    expect(page.locator("h1")).to_have_text(T[page.lang]("Holds and retention"))


def _login(chromium: Any, station: DeskStation, user: str, lang: str) -> Any:
    page = log_in(chromium, station, user, lang=lang)
    page.lang = lang
    return page


def _errors(page: Any) -> list[str]:
    """Console errors, less the browser's note on the refusals' own 4xx status (the
    page answers a refused or invalid post with its status, as the API does)."""
    return [e for e in page.desk_errors
            if not e.startswith("Failed to load resource: the server responded with a "
                                "status of 4")]


def _place(page: Any, scope: str, target: str, reason: str) -> None:
    form = page.get_by_test_id("place-hold")
    form.locator("select[name=scope]").select_option(scope)
    form.locator("input[name=target]").fill(target)
    form.locator("textarea[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()


# In Chinese only: test_hold_on_the_secret_recording_never_shows_to_the_uncleared
# shows this page in English.
@pytest.mark.parametrize("lang", ["zh"])
def test_hold_is_placed_listed_and_released_by_another_person(
        chromium: Any, desk_station: DeskStation, lang: str) -> None:
    _ = T[lang]
    recording = desk_station.recordings[0]
    reason = f"行政复议期间保全 {random.randrange(10**6):06d}"
    legal = _login(chromium, desk_station, "legal", lang)
    _retention(legal, desk_station)
    # The server checks the reason too (not only the browser's `required`).
    legal.get_by_test_id("place-hold").locator("textarea[name=reason]").evaluate(
        "e => e.removeAttribute('required')")
    _place(legal, "recording", recording, "")
    expect(legal.get_by_test_id("invalid")).to_have_text(_("A hold needs a reason."))
    assert legal.get_by_test_id("place-hold").locator("input[name=target]").input_value() \
        == recording, "the form is shown again with what was typed"

    _place(legal, "recording", recording, reason)
    expect(legal.get_by_test_id("flash")).to_have_text(_(DONE["placed"]))
    row = legal.locator("[data-testid=holds] tr", has_text=reason)
    expect(row).to_contain_text(recording)
    expect(row).to_contain_text(_(SCOPE_WORDS["recording"]))
    expect(row).to_contain_text(_("In force"))
    shot(legal, lang, "retention")

    # Whoever placed it may not release it: the desk's refusal is shown, the hold stays.
    release_own_hold(legal, row, _)
    expect(legal.locator("[data-testid=holds] tr", has_text=reason)).to_contain_text(
        _("In force"))
    assert _errors(legal) == []
    legal.context.close()

    boss = _login(chromium, desk_station, "supervisor", lang)
    _retention(boss, desk_station)
    row = boss.locator("[data-testid=holds] tr", has_text=reason)
    row.locator("input[name=reason]").fill("复议结束，解除保全")
    row.get_by_role("button", name=_("Release")).click()
    expect(boss.get_by_test_id("flash")).to_have_text(_(DONE["released"]))
    expect(boss.locator("[data-testid=holds] tr", has_text=reason)).to_have_count(0)
    boss.get_by_role("link", name=_("Show released holds too")).click()
    expect(boss.locator("[data-testid=holds] tr", has_text=reason)).to_contain_text(
        "supervisor")
    expect(boss.locator("[data-testid=holds] tr", has_text=reason)).to_contain_text(
        "复议结束，解除保全")
    assert _errors(boss) == []
    boss.context.close()


# In English only: test_hold_is_placed_listed_and_released_by_another_person
# shows this page in Chinese.
@pytest.mark.parametrize("lang", ["en"])
def test_hold_on_the_secret_recording_never_shows_to_the_uncleared(
        chromium: Any, desk_station: DeskStation, lang: str) -> None:
    _ = T[lang]
    secret = desk_station.recordings[1]
    reason = f"秘密案件保全 {random.randrange(10**6):06d}"
    boss = _login(chromium, desk_station, "supervisor", lang)
    _retention(boss, desk_station)
    _place(boss, "recording", secret, reason)
    expect(boss.get_by_test_id("flash")).to_have_text(_(DONE["placed"]))
    expect(boss.locator("[data-testid=holds] tr", has_text=reason)).to_contain_text(secret)
    boss.context.close()

    legal = _login(chromium, desk_station, "legal", lang)
    _retention(legal, desk_station)
    assert secret not in legal.content() and reason not in legal.content()
    expect(legal.get_by_test_id("holds-hidden")).to_be_visible()  # counted, never named
    # Naming it by hand is refused like a record the user may not see.
    _place(legal, "recording", secret, "试探")
    expect(legal.get_by_test_id("refused")).to_contain_text("E_FORBIDDEN")
    expect(legal.locator("[data-testid=holds] tr", has_text=reason)).to_have_count(0)
    assert _errors(legal) == []
    legal.context.close()

    clerk = _login(chromium, desk_station, "clerk", lang)
    answer = clerk.goto(f"{desk_station.url}/retention")
    assert answer is not None and answer.status == 403
    assert secret not in clerk.content() and reason not in clerk.content()
    assert _errors(clerk) == []
    clerk.context.close()


@pytest.fixture
def aged_station(tmp_path: Path) -> Iterator[DeskStation]:
    """A station of its own whose recordings are due for deletion now (grace 0 days)."""
    home = aged_home(tmp_path, "[service]\nlogin_attempts_per_minute = 20\n")
    set_passwords(home, {u: PASSWORDS[u] for u in ("supervisor", "supervisor2")})
    with serving(home, listen="127.0.0.1:0") as svc:
        yield DeskStation(svc=svc, home=home, recordings=())


# In English only: test_hold_is_placed_listed_and_released_by_another_person
# shows this page in Chinese.
@pytest.mark.parametrize("lang", ["en"])
def test_pending_deletions_show_rule_and_grace_and_need_a_second_person(
        chromium: Any, aged_station: DeskStation, lang: str) -> None:
    _ = T[lang]
    boss = _login(chromium, aged_station, "supervisor", lang)
    _retention(boss, aged_station)
    expect(boss.get_by_test_id("no-pending")).to_be_visible()
    boss.get_by_test_id("schedule").click()
    expect(boss.get_by_test_id("flash")).to_have_text(_(DONE["scheduled"]))
    rows = boss.locator("[data-testid=pending] tbody tr")
    expect(rows.first).to_contain_text(_(RULE_WORDS["base"]))
    count = rows.count()
    assert count >= 1
    for n in range(count):  # each names its rule, its grace date and who scheduled it
        text = rows.nth(n).inner_text()
        assert _(RULE_WORDS["base"]) in text and "supervisor" in text
        assert _("due") in text and _("not yet approved") in text
        assert ("未分类录像" if lang == "zh" else "Unclassified footage") in text
        assert "UTC" not in rows.nth(n).locator("td").nth(2).inner_text(), "station time"
        assert any(ch.isdigit() for ch in text.split("\t")[3]), text
    shot(boss, lang, "retention-pending")
    recording = rows.first.get_attribute("data-testid").removeprefix("pending-")

    # The scheduler's own approval: the service's refusal, shown; nothing approved.
    rows.first.get_by_role("button", name=_("Approve deletion")).click()
    refused = boss.get_by_test_id("refused")
    expect(refused).to_contain_text("E_SELF_APPROVAL")
    expect(refused).to_contain_text(
        _("Whoever scheduled a deletion cannot approve it; another person must."))
    expect(boss.get_by_test_id(f"pending-{recording}")).to_contain_text(_("not yet approved"))
    assert _errors(boss) == []
    boss.context.close()

    second = _login(chromium, aged_station, "supervisor2", lang)
    _retention(second, aged_station)
    row = second.get_by_test_id(f"pending-{recording}")
    row.get_by_role("button", name=_("Approve deletion")).click()
    expect(second.get_by_test_id("flash")).to_have_text(_(DONE["approved"]))
    row = second.get_by_test_id(f"pending-{recording}")
    expect(row).to_contain_text("supervisor2")
    expect(row).not_to_contain_text(_("not yet approved"))
    assert second.desk_errors == []
    second.context.close()


def test_every_rule_scope_and_message_has_its_chinese() -> None:
    table = i18n.catalog("zh")
    words = [*SCOPE_WORDS.values(), *RULE_WORDS.values(), *DONE.values(),
             *(message for _pattern, message in REASONS),
             "%(num)s hold on records you may not see is not shown."]
    assert [w for w in words if not table.get(w)] == []


@dataclass(frozen=True)
class Catalogs:
    """Where a test's station keeps its catalog: ``toml()`` is the TOML that says so (a
    new database each call), for its evidock.toml before anything is written."""

    dialect: str
    toml: Callable[[], str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalogs(request: pytest.FixtureRequest) -> Iterator[Catalogs]:
    """The station's own SQLite file, or a fresh database (migrated) of the one throwaway
    PostgreSQL cluster this module starts."""
    with pg_cluster() if request.param == "postgresql" else nullcontext() as make:
        if make is None:
            yield Catalogs("sqlite", lambda: "")
        else:
            yield Catalogs("postgresql",
                           lambda: f'\n[paths]\ncatalog_url = "{migrated(make())}"\n')


def _services(home: Path, catalogs: Catalogs) -> Services:
    """The station's services (the real clock), on the catalog its config names."""
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    if svc.catalog.engine.dialect.name != catalogs.dialect:
        svc.close()
        raise AssertionError(f"{svc.settings.catalog_url} is not {catalogs.dialect}")
    return svc


def test_pending_page_answers_as_the_executor_does(tmp_path: Path, catalogs: Catalogs,
                                                   ) -> None:
    """The desk's paginated query (retention/desk_retention.py) gives the executor's
    pending deletions, in its order, page by page: after scheduling, an approval, a
    hold that cancels one, and a step forged into the catalog without an audit event."""
    clips = tuple(ClipSpec(duration_s=1.0, height=240) for _ in range(4))
    home = aged_home(tmp_path, catalogs.toml(), clips=clips)
    svc = _services(home, catalogs)
    try:
        who, ex, gate = svc.gate().by_name, svc.retention(), svc.gate()
        now = datetime.now(UTC)

        def paged(limit: int) -> list[Any]:
            out, offset = [], 0
            while True:
                page = pending_page(svc.catalog, gate, who("supervisor"), now,
                                    offset=offset, limit=limit)
                assert page.total == len(ex.pending(now))
                if not page.views:
                    return out
                out += page.views
                offset += limit

        ex.schedule(who("supervisor"), now)
        first = ex.pending(now)
        assert len(first) >= 4
        assert paged(2) == paged(50) == first
        ex.approve(who("supervisor2"), first[0].recording_id)
        svc.holds().add(who("legal"), scope="recording", target=first[1].recording_id,
                        reason="复议")
        ex.schedule(who("supervisor"), now)  # the hold cancels that one
        with Session(svc.catalog.engine) as s:  # no audit event vouches for this row
            s.add(RetentionAction(recording_id=first[2].recording_id, step="cancelled",
                                  rule="base", reason="forged", due_at=now, actor="x", at=now))
            s.commit()
        after = ex.pending(now)
        assert first[1].recording_id not in {v.recording_id for v in after}
        assert first[2].recording_id in {v.recording_id for v in after}
        assert paged(1) == paged(3) == after
        assert after[0].approvals == ("supervisor2",)
        with pytest.raises(Exception) as refused:
            pending_page(svc.catalog, gate, who("legal"), now)
        assert getattr(refused.value, "code", "") == "E_FORBIDDEN"
    finally:
        svc.close()


def test_holds_page_answers_as_the_hold_desk_does(tmp_path: Path, catalogs: Catalogs,
                                                  ) -> None:
    """The desk's paginated hold list gives HoldDesk.listing's rows, order and hidden
    count for every reader: holds on an open case, a 国家秘密 case, a recording linked
    to it, one linked to another unit's case then unlinked, an officer; one released."""
    home = aged_home(tmp_path, SECRETARY + catalogs.toml(), render=True,
                     clips=tuple(ClipSpec(duration_s=1.0, height=240) for _ in range(4)))
    svc = _services(home, catalogs)
    try:
        who, gate, holds, cases = svc.gate().by_name, svc.gate(), svc.holds(), svc.cases()
        videos = rendered_videos(svc)
        assert len(videos) >= 3 and first_video(svc) in videos
        secretary = who("secretary")
        cases.create(secretary, number="城东秘〔2026〕7号", case_type="行政检查",
                     unit="城东中队", sensitivity="国家秘密")
        cases.create(secretary, number="城西〔2026〕8号", case_type="行政处罚", unit="城西中队")
        secret = cases.link(secretary, "城东秘〔2026〕7号", videos[0], stage="现场检查",
                            reason="取证")
        west = cases.link(secretary, "城西〔2026〕8号", videos[1], stage="立案", reason="取证")
        cases.link(secretary, "城西〔2026〕8号", videos[2], stage="立案", reason="取证")
        cases.unlink(secretary, west.id, reason="误关联")
        boss = who("supervisor")
        for scope, target in (("case", "城东秘〔2026〕7号"), ("case", "城西〔2026〕8号"),
                              ("recording", videos[0]), ("recording", videos[1]),
                              ("recording", videos[2]), ("officer", "123456")):
            holds.add(boss, scope=scope, target=target, reason=f"保全 {target}")
        released = holds.add(boss, scope="recording", target=videos[1], reason="临时")
        holds.release(who("supervisor2"), released.id, reason="结束")
        with Session(svc.catalog.engine) as s:  # a forged unlink un-hides nothing
            s.add(CaseLink(case_id=cases.book.case("城东秘〔2026〕7号").id,
                           recording_id=videos[0], action="unlink", unlinks=secret.id,
                           actor="x", reason="forged", at=datetime.now(UTC)))
            s.commit()

        for name in ("supervisor", "supervisor2", "legal", "admin"):
            for active_only in (True, False):
                views, hidden = holds.listing(who(name), active_only=active_only)
                for limit in (1, 2, 50):
                    got, offset = [], 0
                    while True:
                        page = holds_page(svc.catalog, gate, who(name), limit=limit,
                                          offset=offset, active_only=active_only)
                        assert (page.shown, page.hidden) == (len(views), hidden), name
                        if not page.views:
                            break
                        got += page.views
                        offset += limit
                    assert got == views, (name, active_only, limit)
        legal_views, legal_hidden = holds.listing(who("legal"))
        assert legal_hidden >= 2 and videos[0] not in {v.target for v in legal_views}
        with pytest.raises(Exception) as refused:
            holds_page(svc.catalog, gate, who("clerk"))
        assert getattr(refused.value, "code", "") == "E_FORBIDDEN"
    finally:
        svc.close()


def test_a_hold_page_is_read_from_one_snapshot(tmp_path: Path, catalogs: Catalogs,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A hold placed while a page is read (after its first statement) is in neither its
    counts nor its rows: the page is one snapshot of the catalog, as a SQLite read is
    (PostgreSQL's default, READ COMMITTED, would count it in the later statements)."""
    home = tmp_path / "home"
    write_agency_config(home, catalogs.toml())
    svc = _services(home, catalogs)
    try:
        who, holds = svc.gate().by_name, svc.holds()
        holds.add(who("supervisor"), scope="officer", target="123456", reason="保全")
        views, hidden = holds.listing(who("supervisor"), active_only=True)
        real = desk_retention._unbelieved

        def meanwhile(s: Session) -> tuple[list[int], list[int]]:
            found = real(s)  # the page has read the catalog once
            holds.add(who("legal"), scope="officer", target="654321", reason="同时")
            return found

        monkeypatch.setattr(desk_retention, "_unbelieved", meanwhile)
        page = holds_page(svc.catalog, svc.gate(), who("supervisor"))
        assert (list(page.views), page.shown, page.hidden) == (views, len(views), hidden)
        monkeypatch.undo()
        assert holds_page(svc.catalog, svc.gate(), who("supervisor")).shown == 2
    finally:
        svc.close()
