"""CLI: coverage of the recording list (音像记录事项清单), a client of the station service.

The report's times are UTC in its JSON; people see them in the station's zone, which
the service names in a header of its answer.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Json = dict[str, Any]


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
    from evidock.client import station  # httpx: not needed to build `--help`

    params = {k: v for k, v in (("case", case), ("unit", unit), ("since", since))
              if v is not None}
    with station(config) as st, st.stream("GET", "/coverage", params=params) as answer:
        answer.read()
        result: Json = answer.json()
        zone = ZoneInfo(answer.headers.get("x-evidock-zone", "UTC"))
    return Reply(result, human=lambda: _print(result, zone),
                 exit_code=0 if result["complete"] else 1)


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _t(when: datetime | None, zone: tzinfo) -> str:
    return "?" if when is None else when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _span(start: str | None, end: str | None, zone: tzinfo) -> str:
    """``2019-03-05 09:00:00–09:20:00`` (the end's date only when it differs)."""
    a, b = _t(_at(start), zone), _t(_at(end), zone)
    same_day = start is not None and end is not None and a[:10] == b[:10]
    return f"{a}–{b[11:] if same_day else b}"


def _stage_row(s: Json, zone: tzinfo) -> list[str]:
    need = ("full process" if s["full_process"] else "required") if s["required"] else "-"
    footage = "\n".join(f"{f['recording_id'][:12]} {_span(f['start'], f['end'], zone)}"
                        + ("" if f["time"] == "known" else f" ({f['time']})")
                        for f in s["footage"])
    gaps = "\n".join(f"{_span(g['start'], g['end'], zone)} {g['kind']} {g['seconds']:.0f}s"
                     for g in s["gaps"])
    return [s["stage"], need, s["status"], footage or "-",
            "\n".join(filter(None, [gaps, *s["notes"]]))]


def _print_case(console: Console, c: Json, zone: tzinfo) -> None:
    from rich.table import Table

    table = Table("stage", "requirement", "status", "footage", "gaps",
                  title=f"{c['number']} ({c['type']}, {c['unit']}, {c['status']})")
    for s in c["stages"]:
        table.add_row(*_stage_row(s, zone), style=None if s["status"] == "covered" else "red")
    console.print(table)
    for x in c["late"]:
        console.print(f"  late: {x['recording_id']} officer {x['officer_id'] or '-'} recorded "
                      f"{_t(_at(x['recorded_at']), zone)}, offloaded "
                      f"{_t(_at(x['offloaded_at']), zone)} ({x['delay_h']:.1f} h)")
    for r in c["unknown_time"]:
        console.print(f"  unknown time: {r} (camera time or duration unknown)")


_TALLY = ("cases", "required", "covered", "missing", "gaps", "late", "unknown_time")


def _summary(title: str, key: str, rows: list[Json]) -> Table:
    from rich.table import Table

    table = Table(title, "cases", "required", "covered", "missing", "gaps", "late",
                  "unknown time", title=f"by {title}")
    for t in rows:
        table.add_row(t[key] or "-", *(str(t[k]) for k in _TALLY))
    return table


def _print(result: Json, zone: tzinfo) -> None:
    from rich.console import Console

    console = Console()
    for c in result["cases"]:
        _print_case(console, c, zone)
    console.print(_summary("unit", "unit", result["by_unit"]))
    console.print(_summary("officer", "officer_id", result["by_officer"]))
    t = result["total"]
    verdict = ("complete" if result["complete"]
               else f"INCOMPLETE: {t['missing']} missing, {t['gaps']} gaps")
    hidden = f"; {result['hidden']} case(s) hidden from you" if result["hidden"] else ""
    if result.get("hidden_recordings"):  # linked here, secret through another case
        hidden += f"; {result['hidden_recordings']} linked recording(s) hidden from you"
    console.print(f"{len(result['cases'])} case(s), {t['covered']}/{t['required']} required "
                  f"stages covered, {t['late']} late: {verdict}{hidden}")


__all__ = ["coverage"]
