"""Steps of the desk's flows that more than one browser test takes: an API client for
setting the scene, the clerk's find–play–link on the recording page, and the export's
request, refused self-approval, legal review and download."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from desk_support import PASSWORDS, SECRET_CASE, DeskStation, log_in, shot
from evidock_testing import verify_offline, without_pending
from playwright.sync_api import expect

from config import load_settings

PURPOSE = "行政诉讼"
WORDS = {"zh": {"hidden": "1 段录像未显示（未获授权）", "verified": "已验证", "removed": "已撤销",
                "play": "播放"},
         "en": {"hidden": "1 recording hidden (not cleared)", "verified": "Verified",
                "removed": "removed", "play": "Play"}}
_REASONS = {400: "Bad Request", 403: "Forbidden"}


@contextmanager
def api(station: DeskStation, user: str) -> Iterator[httpx.Client]:
    """An API client logged in as ``user`` (session cookie and its CSRF token)."""
    with httpx.Client(base_url=f"{station.svc.url}/api/v1", timeout=60) as client:
        answer = client.post("/login", json={"user": user, "password": PASSWORDS[user]})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def case_number() -> str:
    return f"城东〔2026〕{secrets.randbelow(900000) + 100000}号"


def new_case(station: DeskStation, *, linked: bool = False) -> str:
    """A case of 城东中队 made by the clerk through the API; ``linked``: with 0:10–0:40 of
    the 48 s recording linked at 现场检查."""
    number = case_number()
    with api(station, "clerk") as clerk:
        made = clerk.post("/cases", json={"number": number, "type": "行政检查",
                                          "unit": "城东中队", "title": "占道经营检查"})
        assert made.status_code == 200, made.text
        if linked:
            done = clerk.post("/cases/links", json={
                "case": number, "recording": station.recordings[0], "stage": "现场检查",
                "reason": "现场检查录像", "start": "10", "end": "40"})
            assert done.status_code == 200, done.text
    return number


def window(station: DeskStation) -> tuple[str, str]:
    """A datetime-local window (station time) around the first recording's start."""
    with api(station, "clerk") as web:
        shown = web.get(f"/recordings/{station.recordings[0]}").json()
    start = datetime.fromisoformat(shown["recording"]["camera_start"])
    zone = load_settings(environ={"EVIDOCK_HOME": str(station.home)}).station.local_zone_name
    local = start.astimezone(ZoneInfo(zone))
    since, until = local - timedelta(minutes=2), local + timedelta(minutes=10)
    return since.strftime("%Y-%m-%dT%H:%M"), until.strftime("%Y-%m-%dT%H:%M")


def whole_shot(page: Any, lang: str, name: str) -> None:
    """shot() with the window as tall as the page: Chromium's full-page capture of this
    page (with its <video>s) stops short of the bottom otherwise."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1360, "height": height})
    shot(page, lang, name)
    page.set_viewport_size({"width": 1360, "height": 900})


def wait_js(page: Any, script: str, timeout: float = 30_000) -> None:
    page.wait_for_function(script, timeout=timeout)


def create_case_in_browser(page: Any, station: DeskStation, lang: str) -> str:
    """The clerk makes a new case on the cases page; returns its number."""
    number = case_number()
    page.goto(f"{station.url}/cases/new")
    page.fill("input[name=number]", number)
    page.select_option("select[name=type]", "行政检查")
    page.select_option("select[name=unit]", "城东中队")
    page.fill("input[name=title]", "占道经营检查")
    page.click("form.stack button[type=submit]")
    expect(page.get_by_test_id("case-number")).to_contain_text(number)
    return number


def find_and_play(page: Any, station: DeskStation, lang: str) -> None:
    """Find the 48 s recording by officer and time window (the secret one only counted
    as hidden), see its still, open it and play it across a segment boundary."""
    words, first, secret = WORDS[lang], station.recordings[0], station.recordings[1]
    since, until = window(station)
    page.goto(f"{station.url}/footage")
    page.fill("input[name=officer]", "123456")
    page.fill("input[name=since]", since)
    page.fill("input[name=until]", until)
    page.click("form[data-testid=footage-search] button[type=submit]")
    rows = page.locator("[data-testid=footage-results] tbody tr")
    assert rows.first.get_attribute("data-recording") == first
    ids = [rows.nth(i).get_attribute("data-recording") for i in range(rows.count())]
    assert secret not in ids
    assert page.get_by_test_id("footage-hidden").inner_text() == words["hidden"]
    wait_js(page, f"""() => {{ const i = document.querySelector(
        'tr[data-recording="{first}"] img.thumb');
        return i && i.complete && i.naturalWidth > 0; }}""")
    assert SECRET_CASE not in page.content()
    shot(page, lang, "footage-search")

    page.click(f'tr[data-recording="{first}"] td:nth-child(2) a')
    page.wait_for_url(f"**/desk/footage/{first}")
    assert words["verified"] in page.get_by_test_id("footage-verify").inner_text()
    page.get_by_role("button", name=words["play"], exact=True).click()
    # Seek near the end of the first 10 s segment; the player must go on into the next.
    page.evaluate("""() => { const r = document.querySelector('[data-role=timeline]');
        r.value = '8.5'; r.dispatchEvent(new Event('input')); }""")
    wait_js(page, """() => { const p = document.querySelector('.player');
        const v = document.querySelector('video.seg:not([hidden])');
        return p.dataset.index === '1' && v.currentTime > 0.5 && !v.paused; }""")
    size = page.evaluate("""() => { const v = document.querySelector('video.seg:not([hidden])');
        return [v.videoWidth, v.videoHeight]; }""")
    assert size == [640, 360]
    page.click("[data-act=mark-start]")  # the player's time fills the field
    assert page.input_value("input[name=start]").count(":") == 1
    whole_shot(page, lang, "footage-recording")


def link_range(page: Any, number: str, lang: str) -> Any:
    """On the open recording page: link 0:10–0:40 to ``number`` at 现场检查; returns the
    link's row."""
    page.fill("input[name=case]", number)
    page.select_option("select[name=stage]", "现场检查")
    page.fill("input[name=start]", "0:10")
    page.fill("input[name=end]", "0:40")
    page.fill("form[data-testid=link-form] input[name=reason]", "现场检查全过程")
    page.click("form[data-testid=link-form] button[type=submit]")
    row = page.locator("[data-testid=footage-links] tr", has_text=number)
    assert "0:10 – 0:40" in row.inner_text() and "现场检查" in row.inner_text()
    assert row.get_attribute("class") == "active"
    whole_shot(page, lang, "footage-linked")
    return row


def expected_refusal(page: Any, status: int) -> None:
    """The console's note of a page answered with ``status`` on purpose (a refusal, a
    form re-shown with its message) is all it may hold; then it starts afresh."""
    assert page.desk_errors == [f"Failed to load resource: the server responded with a "
                                f"status of {status} ({_REASONS[status]})"]
    page.desk_errors.clear()


def request_export(page: Any, station: DeskStation, lang: str, number: str) -> str:
    """The inspector fills in the request form; returns the new request's id."""
    page.goto(f"{station.url}/exports")
    page.get_by_test_id("new-request").click()
    page.fill("input[name=case]", number)
    page.select_option("select[name=purpose]", PURPOSE)
    page.fill("input[name=recipient]", "市人民法院行政庭")
    page.fill("textarea[name=reason]", "行政诉讼举证")
    shot(page, lang, "exports-request")
    page.click("form[data-testid=request-form] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/desk/exports/[0-9a-f]{32}\?done=requested$"))
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "pending"
    return str(page.url).split("/exports/")[1].split("?")[0]


def refused_own_approval(page: Any, station: DeskStation, lang: str) -> None:
    """The service refuses the requester's decision; the page says so with its audit
    event (the button is there: the rule is the service's, not the page's)."""
    page.fill("form[data-testid=approve-form] textarea", "自己批准")
    page.click("form[data-testid=approve-form] button")
    refused = page.locator(".refused")
    code = refused.locator("code.code").inner_text()
    assert code in ("E_FORBIDDEN", "E_SELF_APPROVAL")
    text = refused.inner_text()
    seq = re.search(r"(?:审计日志，事件号|audit log as event) (\d+)", text)
    assert seq, text
    with api(station, "supervisor") as boss:  # the event the page names is the refusal
        got = boss.get("/audit/events", params={"after": int(seq[1]) - 1, "limit": 1})
        event = got.json()["events"][0]
    assert event["seq"] == int(seq[1]) and event["action"] == "access.refused"
    assert event["actor"] == "user:inspector"
    assert event["details"]["permission"] == "export.approve"
    expected_refusal(page, 403)
    page.go_back()


def approve_as_legal(chromium: Any, station: DeskStation, lang: str, request_id: str,
                     number: str) -> None:
    page = log_in(chromium, station, "legal", lang=lang)
    page.goto(f"{station.url}/exports")  # a reviewer opens on the queue
    row = page.get_by_test_id(f"request-{request_id}")
    assert number in row.inner_text()
    shot(page, lang, "exports-queue")
    row.locator("a").first.click()
    watch = page.get_by_test_id("watch")
    assert watch.get_attribute("href") == (f"/desk/footage/{station.recordings[0]}"
                                           "?from=10&to=40")
    # A blank reason (spaces pass the browser's check) is refused by the server.
    page.fill("form[data-testid=approve-form] textarea", "   ")
    page.click("form[data-testid=approve-form] button")
    assert page.get_by_test_id("form-problem").inner_text() == (
        "请填写审批理由。" if lang == "zh" else "Give a reason for your decision.")
    expected_refusal(page, 400)
    page.fill("form[data-testid=approve-form] textarea", "已查看录像，同意用于行政诉讼")
    page.click("form[data-testid=approve-form] button")
    expect(page).to_have_url(re.compile(r"\?done=approved$"))
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "approved"
    assert "王法制" in page.get_by_test_id("approved-by").inner_text()
    assert "已查看录像" in page.get_by_test_id("history").inner_text()
    shot(page, lang, "exports-approved")
    assert page.desk_errors == []
    page.context.close()


def run_and_download(page: Any, station: DeskStation, lang: str, request_id: str,
                     tmp: Path) -> None:
    page.goto(f"{station.url}/exports/{request_id}")
    page.click("form[data-testid=run-form] button")
    expect(page).to_have_url(re.compile(r"\?done=run$"), timeout=120_000)  # writes the package
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "used"
    page.get_by_test_id("verify-ok").wait_for()  # htmx loads the station's verification
    with page.expect_download() as got:
        page.get_by_test_id("download").click()
    tar = tmp / got.value.suggested_filename
    got.value.save_as(tar)
    assert tar.name == f"{request_id}.tar"
    with page.expect_download() as got_key:
        page.get_by_test_id("station-key").click()
    key = tmp / got_key.value.suggested_filename
    got_key.value.save_as(key)
    command = page.get_by_test_id("verify-command").inner_text()
    assert command == f"evidock verify {request_id} --key {key.name}"
    shot(page, lang, "exports-downloaded")
    # What the page tells the recipient to do, with the real CLI, offline.
    folder = tmp / request_id
    folder.mkdir()
    subprocess.run(["tar", "-xf", str(tar), "-C", str(folder)], check=True, timeout=60)
    code, report, run = verify_offline(folder, "--key", str(key))
    assert code == 0 and report["ok"], run.stdout
    assert without_pending(report["findings"]) == []
