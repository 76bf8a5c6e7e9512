"""The desk's whole flow, as the issue tells it, in a real browser against a real
station, in Chinese and in English: a clerk makes a case, finds the recording, plays it
and links 0:10–0:40 of it to the case at 现场检查; an inspector requests the case's
export and the service refuses the inspector's own approval; a legal reviewer watches
exactly that range and approves; the inspector runs the export, downloads the package
and it verifies with the real `evidock verify`, offline. Every step's page is saved as a
screenshot in test-artifacts/desk/<lang>/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from desk_steps import (
    approve_as_legal,
    create_case_in_browser,
    find_and_play,
    link_range,
    refused_own_approval,
    request_export,
    run_and_download,
)
from desk_support import DeskStation, log_in, shot


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_link_request_refuse_approve_download_verify(chromium: Any, desk_station: DeskStation,
                                                     lang: str, tmp_path: Path) -> None:
    clerk = log_in(chromium, desk_station, "clerk", lang=lang)
    number = create_case_in_browser(clerk, desk_station, lang)
    find_and_play(clerk, desk_station, lang)
    link_range(clerk, number, lang)
    assert clerk.desk_errors == []
    clerk.context.close()

    inspector = log_in(chromium, desk_station, "inspector", lang=lang)
    request_id = request_export(inspector, desk_station, lang, number)
    refused_own_approval(inspector, desk_station, lang)
    approve_as_legal(chromium, desk_station, lang, request_id, number)  # watches 0:10–0:40
    run_and_download(inspector, desk_station, lang, request_id, tmp_path)
    inspector.goto(f"{desk_station.url}/exports?view=mine")
    mine = inspector.get_by_test_id(f"request-{request_id}")
    assert mine.locator("[data-status]").get_attribute("data-status") == "used"
    shot(inspector, lang, "exports-list")
    assert inspector.desk_errors == []
    inspector.context.close()
