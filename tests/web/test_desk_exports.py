"""Exports on the desk, in a real browser against a real station (zh and en), beyond
the whole flow of ``test_desk_flow``: the 国家秘密 case is never seen by those not
cleared (not in the form, the lists or the queue, nor by a guessed URL); the form's
messages; a rejection with its reason."""

from __future__ import annotations

import re
from typing import Any

import pytest
from desk_steps import PURPOSE, api, expected_refusal, new_case
from desk_support import SECRET_CASE, SECRET_TITLE, DeskStation, log_in
from playwright.sync_api import expect


def _form_answer(page: Any, station: DeskStation, number: str) -> str:
    page.goto(f"{station.url}/exports/new")
    page.fill("input[name=case]", number)
    page.select_option("select[name=purpose]", PURPOSE)
    page.fill("input[name=recipient]", "某律师事务所")
    page.click("form[data-testid=request-form] button[type=submit]")
    said: str = page.get_by_test_id("form-problem").inner_text()
    return said


# In English only: test_form_messages_and_a_rejection
# shows this page in Chinese.
@pytest.mark.parametrize("lang", ["en"])
def test_secret_case_is_never_seen(chromium: Any, desk_station: DeskStation,
                                   lang: str) -> None:
    with api(desk_station, "archivist") as archivist:  # cleared: may request it
        made = archivist.post("/exports", json={"case": SECRET_CASE, "purpose": PURPOSE,
                                                "recipient": "市中级人民法院"})
        assert made.status_code == 200, made.text
        secret_id = made.json()["id"]
    page = log_in(chromium, desk_station, "inspector", lang=lang)
    # The form answers the secret number exactly as a number that does not exist.
    unknown = "城东〔2099〕999999号"
    said_secret = _form_answer(page, desk_station, SECRET_CASE)
    said_unknown = _form_answer(page, desk_station, unknown)
    assert said_secret.replace(SECRET_CASE, "N") == said_unknown.replace(unknown, "N")
    assert said_secret == (f"没有您可导出的案件 {SECRET_CASE}。" if lang == "zh" else
                           f"There is no case {SECRET_CASE} that you may export.")
    for view in ("mine", "all"):
        page.goto(f"{desk_station.url}/exports?view={view}")
        assert secret_id not in page.content() and SECRET_CASE not in page.content()
    answer = page.goto(f"{desk_station.url}/exports/{secret_id}")
    assert answer is not None and answer.status == 403
    assert SECRET_CASE not in page.content() and SECRET_TITLE not in page.content()
    assert page.locator(".refused code.code").inner_text() == "E_FORBIDDEN"
    page.context.close()
    legal = log_in(chromium, desk_station, "legal", lang=lang)  # not cleared either
    legal.goto(f"{desk_station.url}/exports?view=queue")
    assert secret_id not in legal.content() and SECRET_CASE not in legal.content()
    legal.context.close()
    boss = log_in(chromium, desk_station, "supervisor", lang=lang)  # cleared
    boss.goto(f"{desk_station.url}/exports?view=queue")
    assert SECRET_CASE in boss.get_by_test_id(f"request-{secret_id}").inner_text()
    assert boss.desk_errors == []
    boss.context.close()


# In Chinese only: test_secret_case_is_never_seen
# shows this page in English.
@pytest.mark.parametrize("lang", ["zh"])
def test_form_messages_and_a_rejection(chromium: Any, desk_station: DeskStation,
                                       lang: str) -> None:
    number = new_case(desk_station, linked=True)
    page = log_in(chromium, desk_station, "inspector", lang=lang)
    page.goto(f"{desk_station.url}/exports/new?recording={desk_station.recordings[0]}"
              "&from=5&to=15")  # a recording's range, as the footage page links here
    assert page.input_value("input[name=start]") == "5"
    page.fill("input[name=case]", number)  # both: refused with a clear message
    page.select_option("select[name=purpose]", PURPOSE)
    page.fill("input[name=recipient]", "某律师事务所")
    page.click("form[data-testid=request-form] button[type=submit]")
    assert page.get_by_test_id("form-problem").inner_text() == (
        "请填写案件编号或录像编号之一，不能同时填写。" if lang == "zh"
        else "Name either a case number or a recording, not both.")
    assert page.input_value("input[name=recipient]") == "某律师事务所"  # kept
    expected_refusal(page, 400)
    page.fill("input[name=case]", "")
    page.click("form[data-testid=request-form] button[type=submit]")
    expect(page).to_have_url(re.compile(r"\?done=requested$"))
    request_id = page.url.split("/exports/")[1].split("?")[0]
    assert page.get_by_test_id("items").inner_text().count("0:05 – 0:15") == 1
    page.context.close()
    legal = log_in(chromium, desk_station, "legal", lang=lang)
    legal.goto(f"{desk_station.url}/exports/{request_id}")
    legal.fill("form[data-testid=reject-form] textarea", "范围与案件无关")
    legal.click("form[data-testid=reject-form] button")
    expect(legal).to_have_url(re.compile(r"\?done=rejected$"))
    assert legal.locator("h1 [data-status]").get_attribute("data-status") == "rejected"
    assert legal.locator("[data-step=rejected]").inner_text().count("范围与案件无关") == 1
    assert legal.locator("form").filter(has=legal.locator("textarea")).count() == 0
    legal.goto(f"{desk_station.url}/exports?view=all&status=rejected")
    assert legal.get_by_test_id(f"request-{request_id}").count() == 1
    legal.goto(f"{desk_station.url}/exports?view=queue")
    assert legal.get_by_test_id(f"request-{request_id}").count() == 0
    assert legal.desk_errors == []
    legal.context.close()
