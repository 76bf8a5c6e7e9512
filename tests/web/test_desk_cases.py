"""The cases pages in a real browser (zh and en): a clerk creates a case (a duplicate
number is refused in words), records a stage time, uploads a document whose digests are
those of its bytes, sees footage linked through the API, reads the coverage timeline with
its gap, closes and reopens the case. The 国家秘密 case is never shown to a clerk (list,
search, guessed URL), only to the cleared archivist. The list's SQL page is checked
against the existing in-Python list on the same data."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from desk_support import ARCHIVIST, SECRET_CASE, SECRET_TITLE, DeskStation, log_in, shot
from evidock_testing import station_on
from playwright.sync_api import expect

from config import load_settings
from records.casebook import CaseView
from records.desk_cases import CaseFilter, CaseList

WORDS = {"zh": {"exists": "已存在", "closed": "已结案", "open": "办理中",
                "none": "没有符合条件的案件", "missing": "没有您可查看的案件"},
         "en": {"exists": "already exists", "closed": "closed", "open": "open",
                "none": "No case matches", "missing": "There is no case"}}


STATUS = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}


def _number(prefix: str = "城东") -> str:
    return f"{prefix}〔2026〕{random.randrange(100000, 999999)}号"


def _api(page: Any, method: str, path: str, **kw: Any) -> Any:
    """The station's API with the page's session cookie (and its CSRF token)."""
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    base = page.url.split("/desk")[0]
    answer = page.request.fetch(f"{base}/api/v1{path}", method=method,
                                headers={"X-CSRF-Token": token}, **kw)
    assert answer.ok, answer.text()
    return answer.json()


def refused(page: Any, status: int) -> None:
    """The browser logs a page answered with an error status; expected here, and only that."""
    assert page.desk_errors == [f"Failed to load resource: the server responded with a "
                                f"status of {status} ({STATUS[status]})"], page.desk_errors
    page.desk_errors.clear()


def _create(page: Any, station: DeskStation, number: str, title: str) -> None:
    page.goto(f"{station.url}/cases/new")
    page.fill("input[name=number]", number)
    page.select_option("select[name=type]", "行政检查")
    page.select_option("select[name=unit]", "城东中队")
    page.fill("input[name=title]", title)


# In Chinese only: test_secret_case_never_shown_to_the_uncleared
# shows this page in English.
@pytest.mark.parametrize("lang", ["zh"])
def test_clerk_works_a_case(chromium: Any, desk_station: DeskStation, lang: str) -> None:
    page = log_in(chromium, desk_station, "clerk", lang=lang)
    words, number = WORDS[lang], _number()
    _create(page, desk_station, number, "占道经营检查")
    shot(page, lang, "cases-new")
    page.click("form.stack button[type=submit]")
    expect(page.get_by_test_id("case-number")).to_contain_text(number)
    assert page.get_by_test_id("status").inner_text().startswith(words["open"])
    # The same number again: the form comes back with the reason, in the user's words.
    _create(page, desk_station, number, "again")
    page.click("form.stack button[type=submit]")
    expect(page.get_by_test_id("problem")).to_contain_text(words["exists"])
    assert page.input_value("input[name=title]") == "again"
    shot(page, lang, "cases-new-refused")
    refused(page, 409)
    _create(page, desk_station, "第12号", "bad number")
    page.click("form.stack button[type=submit]")
    expect(page.get_by_test_id("problem")).to_contain_text("城东〔2026〕12号")
    refused(page, 400)

    # Footage linked through the API (as the recording page does), 0:10–0:40.
    rec = desk_station.recordings[0]
    _api(page, "POST", "/cases/links", data={"case": number, "recording": rec,
                                             "stage": "查封扣押", "reason": "现场取证",
                                             "start": "10", "end": "40"})
    wrong = _api(page, "POST", "/cases/links", data={"case": number, "recording": rec,
                                                     "stage": "现场检查", "reason": "先关联"})
    _api(page, "POST", f"/cases/links/{wrong['id']}/unlink", data={"reason": "环节选错"})
    shown = _api(page, "GET", f"/cases/show?case={quote(number)}")
    camera_start = datetime.fromisoformat(shown["recordings"][0]["camera_start"])
    zone = load_settings(environ={"EVIDOCK_HOME": str(desk_station.home)}).station.local_zone

    page.goto(f"{desk_station.url}/cases/{quote(number, safe='')}")
    links = page.get_by_test_id("links")
    expect(links).to_contain_text(rec)
    expect(links).to_contain_text("0:10 – 0:40")
    assert links.locator(f'a[href="/desk/footage/{rec}"]').count() == 2
    expect(links.locator("tr.cases-removed")).to_contain_text("环节选错")  # the history stays

    # The stage took place from a minute before the recording to two minutes after it.
    form = page.get_by_test_id("stage-form")
    form.locator("select[name=stage]").select_option("查封扣押")
    local = "%Y-%m-%dT%H:%M:%S"
    form.locator("input[name=start]").fill(
        (camera_start - timedelta(seconds=60)).astimezone(zone).strftime(local))
    form.locator("input[name=end]").fill(
        (camera_start + timedelta(seconds=120)).astimezone(zone).strftime(local))
    form.locator("button").click()
    expect(page.get_by_test_id("stages")).to_contain_text("查封扣押")
    svg = page.locator("[data-testid=coverage-timeline] svg")
    expect(svg).to_be_visible()
    row = svg.locator('g.cov-row[data-stage="查封扣押"]')
    assert row.get_attribute("data-status") == "gaps"
    assert row.locator("rect.cov-gap").count() >= 1
    assert row.locator("rect.cov-footage").count() == 1
    assert svg.locator("g.cov-row").count() >= 2  # the checklist's other stages too
    expect(page.get_by_test_id("findings")).to_contain_text("查封扣押")

    # A checklist stage that did not take place: 不适用, with a reason.
    decide = page.get_by_test_id("applicability-form")
    decide.locator("select[name=stage]").select_option("强制拆除")
    decide.locator("select[name=applicable]").select_option("no")
    decide.locator("input[name=reason]").fill("本案无拆除环节")
    decide.locator("button").click()
    expect(svg.locator('g.cov-row[data-stage="强制拆除"]')).to_have_attribute(
        "data-status", "not_applicable")
    expect(page.get_by_test_id("findings")).to_contain_text("本案无拆除环节")

    # A document: stored by hash, its digests those of the bytes, downloadable.
    data = f"询问笔录 {number}\n".encode() * 50
    doc = page.get_by_test_id("document-form")
    doc.locator("input[name=file]").set_input_files(
        files=[{"name": "询问笔录.txt", "mimeType": "text/plain", "buffer": data}])
    doc.locator("button").click()
    expect(page.get_by_test_id("sha256")).to_have_text(hashlib.sha256(data).hexdigest())
    href = page.get_by_test_id("documents").locator("a").first.get_attribute("href")
    assert href is not None
    assert page.request.get(page.url.split("/desk")[0] + href).body() == data
    shot(page, lang, "cases-case")

    # A label within the clerk's clearance, with a reason.
    label = page.get_by_test_id("label-form")
    label.locator("select").select_option("个人隐私")
    label.locator("input[name=reason]").fill("涉及当事人个人信息")
    label.locator("button").click()
    expect(page.get_by_test_id("label")).to_have_text("个人隐私")

    # A closing date ahead of the station's clock is refused in words; then close now.
    state = page.get_by_test_id("state-form")
    state.locator("input[name=reason]").fill("处罚决定已执行")
    state.locator("input[name=date]").fill((datetime.now(zone) + timedelta(days=3))
                                           .strftime("%Y-%m-%d"))
    state.locator("button").click()
    expect(page.get_by_test_id("problem")).to_contain_text(
        "不能晚于今天" if lang == "zh" else "cannot be later than today")
    refused(page, 400)

    # Close and reopen, each with a reason.
    page.get_by_test_id("state-form").locator("input[name=reason]").fill("处罚决定已执行")
    page.get_by_test_id("state-form").locator("button").click()
    expect(page.get_by_test_id("status")).to_contain_text(words["closed"])
    page.get_by_test_id("state-form").locator("input[name=reason]").fill("当事人申请复议")
    page.get_by_test_id("state-form").locator("button").click()
    expect(page.get_by_test_id("status")).to_have_text(words["open"])

    page.goto(f"{desk_station.url}/cases?q={quote(number)}")
    expect(page.locator("table.cases-list")).to_contain_text("占道经营检查")
    page.goto(f"{desk_station.url}/cases")
    shot(page, lang, "cases-list")
    assert page.desk_errors == []
    page.context.close()


# In English only: test_clerk_works_a_case
# shows this page in Chinese.
@pytest.mark.parametrize("lang", ["en"])
def test_secret_case_never_shown_to_the_uncleared(chromium: Any, desk_station: DeskStation,
                                                  lang: str) -> None:
    page = log_in(chromium, desk_station, "clerk", lang=lang)
    page.goto(f"{desk_station.url}/cases?q={quote(SECRET_CASE)}")
    expect(page.locator("main")).to_contain_text(WORDS[lang]["none"])
    assert page.locator("table.cases-list").count() == 0
    page.goto(f"{desk_station.url}/cases")
    assert SECRET_CASE not in page.content() and SECRET_TITLE not in page.content()
    # A guessed URL answers as a missing case does.
    guessed = page.goto(f"{desk_station.url}/cases/{quote(SECRET_CASE, safe='')}")
    assert guessed is not None and guessed.status == 404
    said = page.locator("main").inner_text()
    assert SECRET_TITLE not in page.content() and WORDS[lang]["missing"] in said
    missing = "城东秘〔2026〕8号"
    other = page.goto(f"{desk_station.url}/cases/{quote(missing, safe='')}")
    assert other is not None and other.status == 404
    assert page.locator("main").inner_text() == said.replace(SECRET_CASE, missing)
    assert len(page.desk_errors) == 2 and all("404" in e for e in page.desk_errors)
    page.desk_errors.clear()
    assert page.desk_errors == []
    page.context.close()

    boss = log_in(chromium, desk_station, "archivist", lang=lang)
    boss.goto(f"{desk_station.url}/cases?q={quote(SECRET_CASE)}")
    expect(boss.locator("table.cases-list")).to_contain_text(SECRET_TITLE)
    boss.click(f"text={SECRET_CASE}")
    expect(boss.get_by_test_id("case-number")).to_contain_text(SECRET_TITLE)
    expect(boss.get_by_test_id("links")).to_contain_text(desk_station.recordings[1])
    assert boss.desk_errors == []
    boss.context.close()


def test_uncleared_post_to_a_hidden_case_is_refused(chromium: Any,
                                                     desk_station: DeskStation) -> None:
    page = log_in(chromium, desk_station, "clerk2")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    answer = page.request.post(f"{desk_station.url}/cases/{quote(SECRET_CASE, safe='')}/close",
                               form={"csrf_token": token or "", "reason": "x"})
    assert answer.status == 404 and SECRET_TITLE not in answer.text()
    page.context.close()


# ---------------------------------------------------------------- the SQL page


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_sql_page_is_the_dossier_list(tmp_path: Path, database: str) -> None:
    """On SQLite and on PostgreSQL (the catalog of an agency's center) alike."""
    with station_on(database, tmp_path / "home", extra=ARCHIVIST) as svc:
        gate, cases = svc.gate(), svc.cases()
        clerk, boss = gate.by_name("clerk"), gate.by_name("archivist")
        made = []
        for i in range(14):
            unit = ("城东中队", "城西中队")[i % 2]
            label = ("none", "个人隐私", "商业秘密")[i % 3]
            who = clerk if label != "商业秘密" else None
            if who is None:
                continue  # nobody here may create a 商业秘密 case but through a relabel
            made.append(cases.create(who, number=f"城东〔2026〕{i + 1}号", case_type="行政检查",
                                     unit=unit, title=f"案件{i}", sensitivity=label))
        cases.close(clerk, made[0].number, reason="结案")
        cases.close(clerk, made[1].number, reason="结案")
        cases.reopen(clerk, made[1].number, reason="复议")
        cases.relabel(clerk, made[2].number, sensitivity="个人隐私", reason="涉及个人信息")
        east = next(c for c in made if c.unit == "城东中队" and c.number != made[0].number)
        cases.relabel(boss, east.number, sensitivity="国家秘密", reason="定密")
        listing = CaseList(catalog=svc.catalog, gate=gate)
        filters = [{}, {"unit": "城西中队"}, {"status": "closed"}, {"status": "open"},
                   {"case_type": "行政检查"}]
        for name in ("clerk", "clerk2", "inspector", "archivist", "supervisor"):
            actor = gate.by_name(name)
            for f in filters:
                want = svc.dossier().list(actor, unit=f.get("unit"), status=f.get("status"),
                                          case_type=f.get("case_type"))
                got: list[CaseView] = []
                offset = 0
                while True:
                    page = listing.page(actor, CaseFilter(**f), offset=offset, limit=3,
                                        newest_first=False)
                    got += page.rows
                    offset += 3
                    if offset >= page.total:
                        break
                assert got == want, (name, f)
                assert page.total == len(want)
        # The text filter: part of a number or of a title.
        actor = gate.by_name("supervisor")
        assert [c.number for c in listing.page(actor, CaseFilter(text="案件1")).rows] == [
            "城东〔2026〕14号", "城东〔2026〕13号", "城东〔2026〕11号", "城东〔2026〕2号"]
        assert listing.page(actor, CaseFilter(text="%")).total == 0
        # The read is audited as the list's is: what was shown, how many were hidden.
        # clerk2: 城西中队 only, no clearance; of the ten cases one is theirs to see.
        assert listing.page(gate.by_name("clerk2"), CaseFilter(), limit=2).total == 1
        audit = svc.audit()
        event = audit.event(audit.size() - 1)
        assert event is not None
        assert event.action == "read.case.list"
        assert event.details["shown"] == 1 and event.details["hidden"] == 9
        # The text folds ASCII letters only, on both databases (PostgreSQL's LIKE minds
        # case, its ILIKE folds by locale): "ktv" finds "KTV", "ärger" not "Ärger".
        ktv = cases.create(clerk, number="城东〔2026〕15号", case_type="行政检查",
                           unit="城东中队", title="KTV Ärger", sensitivity="none")
        for text, found in (("ktv", [ktv.number]), ("kTv ä", []), ("Ärger", [ktv.number]),
                            ("ärger", [])):
            rows = listing.page(actor, CaseFilter(text=text)).rows
            assert [c.number for c in rows] == found, text
