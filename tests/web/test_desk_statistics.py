"""The statistics page (统计分析) in a real browser: the station's real recordings, the
same figures as ``GET /api/v1/statistics`` for the same filters, SVG charts, a CSV with
the same numbers that Excel opens as UTF-8, and the secret case's recording counted as
hidden (never silently) for a user not cleared for it."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from desk_support import DeskStation, log_in, shot

MEASURES = ("recordings", "hours", "late", "links", "unknown_duration")


def api_stats(page: Any, station: DeskStation, query: str) -> dict[str, Any]:
    """The API's answer for the same user (the browser's session cookie)."""
    answer = page.request.get(f"{station.svc.url}/api/v1/statistics?{query}")
    assert answer.ok, answer.text()
    body: dict[str, Any] = answer.json()
    return body


def shown_totals(page: Any) -> dict[str, float]:
    cells = page.get_by_test_id("stats-total").locator("dd[data-measure]")
    return {cells.nth(i).get_attribute("data-measure"): float(cells.nth(i).inner_text())
            for i in range(cells.count())}


def table(page: Any) -> dict[str, dict[str, float]]:
    """Group label → the figures in its row of the page's table."""
    out: dict[str, dict[str, float]] = {}
    rows = page.get_by_test_id("stats-table").locator("tbody tr")
    for i in range(rows.count()):
        row = rows.nth(i)
        label = row.locator("th").inner_text().strip()
        cells = row.locator("td[data-measure]")
        out[label] = {cells.nth(j).get_attribute("data-measure"):
                      float(cells.nth(j).inner_text()) for j in range(cells.count())}
    return out


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_statistics_by_officer_match_the_api_and_the_csv(chromium: Any,
                                                         desk_station: DeskStation,
                                                         lang: str) -> None:
    page = log_in(chromium, desk_station, "supervisor", lang=lang)
    page.goto(f"{desk_station.url}/statistics")
    expect_total = api_stats(page, desk_station, "")["total"]
    totals = shown_totals(page)
    assert totals["recordings"] == expect_total["recordings"] >= len(desk_station.recordings)
    assert totals["hours"] == expect_total["hours"] > 0
    assert page.get_by_test_id("stats-hidden").count() == 0  # supervisor sees everything
    shot(page, lang, "statistics")
    assert page.desk_errors == []

    # Grouped by officer through the form, over this year and last (a period given).
    page.select_option("select[name=by]", "officer")
    page.fill("input[name=from]", "2020")
    page.click("[data-testid=stats-form] button[type=submit]")
    page.wait_for_url("**/statistics?by=officer*")
    api = api_stats(page, desk_station, "by=officer&from=2020")
    shown = table(page)
    assert shown == {r["officer"]: {m: float(r[m]) for m in MEASURES} for r in api["rows"]}
    assert shown["123456"]["recordings"] >= len(desk_station.recordings)
    assert shown["123456"]["hours"] > 0
    for measure in ("recordings", "hours", "late"):  # one SVG chart per measure
        chart = page.get_by_test_id(f"chart-{measure}")
        assert chart.locator("svg rect.bar").count() == len(api["rows"])
        assert "123456" in chart.locator("svg").inner_html()
    shot(page, lang, "statistics-by-officer")
    assert page.desk_errors == []

    # The CSV: the same figures, UTF-8 with a BOM.
    with page.expect_download() as info:
        page.get_by_test_id("stats-csv").click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert lines[0][0] == ("执法人员（警号）" if lang == "zh" else "Officer (police number)")
    by_officer = {line[0]: line[1:6] for line in lines[1:-2]}
    assert by_officer == {r["officer"]: [str(r[m]) for m in MEASURES] for r in api["rows"]}
    assert lines[-2][1:6] == [str(api["total"][m]) for m in MEASURES]
    assert lines[-1][1] == str(api["hidden"]) == "0"
    page.context.close()


def test_uncleared_users_statistics_say_what_is_hidden(chromium: Any,
                                                       desk_station: DeskStation) -> None:
    """The secret case's recording: counted for supervisor; for inspector (not cleared
    for 国家秘密) left out of every figure and named in the hidden note."""
    counts, at_scene = {}, {}
    for user in ("supervisor", "inspector"):
        page = log_in(chromium, desk_station, user, lang="zh")
        page.goto(f"{desk_station.url}/statistics?by=stage&coverage=1")
        api = api_stats(page, desk_station, "by=stage&coverage=true")
        counts[user] = (shown_totals(page)["recordings"], api)
        assert shown_totals(page)["recordings"] == api["total"]["recordings"]
        stages = table(page)
        # Other tests may link visible footage at 现场检查 too: compare, never assume.
        at_scene[user] = stages.get("现场检查", {}).get("recordings", 0)
        if user == "supervisor":
            assert at_scene[user] >= 1  # the secret link's stage
            assert page.get_by_test_id("stats-hidden").count() == 0
            assert page.get_by_test_id("coverage-hidden").count() == 0
            shot(page, "zh", "statistics-by-stage-coverage")
        else:
            assert at_scene["inspector"] == at_scene["supervisor"] - 1
            note = page.get_by_test_id("stats-hidden").inner_text()
            assert "1" in note and "无权查看" in note
            assert api["hidden"] == 1
            assert api["coverage"]["hidden_cases"] >= 1
            assert str(api["coverage"]["hidden_cases"]) in (
                page.get_by_test_id("coverage-hidden").inner_text())
        total_row = page.get_by_test_id("coverage-table").locator("tfoot td")
        assert [int(total_row.nth(i).inner_text()) for i in range(5)] == [
            api["coverage"]["total"][k]
            for k in ("stages", "covered", "missing", "gaps", "not_applicable")]
        assert page.desk_errors == []
        page.context.close()
    assert counts["inspector"][0] == counts["supervisor"][0] - 1


def test_a_period_not_understood_is_said_on_the_form(chromium: Any,
                                                     desk_station: DeskStation) -> None:
    page = log_in(chromium, desk_station, "legal", lang="en")
    page.goto(f"{desk_station.url}/statistics?by=month&from=March")
    assert "not understood" in page.get_by_test_id("stats-problem").inner_text()
    assert page.locator("input[name=from]").input_value() == "March"
    assert page.desk_errors == []
    page.context.close()


def test_clerk_is_refused_statistics(chromium: Any, desk_station: DeskStation) -> None:
    page = log_in(chromium, desk_station, "clerk", lang="zh")
    answer = page.goto(f"{desk_station.url}/statistics")
    assert answer is not None and answer.status == 403
    assert "E_FORBIDDEN" in page.locator(".refused").inner_text()
    page.context.close()
