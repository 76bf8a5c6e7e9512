"""The desk without a mouse: a clerk logs in, reaches a recording, plays it, seeks on the
timeline, marks the start from the player and links a range to a case, and a legal
reviewer rejects an export request with a reason, all with Tab, arrows, typing, Space
and Enter only. Every control is reached through the tab order (nothing only clickable),
and the focused control is visibly outlined."""

from __future__ import annotations

from typing import Any

from desk_steps import api, new_case
from desk_support import PASSWORDS, DeskStation, shot

MAX_TABS = 120


def tab_to(page: Any, css: str) -> None:
    """Tab until the focused element matches ``css``; fails if the tab order never
    reaches it (a control only a mouse can use)."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("(css) => document.activeElement?.matches(css) ?? false", css):
            return
    raise AssertionError(f"{css} is not reachable with Tab")


def follow(page: Any, css: str, url: str) -> None:
    """Tab to the link ``css``, press Enter, and wait for ``url`` (a glob)."""
    tab_to(page, css)
    page.keyboard.press("Enter")
    page.wait_for_url(url)


def choose(page: Any, css: str, value: str) -> None:
    """Pick ``value`` of the focused <select> with the arrow keys."""
    tab_to(page, css)
    for _ in range(40):
        if page.evaluate("() => document.activeElement.value") == value:
            return
        page.keyboard.press("ArrowDown")
    raise AssertionError(f"{value} is not an option of {css}")


def outlined(page: Any) -> bool:
    """The focused element shows the focus outline (desk.css :focus-visible)."""
    return bool(page.evaluate("""() => { const s = getComputedStyle(document.activeElement);
        return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"""))


def keyboard_login(chromium: Any, station: DeskStation, user: str) -> Any:
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.desk_errors = errors
    page.goto(f"{station.url}/lang/zh?next=/desk/login")
    # The user field takes the focus when the page opens (autofocus), but Chromium moves
    # it there at its next rendering step, which on a busy machine can come after "load":
    # typing before that went nowhere and the login failed (seen in CI).
    page.wait_for_function("() => document.activeElement?.name === 'user'", timeout=10_000)
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS[user])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{station.url}/")
    return page


def test_clerk_links_a_range_with_the_keyboard_only(chromium: Any,
                                                    desk_station: DeskStation) -> None:
    number, first = new_case(desk_station), desk_station.recordings[0]
    page = keyboard_login(chromium, desk_station, "clerk")
    tab_to(page, "nav a[href$='/footage']")
    assert outlined(page)
    page.keyboard.press("Enter")
    page.wait_for_url("**/desk/footage")
    follow(page, f"a[href$='/footage/{first}']", f"**/desk/footage/{first}")

    tab_to(page, "[data-act=play]")
    page.keyboard.press("Space")
    page.wait_for_function("() => !document.querySelector('video.seg:not([hidden])').paused")
    page.keyboard.press("Space")  # pause again: the arrows below move a still player
    tab_to(page, "[data-role=timeline]")
    for _ in range(120):  # 0.1 s a step: to 0:12 or past
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => Number(document.querySelector('.player').dataset.time) >= 12")
    tab_to(page, "[data-act=mark-start]")
    page.keyboard.press("Enter")
    assert page.input_value("input[name=start]").startswith("0:1")

    tab_to(page, "form[data-testid=link-form] input[name=case]")
    page.keyboard.type(number)
    choose(page, "form[data-testid=link-form] select[name=stage]", "现场检查")
    tab_to(page, "form[data-testid=link-form] input[name=end]")
    page.keyboard.type("0:40")
    tab_to(page, "form[data-testid=link-form] input[name=reason]")
    page.keyboard.type("键盘关联")
    page.keyboard.press("Enter")  # submits the form
    row = page.locator("[data-testid=footage-links] tr", has_text=number)
    row.wait_for()
    assert "0:40" in row.inner_text() and "现场检查" in row.inner_text()
    assert "键盘关联" in row.inner_text()
    shot(page, "zh", "keyboard-linked")
    assert page.desk_errors == []
    page.context.close()


def test_legal_rejects_a_request_with_the_keyboard_only(chromium: Any,
                                                        desk_station: DeskStation) -> None:
    number = new_case(desk_station, linked=True)
    with api(desk_station, "inspector") as inspector:
        made = inspector.post("/exports", json={"case": number, "purpose": "行政诉讼",
                                                "recipient": "市人民法院"})
        assert made.status_code == 200, made.text
        request_id = made.json()["id"]
    page = keyboard_login(chromium, desk_station, "legal")
    follow(page, "nav a[href$='/exports']", "**/desk/exports*")
    follow(page, f"a[href$='/exports/{request_id}']", f"**/desk/exports/{request_id}")
    tab_to(page, "form[data-testid=reject-form] textarea")
    page.keyboard.type("键盘驳回：范围不符")
    tab_to(page, "form[data-testid=reject-form] button")
    assert outlined(page)
    page.keyboard.press("Enter")
    page.wait_for_url("**?done=rejected")
    assert page.locator("h1 [data-status]").get_attribute("data-status") == "rejected"
    assert "键盘驳回" in page.locator("[data-step=rejected]").inner_text()
    assert page.desk_errors == []
    page.context.close()
