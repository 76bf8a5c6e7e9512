"""CLI: statistics of enforcement recording (统计分析), a client of the station service.

Tables for people, CSV (with a header) for spreadsheets, JSON for programs; the counts
are the service's, made in the database over what the user may see.
"""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from rich.console import Console

Json = dict[str, Any]
METRICS = ("recordings", "hours", "unknown_duration", "late", "links")
COVERAGE = ("stages", "covered", "missing", "gaps", "not_applicable")


@command
def stats(
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Group by unit, officer, stage, month or year (repeat, or a,b).")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="Recordings made from: 2019, 2019-03, a date or ISO time "
                       "(no zone: the station's).")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="Until (exclusive for a time; a year, month or date is included).",
    )] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header on stdout.")] = False,
    coverage: Annotated[bool, typer.Option(
        "--coverage", help="Also the cases' checklist stages by status (covered, missing, "
                           "gaps, 不适用); with --csv, only those rows.")] = False,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Recordings, footage hours, late offloads and case links, grouped.

    Counts only what you may see; recordings linked to a case hidden from you
    (another unit, a label beyond your clearance) are left out and counted as
    hidden. Months and years are the station's. With --coverage, the stages
    of the cases in range by status, as `evidock coverage` judges them (by
    unit, stage, month or year of the stage). Needs stats.view. Every run is
    an audit event. Exit codes: 0 done; 1 bad input; 3 refused.
    """
    from evidock.client import station  # httpx: not needed to build `--help`

    if as_csv and as_json:
        raise InvalidRequest("choose --csv or --json, not both")
    with station(config) as st:
        result: Json = st.get("/statistics", by=",".join(by or []) or None,
                              coverage="true" if coverage else None,
                              **{"from": start, "to": end})
    if as_csv:
        return Reply(result, human=lambda: _csv(result.get("coverage") or result,
                                                 COVERAGE if coverage else METRICS))
    return Reply(result, human=lambda: _table(result))


def _columns(result: Json, metrics: tuple[str, ...]) -> list[str]:
    period = [c for c in ("period_start", "period_end")
              if any(c in r for r in result["rows"])]
    return [*result["by"], *period, *metrics]


def _csv(result: Json, metrics: tuple[str, ...]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    columns = _columns(result, metrics)
    out.writerow(columns)
    for row in result["rows"]:
        out.writerow(["" if row.get(c) is None else row[c] for c in columns])


def _table(result: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    span = f"{result['from'] or '…'} – {result['to'] or '…'}"
    grouped = f" by {', '.join(result['by'])}" if result["by"] else ""
    table = Table(*result["by"], *METRICS,
                  title=f"statistics{grouped} ({span}, {result['zone']})")
    for row in result["rows"]:
        table.add_row(*("-" if row[d] is None else str(row[d]) for d in result["by"]),
                      *(str(row[m]) for m in METRICS))
    total = result["total"]
    table.add_row(*(["total"] + [""] * (len(result["by"]) - 1) if result["by"] else []),
                  *(str(total[m]) for m in METRICS), style="bold")
    console = Console()
    console.print(table)
    if result["hidden"]:
        console.print(f"{result['hidden']} recording(s) hidden from you: in no count above")
    console.print("a recording linked at several units or stages counts in each; the total "
                  f"counts it once. Late: offloaded over {result['offload_deadline_h']:g} h "
                  "after it ended.")
    if result.get("coverage"):
        _coverage_table(console, result["coverage"])


def _coverage_table(console: Console, cov: Json) -> None:
    from rich.table import Table

    table = Table(*cov["by"], "stages", "covered", "missing", "gaps", "不适用",
                  title=f"checklist stages of {cov['cases']} case(s) by status")
    for row in cov["rows"]:
        table.add_row(*(row[d] for d in cov["by"]), *(str(row[m]) for m in COVERAGE))
    table.add_row(*(["total"] + [""] * (len(cov["by"]) - 1) if cov["by"] else []),
                  *(str(cov["total"][m]) for m in COVERAGE), style="bold")
    console.print(table)
    if cov["hidden_cases"]:
        console.print(f"{cov['hidden_cases']} case(s) hidden from you: in no count above")


__all__ = ["stats"]
