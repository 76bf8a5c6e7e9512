"""CLI: equipment (`evidock equipment …`): camera assignments and the equipment report.

Thin clients of the station service. The report is a table for people, CSV (one row per
camera, then one per unit) for spreadsheets, JSON for programs.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from evidock.output import is_instant, show_time, zoned
from integrity.errors import InvalidRequest

Json = dict[str, Any]
SerialArg = Annotated[str, typer.Argument(help="Camera serial.")]
CAMERA_COLUMNS = ("serial", "camera_model", "officer", "unit", "since", "last_dock",
                  "last_offload", "clock_drift_s", "battery", "idle")
UNIT_COLUMNS = ("unit", "officers", "cameras", "ratio", "required", "below")

equipment_app = typer.Typer(no_args_is_help=True,
                            help="Cameras: who holds each, docking, the equipment report.")


def _call(config: Path | None, method: str, path: str, body: Json | None = None,
          **params: Any) -> Json:
    from evidock.client import station  # httpx: not needed to build `--help`

    with station(config) as st:
        answer: Json = st.post(path, body) if method == "POST" else st.get(path, **params)
        return zoned(answer, st.zone_name)


@equipment_app.command("assign")
@command
def assign(serial: SerialArg,
           officer: Annotated[str | None, typer.Option(
               "--officer", help="Police number of the officer who holds it.")] = None,
           unassign: Annotated[bool, typer.Option(
               "--unassign", help="Back in the store: held by nobody.")] = False,
           start: Annotated[str, typer.Option(
               "--from", help="Date or ISO time it changed hands (no zone: the station's).",
           )] = "",
           reason: Annotated[str, typer.Option("--reason")] = "",
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Record who holds a camera from a date on (history is kept; nothing is replaced).
    Needs equipment.assign."""
    if (officer is None) == (not unassign) or not start:
        raise InvalidRequest("give --from and one of --officer or --unassign")
    got = _call(config, "POST", "/equipment/assign",
                {"serial": serial, "officer": officer, "start": start, "reason": reason})
    return Reply(got, human=lambda: _print_history(got))


@equipment_app.command("history")
@command
def history(serial: SerialArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Every assignment of one camera, in the order recorded. Needs equipment.view."""
    got = _call(config, "GET", "/equipment/history", serial=serial)
    return Reply(got, human=lambda: _print_history(got))


@equipment_app.command("report")
@command
def report(idle_days: Annotated[int | None, typer.Option(
               "--idle-days", help="Idle: not docked for this many days "
                                   "(default: config equipment.idle_days).")] = None,
           as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Cameras (holder, last dock, last offload, clock drift, battery at dock, idle) and
    units below the equipment ratio (config equipment.min_ratio, cameras per officer).
    Needs equipment.view; every run is an audit event. Exit codes: 0 done; 1 bad input;
    3 refused."""
    if as_csv and as_json:
        raise InvalidRequest("choose --csv or --json, not both")
    got = _call(config, "GET", "/equipment/report", idle_days=idle_days)
    return Reply(got, human=lambda: _csv(got) if as_csv else _table(got))


def battery_text(battery: Json) -> str:
    """The battery at dock for people: "37% at 2026-12-04 09:12:00+08:00", or in words
    why there is no reading ("not reported by the camera")."""
    if not battery.get("reported"):
        return str(battery.get("text", ""))
    return f"{battery['percent']}% at {show_time(battery['at'])}"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):  # the battery at dock: a reading, or why there is none
        return battery_text(value)
    return show_time(value) if is_instant(value) else str(value)


def _csv(got: Json) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["kind", *CAMERA_COLUMNS])
    for c in got["cameras"]:
        out.writerow(["camera", *("" if c[k] is None else battery_text(c[k]) if k == "battery"
                                  else c[k] for k in CAMERA_COLUMNS)])
    out.writerow(["kind", *UNIT_COLUMNS])
    for u in got["units"]:
        out.writerow(["unit", *("" if u[k] is None else u[k] for k in UNIT_COLUMNS)])


def _table(got: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    cams = Table(*CAMERA_COLUMNS, title=f"{len(got['cameras'])} camera(s); idle: not "
                 f"docked for {got['idle_days']} day(s)")
    for c in got["cameras"]:
        cams.add_row(*(_cell(c[k]) for k in CAMERA_COLUMNS),
                     style="bold red" if c["idle"] else None)
    console.print(cams)
    units = Table(*UNIT_COLUMNS, title=f"equipment ratio (at least {got['min_ratio']:g} "
                  "camera(s) per officer)")
    for u in got["units"]:
        units.add_row(*(_cell(u[k]) for k in UNIT_COLUMNS),
                      style="bold red" if u["below"] else None)
    console.print(units)
    console.print(f"below the ratio: {', '.join(got['below_ratio']) or 'none'}; idle: "
                  f"{', '.join(got['idle']) or 'none'}; battery: the newest reading at a "
                  "dock (a mass-storage camera has none: not reported by the camera)")


def _print_history(got: Json) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "officer", "from", "recorded by", "at", "reason",
                  title=f"assignments of {got['serial']}")
    for r in got["assignments"]:
        table.add_row(str(r["id"]), r["officer"] or "(unassigned)", show_time(r["from"]),
                      r["by"], show_time(r["at"]), r["reason"])
    Console().print(table)


__all__ = ["equipment_app"]
