"""CLI: coverage of the recording list (音像记录事项清单), a client of the station service.

The report's times are UTC in its JSON; people see them in the station's zone, which
the service names in a header of its answer.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import show_time, zoned

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Json = dict[str, Any]

# The report is the group's own command (its callback); `stage` and `history` decide.
coverage_app = typer.Typer(no_args_is_help=False, invoke_without_command=True)


@coverage_app.callback(invoke_without_command=True)
@command
def coverage(
    ctx: typer.Context,
    case: Annotated[str | None, typer.Option("--case", help="One case, by number.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Cases of this unit.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Cases created or active since (ISO; no zone: station zone).")] = None,
    pdf: Annotated[Path | None, typer.Option(
        "--pdf", help="With --case: write the station-signed coverage report here (PDF, "
                      "+ .sig.json beside it; `evidock verify-report` checks it).")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply | None:
    """Which required stages of which cases have footage (音像记录事项清单).

    Per case: each stage of the case type's checklist covered, missing
    (no footage of the 记录方式 the stage needs: a photo does not cover a
    video stage), gaps (a full-process 全过程 stage with holes over the
    tolerance: never covered) or 不适用 (marked so with `coverage stage`);
    late offloads, footage of unknown time; then totals per unit and per
    officer. Cases you may not see are left out, counted hidden.

    Exit codes: 0 every applicable stage covered; 1 a stage is missing or
    has gaps (script 重大执法决定法制审核 checks on it; also bad input or an
    unknown case); 3 refused (no coverage.view, or the named case is hidden
    from you).
    """
    if ctx.invoked_subcommand is not None:
        return None
    if pdf is not None:  # the signed PDF for the review file (evidock/cmd_report.py)
        return _pdf(config, case, pdf)
    from evidock.client import station  # httpx: not needed to build `--help`

    params = {k: v for k, v in (("case", case), ("unit", unit), ("since", since))
              if v is not None}
    with station(config) as st, st.stream("GET", "/coverage", params=params) as answer:
        answer.read()
        result: Json = zoned(answer.json(), st.zone_name)  # JSON too: the station's offset
        zone = ZoneInfo(answer.headers.get("x-evidock-zone", "UTC"))
    return Reply(result, human=lambda: _print(result, zone),
                 exit_code=0 if result["complete"] else 1)


def _pdf(config: Path | None, case: str | None, pdf: Path) -> Reply:
    from evidock.cmd_report import fetch_report, print_fetched
    from integrity.errors import InvalidRequest

    if case is None:
        raise InvalidRequest("--pdf is the report of one case: name it with --case")
    fetched = fetch_report(config, "/reports/coverage", {"case": case}, pdf)
    return Reply(fetched, human=lambda: print_fetched(fetched))


@coverage_app.command("stage")
@command
def stage(
    case: Annotated[str, typer.Argument(help="The case, by number.")],
    stage_name: Annotated[str, typer.Argument(metavar="STAGE", help="A checklist stage.")],
    reason: ReasonOpt,
    applicable: Annotated[bool | None, typer.Option(
        "--applicable/--not-applicable",
        help="The stage applies to this case, or it is 不适用 (required: say which).",
        show_default=False)] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Mark a stage of a case 不适用 (--not-applicable) or applicable, with a reason.

    For a clerk of the case's unit or a legal reviewer. Each decision is kept
    (the newest counts) and is an audit event. Exit codes: 0 recorded; 1 bad
    input (unknown stage, no reason) or unknown case; 3 refused.
    """
    from evidock.client import station
    from integrity.errors import InvalidRequest

    if applicable is None:
        raise InvalidRequest("say --not-applicable or --applicable", case=case,
                             stage=stage_name)
    with station(config) as st:
        made: Json = st.post("/coverage/stage", {"case": case, "stage": stage_name,
                                                 "applicable": applicable, "reason": reason})
    word = "applicable" if made["applicable"] else "不适用 (not applicable)"
    return Reply(made, human=lambda: print(f"{case} {made['stage']}: {word} — {made['reason']}"
                                           f" (decision {made['id']} by {made['actor']})"))


@coverage_app.command("history")
@command
def history(
    case: Annotated[str, typer.Argument(help="The case, by number.")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Every stage applicability decision of a case, oldest first.

    The newest decision of each stage is in force.
    """
    from evidock.client import station

    with station(config) as st:
        found: Json = st.get("/coverage/stage", case=case)

    def human() -> None:
        for d in found["decisions"]:
            word = "applicable" if d["applicable"] else "不适用"
            print(f"{d['at']} {d['stage']}: {word} by {d['actor']} — {d['reason']}")

    return Reply(found, human=human)


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _t(when: datetime | None, zone: tzinfo) -> str:
    return "?" if when is None else show_time(when, zone)  # one convention: with offset


def _span(start: str | None, end: str | None, zone: tzinfo) -> str:
    """``2019-03-05 09:00:00+08:00–09:20:00+08:00`` (the end's date only when it
    differs)."""
    a, b = _t(_at(start), zone), _t(_at(end), zone)
    same_day = start is not None and end is not None and a[:10] == b[:10]
    return f"{a}–{b[11:] if same_day else b}"


_STATUS = {"covered": "covered", "missing": "missing", "gaps": "GAPS",
           "not_applicable": "不适用"}


def _stage_row(s: Json, zone: tzinfo) -> list[str]:
    need = ("full process" if s["full_process"] else "required") if s["required"] else "-"
    if s["required"]:
        need += f", {s.get('mode', 'any')}"
    footage = "\n".join(f"{f['recording_id'][:12]} {f.get('kind', '')} "
                        f"{_span(f['start'], f['end'], zone)}"
                        + ("" if f["time"] == "known" else f" ({f['time']})")
                        + ("" if f.get("counts", True) else " (not counted)")
                        for f in s["footage"])
    gaps = "\n".join(f"{_span(g['start'], g['end'], zone)} {g['kind']} {g['seconds']:.0f}s"
                     for g in s["gaps"])
    decided = s.get("decision")
    why = (f"{'applicable' if decided['applicable'] else '不适用'}: {decided['reason']} "
           f"({decided['actor']})") if decided else ""
    return [s["stage"], need, _STATUS.get(s["status"], s["status"]), footage or "-",
            "\n".join(filter(None, [gaps, why, *s["notes"]]))]


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


_TALLY = ("cases", "required", "covered", "missing", "gap_stages", "gaps", "not_applicable",
          "late", "unknown_time")


def _summary(title: str, key: str, rows: list[Json]) -> Table:
    from rich.table import Table

    table = Table(title, "cases", "applicable", "covered", "missing", "with gaps", "gaps",
                  "不适用", "late", "unknown time", title=f"by {title}")
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
               else f"INCOMPLETE: {t['missing']} missing, {t['gap_stages']} with gaps "
                    f"({t['gaps']} gaps)")
    hidden = f"; {result['hidden']} case(s) hidden from you" if result["hidden"] else ""
    if result.get("hidden_recordings"):  # linked here, secret through another case
        hidden += f"; {result['hidden_recordings']} linked recording(s) hidden from you"
    console.print(f"{len(result['cases'])} case(s), {t['covered']}/{t['required']} applicable "
                  f"stages covered, {t['not_applicable']} 不适用, {t['late']} late: "
                  f"{verdict}{hidden}")


__all__ = ["coverage", "coverage_app", "history", "stage"]
