"""CLI: retention (`evidock retention plan|schedule|pending|approve|run|pull`) and legal holds
(`evidock hold add|release|list`).

Thin clients of the station service: it identifies the caller, acts at its own clock's
"now", and its executor and hold desk check permissions and audit. What people see is
rendered here from the JSON the service answers (the same JSON ``--json`` prints).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, ReasonOpt, Reply, command
from evidock.output import rezone_text, show_time, zone_of, zoned
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from evidock.client import Station

retention_app = typer.Typer(no_args_is_help=True,
                            help="Retention: plan, schedule, approve and run deletions.")
hold_app = typer.Typer(no_args_is_help=True,
                       help="Legal holds: nothing a hold covers is deleted.")

Json = Mapping[str, Any]


@contextmanager
def station(config: Path | None) -> Iterator[Station]:
    # Imported when a command runs: building the command tree stays light (no httpx).
    from evidock.client import station as connect

    with connect(config) as st:
        yield st


# ---------------------------------------------------------------------- retention


@retention_app.command("plan")
@command
def plan(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Dry run: what the rules decide for every recording now (nothing changes)."""
    with station(config) as st:
        report: Json = zoned(st.get("/retention/plan"), st.zone_name)
        zone = zone_of(st.zone_name)
    return Reply(report, human=lambda: _print_plan(report, zone))


def _print_plan(report: Json, zone: tzinfo) -> None:
    for d in report["decisions"]:
        typer.echo(f"{d['action']:6} {d['rule']:22} {d['recording_id']}  "
                   f"{rezone_text(d['reason'], zone)}")
    typer.echo(", ".join(f"{k} {v}" for k, v in report["summary"].items()))


@retention_app.command("schedule")
@command
def schedule(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Schedule each due deletion (the grace period starts); cancel those now kept."""
    with station(config) as st:
        report: Json = zoned(st.post("/retention/schedule"), st.zone_name)
        zone = zone_of(st.zone_name)
    return Reply(report, human=lambda: _print_schedule(report, zone))


def _print_schedule(report: Json, zone: tzinfo) -> None:
    for c in report["changes"]:
        typer.echo(f"{c['step']:9} {c['recording_id']}  due {show_time(c['due_at'])}  "
                   f"{rezone_text(c['reason'], zone)}")
    typer.echo(f"{report['scheduled']} scheduled, {report['cancelled']} cancelled, "
               f"{report['open']} pending")


@retention_app.command("pending")
@command
def pending(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Scheduled deletions, their due dates and approvals."""
    with station(config) as st:
        answer: Json = zoned(st.get("/retention/pending"), st.zone_name)
        zone = zone_of(st.zone_name)
    return Reply(answer, human=lambda: _print_pending(answer["pending"], zone))


def _print_pending(views: list[Json], zone: tzinfo) -> None:
    for v in views:
        approvals = ("approved by " + ", ".join(v["approvals"]) if v["approvals"]
                     else "not approved")
        typer.echo(f"{'due' if v['due'] else 'grace':5} {show_time(v['due_at'])}  "
                   f"{v['recording_id']}  scheduled by {v['scheduled_by']}; {approvals}; "
                   f"{rezone_text(v['reason'], zone)}")
    typer.echo(f"{len(views)} pending")


@retention_app.command("approve")
@command
def approve(recording: Annotated[str, typer.Argument(help="Recording id.")],
            config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Approve a scheduled deletion (a different user from the one who scheduled it)."""
    with station(config) as st:
        answer: dict[str, object] = zoned(st.post("/retention/approve",
                                                  {"recording": recording}), st.zone_name)
    return answer


@retention_app.command("run")
@command
def run(dry_run: Annotated[bool, typer.Option("--dry-run",
                                              help="Report what would be deleted.")] = False,
        config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Delete the due, approved recordings' content, leaving a tombstone for each."""
    with station(config) as st:
        report: Json = zoned(st.get("/retention/dry-run") if dry_run
                             else st.post("/retention/run"), st.zone_name)
        zone = zone_of(st.zone_name)
    # Exit 1 when an item was blocked (its stored content does not match the catalog).
    return Reply(report, human=lambda: _print_run(report, zone),
                 exit_code=1 if report["counts"].get("blocked") else 0)


def _print_run(report: Json, zone: tzinfo) -> None:
    for o in report["outcomes"]:
        removed, kept = o["removed"], o["kept"]
        extra = f" ({len(removed)} blobs, {len(kept)} kept)" if removed or kept else ""
        typer.echo(f"{o['status']:12} {o['code']:30} {o['recording_id']}{extra}  "
                   f"{rezone_text(o['reason'], zone)}")
    summary = ", ".join(f"{n} {s}" for s, n in report["counts"].items() if n) \
        or "nothing pending"
    typer.echo(f"dry run: {summary}" if report["dry_run"] else summary)
    if report["swept"]:
        typer.echo(f"removed {len(report['swept'])} blob(s) left by an interrupted run")


@retention_app.command("pull")
@command
def pull(config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Carry out the center's holds and decisions (with `[center] retention = "center"`,
    report this station's open deletions to it first)."""
    with station(config) as st:
        out: Json = zoned(st.post("/retention/pull"), st.zone_name)

    def human() -> None:
        for h in out["holds"]:
            typer.echo(f"hold {h['status']:9} center hold {h['center_hold']}"
                       + (f"  {h['why']}" if "why" in h else ""))
        for d in out["decisions"]:
            typer.echo(f"deletion {d['status']:9} action {d['action_id']}"
                       + (f"  {d['why']}" if "why" in d else ""))
        typer.echo(f"{out['reported']} deletion(s) newly reported, {out['center_holds']} "
                   "center hold(s) known")
    # Exit 1 when something could not be carried out (a hold on what is not here yet).
    failed = [x for x in (*out["holds"], *out["decisions"])
              if x["status"] in ("unplaced", "refused")]
    return Reply(out, human, exit_code=1 if failed else 0)


# ---------------------------------------------------------------------- holds


def _print_hold(view: Json) -> None:
    state = "active" if view["active"] else f"released by {view['released_by']}"
    typer.echo(f"{view['id']}  {view['scope']}:{view['label']}  by {view['placed_by']} "
               f"{show_time(view['placed_at'])}  {state}  {view['reason']}")


@hold_app.command("add")
@command
def hold_add(reason: ReasonOpt,
             case: Annotated[str | None, typer.Option("--case", help="Case number.")] = None,
             recording: Annotated[str | None, typer.Option("--recording",
                                                           help="Recording id.")] = None,
             officer: Annotated[str | None, typer.Option("--officer",
                                                         help="Police number.")] = None,
             config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Place a legal hold on a case, a recording or an officer's footage."""
    given = [(s, t) for s, t in (("case", case), ("recording", recording),
                                 ("officer", officer)) if t is not None]
    if len(given) != 1:
        raise InvalidRequest("name exactly one of --case, --recording, --officer")
    scope, target = given[0]
    with station(config) as st:
        answer: dict[str, object] = zoned(st.post("/holds", {
            "scope": scope, "target": target, "reason": reason}), st.zone_name)
    return answer


@hold_app.command("release")
@command
def hold_release(hold: Annotated[str, typer.Argument(help="Hold id.")], reason: ReasonOpt,
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> dict[str, object]:
    """Release a hold (a different user from the one who placed it)."""
    with station(config) as st:
        answer: dict[str, object] = zoned(st.post("/holds/release", {
            "hold": hold, "reason": reason}), st.zone_name)
    return answer


@hold_app.command("list")
@command
def hold_list(all_holds: Annotated[bool, typer.Option("--all",
                                                      help="Released holds too.")] = False,
              config: ConfigOpt = None, as_json: JsonOpt = False) -> Reply:
    """Holds in force (or all of them)."""
    with station(config) as st:
        answer: Json = zoned(st.get("/holds", all=all_holds), st.zone_name)
    return Reply(answer, human=lambda: _print_holds(answer["holds"],
                                                    int(answer.get("hidden") or 0)))


def _print_holds(views: list[Json], hidden: int = 0) -> None:
    for v in views:
        _print_hold(v)
    typer.echo(f"{len(views)} hold(s)" + (f" ({hidden} hidden: on cases or recordings "
                                           "beyond your units or clearance)" if hidden else ""))


__all__ = ["hold_app", "retention_app"]
