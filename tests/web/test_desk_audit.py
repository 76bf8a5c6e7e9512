"""The audit page in a real browser: a refusal made here is found by filtering refusals,
its inclusion proof verifies against the signed head; a subject filter shows only that
record's events; events naming the secret recording are hidden from a supervisor not
cleared for it (and their proof refused); a clerk is refused the page. And the desk's
newest-first list returns exactly the API's events (same filters, same hiding)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from desk_support import ARCHIVIST, DeskStation, log_in, shot
from evidock_testing import station_on

from evidock.wiring import Services
from integrity.errors import Forbidden
from records import desk_audit
from records.auditdesk import AuditDesk
from records.permissions import P


def refused_by_clerk(chromium: Any, station: DeskStation, recording: str) -> int:
    """Clerk guesses the secret recording's URL: refused, and the seq of that event."""
    page = log_in(chromium, station, "clerk")
    answer = page.request.get(f"{station.svc.url}/api/v1/recordings/{recording}")
    assert answer.status == 403, answer.text()
    seq = int(answer.json()["error"]["details"]["audit_seq"])
    page.context.close()
    return seq


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_refusal_is_found_and_its_proof_verifies(chromium: Any, desk_station: DeskStation,
                                                   lang: str) -> None:
    secret = desk_station.recordings[1]
    seq = refused_by_clerk(chromium, desk_station, secret)
    page = log_in(chromium, desk_station, "supervisor", lang=lang)
    page.goto(f"{desk_station.url}/audit")
    head = page.get_by_test_id("audit-head")
    assert int(page.get_by_test_id("head-size").inner_text()) > seq
    assert ("已用本站密钥环验证" if lang == "zh" else "verified") in (
        page.get_by_test_id("head-signature").inner_text())
    assert head.locator("code").first.inner_text().strip() != ""
    page.fill("input[name=actor]", "clerk")
    page.check("input[name=refusals]")
    page.click("[data-testid=audit-filters] button[type=submit]")
    page.wait_for_url("**/audit?*refusals=1*")
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    actions = {rows.nth(i).get_attribute("data-action") for i in range(rows.count())}
    assert "access.refused" in actions  # and nothing but refusals (other tests' too)
    assert actions <= {"access.refused", "access.login_failed", "evidence.delete",
                       "evidence.edit", "evidence.rm"}
    row = page.locator(f"tr[data-seq='{seq}']")
    assert f"recording:{secret}" in row.inner_text()
    assert "E_FORBIDDEN" in row.inner_text()
    shot(page, lang, "audit")
    assert page.desk_errors == []

    row.locator("a", has_text="证明" if lang == "zh" else "Proof").click()
    page.wait_for_url(f"**/audit/{seq}/proof")
    verdict = page.get_by_test_id("proof-verdict").inner_text()
    assert ("已验证" if lang == "zh" else "Verified") in verdict
    assert page.get_by_test_id("proof-path").locator("li").count() >= 1
    assert f"recording:{secret}" in page.locator("main").inner_text()
    shot(page, lang, "audit-proof")
    assert page.desk_errors == []
    # A number past the log's end is a missing event, said so; the log is not broken.
    answer = page.goto(f"{desk_station.url}/audit/999999999/proof")
    assert answer is not None and answer.status == 404
    assert page.locator(".refused code.code").inner_text() == "E_NOT_FOUND"
    page.context.close()


def test_subject_filter_shows_only_that_recordings_events(chromium: Any,
                                                          desk_station: DeskStation) -> None:
    rid = desk_station.recordings[0]
    page = log_in(chromium, desk_station, "supervisor", lang="en")
    seen = page.request.get(f"{desk_station.svc.url}/api/v1/recordings/{rid}")
    assert seen.ok  # a read.recording.show naming it, at least
    page.goto(f"{desk_station.url}/audit?subject=recording:{rid}")
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    assert rows.count() >= 1
    for i in range(rows.count()):
        assert f"recording:{rid}" in rows.nth(i).locator("td").nth(4).inner_text()
    assert page.locator("tr[data-action='read.recording.show']").count() >= 1
    assert page.locator("input[name=subject]").input_value() == f"recording:{rid}"
    assert page.desk_errors == []
    page.context.close()


def test_uncleared_supervisor_sees_the_secret_events_hidden(chromium: Any,
                                                            desk_station: DeskStation) -> None:
    secret = desk_station.recordings[1]
    seq = refused_by_clerk(chromium, desk_station, secret)
    page = log_in(chromium, desk_station, "supervisor2", lang="zh")
    page.goto(f"{desk_station.url}/audit?subject=recording:{secret}")
    row = page.locator(f"tr[data-seq='{seq}']")
    assert "hidden-event" in (row.get_attribute("class") or "")
    assert secret not in page.locator("main").inner_text()
    assert page.get_by_test_id("audit-hidden").is_visible()
    assert page.desk_errors == []
    answer = page.goto(f"{desk_station.url}/audit/{seq}/proof")
    assert answer is not None and answer.status == 403  # the proof names it: refused
    assert "E_FORBIDDEN" in page.locator(".refused").inner_text()
    assert secret not in page.locator("main").inner_text()
    page.context.close()


@pytest.mark.parametrize("user", ["clerk", "inspector"])
def test_without_audit_view_the_page_is_refused(chromium: Any, desk_station: DeskStation,
                                                user: str) -> None:
    page = log_in(chromium, desk_station, user, lang="zh")
    assert "/desk/audit" not in page.locator("header nav").inner_html()  # not in the menu
    for path in ("/audit", "/audit/1/proof"):
        answer = page.goto(f"{desk_station.url}{path}")
        assert answer is not None and answer.status == 403
        assert "E_FORBIDDEN" in page.locator(".refused").inner_text()
    page.context.close()


# ---------------------------------------------------------------- the database query


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """A station on SQLite and on PostgreSQL (the catalog of an agency's center)."""
    with station_on(request.param, tmp_path / "home", extra=ARCHIVIST,
                    start=datetime(2026, 12, 1, tzinfo=UTC)) as svc:
        yield svc


def test_desk_list_is_the_apis_newest_first(services: Services) -> None:
    """Same rows as AuditDesk.events for the same filters, newest first, across pages;
    refusals only is the API's rows of refusal actions; the secret case's events are
    hidden alike from an uncleared reader."""
    svc = services
    gate, audit = svc.gate(), svc.audit()
    svc.cases().create(gate.by_name("archivist"), number="城东秘〔2026〕123456号",
                       case_type="行政检查", unit="城东中队", title="秘",
                       sensitivity="国家秘密")
    for i in range(23):
        who = gate.by_name(("clerk", "inspector", "legal")[i % 3])
        gate.read(who, "recording.show", [f"recording:r{i % 4}"], {"i": i})
        if i % 5 == 0:
            with pytest.raises(Forbidden):
                gate.require(gate.by_name("clerk"), P.AUDIT_VIEW,
                             subjects=[f"recording:r{i % 4}"])
    desk = AuditDesk(gate=gate, audit=audit, store=svc.store, keys=svc.keys,
                     clock=svc.clock)
    end = audit.size()  # reading the log adds to it: compare what was there before
    since = datetime(2026, 11, 1, tzinfo=UTC)
    hidden_somewhere = False
    for reader in ("supervisor", "supervisor2"):
        actor = gate.by_name(reader)
        for filters in ({}, {"actor": "user:clerk"}, {"action": "read.*"},
                        {"subject": "recording:r1"},
                        {"since": since, "until": since + timedelta(days=60)}):
            api = [e for e in desk.events(actor, limit=1000, **filters)["events"]
                   if e["seq"] < end][::-1]
            mine = all_pages(desk, actor, desk_audit.EventFilter(limit=4, before=end,
                                                                 **filters))
            assert mine == api, (reader, filters)
            refusals = all_pages(desk, actor, desk_audit.EventFilter(
                limit=4, before=end, refusals=True, **filters))
            refused = [e for e in api if _action(audit, e["seq"]) == "access.refused"]
            assert refusals == refused, (reader, filters)
            assert refused or "action" in filters
            hidden_somewhere |= any(e.get("hidden") for e in mine)
    assert hidden_somewhere, "the secret case's creation is hidden from supervisor2"


def _action(audit: Any, seq: int) -> str:
    event = audit.event(seq)
    assert event is not None
    return str(event.action)


def all_pages(desk: AuditDesk, actor: Any, flt: desk_audit.EventFilter,
              ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = desk_audit.events(desk, actor, flt)
        out.extend(page.events)
        if page.older is None:
            return out
        flt = replace(flt, before=page.older)
