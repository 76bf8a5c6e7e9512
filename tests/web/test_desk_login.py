"""Logging in to the desk in a real browser: the header names the user, roles and units;
zh and en; wrong passwords and forged forms are refused; every page carries a strict CSP
and runs no inline script."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from desk_support import DeskStation, log_in, shot


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_login_shows_who_and_menu(chromium: Any, desk_station: DeskStation,
                                  lang: str) -> None:
    page = log_in(chromium, desk_station, "clerk", lang=lang)
    who = page.get_by_test_id("who").inner_text()
    assert "张文书" in who
    assert ("文书" if lang == "zh" else "clerk") in who
    assert ("全部单位" if lang == "zh" else "all units") in who
    menu = page.locator("header nav").inner_text()
    assert ("录像" if lang == "zh" else "Footage") in menu
    shot(page, lang, "home")
    assert page.desk_errors == []
    page.context.close()


def test_wrong_password_and_forged_login_form(chromium: Any,
                                              desk_station: DeskStation) -> None:
    context = chromium.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{desk_station.url}/login")
    page.fill("input[name=user]", "clerk")
    page.fill("input[name=password]", "not-the-password")
    page.click("form button[type=submit]")
    assert page.locator(".error").inner_text() == "用户名或密码错误。"
    shot(page, "zh", "login-failed")
    context.close()
    # A post without the login form's cookie twin (another site's form) is refused.
    with httpx.Client(base_url=desk_station.url, timeout=30) as web:
        answer = web.post("/login", data={"user": "clerk", "password": "clerk-pass-0001",
                                          "login_token": "forged", "next": "/desk/"})
        assert answer.status_code == 400 and "evidock_session" not in answer.headers.get(
            "set-cookie", "")


def test_pages_carry_a_strict_csp_and_need_a_login(desk_station: DeskStation) -> None:
    with httpx.Client(base_url=desk_station.url, timeout=30) as web:
        answer = web.get("/", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/desk/login?next=")
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        page = web.get("/login")
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script>" not in page.text  # no inline script anywhere
