"""The web desk under test: a real station (a real offload of real footage, rendered),
served by a real `evidock serve` on 127.0.0.1, and pages in headless Chromium (Debian's
`chromium`, driven by Playwright through its executable path; no browser download).

Screenshots go to ``test-artifacts/desk/<lang>/`` in the checkout (git-ignored) so a
person can look at every page after a run.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import REPO, StepClock, write_agency_config
from service_support import RunningService, serving
from station_homes import rendered_videos

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import ClipSpec, build_camera
from ingest.outcome import OffloadRequest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "desk"
PASSWORDS = {"clerk": "clerk-pass-0001", "clerk2": "clerk2-pass-0001",
             "inspector": "inspector-pass-0002", "legal": "legal-pass-0003",
             "supervisor": "supervisor-pass-0004", "supervisor2": "super2-pass-0005",
             "admin": "admin-pass-0006", "officer": "officer-pass-0007",
             "archivist": "archivist-pass-0008"}
#: A case only ``supervisor`` is cleared for (国家秘密); nobody else may ever see it.
SECRET_CASE = "城东秘〔2026〕9号"
SECRET_TITLE = "绝密行动甲"
#: Clips of the desk station: one long enough to link 0:10–0:40 of it.
CLIPS = (ClipSpec(duration_s=48.0, height=360, kbps=600), ClipSpec(duration_s=4.0, height=240))
SERVICE = """
[service]
login_attempts_per_minute = 20
"""
#: A clerk cleared for 国家秘密 (who made the secret case).
ARCHIVIST = """
[[access.users]]
name = "archivist"
display = "赵机要"
roles = ["clerk"]
units = ["城东中队"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
"""


@dataclass(frozen=True)
class DeskStation:
    svc: RunningService
    home: Path
    recordings: tuple[str, ...]  # video recordings with a rendition, camera order

    @property
    def url(self) -> str:
        return f"{self.svc.url}/desk"


def set_passwords(home: Path, passwords: Mapping[str, str]) -> None:
    """Each user's password, as `evidock admin passwd USER --stdin` run by the operator
    (this root process) sets it: checked, argon2-hashed into the catalog, the change
    audited. In this process, not one `evidock` process a user (~0.8 s each); the
    command itself is tested in tests/service/test_sessions.py."""
    from evidock.operators import current_account  # noqa: PLC0415
    from evidock.service.passwords import check_strength  # noqa: PLC0415
    from records.credentials import CredentialBook  # noqa: PLC0415

    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        book = CredentialBook(catalog=svc.catalog, audit=svc.audit(), clock=svc.clock)
        for user, password in passwords.items():
            assert any(u.name == user for u in svc.settings.access.users), user
            check_strength(user, password)
            book.set(user, password_hash(password), actor=f"os:{current_account()}")
    finally:
        svc.close()


@functools.cache
def password_hash(password: str) -> str:
    """An argon2 hash of ``password``, made once per session (~0.15 s each): any hash of
    a password verifies it, whichever station stores it."""
    from evidock.service.passwords import hash_password  # noqa: PLC0415

    return hash_password(password)


def build_desk_home(root: Path, *, extra_toml: str = "") -> tuple[Path, tuple[str, ...]]:
    """A station that offloaded and rendered real footage, with a 国家秘密 case linked to
    its second recording, and passwords for every user of the agency config."""
    start = datetime.now(UTC) - timedelta(days=2)
    camera = build_camera(root / "camera", start=start, clips=CLIPS, audio=False,
                          photo=False)
    home = root / "home"
    write_agency_config(home, ARCHIVIST + SERVICE + extra_toml)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(start + timedelta(hours=3)))
    try:
        videos = offload_and_render(svc, camera.root)
        boss = svc.gate().by_name("archivist")
        cases = svc.cases()
        cases.create(boss, number=SECRET_CASE, case_type="行政检查", unit="城东中队",
                     title=SECRET_TITLE, sensitivity="国家秘密")
        cases.link(boss, SECRET_CASE, videos[1], stage="现场检查", reason="秘密案件取证")
    finally:
        svc.close()
    set_passwords(home, PASSWORDS)
    return home, tuple(videos)


def offload_and_render(svc: Services, source: Path) -> list[str]:
    """The desk camera (ZFY0001, officer 123456) offloaded and every recording rendered,
    as a station does; returns the rendered videos, camera order."""
    report = svc.offloader().run(OffloadRequest(source=source, device_serial="ZFY0001",
                                                officer_id="123456"))
    assert report.outcome == "completed", report.outcome
    renderer = svc.renderer()
    for rec in renderer.pending():
        renderer.render(rec)
    return list(rendered_videos(svc))


def need_browser() -> None:
    """Skip without Chromium or Playwright, except under CI, where that is a failure."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    try:
        import playwright  # noqa: F401, PLC0415
    except ImportError:
        missing.append("playwright (pip)")
    if missing:
        message = "browser tests need " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def desk_station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskStation]:
    """One served desk station for the whole session (tests that change it make their
    own cases; the flows never depend on each other's order)."""
    need_browser()
    home, videos = build_desk_home(tmp_path_factory.mktemp("desk"))
    with serving(home, listen="127.0.0.1:0") as svc:
        yield DeskStation(svc=svc, home=home, recordings=videos)


def log_in(browser: Any, station: DeskStation, user: str, *, lang: str = "zh",
           test_ca: bool = False) -> Any:
    """A fresh browser context (its own cookies) logged in as ``user`` in ``lang``;
    returns its page. ``test_ca``: the service's certificate is issued by the tests' own
    CA (a center on HTTPS), which this browser has no way to trust."""
    context = browser.new_context(locale="zh-CN" if lang == "zh" else "en-US",
                                  viewport={"width": 1360, "height": 900},
                                  ignore_https_errors=test_ca)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.desk_errors = errors  # CSP violations and script errors end up here
    page.goto(f"{station.url}/lang/{lang}?next=/desk/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("form button[type=submit]")
    page.wait_for_url(f"{station.url}/")
    return page


def release_own_hold(page: Any, row: Any, tr: Any) -> Any:
    """Whoever placed the hold in ``row`` tries to release it: the desk shows the
    two-person refusal (station and center desks alike); the refusal's locator."""
    from playwright.sync_api import expect  # noqa: PLC0415 - only the browser tests

    row.locator("input[name=reason]").fill("复议结束")
    row.get_by_role("button", name=tr("Release")).click()
    refused = page.get_by_test_id("refused")
    expect(refused).to_contain_text("E_SELF_APPROVAL")
    expect(refused).to_contain_text(
        tr("The person who placed a hold cannot release it; another person must."))
    return refused


def shot(page: Any, lang: str, name: str) -> Path:
    """A full-page screenshot in the artefact folder (look at them)."""
    folder = ARTIFACTS / lang
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fresh_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


__all__ = ["ARTIFACTS", "CHROMIUM", "PASSWORDS", "SECRET_CASE", "SECRET_TITLE",
           "DeskStation", "build_desk_home", "chromium", "desk_station", "log_in",
           "need_browser", "offload_and_render", "password_hash", "set_passwords", "shot"]
