"""Issue 20: the center's desk page for holds and deletion decisions (全局留存), in a
real browser.

Real parts, built from the center tests' helpers (tests/center_support.py): a center
(`evidock serve`, catalog on PostgreSQL, HTTPS with mutual TLS) witnessing one station
(`evidock serve`, SQLite) whose camera was offloaded 400 days ago
(tests/station_homes.py ``aged_home``), so its footage is due for deletion now; with
``[center] retention = "center"`` it reports its deletions to the center. Both upload to
a real SeaweedFS with Object Lock; the station pushes its log and exchanges with the
center through the real CLI (`witness push`, `retention pull`), as in
test_center_retention.py. People use the center's desk in headless Chromium
(tests/desk_support.py) over the center's own HTTPS listener.

What is checked: legal opens a station's recording at the center, follows its "place a
hold" shortcut and places the hold; their own release is refused (E_SELF_APPROVAL, the
refusal and its audit event shown) and the hold stays; the supervisor releases it, and
the station's pull places then releases its own hold. The supervisor scheduled the
station's deletions: their approval at the center is refused; supervisor2 approves one
and rejects another (a reason is needed), and the station's next pull records both as
its own retention steps by supervisor2, naming the center's decisions. clerk2 (no hold
or retention permission) sees no tab, gets the refusal page, and a post with a valid
CSRF token is refused too; a post without the token is refused before any desk runs.
Screenshots: test-artifacts/desk/<lang>/center-retention*.png.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from center_support import (
    World,
    make_center,
    pg_world,
    pull,
    push,
    rows,
    services,
    station_toml,
    upload,
    upload_toml,
)
from desk_support import (
    PASSWORDS,
    DeskStation,
    log_in,
    need_browser,
    release_own_hold,
    set_passwords,
    shot,
)
from playwright.sync_api import expect
from s3server import WeedServer
from service_support import RunningService, audit_rows, serving
from station_homes import aged_home

from archive.keystore import StationKeys
from evidock.web import i18n
from evidock.web.pages.center_retention import DONE
from retention.models import Hold, HoldRelease, RetentionAction

STATION = "station-r"
USERS = ("legal", "supervisor", "supervisor2", "clerk2")
T = {"zh": i18n.words("zh").gettext, "en": i18n.words("en").gettext}


@dataclass(frozen=True)
class RetentionDesk:
    world: World
    desk: DeskStation  # the center's `evidock serve`
    station: RunningService
    home: Path  # the station's
    recordings: list[str]  # the station's, every one scheduled for deletion

    def page(self) -> str:
        return f"{self.desk.url}/center/retention"


def _aged_station(world: World, name: str) -> Path:
    """An aged station that leaves its deletions to the center (as the retention tests'
    stations), its keyring where the center's config names it, its footage uploaded."""
    toml = station_toml(name, port=world.port, center_keyring=world.root / "center.json",
                        ca=world.ca.root.cert, cert=world.certs[name])
    toml += 'retention = "center"\n'  # [center] is the last table station_toml wrote
    home = aged_home(world.root / name, toml + upload_toml(world.endpoint, world.bucket,
                                                           name))
    keys = StationKeys(directory=home / "keys")
    keys.init()
    shutil.copy(keys.keyring_path, world.root / f"{name}.json")
    upload(home)  # the center wants the blobs before the events that name them
    return home


@pytest.fixture(scope="module")
def retention_desk(tmp_path_factory: pytest.TempPathFactory,
                   weed: WeedServer) -> Iterator[RetentionDesk]:
    need_browser()
    root = tmp_path_factory.mktemp("center-desk-retention")
    with pg_world(root, weed.endpoint, [STATION]) as world:
        home = _aged_station(world, STATION)
        make_center(world, [STATION])
        set_passwords(world.center_home, {u: PASSWORDS[u] for u in USERS})
        svc = services(home)
        try:  # a person schedules: the center must not let them approve it
            scheduled = svc.retention().schedule(svc.gate().by_name("supervisor"),
                                                 svc.clock())
            recordings = sorted(r.id for r in svc.catalog.recordings())
        finally:
            svc.close()
        assert len(scheduled.changes) == len(recordings) >= 2
        with serving(world.center_home) as center, serving(home) as station:
            assert push(station)["events"]["waiting"] is None  # the center knows them
            desk = RetentionDesk(world=world, desk=DeskStation(
                svc=center, home=world.center_home, recordings=()), station=station,
                home=home, recordings=recordings)
            reported = pull(desk.station)  # the station reports its deletions to the center
            assert reported["reported"] == len(recordings) and reported["decisions"] == []
            yield desk


def _login(chromium: Any, desk: RetentionDesk, user: str, lang: str) -> Any:
    return log_in(chromium, desk.desk, user, lang=lang, test_ca=True)


def _errors(page: Any) -> list[str]:
    """Console errors, less the browser's note on a refusal's own 4xx status."""
    return [e for e in page.desk_errors
            if not e.startswith("Failed to load resource: the server responded with a "
                                "status of 4")]


def _refused(desk: RetentionDesk, user: str, subject: str) -> list[Any]:
    return [e for e in audit_rows(desk.world.center_url, "access.refused")
            if e.actor == f"user:{user}" and subject in e.subjects]


def _shows_its_event(desk: RetentionDesk, refused: Any, user: str, subject: str,
                     tr: Any) -> None:
    """The refusal on the page names the one audit event that recorded it."""
    [event] = _refused(desk, user, subject)
    expect(refused).to_contain_text(
        tr("Recorded in the audit log as event %(seq)s.", seq=event.seq))


def test_a_hold_placed_at_the_center_desk_is_released_only_by_another_person(
        chromium: Any, retention_desk: RetentionDesk) -> None:
    d, lang = retention_desk, "zh"
    _ = T[lang]
    held = d.recordings[-1]
    legal = _login(chromium, d, "legal", lang)
    legal.goto(f"{d.desk.url}/center/recordings/{STATION}/{held}")
    legal.get_by_test_id("center-hold-shortcut").click()
    form = legal.get_by_test_id("place-hold")
    assert form.locator("select[name=station]").input_value() == STATION
    assert form.locator("select[name=scope]").input_value() == "recording"
    assert form.locator("input[name=target]").input_value() == held
    # The server checks the reason too (not only the browser's `required`).
    form.locator("textarea[name=reason]").evaluate("e => e.removeAttribute('required')")
    form.locator("button[type=submit]").click()
    expect(legal.get_by_test_id("invalid")).to_have_text(_("A hold needs a reason."))
    form.locator("textarea[name=reason]").fill("行政复议期间保全")
    form.locator("button[type=submit]").click()
    expect(legal.get_by_test_id("flash")).to_have_text(_(DONE["placed"]))
    row = legal.locator(f"[data-testid=center-holds] tr[data-target='{held}']")
    expect(row).to_contain_text(STATION)
    expect(row).to_contain_text(_("Recording"))
    expect(row).to_contain_text("行政复议期间保全")
    expect(row).to_contain_text(_("In force"))
    assert legal.get_by_role("link", name=_("Holds and deletions")).get_attribute(
        "aria-current") == "page"
    [added] = audit_rows(d.world.center_url, "center.hold.add")
    hold = added.subjects[0].removeprefix("center-hold:")
    assert (added.actor, added.details["target"]) == ("user:legal", held)
    placed = pull(d.station)
    shot(legal, lang, "center-retention")

    # Whoever placed it may not release it: the desk's refusal is shown, the hold stays.
    refused = release_own_hold(legal, row, _)
    _shows_its_event(d, refused, "legal", f"center-hold:{hold}", _)
    expect(row).to_contain_text(_("In force"))
    shot(legal, lang, "center-retention-self-release")
    assert _errors(legal) == []
    legal.context.close()

    boss = _login(chromium, d, "supervisor", lang)
    boss.goto(d.page())
    row = boss.locator(f"[data-testid=center-holds] tr[data-target='{held}']")
    row.locator("input[name=reason]").fill("复议结束，解除保全")
    row.get_by_role("button", name=_("Release")).click()
    expect(boss.get_by_test_id("flash")).to_have_text(_(DONE["released"]))
    expect(row).to_have_count(0)
    boss.get_by_role("link", name=_("Show released holds too")).click()
    expect(row).to_contain_text("supervisor")
    expect(row).to_contain_text("复议结束，解除保全")
    assert _errors(boss) == []
    boss.context.close()
    _other_language(chromium, d, "en", f"{d.page()}?released=1", table="center-holds",
                    recording=held, expected="Released by supervisor at")

    released = pull(d.station)  # the station carries out both, each by its center person
    assert [(h["status"], h["center_hold"]) for h in placed["holds"]] == [("placed", hold)]
    assert [(h["status"], h["center_hold"]) for h in released["holds"]] == [
        ("released", hold)]
    [local] = [h for h in rows(d.home, Hold) if h.source == hold]
    assert (local.target, local.placed_by) == (held, "legal")
    [gone] = [r for r in rows(d.home, HoldRelease) if r.hold_id == local.id]
    assert (gone.released_by, gone.reason) == ("supervisor", "复议结束，解除保全")


def _other_language(chromium: Any, d: RetentionDesk, lang: str, url: str, *, table: str,
                    recording: str, expected: str) -> None:
    """The same page drawn in the other language, as the supervisor sees it."""
    _ = T[lang]
    page = _login(chromium, d, "supervisor", lang)
    page.goto(url)
    expect(page.locator("h1")).to_have_text(_("Holds and deletions"))
    row = page.locator(f"[data-testid={table}] tr[data-recording='{recording}'], "
                       f"[data-testid={table}] tr[data-target='{recording}']")
    expect(row).to_contain_text(expected)
    shot(page, lang, f"center-retention-{table}")
    assert _errors(page) == []
    page.context.close()


def _decide(page: Any, recording: str, verdict: str, reason: str = "") -> None:
    row = page.locator(f"[data-testid=center-pending] tr[data-recording='{recording}']")
    row.locator("input[name=reason]").fill(reason)
    row.locator(f"button[name=verdict][value={verdict}]").click()


def test_a_reported_deletion_is_decided_at_the_center_desk_by_a_second_person(
        chromium: Any, retention_desk: RetentionDesk) -> None:
    d, lang = retention_desk, "en"
    _ = T[lang]
    approved, rejected = d.recordings[0], d.recordings[1]

    boss = _login(chromium, d, "supervisor", lang)  # who scheduled them
    boss.goto(d.page())
    table = boss.get_by_test_id("center-pending")
    for rid in d.recordings:
        expect(table.locator(f"tr[data-recording='{rid}']")).to_contain_text("supervisor")
    expect(table).to_contain_text(_("Base retention period"))
    _decide(boss, approved, "approved")
    refused = boss.get_by_test_id("refused")
    expect(refused).to_contain_text("E_SELF_APPROVAL")
    expect(refused).to_contain_text(
        _("Whoever scheduled a deletion cannot approve it; another person must."))
    _shows_its_event(d, refused, "supervisor", f"recording:{approved}", _)
    shot(boss, lang, "center-retention-self-approval")
    assert _errors(boss) == []
    boss.context.close()

    second = _login(chromium, d, "supervisor2", lang)
    second.goto(d.page())
    _decide(second, approved, "approved")
    expect(second.get_by_test_id("flash")).to_have_text(_(DONE["approved"]))
    _decide(second, rejected, "rejected")  # no reason: shown again, nothing decided
    expect(second.get_by_test_id("invalid")).to_have_text(
        _("Rejecting a deletion needs a reason."))
    _decide(second, rejected, "rejected", "案件尚在复议")
    expect(second.get_by_test_id("flash")).to_have_text(_(DONE["rejected"]))
    pending = second.get_by_test_id("center-pending")
    for rid in (approved, rejected):
        expect(pending.locator(f"tr[data-recording='{rid}']")).to_have_count(0)
    second.get_by_role("link", name=_("Show decided deletions too")).click()
    expect(pending.locator(f"tr[data-recording='{approved}']")).to_contain_text(
        _("Approved"))
    expect(pending.locator(f"tr[data-recording='{rejected}']")).to_contain_text(
        "案件尚在复议")
    shot(second, lang, "center-retention-decided")
    assert _errors(second) == []
    second.context.close()
    _other_language(chromium, d, "zh", f"{d.page()}?decided=1", table="center-pending",
                    recording=rejected, expected="已驳回")

    decided = pull(d.station)  # the station records each decision as its own step
    assert sorted(x["status"] for x in decided["decisions"]) == ["approved", "rejected"]
    steps = {(a.recording_id, a.step): a for a in rows(d.home, RetentionAction)}
    center_ids = {x["center_decision"] for x in decided["decisions"]}
    assert steps[(approved, "approved")].actor == "supervisor2"
    assert steps[(approved, "approved")].decision in center_ids
    assert (steps[(rejected, "cancelled")].rule,
            steps[(rejected, "cancelled")].decision in center_ids) == ("center", True)


def test_clerk2_is_refused_the_center_holds_and_deletions(
        chromium: Any, retention_desk: RetentionDesk) -> None:
    d, lang = retention_desk, "zh"
    _ = T[lang]
    page = _login(chromium, d, "clerk2", lang)
    page.goto(f"{d.desk.url}/center/recordings")
    assert _("Holds and deletions") not in page.get_by_test_id("center-tabs").inner_text()
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    answer = page.goto(d.page())
    assert answer is not None and answer.status == 403
    refused = page.locator("section.refused")
    assert refused.locator("code.code").inner_text() == "E_FORBIDDEN"
    [event] = _refused(d, "clerk2", "center:holds")[-1:]
    assert refused.inner_text().count(
        _("Recorded in the audit log as event %(seq)s.", seq=event.seq)) == 1
    shot(page, lang, "center-retention-refused-clerk2")
    hold = {"station": STATION, "scope": "recording", "target": d.recordings[0],
            "reason": "试探"}
    posted = page.request.post(f"{d.page()}/holds", form={"csrf_token": token,
                                                        **hold})
    assert posted.status == 403 and "E_FORBIDDEN" in posted.text()
    page.context.close()

    legal = _login(chromium, d, "legal", lang)  # a post without the session's token
    legal.goto(d.page())
    forged = legal.request.post(f"{d.page()}/holds", form=hold, max_redirects=0)
    assert forged.status == 403 and "E_CSRF" in forged.text(), forged.status
    legal.context.close()
    assert not [e for e in audit_rows(d.world.center_url, "center.hold.add")
                if e.details.get("reason") == "试探"]
