"""Footage at the desk in a real browser (zh and en): a clerk finds the 48 s recording by
officer and time window (the secret one only counted as hidden), sees its still, plays
it across a segment boundary from the stored segments, links 0:10–0:40 to a new case at
现场检查 and removes the link with a reason; the secret recording's page, still and
segments stay closed to the clerk by URL guess; a supervisor reads the access history.
"""

from __future__ import annotations

from typing import Any

import pytest
from desk_steps import WORDS, find_and_play, link_range, new_case, wait_js, whole_shot
from desk_support import SECRET_CASE, SECRET_TITLE, DeskStation, log_in


# In English only: test_a_link_without_a_reason_is_shown_again_with_a_message
# shows this page in Chinese.
@pytest.mark.parametrize("lang", ["en"])
def test_clerk_finds_plays_links_and_unlinks(chromium: Any, desk_station: DeskStation,
                                             lang: str) -> None:
    number = new_case(desk_station)
    page = log_in(chromium, desk_station, "clerk", lang=lang)
    find_and_play(page, desk_station, lang)
    row = link_range(page, number, lang)
    row.locator("input[name=reason]").fill("案号关联错误")
    row.locator("button[type=submit]").click()
    row = page.locator("[data-testid=footage-links] tr", has_text=number)
    assert row.get_attribute("class") == "removed"
    assert WORDS[lang]["removed"] in row.inner_text() and "案号关联错误" in row.inner_text()
    assert page.desk_errors == []
    page.context.close()


# In Chinese only: test_clerk_finds_plays_links_and_unlinks
# shows this page in English.
@pytest.mark.parametrize("lang", ["zh"])
def test_a_link_without_a_reason_is_shown_again_with_a_message(
        chromium: Any, desk_station: DeskStation, lang: str) -> None:
    first = desk_station.recordings[0]
    page = log_in(chromium, desk_station, "clerk", lang=lang)
    page.goto(f"{desk_station.url}/footage/{first}")
    form = page.locator("form[data-testid=link-form]")
    page.fill("input[name=case]", "城东〔2026〕1号")
    page.select_option("select[name=stage]", "现场检查")
    page.fill("input[name=start]", "0:40")
    page.fill("input[name=end]", "0:10")
    form.locator("input[name=reason]").fill("理由")
    form.locator("button[type=submit]").click()
    message = page.get_by_test_id("link-problem").inner_text()
    assert message == ("区间的结束时间必须晚于开始时间。" if lang == "zh"
                       else "The end of the range must come after its start.")
    assert page.input_value("input[name=start]") == "0:40"  # the form keeps what was typed
    assert page.desk_errors == []
    page.context.close()


def test_the_secret_recording_stays_closed_to_the_clerk(chromium: Any,
                                                        desk_station: DeskStation) -> None:
    secret = desk_station.recordings[1]
    page = log_in(chromium, desk_station, "clerk", lang="zh")
    answer = page.goto(f"{desk_station.url}/footage/{secret}")
    assert answer is not None and answer.status == 403
    text = page.content()
    assert SECRET_CASE not in text and SECRET_TITLE not in text
    for url in (f"{desk_station.url}/footage/{secret}/thumb.jpg",
                f"{desk_station.svc.url}/api/v1/recordings/{secret}/segments/0",
                f"{desk_station.url}/footage/{secret}/verify",
                f"{desk_station.url}/footage/{secret}/history"):
        got = page.request.get(url)
        assert got.status in (403, 404), url
        assert not got.headers.get("content-type", "").startswith(("image/", "video/"))
    missing = page.request.get(f"{desk_station.url}/footage/no-such-recording/thumb.jpg")
    assert missing.status == 404
    page.goto(f"{desk_station.url}/footage")  # no filters: everything the clerk may see
    assert secret not in page.content() and SECRET_CASE not in page.content()
    assert page.get_by_test_id("footage-hidden").is_visible()
    page.context.close()


def test_a_supervisor_reads_who_opened_a_recording(chromium: Any,
                                                   desk_station: DeskStation) -> None:
    first = desk_station.recordings[0]
    page = log_in(chromium, desk_station, "supervisor", lang="en")
    page.goto(f"{desk_station.url}/footage/{first}?from=2&to=4")
    history = page.get_by_test_id("footage-history")
    assert "read.recording.show" in history.inner_text()
    assert "2" in page.get_by_test_id("player-range").inner_text()
    wait_js(page, """() => Number(document.querySelector('.player').dataset.time) >= 3.9
        && document.querySelector('video.seg:not([hidden])').paused""")
    whole_shot(page, "en", "footage-history")
    assert page.desk_errors == []
    page.context.close()
