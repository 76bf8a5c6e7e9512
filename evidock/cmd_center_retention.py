"""CLI at a center: holds on a station's records and decisions on the deletions
stations report (`evidock center hold add|release|list`, `evidock center retention
pending|approve|reject`). Thin clients of the service (`/api/v1/center/...`); the desks
check permissions, the two-person rules and audit. Wired in by evidock/cli.py under
``center``. A station carries the result out with `evidock retention pull`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import show_time, zoned
from integrity.errors import InvalidRequest

center_hold_app = typer.Typer(no_args_is_help=True, add_completion=False,
                              help="At a center: legal holds on a station's records.")
center_retention_app = typer.Typer(no_args_is_help=True, add_completion=False,
                                   help="At a center: approve or reject stations' "
                                        "deletions.")
StationOpt = Annotated[str, typer.Option("--station", help="The station's id.")]


def _call(config: Any, method: str, path: str, body: dict[str, Any] | None = None,
          **params: Any) -> Any:
    from evidock.client import station

    with station(config) as st:
        out = (st.post(path, body or {}) if method == "POST"
               else st.get(path, **{k: v for k, v in params.items() if v is not None}))
        return zoned(out, st.zone_name)


def _print_hold(v: dict[str, Any]) -> None:
    state = "active" if v["active"] else f"released by {v['released_by']}"
    typer.echo(f"{v['id']}  {v['station_id']}  {v['scope']}:{v['label']}  by "
               f"{v['placed_by']} {show_time(v['placed_at'])}  {state}  {v['reason']}")


@center_hold_app.command("add")
@command
def hold_add(station: StationOpt, reason: ReasonOpt,
             case: Annotated[str | None, typer.Option("--case", help="Case number or id.")]
             = None,
             recording: Annotated[str | None, typer.Option("--recording")] = None,
             officer: Annotated[str | None, typer.Option("--officer")] = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Hold a station's case, recording or officer's footage (the station keeps it from
    its next pull on)."""
    given = [(s, t) for s, t in (("case", case), ("recording", recording),
                                 ("officer", officer)) if t is not None]
    if len(given) != 1:
        raise InvalidRequest("name exactly one of --case, --recording, --officer")
    scope, target = given[0]
    out: dict[str, object] = _call(config, "POST", "/center/holds", {
        "station": station, "scope": scope, "target": target, "reason": reason})
    return out


@center_hold_app.command("release")
@command
def hold_release(hold: Annotated[str, typer.Argument(help="Center hold id.")],
                 reason: ReasonOpt, config: ConfigOpt = None,
                 as_json: JsonOpt = False) -> dict[str, object]:
    """Release a center hold (a different user from the one who placed it)."""
    out: dict[str, object] = _call(config, "POST", "/center/holds/release",
                                   {"hold": hold, "reason": reason})
    return out


@center_hold_app.command("list")
@command
def hold_list(station: Annotated[str | None, typer.Option("--station")] = None,
              all_holds: Annotated[bool, typer.Option("--all", help="Released too.")]
              = False, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Center holds in force (or all) that you may see."""
    out = _call(config, "GET", "/center/holds", station=station, all=all_holds)

    def human() -> None:
        for v in out["holds"]:
            _print_hold(v)
        typer.echo(f"{len(out['holds'])} hold(s), {out['hidden']} hidden")
    return Reply(out, human)


@center_retention_app.command("pending")
@command
def pending(station: Annotated[str | None, typer.Option("--station")] = None,
            all_reported: Annotated[bool, typer.Option("--all", help="Decided too.")]
            = False, config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Deletions stations reported and nobody decided yet (or all)."""
    out = _call(config, "GET", "/center/retention", station=station, all=all_reported)

    def human() -> None:
        for d in out["pending"]:
            verdict = d["decision"]["verdict"] if d["decision"] else "undecided"
            typer.echo(f"{d['station_id']}  {d['action_id']}  {d['recording_id']}  due "
                       f"{show_time(d['due_at'])}  scheduled by {d['scheduled_by']}  "
                       f"{verdict}  {d['rule']}: {d['reason']}")
        typer.echo(f"{len(out['pending'])} deletion(s)")
    return Reply(out, human)


def _decide(config: Any, station: str, action: int, verdict: str,
            reason: str) -> dict[str, object]:
    out: dict[str, object] = _call(config, "POST", "/center/retention/decide", {
        "station": station, "action": action, "verdict": verdict, "reason": reason})
    return out


ActionArg = Annotated[int, typer.Argument(help="The station's deletion (action) id.")]


@center_retention_app.command("approve")
@command
def approve(station: StationOpt, action: ActionArg,
            reason: Annotated[str, typer.Option("--reason")] = "",
            config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Approve a station's deletion (not the one who scheduled it); the station still
    re-plans before deleting."""
    return _decide(config, station, action, "approved", reason)


@center_retention_app.command("reject")
@command
def reject(station: StationOpt, action: ActionArg, reason: ReasonOpt,
           config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Reject a station's deletion: the station cancels it at its next pull."""
    return _decide(config, station, action, "rejected", reason)


__all__ = ["center_hold_app", "center_retention_app"]
