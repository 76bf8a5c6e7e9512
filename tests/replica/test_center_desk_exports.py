"""Issue 20: exporting from the center on the desk, in headless Chromium, zh and en.

The world is test_center_desk.py's (the ``center_desk`` fixture of this directory's
conftest, one per test process, shared by both modules): a real
center (`evidock serve` on HTTPS, catalog on PostgreSQL), a station that rendered real
footage in 1 s segments, uploaded it to SeaweedFS with Object Lock and pushed its log; a
个人隐私 case of 城东中队 linked to the station's longest video.

What is checked: the clerk requests a 2-segment clip from the center's recording page;
the clerk's own approval is refused by the desk (the refusal page names the code and
the audit event, which is the clerk's refusal of export.approve); the supervisor finds
the request in the 全局导出 list and approves it; the inspector runs it, the package
the center keeps verifies on the page, and the downloaded tar verifies offline with
`evidock verify --key STATION.pem --center-key CENTER.pem` (keys downloaded from the
page, equal to the real ones), its segments the station's own bytes; clerk2 (城西中队,
no clearance) does not see the request in the list and is refused on its page.
Screenshots: test-artifacts/desk/<lang>/center-export*.png.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from center_desk_support import STATION, CenterDesk, T
from desk_support import PASSWORDS, log_in, set_passwords, shot
from evidock_testing import verify_offline, without_pending
from playwright.sync_api import expect
from service_support import audit_rows

from archive.keystore import StationKeys
from evidock.web.base import position

PURPOSE, RECIPIENT = "行政复议", "市人民政府行政复议办公室"


@pytest.fixture(scope="module")
def center(center_desk: CenterDesk) -> CenterDesk:
    """test_center_desk's world, and passwords for the two who decide and run (its own
    tests log in only as clerk, clerk2 and admin)."""
    set_passwords(center_desk.world.center_home,
                  {u: PASSWORDS[u] for u in ("supervisor", "inspector")})
    return center_desk


def _events(c: CenterDesk, action: str, user: str, request_id: str) -> list[Any]:
    return [e for e in audit_rows(c.world.center_url, action)
            if e.actor == f"user:{user}" and f"center-export-request:{request_id}"
            in e.subjects]


def _clip(c: CenterDesk) -> tuple[str, str, list[Any]]:
    """From half a second into the first media segment to half a second into the
    second: exactly those two segments."""
    media = [g for g in c.segments if g.end_us > g.start_us]
    start, end = media[0].start_us + 500_000, media[1].start_us + 500_000
    return f"{start / 1e6:g}", f"{end / 1e6:g}", media[:2]


def _request(page: Any, c: CenterDesk, lang: str, start: str, end: str) -> str:
    """The clerk fills in the form on the center's recording page; the new request."""
    page.goto(c.page_url())
    form = page.get_by_test_id("center-export-form")
    form.locator("input[name=start]").fill(start)
    form.locator("input[name=end]").fill(end)
    form.locator("select[name=purpose]").select_option(PURPOSE)
    form.locator("input[name=recipient]").fill(RECIPIENT)
    form.locator("textarea[name=reason]").fill("复议机关调取现场录像")
    shot(page, lang, "center-export-form")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/desk/center/exports/[0-9a-f]{32}\?done=requested$"))
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "pending"
    return str(page.url).split("/center/exports/")[1].split("?")[0]


def _own_approval_refused(page: Any, c: CenterDesk, request_id: str) -> None:
    """The requester's decision is the desk's refusal, shown with its audit event."""
    page.fill("form[data-testid=approve-form] textarea", "自己批准")
    page.click("form[data-testid=approve-form] button")
    refused = page.locator("section.refused")
    code = refused.locator("code.code").inner_text()
    [event] = _events(c, "access.refused", "clerk", request_id)
    assert (code, event.details["code"], event.details["permission"]) == (
        "E_FORBIDDEN", "E_FORBIDDEN", "export.approve")  # a clerk never decides
    assert str(event.seq) in refused.inner_text()
    assert page.desk_errors == ["Failed to load resource: the server responded with a "
                                "status of 403 (Forbidden)"]
    page.desk_errors.clear()
    assert not _events(c, "center.export.approve", "clerk", request_id)


def _approve(chromium: Any, c: CenterDesk, lang: str, request_id: str) -> None:
    page = log_in(chromium, c.desk, "supervisor", lang=lang, test_ca=True)
    page.goto(f"{c.desk.url}/center")
    page.click('[data-testid=center-tabs] a[href="/desk/center/exports"]')
    row = page.get_by_test_id(f"request-{request_id}")
    assert STATION in row.inner_text() and "张文书" in row.inner_text()
    assert row.locator("[data-status]").get_attribute("data-status") == "pending"
    shot(page, lang, "center-exports")
    row.locator("a").first.click()
    watch = page.get_by_test_id("watch").get_attribute("href")
    assert watch is not None and watch.startswith(f"/desk/center/recordings/{STATION}/")
    page.fill("form[data-testid=approve-form] textarea", "已查看录像，同意提供")
    page.click("form[data-testid=approve-form] button")
    expect(page).to_have_url(re.compile(r"\?done=approved$"))
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "approved"
    assert "supervisor" in page.get_by_test_id("approved-by").inner_text()
    shot(page, lang, "center-export-approved")
    assert page.desk_errors == []
    page.context.close()


def _pem(home: Path) -> bytes:
    return StationKeys(directory=home / "keys").load().public.to_pem()


def _run_and_download(page: Any, c: CenterDesk, lang: str, request_id: str,
                      tmp: Path) -> Path:
    """The inspector runs the export and downloads the package and both keys; the
    folder the tar unpacks into and the two key files."""
    page.goto(f"{c.desk.url}/center/exports/{request_id}")
    page.click("form[data-testid=run-form] button")
    expect(page).to_have_url(re.compile(r"\?done=run$"), timeout=120_000)
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "used"
    page.get_by_test_id("verify-ok").wait_for()  # htmx: the center verified its package
    got: dict[str, Path] = {}
    for testid in ("download", "station-key", "center-key"):
        with page.expect_download() as download:
            page.get_by_test_id(testid).click()
        got[testid] = tmp / download.value.suggested_filename
        download.value.save_as(got[testid])
    assert got["download"].name == f"{request_id}.tar"
    assert got["station-key"].read_bytes() == _pem(c.world.station(STATION))
    assert got["center-key"].read_bytes() == _pem(c.world.center_home)
    assert page.get_by_test_id("verify-command").inner_text() == (
        f"evidock verify {request_id} --key {got['station-key'].name} "
        f"--center-key {got['center-key'].name}")
    shot(page, lang, "center-export-downloaded")
    folder = tmp / request_id
    folder.mkdir()
    subprocess.run(["tar", "-xf", str(got["download"]), "-C", str(folder)], check=True,
                   timeout=60)
    code, report, run = verify_offline(folder, "--key", str(got["station-key"]),
                                       "--center-key", str(got["center-key"]))
    assert code == 0 and report["ok"], run.stdout
    assert without_pending(report["findings"]) == []
    return folder


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_clip_requested_approved_run_and_verified_at_the_center(
        chromium: Any, center: CenterDesk, lang: str, tmp_path: Path) -> None:
    c, _ = center, T[lang]
    start, end, chosen = _clip(c)
    clerk = log_in(chromium, c.desk, "clerk", lang=lang, test_ca=True)
    request_id = _request(clerk, c, lang, start, end)
    assert clerk.get_by_test_id("range").inner_text().startswith(
        f"{position(round(float(start) * 1e6))} – {position(round(float(end) * 1e6))}")
    assert clerk.get_by_test_id("recipient").inner_text() == RECIPIENT
    shot(clerk, lang, "center-export-pending")
    _own_approval_refused(clerk, c, request_id)
    shot(clerk, lang, "center-export-refused")
    assert clerk.desk_errors == []
    clerk.context.close()

    _approve(chromium, c, lang, request_id)
    inspector = log_in(chromium, c.desk, "inspector", lang=lang, test_ca=True)
    folder = _run_and_download(inspector, c, lang, request_id, tmp_path)
    for g in chosen:  # the center's package holds the station's own bytes
        assert (folder / "data" / "segments" / g.name).read_bytes() == c.local(g)
    inspector.goto(f"{c.desk.url}/center/exports?status=used")
    row = inspector.get_by_test_id(f"request-{request_id}")
    assert row.locator("[data-status]").get_attribute("data-status") == "used"
    assert [_(w) for w in ("approved", "run started", "package made")] == [
        line.split(":")[0] for line in row.locator("td.decisions").inner_text().splitlines()]
    shot(inspector, lang, "center-exports-used")
    assert inspector.desk_errors == []
    inspector.context.close()
    assert len(_events(c, "center.export.run", "inspector", request_id)) == 1
    assert len(_events(c, "read.center.export.verify", "inspector", request_id)) == 1
    assert len(_events(c, "read.center.export.download", "inspector", request_id)) == 1


def test_who_may_not_see_the_recording_sees_no_request(chromium: Any,
                                                       center: CenterDesk) -> None:
    c = center
    start, end, _chosen = _clip(c)
    clerk = log_in(chromium, c.desk, "clerk", lang="zh", test_ca=True)
    request_id = _request(clerk, c, "zh", start, end)
    clerk.context.close()
    page = log_in(chromium, c.desk, "clerk2", lang="zh", test_ca=True)
    page.goto(f"{c.desk.url}/center/exports")
    assert page.get_by_test_id(f"request-{request_id}").count() == 0
    assert request_id not in page.content() and c.video not in page.content()
    answer = page.goto(f"{c.desk.url}/center/exports/{request_id}")
    assert answer is not None and answer.status == 403
    refused = page.locator("section.refused")
    assert refused.locator("code.code").inner_text() == "E_FORBIDDEN"
    [event] = _events(c, "access.refused", "clerk2", request_id)
    assert "may not see this record" in event.details["why"]
    assert str(event.seq) in refused.inner_text()
    assert RECIPIENT not in page.content()
    shot(page, "zh", "center-export-refused-clerk2")
    for tail in ("/download", "/station-key.pem", "/verification"):
        got = page.request.get(f"{c.desk.url}/center/exports/{request_id}{tail}")
        assert got.status == 403, (tail, got.status)
    page.context.close()


def test_the_form_says_what_is_wrong(chromium: Any, center: CenterDesk) -> None:
    """A range that ends before it starts is the desk's refusal, shown on the form with
    what was typed kept; a recording the user may not see reads as one that does not
    exist (the refusal is still audited)."""
    c, _ = center, T["en"]
    clerk = log_in(chromium, c.desk, "clerk", lang="en", test_ca=True)
    answer = clerk.goto(c.page_url())
    assert answer is not None and answer.ok
    form = clerk.get_by_test_id("center-export-form")
    form.locator("input[name=start]").fill("2")
    form.locator("input[name=end]").fill("1")
    form.locator("select[name=purpose]").select_option(PURPOSE)
    form.locator("input[name=recipient]").fill(RECIPIENT)
    form.locator("button[type=submit]").click()
    said = clerk.get_by_test_id("form-problem").inner_text()
    assert said == ("The request was not accepted (E_INVALID): the clip's end must come "
                    "after its start")
    assert clerk.input_value("input[name=recipient]") == RECIPIENT
    assert clerk.input_value("input[name=start]") == "2"
    clerk.context.close()

    clerk2 = log_in(chromium, c.desk, "clerk2", lang="en", test_ca=True)
    clerk2.goto(f"{c.desk.url}/center/exports/new?station={STATION}&recording={c.video}")
    before = len([e for e in audit_rows(c.world.center_url, "access.refused")
                  if e.actor == "user:clerk2"])
    clerk2.fill("input[name=start]", "0")
    clerk2.fill("input[name=end]", "1")
    clerk2.select_option("select[name=purpose]", PURPOSE)
    clerk2.fill("input[name=recipient]", RECIPIENT)
    clerk2.click("form[data-testid=center-export-form] button[type=submit]")
    assert clerk2.get_by_test_id("form-problem").inner_text() == (
        f"There is no recording {c.video} that you may export.")
    refused = [e for e in audit_rows(c.world.center_url, "access.refused")
               if e.actor == "user:clerk2"][before:]
    assert [e.details["permission"] for e in refused] == ["export.request"]
    assert not [e for e in audit_rows(c.world.center_url, "center.export.request")
                if e.actor == "user:clerk2"]
    shot(clerk2, "en", "center-export-form-refused")
    clerk2.context.close()
