"""Issue 20: the center's desk plays a station's footage, read back and proven.

Real parts, as in test_center_feed.py (whose helpers in tests/center_support.py build
this world): a station that offloaded the synthetic camera and rendered it in 1 s
segments, uploaded to a real SeaweedFS with Object Lock and pushed its log over HTTPS
with mutual TLS to a real center (`evidock serve`, catalog on PostgreSQL); a 个人隐私 case
of 城东中队 linked at the station to its longest video. People use the center's desk in
headless Chromium (tests/desk_support.py), over the center's own HTTPS listener.

What is checked: from the center's recordings list the clerk opens the recording's page
(facts from the central index, the linked case) and plays it in the station desk's
player: the visible <video> decodes (readyState >= 2) and goes on into the second
segment, fetched from the center's segment route; every segment the page's download
links fetch is byte for byte the station's; the page, its segment list and each play
are the clerk's audit events. clerk2 (城西中队, no clearance) and admin (no
recording.view) get the station desk's refusal page with the code and the audit event,
and the API gives them no segment. The Chinese page is drawn with a CJK font. (The browser
fixture comes from tests/desk_support.py through this directory's conftest.)
Screenshots: test-artifacts/desk/<lang>/center-recording*.png.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from center_desk_support import CASE, STATION, CenterDesk, T
from desk_support import log_in, shot
from service_support import audit_rows

# ``center_desk`` (the world) is a fixture of this directory's conftest: one per test
# process, shared with test_center_desk_exports.py.


def _mine(center: CenterDesk, action: str, user: str) -> list[Any]:
    return [e for e in audit_rows(center.world.center_url, action)
            if e.actor == f"user:{user}"]


def _whole_shot(page: Any, lang: str, name: str) -> None:
    """A full-page screenshot with the window as tall as the page (Chromium's full-page
    capture of a page with <video>s stops short otherwise)."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1360, "height": height})
    shot(page, lang, name)
    page.set_viewport_size({"width": 1360, "height": 900})


def _fonts(page: Any, selector: str) -> dict[str, int]:
    """The platform fonts Chromium drew the text of ``selector`` with (glyphs each)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


_DIGESTS = """async (hrefs) => Promise.all(hrefs.map(async (h) => {
    const r = await fetch(h);
    const body = await r.arrayBuffer();
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
    return [r.status, body.byteLength,
            Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("")];
}))"""


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_clerk_plays_a_stations_recording_at_the_center(chromium: Any,
                                                            center_desk: CenterDesk,
                                                            lang: str) -> None:
    c, _ = center_desk, T[lang]
    before = {a: len(_mine(c, a, "clerk")) for a in (
        "read.center.recording", "read.center.segments", "read.center.play")}
    page = log_in(chromium, c.desk, "clerk", lang=lang, test_ca=True)
    fetched: list[tuple[str, int]] = []
    page.on("response", lambda r: fetched.append((r.url, r.status))
            if "/segments/" in r.url else None)
    page.goto(f"{c.desk.url}/center/recordings?station={STATION}")
    page.click(f'tr[data-recording="{c.video}"] a[href^="/desk/center/recordings/"]')
    page.wait_for_url(c.page_url())

    facts = page.get_by_test_id("center-facts").inner_text()
    assert c.video in facts and "123456" in facts and "ZFY0001" in facts
    cells = page.locator("[data-testid=center-linked] tbody tr td").all_inner_texts()
    assert cells == [CASE, "行政处罚", "城东中队", "个人隐私", "调查取证"]
    links = page.locator("[data-testid=segment-list] a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    base = f"/api/v1/center/recordings/{STATION}/{c.video}/segments"
    assert hrefs == [f"{base}/{g.index}" for g in c.segments]
    assert links.all_text_contents() == [g.name for g in c.segments]
    listed = page.request.get(c.api("/segments")).json()  # the list the page was drawn from
    assert listed["segments"] == [{"index": g.index, "start_us": g.start_us,
                                   "end_us": g.end_us, "name": g.name, "size": g.size,
                                   "blake3": g.blake3} for g in c.segments]

    page.get_by_role("button", name=_("Play"), exact=True).click()
    page.wait_for_function("""() => { const p = document.querySelector('.player');
        const v = document.querySelector('video.seg:not([hidden])');
        return p.dataset.index === '1' && v.readyState >= 2 && v.currentTime > 0.1; }""",
                           timeout=30_000)
    shown = page.evaluate("""() => { const v = document.querySelector('video.seg:not([hidden])');
        return [v.videoWidth > 0, v.error === null, Number(v.dataset.index)]; }""")
    assert shown == [True, True, 1]
    # What the <video> elements asked the center for: its own segment route.
    assert {url.rsplit("/", 1)[1] for url, status in fetched
            if status in (200, 206) and base in url} >= {"0", "1"}
    # Every segment the page fetches (its download links) is the station's, byte for byte.
    got = page.evaluate(_DIGESTS, hrefs)
    assert got == [[200, g.size, hashlib.sha256(c.local(g)).hexdigest()]
                   for g in c.segments]
    if lang == "zh":  # drawn with a CJK font, not boxes
        fonts = _fonts(page, "#h-player")
        assert page.inner_text("#h-player") == _("Player") == "播放"
        assert any("WenQuanYi" in name and n >= 2 for name, n in fonts.items()), fonts
    _whole_shot(page, lang, "center-recording")
    assert page.desk_errors == []
    page.context.close()

    subjects = [f"station:{STATION}", f"recording:{c.video}"]
    [shown_event] = _mine(c, "read.center.recording", "clerk")[before[
        "read.center.recording"]:]
    assert shown_event.subjects == [*subjects, f"case:{c.case_id}"]
    lists = _mine(c, "read.center.segments", "clerk")[before["read.center.segments"]:]
    assert len(lists) == 2  # the page's and the test's own request
    assert all(e.subjects[:2] == subjects and e.details["count"] == len(c.segments)
               for e in lists)
    plays = _mine(c, "read.center.play", "clerk")[before["read.center.play"]:]
    assert {e.details["segment"] for e in plays} == {g.index for g in c.segments}
    assert all(e.subjects[:2] == subjects for e in plays)


@pytest.mark.parametrize(("user", "why"), [("clerk2", "may not see this record"),
                                           ("admin", "lacks recording.view")])
def test_who_may_not_see_it_gets_the_refusal(chromium: Any, center_desk: CenterDesk,
                                             user: str, why: str) -> None:
    c, _ = center_desk, T["zh"]
    page = log_in(chromium, c.desk, user, lang="zh", test_ca=True)
    answer = page.goto(c.page_url())
    assert answer is not None and answer.status == 403
    refused = page.locator("section.refused")
    assert refused.locator("code.code").inner_text() == "E_FORBIDDEN"
    [event] = [e for e in _mine(c, "access.refused", user)
               if f"recording:{c.video}" in e.subjects][-1:]
    assert why in event.details["why"]
    assert refused.inner_text().count(
        _("Recorded in the audit log as event %(seq)s.", seq=event.seq)) == 1
    assert page.get_by_test_id("player").count() == 0 and CASE not in page.content()
    shot(page, "zh", f"center-recording-refused-{user}")
    for url in (c.api(), c.api("/segments"), c.api("/segments/0")):
        got = page.request.get(url)
        assert got.status == 403, (url, got.status)
        assert not got.headers.get("content-type", "").startswith("video/")
        assert got.json()["error"]["code"] == "E_FORBIDDEN"
    page.context.close()
    assert not [e for e in _mine(c, "read.center.play", user)]
