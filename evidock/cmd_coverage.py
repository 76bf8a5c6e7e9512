"""CLI: coverage of the recording list (音像记录事项清单)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Annotated

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, acting, command
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from records.coverage import CaseFinding, CoverageReport, StageFinding, Tally


def _since(text: str | None, zone: tzinfo) -> datetime | None:
    """ISO date or time; without a zone it is read in the station's camera time zone."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--since {text!r} is not an ISO 8601 date or time",
                             since=text) from None
    return when if when.utcoffset() is not None else when.replace(tzinfo=zone)


@command
def coverage(
    case: Annotated[str | None, typer.Option("--case", help="One case, by number.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Cases of this unit.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Cases created or active since (ISO; no zone: station zone).")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Which required stages of which cases have footage (音像记录事项清单).

    Per case: each required stage covered or missing, gaps in full-process
    (全过程) stages, late offloads, footage of unknown time; then totals per
    unit and per officer. Cases you may not see are left out, counted hidden.

    Exit codes: 0 every required stage covered and no gaps; 1 a required
    stage is missing or a gap exists (script 重大执法决定法制审核 checks on
    it; also bad input or an unknown case); 3 refused (no coverage.view, or
    the named case is hidden from you).
    """
    from records.coverage_load import CoverageDesk

    with acting(config) as (svc, actor):
        desk = CoverageDesk(catalog=svc.catalog, gate=svc.gate(),
                            settings=svc.settings.coverage, clock=svc.clock)
        zone = svc.settings.station.zone
        result = desk.run(actor, number=case, unit=unit, since=_since(since, zone))
    return Reply(result.to_json(), human=lambda: _print(result, zone),
                 exit_code=0 if result.complete else 1)


def _t(when: datetime | None, zone: tzinfo) -> str:
    return "?" if when is None else when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _span(start: datetime | None, end: datetime | None, zone: tzinfo) -> str:
    """``2019-03-05 09:00:00–09:20:00`` (the end's date only when it differs)."""
    a, b = _t(start, zone), _t(end, zone)
    same_day = start is not None and end is not None and a[:10] == b[:10]
    return f"{a}–{b[11:] if same_day else b}"


def _stage_row(s: StageFinding, zone: tzinfo) -> list[str]:
    need = ("full process" if s.full_process else "required") if s.required else "-"
    footage = "\n".join(f"{f.recording_id[:12]} {_span(f.start, f.end, zone)}"
                        + ("" if f.time == "known" else f" ({f.time})") for f in s.footage)
    gaps = "\n".join(f"{_span(g.start, g.end, zone)} {g.kind} {g.seconds:.0f}s"
                     for g in s.gaps)
    return [s.stage, need, s.status, footage or "-", "\n".join(filter(None, [gaps, *s.notes]))]


def _print_case(console: Console, c: CaseFinding, zone: tzinfo) -> None:
    from rich.table import Table

    table = Table("stage", "requirement", "status", "footage", "gaps",
                  title=f"{c.number} ({c.case_type}, {c.unit}, {c.status})")
    for s in c.stages:
        table.add_row(*_stage_row(s, zone), style=None if s.status == "covered" else "red")
    console.print(table)
    for x in c.late:
        console.print(f"  late: {x.recording_id} officer {x.officer_id or '-'} recorded "
                      f"{_t(x.recorded_at, zone)}, offloaded {_t(x.offloaded_at, zone)} "
                      f"({x.delay_h:.1f} h)")
    for r in c.unknown_time:
        console.print(f"  unknown time: {r} (camera time or duration unknown)")


def _summary(title: str, rows: tuple[tuple[str | None, Tally], ...]) -> Table:
    from rich.table import Table

    table = Table(title, "cases", "required", "covered", "missing", "gaps", "late",
                  "unknown time", title=f"by {title}")
    for key, t in rows:
        table.add_row(key or "-", *(str(v) for v in t.to_json().values()))
    return table


def _print(result: CoverageReport, zone: tzinfo) -> None:
    from rich.console import Console

    console = Console()
    for c in result.cases:
        _print_case(console, c, zone)
    console.print(_summary("unit", result.by_unit))
    console.print(_summary("officer", result.by_officer))
    t = result.total
    verdict = "complete" if result.complete else f"INCOMPLETE: {t.missing} missing, {t.gaps} gaps"
    hidden = f"; {result.hidden} case(s) hidden from you" if result.hidden else ""
    console.print(f"{len(result.cases)} case(s), {t.covered}/{t.required} required stages "
                  f"covered, {t.late} late: {verdict}{hidden}")


__all__ = ["coverage"]
