"""`evidock stats` and `GET /api/v1/statistics` through a real `evidock serve`, run as the
users' own OS accounts, on SQLite and on PostgreSQL: the counts are the hand counts of
tests/stats_support.py, an uncleared user gets the secret case's footage only as a
hidden count, and every read and refusal is an audit event."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import StepClock, open_services, write_agency_config
from service_support import RunningService, run_as, serving
from sqlmodel import Session, col, select
from stats_support import EXTRA, SUP2_BY_MONTH, SUP2_BY_UNIT, SUP2_TOTAL, counts, populate

from archive.audit.log import AuditEvent
from config import load_settings

sys.path.insert(0, str(Path(__file__).parents[1] / "archive"))  # pg_support lives there

from pg_support import pg_cluster  # noqa: E402

_GET = r"""
import json, os, sys, httpx
with httpx.Client(transport=httpx.HTTPTransport(uds=os.environ["EVIDOCK_SOCKET"]),
                  base_url="http://evidock/api/v1", timeout=60) as http:
    r = http.get("/statistics", params=json.loads(sys.argv[1]))
print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


@dataclass
class Station:
    svc: RunningService
    url: str  # the catalog's

    def stats(self, *args: str, user: str) -> Any:
        return self.svc.cli("stats", *args, user=user)

    def get(self, params: dict[str, str], *, user: str) -> tuple[int, Any]:
        run = run_as(f"evt-{user}", [sys.executable, "-c", _GET, json.dumps(params)],
                     env={"EVIDOCK_SOCKET": str(self.svc.socket)})
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout)
        return answer["status"], answer["body"]

    def events(self, action: str) -> list[AuditEvent]:
        from archive.catalog import Catalog

        catalog = Catalog.open(self.url)
        try:
            with Session(catalog.engine) as s:
                return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(col(AuditEvent.seq))))
        finally:
            catalog.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def station(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    home = tmp_path_factory.mktemp(f"stats-api-{request.param}") / "home"
    with pg_cluster() if request.param == "postgresql" else nullcontext() as make:
        url = make() if make is not None else f"sqlite:///{home / 'catalog.sqlite3'}"
        paths = f'\n[paths]\ncatalog_url = "{url}"\n' if make is not None else ""
        write_agency_config(home, EXTRA + paths)
        svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                            clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
        try:
            assert svc.catalog.engine.dialect.name == request.param
            populate(svc)
        finally:
            svc.close()
        with serving(home) as running:
            yield Station(running, url)


def _rows(answer: dict[str, Any]) -> dict[object, dict[str, object]]:
    by = answer["by"]
    out: dict[object, dict[str, object]] = {}
    for r in answer["rows"]:
        key = tuple(r[d] for d in by)
        out[key[0] if len(key) == 1 else key] = {k: r[k] for k in counts(0, 0, 0, 0, 0)}
    return out


def test_cli_json_as_an_uncleared_user(station: Station) -> None:
    run = station.stats("--by", "month", "--json", user="supervisor2")
    assert run.returncode == 0, (run.stdout, run.stderr)
    answer = json.loads(run.stdout)
    assert _rows(answer) == SUP2_BY_MONTH and answer["total"] == SUP2_TOTAL
    assert answer["hidden"] == 2 and answer["zone"] == "Asia/Shanghai"
    assert answer["generated_at"].endswith("+08:00")
    # Cleared for 国家秘密: the same command counts s1 and s2, nothing hidden.
    full = json.loads(station.stats("--json", user="supervisor").stdout)
    assert full["hidden"] == 0 and full["total"] == counts(8, 2400, 1, 2, 9)
    events = station.events("read.statistics")
    assert [e.actor for e in events[-2:]] == ["user:supervisor2", "user:supervisor"]
    assert events[-2].details["hidden"] == 2 and events[-2].details["by"] == ["month"]


def test_api_by_unit_and_month_with_a_range(station: Station) -> None:
    status, body = station.get({"by": "unit,month", "from": "2019-04", "to": "2019"},
                               user="supervisor2")
    assert status == 200, body
    assert _rows(body) == {("城西中队", "2019-04"): counts(1, 1200, 0, 0, 1)}
    assert (body["from"], body["to"]) == ("2019-04-01T00:00:00+08:00",
                                          "2020-01-01T00:00:00+08:00")
    status, body = station.get({"by": "unit"}, user="supervisor2")
    assert status == 200 and _rows(body) == SUP2_BY_UNIT
    status, body = station.get({"by": "colour"}, user="supervisor2")
    assert status == 422, body
    assert body["error"]["code"] == "E_INVALID"


def test_unit_restricted_user_sees_only_their_units(station: Station) -> None:
    # evt-chief is legal_west here: 城西中队 and 个人隐私 only.
    answer = json.loads(station.stats("--by", "unit", "--json", user="chief").stdout)
    assert answer["hidden"] == 5
    assert _rows(answer) == {"城西中队": counts(2, 1200, 1, 1, 2), None: counts(1, 30, 0, 0, 0)}


def test_csv_and_table(station: Station) -> None:
    run = station.stats("--by", "unit,month", "--csv", user="supervisor2")
    assert run.returncode == 0, run.stderr
    table = list(csv.reader(io.StringIO(run.stdout)))
    assert table[0] == ["unit", "month", "period_start", "period_end", "recordings", "hours",
                        "unknown_duration", "late", "links"]
    assert ["城东中队", "2019-03", "2019-03-01T00:00:00+08:00", "2019-04-01T00:00:00+08:00",
            "3", "0.217", "0", "1", "4"] in table
    assert ["", "2019-03", "2019-03-01T00:00:00+08:00", "2019-04-01T00:00:00+08:00",
            "1", "0.008", "0", "0", "0"] in table  # unlinked: no unit
    assert len(table) == 5
    human = station.stats("--by", "stage", user="supervisor2")
    assert human.returncode == 0, human.stderr
    assert "查封扣押" in human.stdout and "2 recording(s) hidden from you" in human.stdout
    both = station.stats("--csv", "--json", user="supervisor2")
    assert both.returncode == 1 and json.loads(both.stdout)["error"]["code"] == "E_INVALID"


def test_refusals_are_audited(station: Station) -> None:
    before = len(station.events("access.refused"))
    officer = station.stats("--json", user="officer")
    assert officer.returncode == 3, officer.stdout
    assert json.loads(officer.stdout)["error"]["code"] == "E_FORBIDDEN"
    nobody = station.stats("--json", user="nobody")
    assert nobody.returncode == 3, nobody.stdout
    refused = station.events("access.refused")
    assert [e.actor for e in refused[before:]] == ["user:officer", "os:evt-nobody"]
    assert refused[before].details["permission"] == "stats.view"
