"""统计分析: footage hours, recordings, late offloads and coverage gaps, grouped by unit,
officer, stage, month or year over a period, as charts, a table and a CSV download.

The figures are exactly ``GET /api/v1/statistics``' and ``evidock stats``'
(:class:`records.statistics_sql.StatisticsDesk`, counted by the database): the gate asks
for ``stats.view``, recordings linked to a case the reader may not see are left out and
counted once as hidden (the page says so), and every run is an audit event.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from evidock.web.base import Desk, DeskCall, render
from evidock.web.pages.statistics_chart import Chart, bar_chart
from integrity.errors import InvalidRequest
from records.permissions import P
from records.statistics import DIMENSIONS, StatisticsReport, StatsQuery, parse_bound
from records.statistics_sql import StatisticsDesk

router = APIRouter(include_in_schema=False)
#: Groupings offered (one at a time; "" is the total alone), with their English titles.
GROUPINGS = {"unit": "Unit", "officer": "Officer (police number)", "stage": "Stage",
             "month": "Month", "year": "Year"}
#: Recording measures: id, title, axis title, decimals (hours as the API rounds them).
MEASURES = (("recordings", "Recordings", "recordings", 0),
            ("hours", "Footage hours", "hours", 3),
            ("late", "Late offloads", "recordings offloaded after the deadline", 0),
            ("links", "Links to cases", "active links", 0),
            ("unknown_duration", "Recordings of unknown length", "recordings", 0))
CHARTED = ("recordings", "hours", "late")
COVERAGE = (("stages", "Checklist stages"), ("covered", "Covered"),
            ("missing", "Missing (no footage)"), ("gaps", "With gaps"),
            ("not_applicable", "Not applicable (不适用)"))


@dataclass(frozen=True, slots=True)
class Form:
    by: str = ""
    start: str = ""
    end: str = ""
    coverage: bool = False

    def params(self) -> dict[str, str]:
        out = {"by": self.by, "from": self.start, "to": self.end}
        if self.coverage:
            out["coverage"] = "1"
        return {k: v for k, v in out.items() if v}


def read_form(call: DeskCall) -> Form:
    q = call.request.query_params
    by = q.get("by", "")
    return Form(by=by if by in DIMENSIONS else "", start=q.get("from", "").strip()[:40],
                end=q.get("to", "").strip()[:40], coverage=q.get("coverage", "") == "1")


def run(call: DeskCall, form: Form) -> StatisticsReport:
    """The API route's computation, for these parameters."""
    svc = call.svc
    station = svc.settings.station
    zone = station.local_zone
    query = StatsQuery(by=(form.by,) if form.by else (), zone=zone,  # type: ignore[arg-type]
                       zone_name=station.local_zone_name,
                       start=parse_bound(form.start or None, zone, end=False),
                       end=parse_bound(form.end or None, zone, end=True),
                       offload_deadline_h=svc.settings.coverage.offload_deadline_h)
    desk = StatisticsDesk(catalog=svc.catalog, gate=svc.gate(), clock=svc.clock,
                          coverage=svc.settings.coverage)
    return desk.run(call.actor, query, with_coverage=form.coverage)


def group_label(call: DeskCall, dim: str, value: str | None) -> str:
    """A group's name as people read it (None: the group of recordings without one)."""
    if value is not None:
        return value
    return call._({"unit": "No case (not linked)", "stage": "No stage (not linked)",
                   "officer": "Unknown officer"}.get(dim, "Unknown"))


def table_rows(call: DeskCall, report: StatisticsReport, form: Form) -> list[dict[str, Any]]:
    """The report's groups: label and the API's figures (``to_json`` of each row)."""
    out = []
    for row in report.rows:
        figures = row.counts.to_json()
        label = group_label(call, form.by, row.key[0]) if form.by else ""
        out.append({"label": label, **figures})
    return out


def charts(call: DeskCall, rows: list[dict[str, Any]], form: Form) -> list[Chart]:
    group_axis = call._(GROUPINGS[form.by]) if form.by else ""
    out = []
    for key, title, axis, decimals in MEASURES:
        if key in CHARTED:
            points = [(str(r["label"]), float(r[key])) for r in rows]
            out.append(bar_chart(key, call._(title), call._(axis), group_axis, points,
                                 decimals=decimals))
    return out


def coverage_rows(call: DeskCall, report: StatisticsReport) -> list[dict[str, Any]]:
    cov = report.coverage
    if cov is None:
        return []
    return [{"label": " · ".join(group_label(call, d, v) for d, v in zip(cov.by, key,
                                                                          strict=True)),
             **counts.to_json()} for key, counts in cov.rows]


def coverage_charts(call: DeskCall, report: StatisticsReport,
                    rows: list[dict[str, Any]]) -> list[Chart]:
    cov = report.coverage
    if cov is None or not cov.by:
        return []
    group_axis = " · ".join(call._(GROUPINGS[d]) for d in cov.by)
    return [bar_chart(key, call._(title), call._("case stages"), group_axis,
                      [(str(r["label"]), float(r[key])) for r in rows])
            for key, title in (("missing", "Stages missing footage"),
                               ("gaps", "Stages with coverage gaps"))]


@router.get("/statistics", response_class=HTMLResponse)
def statistics_page(call: Desk) -> HTMLResponse:
    form = read_form(call)
    call.svc.gate().require(call.actor, P.STATS_VIEW, subjects=[])  # refusal page first
    try:
        report: StatisticsReport | None = run(call, form)
    except InvalidRequest as exc:  # a period not understood: the form again, saying so
        report, problem = None, call._("The period was not understood: %(what)s",
                                       what=str(exc))
    else:
        problem = ""
    rows = table_rows(call, report, form) if report else []
    cov_rows = coverage_rows(call, report) if report else []
    return render(call, "statistics/page.html", form=form, report=report, rows=rows,
                  total=report.total.to_json() if report else {},
                  charts=charts(call, rows, form) if report and form.by else [],
                  cov_rows=cov_rows,
                  cov_charts=coverage_charts(call, report, cov_rows) if report else [],
                  problem=problem, groupings=GROUPINGS, measures=MEASURES,
                  coverage_columns=COVERAGE,
                  csv_link=f"?{urlencode(form.params())}" if form.params() else "")


def csv_text(call: DeskCall, report: StatisticsReport, form: Form) -> str:
    """The page's table as CSV: a header, one line per group, the total, then hidden."""
    out = io.StringIO()
    w = csv.writer(out)
    first = [call._(GROUPINGS[form.by])] if form.by else []
    w.writerow([*first, *(call._(title) for _k, title, _a, _d in MEASURES)])
    for row in table_rows(call, report, form):
        w.writerow([*([row["label"]] if form.by else []),
                    *(row[k] for k, _t, _a, _d in MEASURES)])
    total = report.total.to_json()
    w.writerow([*([call._("Total")] if form.by else []),
                *(total[k] for k, _t, _a, _d in MEASURES)])
    w.writerow([call._("Hidden (linked to cases you may not see; in no figure above)"),
                report.hidden])
    if report.coverage is not None:
        w.writerow([])
        cov = report.coverage
        w.writerow([" · ".join(call._(GROUPINGS[d]) for d in cov.by) or call._("Total"),
                    *(call._(t) for _k, t in COVERAGE)])
        for row in coverage_rows(call, report):
            w.writerow([row["label"], *(row[k] for k, _t in COVERAGE)])
        w.writerow([call._("Total"), *(cov.total.to_json()[k] for k, _t in COVERAGE)])
    return out.getvalue()


@router.get("/statistics.csv")
def statistics_csv(call: Desk) -> Response:
    form = read_form(call)
    report = run(call, form)  # a bad period: the error page, as the API answers
    # UTF-8 with a byte order mark: Excel (what offices open a CSV with) reads a CSV
    # without one in the system's ANSI code page (GBK on Chinese Windows), turning unit
    # names and headers into mojibake; with the BOM it reads UTF-8.
    body = "\ufeff" + csv_text(call, report, form)
    name = f"statistics-{form.by or 'total'}.csv"
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


__all__ = ["router"]
